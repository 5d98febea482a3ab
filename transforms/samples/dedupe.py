"""Exact duplicate samples (same source, id and content) are kept once.

Ids alone are not unique in real data: LLaVA-Video-178K repeats a video's id for each of its
questions, so only a repeat of the same conversation on the same media is a duplicate. The
copy kept is the one first in manifest order (by origin), so reruns keep the same one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator

from transforms.core.record import ErrorRecord, Sample


def content_hash(sample: Sample) -> str:
    """Stable hash of what a reward model sees: conversation and media references."""
    payload = json.dumps(
        [sample.conversations, [(m.kind, m.path) for m in sample.media]],
        ensure_ascii=False,
        sort_keys=True,
    )
    return hashlib.sha1(payload.encode("utf-8", "surrogatepass")).hexdigest()


def drop_exact_duplicates(samples: Iterable[Sample]) -> Iterator[Sample | ErrorRecord]:
    """Samples in a group, each exact duplicate (same source, id and content) as an error."""
    seen: dict[tuple[str, str, str], Sample] = {}
    for sample in sorted(samples, key=lambda s: s.origin):
        key = (sample.source, sample.id, content_hash(sample))
        if key in seen:
            detail = f"exact duplicate of the record at {seen[key].origin}"
            yield ErrorRecord.for_sample(sample, "read", "duplicate_sample", detail)
        else:
            seen[key] = sample
            yield sample
