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

from transforms.read_guard import record_or_error
from transforms.record import IMAGE, ErrorRecord, MediaRef, Sample
from transforms.record_validation import (
    InvalidRecord,
    build_sample,
    checked_media,
    llava_record_to_sample,
)

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
    """A row from our own shards (has `media` + `fields`) or a OneVision-style row; a row that
    does not validate becomes an error record for that row."""
    convert = own_row_to_sample if "media" in row and "fields" in row else onevision_row_to_sample
    return record_or_error(convert, row, default_source, origin)


def own_row_to_sample(row: dict[str, Any], default_source: str, origin: str) -> Sample:
    raw_id = row.get("id")
    sample_id = raw_id if isinstance(raw_id, str) else None
    try:
        fields = json.loads(row["fields"]) if row.get("fields") else {}
    except (TypeError, ValueError) as exc:
        raise InvalidRecord(
            "bad_fields", f"'fields' is not valid JSON ({exc})", sample_id
        ) from None
    source = row.get("source") or default_source
    if not isinstance(source, str):
        source = default_source
    media = checked_media(row.get("media"), sample_id)
    return build_sample(source, origin, raw_id, row.get("conversations"), media, fields)


def onevision_row_to_sample(row: dict[str, Any], default_source: str, origin: str) -> Sample:
    """`image` is a {bytes, path} struct (or a list of them); other columns are kept."""
    images = row.get(IMAGE)
    images = images if isinstance(images, list) else ([images] if images else [])
    record = {k: v for k, v in row.items() if k != IMAGE}
    source = row.get("data_source") if isinstance(row.get("data_source"), str) else None
    sample = llava_record_to_sample(record, source or default_source, origin)
    for position, image in enumerate(images):
        if not isinstance(image, dict):
            raise InvalidRecord(
                "bad_media", f"image {position} is not a {{bytes, path}} struct", sample.id
            )
        data, path = image.get("bytes"), image.get("path")
        if not data:
            continue  # OneVision rows without a picture carry an empty struct
        if not isinstance(data, (bytes, bytearray)):
            raise InvalidRecord("bad_media", f"image {position} bytes are not binary", sample.id)
        if not isinstance(path, str) or not path:
            path = f"{sample.id}_{position}.jpg"
        sample.media.append(MediaRef(IMAGE, path, bytes(data)))
    return sample
