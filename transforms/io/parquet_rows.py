"""Sample <-> Parquet row, for this tool's own shards and LLaVA-OneVision-style Parquet.

Our shards are shaped for training code: `images` is a list of {bytes, path} structs that
Hugging Face `datasets` reads as PIL images (the schema metadata declares them,
`hf_features.py`), `videos` the same structs left as bytes. Every original field the pipeline
does not interpret travels in `fields` as a JSON object in a string (the same in WebDataset
JSON), so datasets with different extra fields share one schema; `record_layout` says how the
original record was written (`record_layout.py`), so it can be written back unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from transforms.core.record import IMAGE, VIDEO, ErrorRecord, MediaRef, Sample
from transforms.core.record_layout import RecordLayout
from transforms.io.hf_features import IMAGE_STRUCT, features_json
from transforms.io.read_guard import record_or_error
from transforms.io.validation import (
    InvalidRecord,
    build_sample,
    checked_media,
    llava_record_to_sample,
)

MEDIA_COLUMNS = {IMAGE: "images", VIDEO: "videos"}
REPAIRED_FROM = pa.struct(
    [
        ("messages", pa.int64()),
        ("turns", pa.int64()),
        ("score", pa.float64()),
        ("dropped_turn_scores", pa.list_(pa.float64())),
    ]
)
REPAIRED_PREFIX = pa.struct([("messages", pa.int64()), ("turns", pa.int64())])
SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("source", pa.string()),
        ("conversations", pa.list_(pa.struct([("from", pa.string()), ("value", pa.string())]))),
        ("images", pa.list_(IMAGE_STRUCT)),
        ("videos", pa.list_(IMAGE_STRUCT)),
        ("fields", pa.string()),
        (
            "record_layout",
            pa.struct(
                [
                    ("id_key", pa.string()),
                    ("id_is_integer", pa.bool_()),
                    ("keys", pa.list_(pa.string())),
                    ("list_media", pa.list_(pa.string())),
                ]
            ),
        ),
        ("score", pa.float64()),
        # One reward per assistant turn, from a backend that reads them; else null.
        ("turn_scores", pa.list_(pa.float64())),
        ("reason", pa.string()),
        ("detail", pa.string()),
        # Where the sample was read from (manifest file and index, or shard and key), so a
        # reviewer can find the original record; then a reviewer's verdict, if any.
        ("origin", pa.string()),
        ("review_decision", pa.string()),
        ("review_note", pa.string()),
        # `repair: truncate`: on a kept prefix in clean/, what it was cut from; on the
        # original in review/, which prefix of it is in clean/ (transforms/samples/repair.py).
        ("repaired_from", REPAIRED_FROM),
        ("repaired_prefix", REPAIRED_PREFIX),
    ]
)
HF_FEATURES = features_json(SCHEMA, image_columns=("images",))
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
        **{
            column: [{"bytes": m.data, "path": m.path} for m in sample.media if m.kind == kind]
            for kind, column in MEDIA_COLUMNS.items()
        },
        **sample.stored_fields(),
    }


def row_to_sample(row: dict[str, Any], default_source: str, origin: str) -> Sample | ErrorRecord:
    """A row from our own shards (has `images`, `videos` and `fields`) or a OneVision-style
    row; a row that does not validate becomes an error record for that row."""
    ours = all(column in row for column in (*MEDIA_COLUMNS.values(), "fields"))
    convert = own_row_to_sample if ours else onevision_row_to_sample
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
    media = []
    for kind, column in MEDIA_COLUMNS.items():
        items = row.get(column)
        if items is not None and not isinstance(items, list):
            raise InvalidRecord("bad_media", f"'{column}' must be a list", sample_id)
        tagged = [{**i, "kind": kind} if isinstance(i, dict) else i for i in items or ()]
        media += checked_media(tagged, sample_id)
    layout = RecordLayout.from_dict(row.get("record_layout"))
    return build_sample(source, origin, raw_id, row.get("conversations"), media, fields, layout)


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
