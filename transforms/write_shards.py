"""Clean and review samples to size-capped Parquet or WebDataset shards, with no shuffle.

Each bundle streams its samples into temporary shard files, starting a new one whenever the
current one reaches `shard_mb`; one finishing step then renames every temporary file to
`part-SSSSS-of-NNNNN.<ext>`. Beam's own sinks either group every row by shard (a fixed
`num_shards` sends all media bytes through a GroupByKey, which local runners hold in memory) or
write one unbounded file per bundle; this keeps memory at one row group and shards at a size
readers like. Only files reported by finished bundles are renamed, so a retried bundle's
leftovers never reach the output. With an index file, each temp shard also gets an
id -> position sidecar, merged into the run's id -> shard index by the same step
(`shard_index.py`).
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
from transforms.shard_index import SidecarWriter, merge_sidecars, sidecar_path
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
        self._count = 0
        self.last_position = ""  # the row number of the sample written last

    @staticmethod
    def to_row(sample: Sample) -> dict:
        return sample_to_row(sample)

    def write(self, sample: Sample) -> int:
        """Buffer one sample; return roughly how many bytes it adds."""
        size = sample_bytes(sample)
        self._rows.append(self.to_row(sample))
        self.last_position, self._count = str(self._count), self._count + 1
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
        self.last_position = ""  # the key of the sample written last

    def write(self, sample: Sample) -> int:
        """Write one sample's files; return how many bytes of content they hold."""
        key, size = sample_key(sample), 0
        self.last_position = key
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


class RollingShards:
    """Temp shards under `temp_dir`, a new one whenever the current one reaches `shard_mb`.

    With `indexed`, each temp shard gets an index sidecar (`shard_index.py`). Used inside a
    bundle by `WriteTempShards` and on its own by apply-review.
    """

    def __init__(self, temp_dir: str, shard_type: type, shard_mb: float, indexed: bool = False):
        self._temp_dir = temp_dir
        self._shard_type = shard_type
        self._shard_bytes = shard_mb * (1 << 20)
        self._indexed = indexed
        self._handle = self._shard = self._path = self._sidecar = None
        self._written = 0

    def write(self, sample: Sample) -> str | None:
        """Write one sample; return the path of the shard this closed, if it closed one."""
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
        self._shard = self._shard_type(self._handle)
        self._sidecar = SidecarWriter(self._path) if self._indexed else None
        self._written = 0


class WriteTempShards(beam.DoFn):
    """Stream samples into temp shards under `temp_dir`; output each finished shard's path."""

    def __init__(self, temp_dir: str, shard_type: type, shard_mb: float, indexed: bool = False):
        self._temp_dir = temp_dir
        self._shard_type = shard_type
        self._shard_mb = shard_mb
        self._indexed = indexed

    def start_bundle(self):
        self._shards = RollingShards(
            self._temp_dir, self._shard_type, self._shard_mb, self._indexed
        )

    def process(self, sample: Sample):
        closed = self._shards.write(sample)
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
):
    """Rename the finished temp shards to part-SSSSS-of-NNNNN; yield the final paths.

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
            SHARD_TYPES[file_format](handle).close()
        if index_file:
            SidecarWriter(empty).close()
        paths = [empty]
    total = len(paths)
    finals = [f"{directory}/part-{index:05d}-of-{total:05d}{suffix}" for index in range(total)]
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


class WriteSamples(beam.PTransform):
    """Write one or more PCollections of samples as one set of shards under `directory`.

    Taking several inputs lets callers skip a Flatten: the local runners materialize every
    multi-input Flatten in memory, and these inputs carry media bytes.
    """

    def __init__(
        self, directory: str, file_format: str, shard_mb: float, index_file: str | None = None
    ):
        super().__init__()
        self._directory = directory.rstrip("/")
        self._format = file_format
        self._shard_mb = shard_mb
        self._index_file = index_file

    def expand(self, inputs):
        branches = inputs if isinstance(inputs, (tuple, list)) else (inputs,)
        pipeline = branches[0].pipeline
        temp_dir = f"{self._directory}/.temp-{uuid.uuid4().hex[:12]}"
        writer = WriteTempShards(
            temp_dir, SHARD_TYPES[self._format], self._shard_mb, indexed=bool(self._index_file)
        )
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
                self._index_file,
            )
        )
