"""The bundled demo model as a backend: options, loader, cost estimate, checks."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

from models.loading import ModelConfigError
from models.spec import BackendSpec
from transforms.core.record import Sample

from .features import (
    MAX_ANSWER_TOKENS,
    MAX_QUESTION_TOKENS,
    SIZE,
    question_answer,
    turn_pairs,
    words,
)

DEFAULTS: dict[str, Any] = {"path": None, "device": "cpu"}
# The network sees two SIZE x SIZE thumbnails per sample whatever the media, in 8 x 8 cells.
THUMBNAIL_CELLS = 2 * (SIZE // 8) ** 2


@dataclass(frozen=True)
class DemoTokenEstimator:
    """The demo network's work per sample: the words it reads of each (question, answer) pair
    (it stops at 64 of a question and 128 of an answer), one pair per assistant turn, plus
    its two thumbnails, encoded once whatever the media and the number of turns."""

    def __call__(self, sample: Sample) -> int:
        pairs = turn_pairs(sample.conversations) or [question_answer(sample.conversations)]
        text = sum(
            min(len(words(question)), MAX_QUESTION_TOKENS)
            + min(len(words(answer)), MAX_ANSWER_TOKENS)
            for question, answer in pairs
        )
        return text + (THUMBNAIL_CELLS if sample.media else 0)


def _check(options: dict[str, Any], workers_here: bool) -> None:
    if workers_here and options.get("path") and not os.path.isdir(options["path"]):
        raise ModelConfigError(f"demo: model folder {options['path']!r} not found")


def _load(options: dict[str, Any]):
    from .model import DEFAULT_DIR, DemoRewardModel

    return DemoRewardModel.from_pretrained(options.get("path") or DEFAULT_DIR, options["device"])


def _fingerprint(options: dict[str, Any]) -> str:
    """The weights themselves (1.2 MB): a retrained demo model gets a new score cache."""
    from .model import CONFIG_FILE, DEFAULT_DIR, WEIGHTS_FILE

    folder = options.get("path") or DEFAULT_DIR
    digest = hashlib.sha1()
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        with open(os.path.join(folder, name), "rb") as handle:
            digest.update(handle.read())
    return digest.hexdigest()[:16]


def _estimator(options: dict[str, Any]) -> DemoTokenEstimator:
    return DemoTokenEstimator()


SPEC = BackendSpec(
    name="demo",
    defaults=DEFAULTS,
    load=_load,
    estimator=_estimator,
    check=_check,
    fingerprint=_fingerprint,
)
