"""The id -> shard index: which shard, and where in it, holds each sample of a run.

Finding a sample by id would otherwise mean reading every shard, media included. So every
temporary shard gets a sidecar beside it, one JSON line per sample (source, id, origin,
position, score, reason, content hash, repair) written as the sample is; the finishing step that
renames the shards merges the sidecars of exactly the shards it renames into one Parquet file,
`<prefix>/index/<folder>.parquet`, with each shard's final name. A retried bundle's shard is never
reported, so its sidecar is never merged: the index cannot point at samples that did not land,
and a retried finishing step writes the same index again.

`position` is the sample's row number in a Parquet shard or its key in a tar
(`stored_samples.py` reads shards back with the same positions); `shard` is relative to the
prefix (`clean/part-00003-of-00012.parquet`), so a prefix can be moved or copied.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from transforms.core.content_hash import content_hash
from transforms.core.record import Sample
from transforms.core.storage import open_for_write
from transforms.samples.repair import repair_role

INDEX_DIR = "index"
SIDECAR_SUFFIX = ".index.jsonl"
INDEX_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("id", pa.string()),
        ("origin", pa.string()),
        ("shard", pa.string()),
        ("position", pa.string()),
        ("score", pa.float64()),
        ("reason", pa.string()),
        # The sample's content (conversation and media bytes), so two runs can tell a changed
        # sample from an unchanged one by the index alone (`rmclean compare`).
        ("content_hash", pa.string()),
        # `repair: truncate`: "repaired" for a kept prefix in clean/, "original" for the
        # original it came from in review/ (same id and origin), else null.
        ("repair", pa.string()),
    ]
)
SIDECAR_FIELDS = tuple(name for name in INDEX_SCHEMA.names if name != "shard")
WRITE_BATCH_ROWS = 10_000  # index rows buffered per Parquet row group (~1 MB)
READ_BATCH_ROWS = 4096  # light rows: ~1 MB of Python dicts a batch


def index_path(prefix: str, folder: str) -> str:
    return f"{prefix.rstrip('/')}/{INDEX_DIR}/{folder}.parquet"


def sidecar_path(temp_shard: str) -> str:
    return f"{temp_shard}{SIDECAR_SUFFIX}"


def sidecar_line(sample: Sample, position: str) -> bytes:
    entry = {
        "source": sample.source,
        "id": sample.id,
        "origin": sample.origin,
        "position": position,
        "score": sample.score,
        "reason": sample.reason,
        "content_hash": content_hash(sample),
        "repair": repair_role(sample),
    }
    return (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")


class SidecarWriter:
    """The index lines of one temporary shard, streamed to `<shard>.index.jsonl`."""

    def __init__(self, temp_shard: str):
        self._handle = open_for_write(sidecar_path(temp_shard))

    def add(self, sample: Sample, position: str) -> None:
        self._handle.write(sidecar_line(sample, position))

    def add_entry(self, entry: dict[str, Any]) -> None:
        """A line taken over from another index (a shard copied whole by apply-review)."""
        line = {name: entry.get(name) for name in SIDECAR_FIELDS}
        self._handle.write((json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8"))

    def close(self) -> None:
        self._handle.close()


def merge_sidecars(index_file: str, shards: Iterable[tuple[str, str]]) -> int:
    """Write `index_file` from (sidecar path, shard name relative to the prefix) pairs, in order.

    Streams: at most WRITE_BATCH_ROWS rows are held. Returns the number of rows written.
    """
    rows: list[dict[str, Any]] = []
    written = 0
    with open_for_write(index_file) as handle, pq.ParquetWriter(handle, INDEX_SCHEMA) as writer:
        for sidecar, shard in shards:
            with fsspec.open(sidecar, "rt", encoding="utf-8") as lines:
                for line in lines:
                    if line.strip():
                        rows.append({**json.loads(line), "shard": shard})
                    if len(rows) >= WRITE_BATCH_ROWS:
                        writer.write_table(pa.Table.from_pylist(rows, INDEX_SCHEMA))
                        written, rows = written + len(rows), []
        if rows:
            writer.write_table(pa.Table.from_pylist(rows, INDEX_SCHEMA))
            written += len(rows)
    return written


def iter_index(index_file: str, columns: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """Every row of one index file, a batch at a time."""
    with fsspec.open(index_file, "rb") as handle:
        for batch in pq.ParquetFile(handle).iter_batches(
            batch_size=READ_BATCH_ROWS, columns=columns
        ):
            yield from batch.to_pylist()
