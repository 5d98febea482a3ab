"""The shard files rmclean writes: Parquet, WebDataset tar and JSON Lines, one sample at a time.

Each type streams into a handle the caller owns and reports roughly how many bytes each sample
added, so the caller can roll over to a new file at a size cap (`rolling_shards.py`).
"""

from __future__ import annotations

import io
import tarfile
import time

import pyarrow as pa
import pyarrow.parquet as pq

from transforms.core.json_lines import json_line
from transforms.core.record import ErrorRecord, Sample
from transforms.core.run_info import PARQUET_KEY, RunInfo
from transforms.io.hf_features import METADATA_KEY as HF_METADATA_KEY
from transforms.io.parquet_rows import HF_FEATURES, SCHEMA, sample_to_row
from transforms.io.webdataset_rows import sample_key, sample_to_files

# A Parquet row group is flushed at whichever comes first: memory per writer (and per reader:
# row groups are the unit pyarrow reads) stays at one small row group. Small row groups are
# also what media datasets on the Hugging Face Hub use, so viewers can stream them.
ROW_GROUP_BYTES = 8 << 20
ROW_GROUP_ROWS = 1000


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
        # Whole seconds: a fractional mtime costs every member an extra PAX header.
        self._mtime = int(time.time())
        self.last_position = ""  # the key of the sample written last

    def write(self, sample: Sample) -> int:
        """Write one sample's files; return how many bytes they add to the tar (headers and
        padding to whole blocks included)."""
        try:
            key, files = sample_key(sample), sample_to_files(sample, self._run_info)
        except (TypeError, ValueError) as exc:
            raise UnwritableSample(f"WebDataset cannot hold this sample: {exc}") from exc
        self.last_position, start = key, self._tar.offset
        for suffix, data in files.items():
            info = tarfile.TarInfo(f"{key}.{suffix}")
            info.size = len(data)
            info.mtime = self._mtime
            info.mode = 0o644
            self._tar.addfile(info, io.BytesIO(data))
        return self._tar.offset - start

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
