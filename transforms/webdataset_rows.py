"""Sample <-> WebDataset sample (files sharing a key in a tar: `<key>.json` plus media).

Follows the img2dataset/video2dataset convention so `webdataset.WebDataset(...)` reads our
shards directly: one media file is `<key>.<ext>`; several are `<key>.<n>.<ext>`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from transforms.dedupe import content_hash
from transforms.record import Sample
from transforms.record_validation import InvalidRecord, build_sample, checked_media

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


def sample_to_files(sample: Sample) -> dict[str, bytes]:
    """Suffix -> bytes for one sample; `json` holds every field and the media paths."""
    metadata: dict[str, Any] = {
        "id": sample.id,
        "source": sample.source,
        "conversations": sample.conversations,
        "media": [
            {"kind": ref.kind, "path": ref.path, "file": suffix}
            for ref, suffix in zip(sample.media, media_suffixes(sample), strict=True)
        ],
        "fields": sample.fields,
        "score": sample.score,
        "reason": sample.reason,
        "detail": sample.detail,
        "origin": sample.origin,
        "review_decision": sample.review_decision,
        "review_note": sample.review_note,
    }
    files = {"json": json.dumps(metadata, ensure_ascii=False).encode("utf-8")}
    for ref, suffix in zip(sample.media, media_suffixes(sample), strict=True):
        files[suffix] = ref.data or b""
    return files


def files_to_sample(files: dict[str, bytes], default_source: str, origin: str) -> Sample:
    """Inverse of `sample_to_files`; raises InvalidRecord on a malformed sample."""
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
        metadata.get("fields") if metadata.get("fields") is not None else {},
    )
