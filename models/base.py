"""The contract every reward backend meets, and the Beam ModelHandler that drives it.

A backend only knows how to load itself and score a batch of decoded samples. Everything a
long batch job needs around that — isolating the one sample that breaks a batch, reporting
non-finite scores, timing — lives here once, behind Beam's RunInference contract.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol

import apache_beam.ml.inference.base as beam_inference
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from transforms.core.record import Sample

if beam_inference.resource is None:
    # Beam imports `resource` in one try block with an optional scipy-based module, so without
    # scipy it loses `resource` too and warns on every model load that memory "cannot be
    # fetched". The module is there on every POSIX system: give it back.
    with contextlib.suppress(ImportError):
        import resource

        beam_inference.resource = resource


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


class RewardModelHandler(ModelHandler[Sample, PredictionResult, Any]):
    """RunInference handler for any `RewardModel`, with one copy of it per device.

    `load_copy(device)` builds the backend on one device; `load_model` builds one copy per
    device in `devices` (`models/device_pool.py`) once per process, or once per machine when
    the model is large, never in `__init__`, so the handler pickles cheaply to workers.
    """

    def __init__(
        self,
        load_copy: Callable[[str], RewardModel],
        model_name: str,
        large_model: bool = False,
        devices: str | Sequence[str] = "auto",
        estimate_tokens: Callable[[Sample], int] | None = None,
        **batching: Any,
    ):
        batching.setdefault("max_batch_size", 16)
        # Kept here and answered through the two methods below rather than handed to
        # ModelHandler.__init__, which Beam 2.62 does not have: the loopback Spark
        # and Flink engines run Beam 2.62 (README, "Runners").
        self._batching = batching
        self._large_model = large_model
        self._load_copy = load_copy
        self._model_name = model_name
        self._devices = devices
        self._estimate_tokens = estimate_tokens

    @property
    def model_name(self) -> str:
        return self._model_name

    def batch_elements_kwargs(self) -> dict[str, Any]:
        return dict(self._batching)

    def share_model_across_processes(self) -> bool:
        return self._large_model

    def load_model(self):
        from models.device_pool import DevicePool

        return DevicePool.load(self._load_copy, self._devices)

    def run_inference(
        self,
        batch: Sequence[Sample],
        model,
        inference_args: dict[str, Any] | None = None,
    ) -> Iterable[PredictionResult]:
        return self.score_batch(batch, model)[0]

    def score_batch(self, batch: Sequence[Sample], model) -> tuple[list[PredictionResult], Any]:
        """(predictions, the `ScoredBatch` saying which device scored them and how long)."""
        scored = model.score_batch(list(batch))
        predictions = [
            PredictionResult(example=sample, inference=outcome, model_id=self._model_name)
            for sample, outcome in zip(batch, scored.outcomes, strict=True)
        ]
        return predictions, scored

    def estimate_tokens(self, sample: Sample) -> int | None:
        return self._estimate_tokens(sample) if self._estimate_tokens else None

    def get_metrics_namespace(self) -> str:
        return f"rmclean_{self._model_name}"

    def get_num_bytes(self, batch: Sequence[Sample]) -> int:
        return sum(len(ref.data or b"") for sample in batch for ref in sample.media)


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
