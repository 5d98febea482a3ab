"""Clean and review samples to size-capped Parquet or WebDataset shards, with no shuffle.

Each bundle streams its samples into temporary shard files, starting a new one whenever the
current one reaches `shard_mb`; one finishing step then renames every temporary file to
`part-SSSSS-of-NNNNN.<ext>`. Beam's own sinks either group every row by shard (a fixed
`num_shards` sends all media bytes through a GroupByKey, which local runners hold in memory) or
write one unbounded file per bundle; this keeps memory at one row group and shards at a size
readers like. Only files reported by finished bundles are renamed, so a retried bundle's
leftovers never reach the output. With an index file, each temp shard also gets an
id -> position sidecar, merged into the run's id -> shard index by the same step
(`shard_index.py`). Error records and report lines use the same writer as JSON Lines.
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

from transforms.core.json_lines import json_line
from transforms.core.record import ErrorRecord, Sample
from transforms.core.run_info import PARQUET_KEY, RunInfo
from transforms.core.storage import open_for_write, remove_tree
from transforms.io.hf_features import METADATA_KEY as HF_METADATA_KEY
from transforms.io.parquet_rows import HF_FEATURES, SCHEMA, sample_to_row
from transforms.io.shard_index import SidecarWriter, merge_sidecars, sidecar_path
from transforms.io.webdataset_rows import sample_key, sample_to_files

# A Parquet row group is flushed at whichever comes first: memory per writer (and per reader:
# row groups are the unit pyarrow reads) stays at one small row group. Small row groups are
# also what media datasets on the Hugging Face Hub use, so viewers can stream them.
ROW_GROUP_BYTES = 8 << 20
ROW_GROUP_ROWS = 1000
# Line files (errors, flagged rows) are small; temp files roll over at this size.
LINE_SHARD_MB = 64
COPY_BLOCK_BYTES = 8 << 20
WRITE_ERRORS = "write_errors"
OUTCOMES = "outcomes"


def sample_bytes(sample: Sample) -> int:
    """Roughly what a sample adds to a shard: its media plus its text."""
    text = sum(len(str(turn.get("value", ""))) for turn in sample.conversations)
    return text + sum(len(ref.data or b"") for ref in sample.media)


class UnwritableSample(ValueError):
    """This one sample cannot be stored in this format; the shard itself is fine."""


class ParquetShard:
    """One Parquet file, written a row group at a time.

    Each sample is converted to Arrow as it arrives, so a sample Arrow cannot hold fails on its
    own (`UnwritableSample`) instead of taking its whole row group with it. The schema carries
    the Hugging Face features and, with `run_info`, the run's information; it is fixed when the
    first sample arrives, which brings a percentile run's cuts.
    """

    SUFFIX = ".parquet"
    SCHEMA = SCHEMA

    def __init__(self, handle, run_info: RunInfo | None = None):
        self._handle = handle
        self._run_info = run_info
        self._writer: pq.ParquetWriter | None = None
        self._batches: list[pa.RecordBatch] = []
        self._buffered = 0
        self._count = 0
        self.last_position = ""  # the row number of the sample written last

    @staticmethod
    def to_row(sample: Sample) -> dict:
        return sample_to_row(sample)

    def metadata(self, first: Sample | None) -> dict[bytes, str]:
        metadata = {HF_METADATA_KEY: HF_FEATURES}
        if self._run_info is not None:
            metadata[PARQUET_KEY] = self._run_info.for_parquet(first)
        return metadata

    def _open(self, first: Sample | None) -> None:
        schema = self.SCHEMA.with_metadata(self.metadata(first))
        self._writer = pq.ParquetWriter(self._handle, schema)

    def write(self, sample: Sample) -> int:
        """Buffer one sample; return roughly how many bytes it adds."""
        try:
            batch = pa.RecordBatch.from_pylist([self.to_row(sample)], self.SCHEMA)
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise UnwritableSample(f"Parquet cannot hold this sample: {exc}") from exc
        if self._writer is None:
            self._open(sample)
        size = sample_bytes(sample)
        self._batches.append(batch)
        self.last_position, self._count = str(self._count), self._count + 1
        self._buffered += size
        if self._buffered >= ROW_GROUP_BYTES or len(self._batches) >= ROW_GROUP_ROWS:
            self._flush()
        return size

    def _flush(self) -> None:
        if self._batches:
            self._writer.write_table(pa.Table.from_batches(self._batches, self.SCHEMA))
        self._batches, self._buffered = [], 0

    def close(self) -> None:
        if self._writer is None:
            self._open(None)  # no samples: the file still has the schema
        self._flush()
        self._writer.close()


class TarShard:
    """One WebDataset tar, streamed (Beam has no WebDataset IO of its own)."""

    SUFFIX = ".tar"

    def __init__(self, handle, run_info: RunInfo | None = None):
        self._run_info = run_info
        self._tar = tarfile.open(fileobj=handle, mode="w|", format=tarfile.PAX_FORMAT)
        self._mtime = time.time()
        self.last_position = ""  # the key of the sample written last

    def write(self, sample: Sample) -> int:
        """Write one sample's files; return how many bytes of content they hold."""
        try:
            key, files = sample_key(sample), sample_to_files(sample, self._run_info)
        except (TypeError, ValueError) as exc:
            raise UnwritableSample(f"WebDataset cannot hold this sample: {exc}") from exc
        self.last_position, size = key, 0
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

    def __init__(self, handle, run_info: RunInfo | None = None):
        self._handle = handle
        self.last_position = ""

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


class RollingShards:
    """Temp shards under `temp_dir`, a new one whenever the current one reaches `shard_mb`.

    With `indexed`, each temp shard gets an index sidecar (`shard_index.py`). Used inside a
    bundle by `WriteTempShards` and on its own by apply-review.
    """

    def __init__(
        self,
        temp_dir: str,
        shard_type: type,
        shard_mb: float,
        indexed: bool = False,
        run_info: RunInfo | None = None,
    ):
        self._temp_dir = temp_dir
        self._shard_type = shard_type
        self._shard_bytes = shard_mb * (1 << 20)
        self._indexed = indexed
        self._run_info = run_info
        self._handle = self._shard = self._path = self._sidecar = None
        self._written = 0

    def write(self, sample) -> str | None:
        """Write one sample; return the path of the shard this closed, if it closed one.

        Raises `UnwritableSample` (nothing written) for a sample the format cannot hold.
        """
        if self._shard is None:
            self._open()
        self._written += self._shard.write(sample)
        if self._sidecar is not None:
            self._sidecar.add(sample, self._shard.last_position)
        return self.close() if self._written >= self._shard_bytes else None

    def close(self) -> str | None:
        """Close the open shard, if any, and return its path."""
        if self._shard is None:
            return None
        self._shard.close()
        self._handle.close()
        if self._sidecar is not None:
            self._sidecar.close()
        path, self._shard, self._handle, self._sidecar = self._path, None, None, None
        return path

    def _open(self) -> None:
        self._path = f"{self._temp_dir}/{uuid.uuid4().hex}{self._shard_type.SUFFIX}"
        self._handle = open_for_write(self._path)
        self._shard = self._shard_type(self._handle, self._run_info)
        self._sidecar = SidecarWriter(self._path) if self._indexed else None
        self._written = 0


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
        indexed: bool = False,
        describe: Callable[[Sample], Any] | None = None,
        run_info: RunInfo | None = None,
    ):
        self._temp_dir = temp_dir
        self._shard_type = shard_type
        self._shard_mb = shard_mb
        self._indexed = indexed
        self._describe = describe
        self._run_info = run_info

    def start_bundle(self):
        self._shards = RollingShards(
            self._temp_dir, self._shard_type, self._shard_mb, self._indexed, self._run_info
        )

    def process(self, sample):
        try:
            closed = self._shards.write(sample)
        except UnwritableSample as exc:
            detail = f"{exc} ({type(exc.__cause__).__name__})"[:1000]
            error = ErrorRecord.for_sample(sample, "write", "unwritable", detail)
            yield TaggedOutput(WRITE_ERRORS, error)
            return
        if self._describe is not None:
            yield TaggedOutput(OUTCOMES, self._describe(sample))
        if closed:
            yield closed

    def finish_bundle(self):
        closed = self._shards.close()
        if closed:
            yield WindowedValue(closed, GlobalWindow().max_timestamp(), [GlobalWindow()])


def finalize_shards(
    _,
    directory: str,
    temp_dir: str,
    file_format: str,
    temp_paths: list[str],
    index_file: str | None = None,
    name: str = "part",
    run_info: RunInfo | None = None,
):
    """Rename the finished temp shards to <name>-SSSSS-of-NNNNN; yield the final paths.

    No samples still gives one empty shard, so readers globbing the folder find the schema.
    With `index_file`, the sidecars of these shards (and only these) are merged into it first,
    under the final names. Safe to retry: the index is rewritten from the same sidecars (they
    stay until the very end), and a shard already renamed by an earlier attempt is left as it is.
    """
    fs, _, _ = fsspec.get_fs_token_paths(temp_dir)
    suffix = SUFFIXES[file_format]
    paths = sorted(temp_paths)
    if not paths:
        empty = f"{temp_dir}/empty{suffix}"
        with open_for_write(empty) as handle:
            SHARD_TYPES[file_format](handle, run_info).close()
        if index_file:
            SidecarWriter(empty).close()
        paths = [empty]
    total = len(paths)
    finals = [f"{directory}/{name}-{index:05d}-of-{total:05d}{suffix}" for index in range(total)]
    sidecars = [sidecar_path(temp) for temp in paths]
    if index_file and all(fs.exists(fsspec.get_fs_token_paths(s)[2][0]) for s in sidecars):
        folder = directory.rstrip("/").rsplit("/", 1)[-1]
        names = [f"{folder}/{final.rsplit('/', 1)[-1]}" for final in finals]
        merge_sidecars(index_file, zip(sidecars, names, strict=True))
    for temp, final in zip(paths, finals, strict=True):
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
        index_file: str | None = None,
        describe: Callable[[Sample], Any] | None = None,
        name: str = "part",
        run_info: RunInfo | None = None,
    ):
        super().__init__()
        self._directory = directory.rstrip("/")
        self._format = file_format
        self._shard_mb = shard_mb
        self._index_file = index_file
        self._describe = describe
        self._name = name
        self._run_info = run_info

    def expand(self, inputs):
        branches = inputs if isinstance(inputs, (tuple, list)) else (inputs,)
        temp_dir = _temp_dir(self._directory)
        writer = WriteTempShards(
            temp_dir,
            SHARD_TYPES[self._format],
            self._shard_mb,
            indexed=bool(self._index_file),
            describe=self._describe,
            run_info=self._run_info,
        )
        written = [
            branch
            | f"WriteTempShards{i}"
            >> beam.ParDo(writer).with_outputs(OUTCOMES, WRITE_ERRORS, main="paths")
            for i, branch in enumerate(branches)
        ]
        temp_paths, outcomes, errors = (
            tuple(w[tag] for w in written) | f"All{tag.title()}" >> beam.Flatten()
            for tag in ("paths", OUTCOMES, WRITE_ERRORS)
        )
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
                self._index_file,
                self._name,
                self._run_info,
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
