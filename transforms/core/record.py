"""The one record type that flows between pipeline steps.

Readers turn storage formats into `Sample`s and writers turn them back; every step in between
sees only these types. A sample that cannot go on becomes an `ErrorRecord` with the stage and a
reason a person can act on.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from transforms.core.record_layout import RecordLayout, original_record

IMAGE = "image"
VIDEO = "video"

HUMAN_ROLES = ("human", "user")
ASSISTANT_ROLES = ("gpt", "assistant")


@dataclass
class MediaRef:
    """One image or video a sample refers to.

    `path` is the reference exactly as the manifest wrote it (relative to the dataset root, or
    the member path inside a video archive); `data` holds the raw file bytes once fetched, so
    writers can embed the original media unchanged.
    """

    kind: str
    path: str
    data: bytes | None = None

    @property
    def extension(self) -> str:
        name = self.path.rsplit("/", 1)[-1]
        return name.rsplit(".", 1)[-1].lower() if "." in name else ""


@dataclass
class Sample:
    """A conversation with its media, original fields and, later, its score and route.

    `fields` holds every original field the reader did not interpret (e.g. ALLaVA's
    `original_caption`, `url`, LLaVA-Video's `data_source`); writers put them back unchanged.
    `layout` says how the original record was written (`record_layout.py`).
    `decoded` holds model-ready pixels (an (H, W, 3) uint8 array per image, (T, H, W, 3) per
    video) between decoding and scoring only; it is dropped before anything is written.
    """

    id: str
    source: str
    conversations: list[dict[str, Any]]
    media: list[MediaRef] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)
    origin: str = ""
    layout: RecordLayout = field(default_factory=RecordLayout)
    decoded: list[Any] | None = None
    score: float | None = None
    # One reward per assistant turn, in order, from a backend that reads them (None: it does
    # not); `turn_scores[i]` is the reward of the conversation cut after assistant turn i.
    turn_scores: list[float] | None = None
    reason: str | None = None
    detail: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    cached: bool = False  # the score came from the score cache, not from the model
    # Scores (score, turn scores or None) the cache holds for this sample's conversation and
    # media paths, by cache key, from before its media is read until the cache lookup
    # (transforms/samples/score_cache.py).
    known_scores: dict[str, tuple[float, tuple[float, ...] | None]] | None = None
    # A reviewer's verdict once `rmclean apply-review` has run: "keep", "drop", or "undecided"
    # for a sample routed by the --undecided policy; None for a sample no one reviewed.
    review_decision: str | None = None
    review_note: str | None = None
    # (format, file, source name) of an input shard whose media bytes were left in the file
    # for the shuffle; the file is read again after it (transforms/io/shard_inputs.py).
    media_file: tuple[str, str, str] | None = None
    # Per-source cuts of a percentile run, set when the sample is routed by one, so the
    # writers can record them (the cuts exist only once every score is in).
    run_cuts: dict[str, float] | None = None
    # `repair: truncate` (transforms/samples/repair.py): the kept prefix of a conversation
    # whose later turns scored low says what it was cut from (`repaired_from`: the original's
    # messages, assistant turns and score, and the dropped turns' scores); the original, in
    # review/, says which prefix of it is in clean/ (`repaired_prefix`: messages and turns).
    repaired_from: dict[str, Any] | None = None
    repaired_prefix: dict[str, Any] | None = None

    @property
    def is_text_only(self) -> bool:
        return not self.media

    def human_turns(self) -> list[str]:
        return [t.get("value", "") for t in self.conversations if t.get("from") in HUMAN_ROLES]

    def assistant_turns(self) -> list[str]:
        return [t.get("value", "") for t in self.conversations if t.get("from") in ASSISTANT_ROLES]

    @property
    def routing_score(self) -> float | None:
        """What a cut is compared with: the lowest of the score and the turn scores, so one
        bad turn flags a conversation whose final reward recovered."""
        if self.score is None:
            return None
        return min((self.score, *(self.turn_scores or ())))

    def stored_fields(self) -> dict[str, Any]:
        """What every output shard stores beside id, source, conversation and media: the
        original record's other fields (as JSON text), its layout, and what the run said."""
        return {
            "fields": json.dumps(self.fields, ensure_ascii=False),
            "record_layout": self.layout.to_dict(),
            "score": self.score,
            "turn_scores": self.turn_scores,
            "reason": self.reason,
            "detail": self.detail,
            "origin": self.origin,
            "review_decision": self.review_decision,
            "review_note": self.review_note,
            "repaired_from": self.repaired_from,
            "repaired_prefix": self.repaired_prefix,
        }

    def replace(self, **changes: Any) -> Sample:
        return dataclasses.replace(self, **changes)


@dataclass
class ErrorRecord:
    """A sample (or an unreadable piece of input) that could not be processed.

    `stage` is the step that failed (read, fetch, decode, score), `reason` a short stable code
    for grouping, `detail` the human-readable explanation, `origin` the file it came from and
    `record` the original fields (without media bytes) so the sample can be found and re-run.
    """

    source: str
    stage: str
    reason: str
    detail: str
    origin: str = ""
    id: str | None = None
    record: dict[str, Any] | None = None

    @classmethod
    def for_sample(cls, sample: Sample, stage: str, reason: str, detail: str) -> ErrorRecord:
        return cls(
            source=sample.source,
            stage=stage,
            reason=reason,
            detail=detail,
            origin=sample.origin,
            id=sample.id,
            record=sample_to_record(sample),
        )

    def to_json(self) -> dict[str, Any]:
        """A dict `json.dumps` always accepts, whatever the original record held."""
        return json_safe(dataclasses.asdict(self))


def json_safe(value: Any) -> Any:
    """`value` with everything JSON cannot hold made printable: bytes become their size,
    other objects their repr, so writing an error record can never fail."""
    if value is None or isinstance(value, (bool, int, float, str)):
        if isinstance(value, str):
            # Unpaired surrogates (bytes that were not UTF-8) would fail the UTF-8 encode.
            return value.encode("utf-8", "replace").decode("utf-8")
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} bytes>"
    if isinstance(value, dict):
        return {str(json_safe(k)): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return repr(value)[:1000]


def sample_to_record(sample: Sample) -> dict[str, Any]:
    """The sample's original record, as its dataset wrote it: media as paths (no bytes)."""
    return original_record(
        sample.layout,
        sample.id,
        sample.conversations,
        [(ref.kind, ref.path) for ref in sample.media],
        sample.fields,
    )
