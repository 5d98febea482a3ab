"""A sample's content, as one hash: its conversation and the bytes of its media.

Two things key on it: the score cache (a sample with the same content needs no new score) and
the run-to-run comparison (`transforms/history/run_compare.py`: a sample whose id stayed but whose
hash moved was changed). Ids alone cannot tell a re-exported answer from the one before.
"""

from __future__ import annotations

import hashlib
import json

from transforms.core.record import Sample


def content_hash(sample: Sample) -> str:
    digest = hashlib.sha1()
    digest.update(json.dumps(sample.conversations, sort_keys=True).encode("utf-8", "replace"))
    for ref in sample.media:
        digest.update(f"|{ref.kind}|".encode())
        digest.update(hashlib.sha1(ref.data or b"").digest())
    return digest.hexdigest()
