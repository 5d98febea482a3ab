"""The contract every reward backend meets (the Beam ModelHandler that drives it: `handler.py`).

A backend only knows how to load itself and score a batch of decoded samples. Everything a
long batch job needs around that — isolating the one sample that breaks a batch, reporting
non-finite scores, timing — lives here once, behind Beam's RunInference contract.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Protocol

from transforms.core.record import Sample


@dataclass(frozen=True)
class Reward:
    """A sample's reward with one reward per assistant turn, for a backend that reads them.

    `turn_scores[i]` is the reward of the conversation cut after its i-th assistant turn (a
    value head reads it at the end of that turn in the same forward pass: causal attention
    means it saw nothing later), so a conversation kept up to turn i would score
    `turn_scores[i]`, and the last one is normally `score`.
    """

    score: float
    turn_scores: tuple[float, ...]


def score_of(result: float | Reward) -> float:
    """A sample's score from what `score()` returned for it."""
    return result.score if isinstance(result, Reward) else float(result)


def reward_values(results: Sequence[float | Reward]) -> list[float]:
    """Every number `score()` returned, flat: each sample's score, then its turn scores (to
    compare two ways of scoring the same samples: a turn score missing on one side shows)."""
    values: list[float] = []
    for result in results:
        values.append(score_of(result))
        values.extend(result.turn_scores if isinstance(result, Reward) else ())
    return values


class RewardModel(Protocol):
    name: str

    def score(self, samples: Sequence[Sample]) -> list[float | Reward]:
        """One reward per sample, in order; higher means a better conversation for its media.

        A backend that also reads a reward per assistant turn returns a `Reward` for a sample
        instead of a float; anything else returns floats, and its samples carry no turn scores.
        """


class SampleRejected(ValueError):
    """A sample this model cannot score as it is; `reason` becomes the error record's reason."""

    reason = "rejected"


class SampleTooLong(SampleRejected):
    """Longer than the model reads: scoring it would cut off the end the reward is read from."""

    reason = "too_long"


@dataclass(frozen=True)
class ScoreOutcome:
    """What scoring one sample produced: a finite score, or the error (and its code) instead."""

    score: float | None
    error: str | None = None
    seconds: float = 0.0
    reason: str | None = None
    turn_scores: tuple[float, ...] | None = None


def score_isolating_failures(
    model: RewardModel, batch: list[Sample], started: Future | None = None
) -> list[ScoreOutcome]:
    """Score a batch; if it fails, split it in halves and retry down to single samples.

    Halving handles both an out-of-memory batch (smaller batches fit) and one poisonous
    sample (only it ends up failing), at log2(batch) extra calls rather than one per sample.
    A backend that refuses a sample before its forward pass (`SampleRejected`) costs no GPU
    time on the way down: only halves without the refused sample reach the model.
    `started`: the batch's scoring already begun by the model's `head_start` (the whole batch
    only: the halves start afresh).
    """
    began = time.perf_counter()
    try:
        scores = model.finish(started) if started is not None else model.score(batch)
        if len(scores) != len(batch):
            raise RuntimeError(f"model returned {len(scores)} scores for {len(batch)} samples")
    except Exception as exc:  # noqa: BLE001 - any backend failure is isolated, then recorded
        if len(batch) == 1:
            reason = getattr(exc, "reason", None) if isinstance(exc, SampleRejected) else None
            return [ScoreOutcome(None, f"{type(exc).__name__}: {exc}"[:500], reason=reason)]
        middle = len(batch) // 2
        return score_isolating_failures(model, batch[:middle]) + score_isolating_failures(
            model, batch[middle:]
        )
    per_sample = (time.perf_counter() - began) / len(batch)
    return [_checked(score, per_sample) for score in scores]


def _checked(result: float | Reward, seconds: float) -> ScoreOutcome:
    if isinstance(result, Reward):
        score, turns = float(result.score), tuple(float(t) for t in result.turn_scores)
    else:
        score, turns = float(result), None
    if not math.isfinite(score):
        return ScoreOutcome(None, f"the model returned a non-finite score ({score})", seconds)
    if turns is not None and not all(math.isfinite(t) for t in turns):
        error = f"the model returned a non-finite turn score ({list(turns)})"
        return ScoreOutcome(None, error, seconds)
    return ScoreOutcome(score, None, seconds, turn_scores=turns)
