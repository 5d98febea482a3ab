"""Sample <-> WebDataset sample (files sharing a key in a tar: `<key>.json` plus media).

Follows the img2dataset/video2dataset convention so `webdataset.WebDataset(...)` reads our
shards directly: one media file is `<key>.<ext>`; several are `<key>.<n>.<ext>`. The `.json`
member holds the same fields as a Parquet row (`fields` too is a JSON object in a string),
media as paths and member names, and `run`: which run, model and cut wrote it.
"""

from __future__ import annotations

import json
import re
from typing import Any

from transforms.core.record import Sample
from transforms.core.record_layout import RecordLayout
from transforms.core.run_info import RunInfo
from transforms.io.validation import InvalidRecord, build_sample, checked_media
from transforms.samples.dedupe import content_hash

_UNSAFE_KEY_CHARS = re.compile(r"[^A-Za-z0-9_\-]")


def sample_key(sample: Sample) -> str:
    """A key unique per sample: the id made safe plus a short content hash.

    WebDataset splits keys at the first dot, so dots and slashes cannot appear; the hash keeps
    samples that share an id (LLaVA-Video repeats a video's id per question) apart in a shard.
    """
    return f"{_UNSAFE_KEY_CHARS.sub('_', sample.id)}-{content_hash(sample)[:10]}"


def media_suffixes(sample: Sample) -> list[str]:
    if len(sample.media) == 1:
        return [sample.media[0].extension or "bin"]
    return [f"{i}.{ref.extension or 'bin'}" for i, ref in enumerate(sample.media)]


def sample_to_files(sample: Sample, run_info: RunInfo | None = None) -> dict[str, bytes]:
    """Suffix -> bytes for one sample; `json` holds every field and the media paths."""
    metadata: dict[str, Any] = {
        "id": sample.id,
        "source": sample.source,
        "conversations": sample.conversations,
        "media": [
            {"kind": ref.kind, "path": ref.path, "file": suffix}
            for ref, suffix in zip(sample.media, media_suffixes(sample), strict=True)
        ],
        **sample.stored_fields(),
        "run": run_info.for_sample(sample) if run_info is not None else None,
    }
    files = {"json": json.dumps(metadata, ensure_ascii=False).encode("utf-8")}
    for ref, suffix in zip(sample.media, media_suffixes(sample), strict=True):
        files[suffix] = ref.data or b""
    return files


def files_to_sample(files: dict[str, bytes], default_source: str, origin: str) -> Sample:
    """Inverse of `sample_to_files`; raises InvalidRecord on a malformed sample."""
    return metadata_to_sample(sample_metadata(files), files, default_source, origin)


def sample_metadata(files: dict[str, bytes]) -> dict[str, Any]:
    """The sample's `.json` member as an object; raises InvalidRecord if it is not one."""
    if "json" not in files:
        raise InvalidRecord("bad_webdataset_sample", f"no .json member among {sorted(files)}")
    try:
        metadata = json.loads(files["json"].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidRecord(
            "bad_webdataset_sample", f"the .json member is not JSON ({exc})"
        ) from None
    if not isinstance(metadata, dict):
        raise InvalidRecord(
            "bad_webdataset_sample",
            f"the .json member holds {type(metadata).__name__}, not an object",
        )
    return metadata


def metadata_to_sample(
    metadata: dict[str, Any], files: dict[str, bytes], default_source: str, origin: str
) -> Sample:
    """The sample that `sample_metadata(files)` and the media members of `files` describe."""
    raw_id = metadata.get("id")
    sample_id = raw_id if isinstance(raw_id, str) else None
    listed = metadata.get("media") or []
    if not isinstance(listed, list):
        raise InvalidRecord("bad_media", "'media' in the .json member is not a list", sample_id)
    media = []
    for number, item in enumerate(listed):
        member = item.get("file") if isinstance(item, dict) else None
        if member not in files:
            raise InvalidRecord(
                "bad_media",
                f"media item {number} names member {member!r}, which the sample does not have",
                sample_id,
            )
        media += checked_media([{**item, "bytes": files[member]}], sample_id)
    source = metadata.get("source")
    return build_sample(
        source if isinstance(source, str) and source else default_source,
        origin,
        raw_id,
        metadata.get("conversations"),
        media,
        _fields(metadata.get("fields"), sample_id),
        RecordLayout.from_dict(metadata.get("record_layout")),
    )


def _fields(stored, sample_id: str | None):
    """`fields` as written: a JSON object in a string (shards before that held the object)."""
    if stored is None:
        return {}
    if not isinstance(stored, str):
        return stored  # build_sample checks it is an object
    try:
        return json.loads(stored) if stored else {}
    except ValueError as exc:
        detail = f"'fields' is not valid JSON ({exc})"
        raise InvalidRecord("bad_fields", detail, sample_id) from None
