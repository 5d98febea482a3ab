"""Clean and review samples to size-capped Parquet or WebDataset shards, with no shuffle.

Each bundle streams its samples into temporary shard files, starting a new one whenever the
current one reaches `shard_mb`; one finishing step then renames every temporary file to
`part-SSSSS-of-NNNNN.<ext>`. Beam's own sinks either group every row by shard (a fixed
`num_shards` sends all media bytes through a GroupByKey, which local runners hold in memory) or
write one unbounded file per bundle; this keeps memory at one row group and shards at a size
readers like. Only files reported by finished bundles are renamed, so a retried bundle's
leftovers never reach the output.
"""

from __future__ import annotations

import io
import tarfile
import time
import uuid
from collections.abc import Callable
from typing import Any

import apache_beam as beam
import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.pvalue import TaggedOutput
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.windowed_value import WindowedValue

from transforms.json_lines import json_line
from transforms.parquet_rows import SCHEMA, sample_to_row
from transforms.record import ErrorRecord, Sample
from transforms.storage import open_for_write, remove_tree
from transforms.webdataset_rows import sample_key, sample_to_files

# A Parquet row group is flushed at whichever comes first: memory per writer (and per reader:
# row groups are the unit pyarrow reads) stays at one small row group. Small row groups are
# also what media datasets on the Hugging Face Hub use, so viewers can stream them.
ROW_GROUP_BYTES = 8 << 20
ROW_GROUP_ROWS = 1000
# Line files (errors, flagged rows) are small; temp files roll over at this size.
LINE_SHARD_MB = 64
COPY_BLOCK_BYTES = 8 << 20


def sample_bytes(sample: Sample) -> int:
    """Roughly what a sample adds to a shard: its media plus its text."""
    text = sum(len(str(turn.get("value", ""))) for turn in sample.conversations)
    return text + sum(len(ref.data or b"") for ref in sample.media)


class UnwritableSample(ValueError):
    """This one sample cannot be stored in this format; the shard itself is fine."""


class ParquetShard:
    """One Parquet file, written a row group at a time.

    Each sample is converted to Arrow as it arrives, so a sample Arrow cannot hold fails on its
    own (`UnwritableSample`) instead of taking its whole row group with it.
    """

    SUFFIX = ".parquet"
    SCHEMA = SCHEMA

    def __init__(self, handle):
        self._writer = pq.ParquetWriter(handle, self.SCHEMA)
        self._batches: list[pa.RecordBatch] = []
        self._buffered = 0

    @staticmethod
    def to_row(sample: Sample) -> dict:
        return sample_to_row(sample)

    def write(self, sample: Sample) -> int:
        """Buffer one sample; return roughly how many bytes it adds."""
        try:
            batch = pa.RecordBatch.from_pylist([self.to_row(sample)], self.SCHEMA)
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise UnwritableSample(f"Parquet cannot hold this sample: {exc}") from exc
        size = sample_bytes(sample)
        self._batches.append(batch)
        self._buffered += size
        if self._buffered >= ROW_GROUP_BYTES or len(self._batches) >= ROW_GROUP_ROWS:
            self._flush()
        return size

    def _flush(self) -> None:
        if self._batches:
            self._writer.write_table(pa.Table.from_batches(self._batches, self.SCHEMA))
        self._batches, self._buffered = [], 0

    def close(self) -> None:
        self._flush()
        self._writer.close()


class TarShard:
    """One WebDataset tar, streamed (Beam has no WebDataset IO of its own)."""

    SUFFIX = ".tar"

    def __init__(self, handle):
        self._tar = tarfile.open(fileobj=handle, mode="w|", format=tarfile.PAX_FORMAT)
        self._mtime = time.time()

    def write(self, sample: Sample) -> int:
        """Write one sample's files; return how many bytes of content they hold."""
        try:
            key, files = sample_key(sample), sample_to_files(sample)
        except (TypeError, ValueError) as exc:
            raise UnwritableSample(f"WebDataset cannot hold this sample: {exc}") from exc
        size = 0
        for suffix, data in files.items():
            info = tarfile.TarInfo(f"{key}.{suffix}")
            info.size = len(data)
            info.mtime = self._mtime
            info.mode = 0o644
            self._tar.addfile(info, io.BytesIO(data))
            size += len(data)
        return size

    def close(self) -> None:
        self._tar.close()  # leaves the handle open: the caller owns it


class JsonLinesShard:
    """One JSON Lines file: error records, or lines already rendered (flagged.jsonl/.csv)."""

    SUFFIX = ".jsonl"

    def __init__(self, handle):
        self._handle = handle

    def write(self, item: ErrorRecord | str) -> int:
        if isinstance(item, ErrorRecord):
            item = json_line(item.to_json())
        data = (item + "\n").encode("utf-8")
        self._handle.write(data)
        return len(data)

    def close(self) -> None:
        pass  # the caller owns (and closes) the handle


SHARD_TYPES = {"parquet": ParquetShard, "webdataset": TarShard, "jsonl": JsonLinesShard}
SUFFIXES = {name: shard_type.SUFFIX for name, shard_type in SHARD_TYPES.items()}
WRITE_ERRORS = "write_errors"
OUTCOMES = "outcomes"


class WriteTempShards(beam.DoFn):
    """Stream samples into temp shards under `temp_dir`; output each finished shard's path.

    With `describe`, every sample written also yields `describe(sample)` on the `outcomes`
    output, so a sample counts as routed only once it is in a shard; a sample the format
    cannot hold becomes an error record on `write_errors`.
    """

    def __init__(
        self,
        temp_dir: str,
        shard_type: type,
        shard_mb: float,
        describe: Callable[[Sample], Any] | None = None,
    ):
        self._temp_dir = temp_dir
        self._shard_type = shard_type
        self._shard_bytes = shard_mb * (1 << 20)
        self._describe = describe

    def start_bundle(self):
        self._handle = self._shard = self._path = None
        self._written = 0

    def process(self, sample):
        if self._shard is None:
            self._open()
        try:
            self._written += self._shard.write(sample)
        except UnwritableSample as exc:
            detail = f"{exc} ({type(exc.__cause__).__name__})"[:1000]
            yield TaggedOutput(
                WRITE_ERRORS, ErrorRecord.for_sample(sample, "write", "unwritable", detail)
            )
            return
        if self._describe is not None:
            yield TaggedOutput(OUTCOMES, self._describe(sample))
        if self._written >= self._shard_bytes:
            yield self._close()

    def finish_bundle(self):
        if self._shard is not None:
            yield WindowedValue(self._close(), GlobalWindow().max_timestamp(), [GlobalWindow()])

    def _open(self) -> None:
        self._path = f"{self._temp_dir}/{uuid.uuid4().hex}{self._shard_type.SUFFIX}"
        self._handle = open_for_write(self._path)
        self._shard = self._shard_type(self._handle)
        self._written = 0

    def _close(self) -> str:
        self._shard.close()
        self._handle.close()
        path, self._shard, self._handle = self._path, None, None
        return path


def finalize_shards(
    _,
    directory: str,
    temp_dir: str,
    file_format: str,
    temp_paths: list[str],
    name: str = "part",
):
    """Rename the finished temp shards to <name>-SSSSS-of-NNNNN; yield the final paths.

    No samples still gives one empty shard, so readers globbing the folder find the schema.
    Safe to retry: a shard already renamed by an earlier attempt is left as it is.
    """
    fs, _, _ = fsspec.get_fs_token_paths(temp_dir)
    suffix = SUFFIXES[file_format]
    paths = sorted(temp_paths)
    if not paths:
        empty = f"{temp_dir}/empty{suffix}"
        with open_for_write(empty) as handle:
            SHARD_TYPES[file_format](handle).close()
        paths = [empty]
    total = len(paths)
    for index, temp in enumerate(paths):
        final = f"{directory}/{name}-{index:05d}-of-{total:05d}{suffix}"
        source = fsspec.get_fs_token_paths(temp)[2][0]
        if fs.exists(source):
            fs.mv(source, fsspec.get_fs_token_paths(final)[2][0])
        yield final
    remove_tree(temp_dir)


def concatenate_shards(_, final: str, temp_dir: str, temp_paths: list[str], header: str | None):
    """Join the temp line files into the one file `final` (with `header` first); yield it.

    Streams a block at a time; an empty input still gives the file (header only). Retrying
    rewrites it from the same temp files, which are removed only once it is complete.
    """
    with open_for_write(final) as out:
        if header is not None:
            out.write((header + "\n").encode("utf-8"))
        for temp in sorted(temp_paths):
            with fsspec.open(temp, "rb") as part:
                while block := part.read(COPY_BLOCK_BYTES):
                    out.write(block)
    remove_tree(temp_dir)
    yield final


def _temp_dir(directory: str) -> str:
    return f"{directory}/.temp-{uuid.uuid4().hex[:12]}"


def _write_temp(branches, writer: WriteTempShards):
    """(temp shard paths, outcomes, write errors) of writing every branch with `writer`."""
    written = [
        branch
        | f"WriteTempShards{i}"
        >> beam.ParDo(writer).with_outputs(OUTCOMES, WRITE_ERRORS, main="paths")
        for i, branch in enumerate(branches)
    ]
    return tuple(
        tuple(w[tag] for w in written) | f"All{tag.title()}" >> beam.Flatten()
        for tag in ("paths", OUTCOMES, WRITE_ERRORS)
    )


class WriteSamples(beam.PTransform):
    """Write one or more PCollections of samples as one set of shards under `directory`.

    Taking several inputs lets callers skip a Flatten: the local runners materialize every
    multi-input Flatten in memory, and these inputs carry media bytes. Returns a dict of
    PCollections: `files` (final shard paths, once all are renamed), `outcomes` (one
    `describe(sample)` per sample written) and `write_errors` (samples the format cannot hold).
    """

    def __init__(
        self,
        directory: str,
        file_format: str,
        shard_mb: float,
        describe: Callable[[Sample], Any] | None = None,
        name: str = "part",
    ):
        super().__init__()
        self._directory = directory.rstrip("/")
        self._format = file_format
        self._shard_mb = shard_mb
        self._describe = describe
        self._name = name

    def expand(self, inputs):
        branches = inputs if isinstance(inputs, (tuple, list)) else (inputs,)
        temp_dir = _temp_dir(self._directory)
        writer = WriteTempShards(
            temp_dir, SHARD_TYPES[self._format], self._shard_mb, self._describe
        )
        temp_paths, outcomes, errors = _write_temp(branches, writer)
        files = (
            branches[0].pipeline
            | "Finalize" >> beam.Create([None])
            | "RenameShards"
            >> beam.FlatMap(
                finalize_shards,
                self._directory,
                temp_dir,
                self._format,
                beam.pvalue.AsList(temp_paths),
                self._name,
            )
        )
        return {"files": files, OUTCOMES: outcomes, WRITE_ERRORS: errors}


class WriteLines(beam.PTransform):
    """Write lines (strings, or error records as JSON) as the single file `path`.

    Every worker streams its lines into temp files; the finishing step joins them. Unlike
    Beam's WriteToText with one shard, no line goes through a GroupByKey, and no input still
    gives the file (object stores reject the empty multipart upload Beam's sink makes then).
    """

    def __init__(self, path: str, header: str | None = None):
        super().__init__()
        self._path = path
        self._header = header

    def expand(self, lines):
        temp_dir = _temp_dir(self._path.rsplit("/", 1)[0])
        writer = WriteTempShards(temp_dir, JsonLinesShard, LINE_SHARD_MB)
        temp_paths = lines | "WriteTempLines" >> beam.ParDo(writer)
        return (
            lines.pipeline
            | "Finalize" >> beam.Create([None])
            | "JoinLines"
            >> beam.FlatMap(
                concatenate_shards,
                self._path,
                temp_dir,
                beam.pvalue.AsList(temp_paths),
                self._header,
            )
        )
