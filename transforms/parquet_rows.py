"""Sample <-> Parquet row, for this tool's own shards and LLaVA-OneVision-style Parquet.

Every original field the pipeline does not interpret travels in `fields` as JSON, so datasets
with different extra fields share one schema and are written back unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from transforms.read_manifest import record_to_sample
from transforms.record import IMAGE, ErrorRecord, MediaRef, Sample

SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("source", pa.string()),
        ("conversations", pa.list_(pa.struct([("from", pa.string()), ("value", pa.string())]))),
        (
            "media",
            pa.list_(
                pa.struct([("kind", pa.string()), ("path", pa.string()), ("bytes", pa.binary())])
            ),
        ),
        ("fields", pa.string()),
        ("score", pa.float64()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        # Where the sample was read from (manifest file and index, or shard and key), so a
        # reviewer can find the original record; then a reviewer's verdict, if any.
        ("origin", pa.string()),
        ("review_decision", pa.string()),
        ("review_note", pa.string()),
    ]
)
OUTPUT_ONLY_COLUMNS = ("score", "reason", "detail", "origin", "review_decision", "review_note")
# Rows decoded at a time when reading: memory stays at one row group however big the file.
READ_BATCH_ROWS = 64


def iter_rows(path: str) -> Iterator[dict[str, Any]]:
    """Every row of a Parquet file (local or any fsspec URL) as a dict, in file order."""
    with fsspec.open(path, "rb") as handle:
        for batch in pq.ParquetFile(handle).iter_batches(batch_size=READ_BATCH_ROWS):
            yield from batch.to_pylist()


def sample_to_row(sample: Sample) -> dict[str, Any]:
    return {
        "id": sample.id,
        "source": sample.source,
        "conversations": sample.conversations,
        "media": [{"kind": m.kind, "path": m.path, "bytes": m.data} for m in sample.media],
        "fields": json.dumps(sample.fields, ensure_ascii=False),
        "score": sample.score,
        "reason": sample.reason,
        "detail": sample.detail,
        "origin": sample.origin,
        "review_decision": sample.review_decision,
        "review_note": sample.review_note,
    }


def row_to_sample(row: dict[str, Any], default_source: str, origin: str) -> Sample | ErrorRecord:
    """A row from our own shards (has `media` + `fields`) or a OneVision-style row."""
    if "media" in row and "fields" in row:
        return _own_row_to_sample(row, default_source, origin)
    return _onevision_row_to_sample(row, default_source, origin)


def _own_row_to_sample(row: dict[str, Any], default_source: str, origin: str) -> Sample:
    media = [MediaRef(m["kind"], m["path"], m["bytes"]) for m in row["media"] or []]
    fields = json.loads(row["fields"]) if row.get("fields") else {}
    conversations = [{"from": t["from"], "value": t["value"]} for t in row["conversations"]]
    return Sample(
        row["id"], row.get("source") or default_source, conversations, media, fields, origin
    )


def _onevision_row_to_sample(
    row: dict[str, Any], default_source: str, origin: str
) -> Sample | ErrorRecord:
    """`image` is a {bytes, path} struct (or a list of them); other columns are kept."""
    images = row.get(IMAGE)
    images = images if isinstance(images, list) else ([images] if images else [])
    record = {k: v for k, v in row.items() if k != IMAGE}
    parsed = record_to_sample(record, row.get("data_source") or default_source, origin)
    if isinstance(parsed, ErrorRecord):
        return parsed
    for position, image in enumerate(images):
        if not isinstance(image, dict) or not image.get("bytes"):
            continue
        path = image.get("path") or f"{parsed.id}_{position}.jpg"
        parsed.media.append(MediaRef(IMAGE, path, image["bytes"]))
    return parsed
