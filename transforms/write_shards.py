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

import apache_beam as beam
import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.windowed_value import WindowedValue

from transforms.parquet_rows import SCHEMA, sample_to_row
from transforms.record import Sample
from transforms.storage import open_for_write, remove_tree
from transforms.webdataset_rows import sample_key, sample_to_files

# A Parquet row group is flushed at whichever comes first: memory per writer (and per reader:
# row groups are the unit pyarrow reads) stays at one small row group. Small row groups are
# also what media datasets on the Hugging Face Hub use, so viewers can stream them.
ROW_GROUP_BYTES = 8 << 20
ROW_GROUP_ROWS = 1000


def sample_bytes(sample: Sample) -> int:
    """Roughly what a sample adds to a shard: its media plus its text."""
    text = sum(len(str(turn.get("value", ""))) for turn in sample.conversations)
    return text + sum(len(ref.data or b"") for ref in sample.media)


class ParquetShard:
    """One Parquet file, written a row group at a time."""

    SUFFIX = ".parquet"
    SCHEMA = SCHEMA

    def __init__(self, handle):
        self._writer = pq.ParquetWriter(handle, self.SCHEMA)
        self._rows: list[dict] = []
        self._buffered = 0

    @staticmethod
    def to_row(sample: Sample) -> dict:
        return sample_to_row(sample)

    def write(self, sample: Sample) -> int:
        """Buffer one sample; return roughly how many bytes it adds."""
        size = sample_bytes(sample)
        self._rows.append(self.to_row(sample))
        self._buffered += size
        if self._buffered >= ROW_GROUP_BYTES or len(self._rows) >= ROW_GROUP_ROWS:
            self._flush()
        return size

    def _flush(self) -> None:
        if self._rows:
            self._writer.write_table(pa.Table.from_pylist(self._rows, self.SCHEMA))
        self._rows, self._buffered = [], 0

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
        key, size = sample_key(sample), 0
        for suffix, data in sample_to_files(sample).items():
            info = tarfile.TarInfo(f"{key}.{suffix}")
            info.size = len(data)
            info.mtime = self._mtime
            info.mode = 0o644
            self._tar.addfile(info, io.BytesIO(data))
            size += len(data)
        return size

    def close(self) -> None:
        self._tar.close()  # leaves the handle open: the caller owns it


SHARD_TYPES = {"parquet": ParquetShard, "webdataset": TarShard}
SUFFIXES = {name: shard_type.SUFFIX for name, shard_type in SHARD_TYPES.items()}


class WriteTempShards(beam.DoFn):
    """Stream samples into temp shards under `temp_dir`; output each finished shard's path."""

    def __init__(self, temp_dir: str, shard_type: type, shard_mb: float):
        self._temp_dir = temp_dir
        self._shard_type = shard_type
        self._shard_bytes = shard_mb * (1 << 20)

    def start_bundle(self):
        self._handle = self._shard = self._path = None
        self._written = 0

    def process(self, sample: Sample):
        if self._shard is None:
            self._open()
        self._written += self._shard.write(sample)
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


def finalize_shards(_, directory: str, temp_dir: str, file_format: str, temp_paths: list[str]):
    """Rename the finished temp shards to part-SSSSS-of-NNNNN; yield the final paths.

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
        final = f"{directory}/part-{index:05d}-of-{total:05d}{suffix}"
        source = fsspec.get_fs_token_paths(temp)[2][0]
        if fs.exists(source):
            fs.mv(source, fsspec.get_fs_token_paths(final)[2][0])
        yield final
    remove_tree(temp_dir)


class WriteSamples(beam.PTransform):
    """Write one or more PCollections of samples as one set of shards under `directory`.

    Taking several inputs lets callers skip a Flatten: the local runners materialize every
    multi-input Flatten in memory, and these inputs carry media bytes.
    """

    def __init__(self, directory: str, file_format: str, shard_mb: float):
        super().__init__()
        self._directory = directory.rstrip("/")
        self._format = file_format
        self._shard_mb = shard_mb

    def expand(self, inputs):
        branches = inputs if isinstance(inputs, (tuple, list)) else (inputs,)
        pipeline = branches[0].pipeline
        temp_dir = f"{self._directory}/.temp-{uuid.uuid4().hex[:12]}"
        writer = WriteTempShards(temp_dir, SHARD_TYPES[self._format], self._shard_mb)
        temp_paths = (
            tuple(
                branch | f"WriteTempShards{i}" >> beam.ParDo(writer)
                for i, branch in enumerate(branches)
            )
            | "AllTempShards" >> beam.Flatten()
        )
        return (
            pipeline
            | "Finalize" >> beam.Create([None])
            | "RenameShards"
            >> beam.FlatMap(
                finalize_shards,
                self._directory,
                temp_dir,
                self._format,
                beam.pvalue.AsList(temp_paths),
            )
        )
