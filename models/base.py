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
from dataclasses import dataclass
from typing import Any, Protocol

import apache_beam.ml.inference.base as beam_inference
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from transforms.record import Sample

if beam_inference.resource is None:
    # Beam imports `resource` in one try block with an optional scipy-based module, so without
    # scipy it loses `resource` too and warns on every model load that memory "cannot be
    # fetched". The module is there on every POSIX system: give it back.
    with contextlib.suppress(ImportError):
        import resource

        beam_inference.resource = resource


class RewardModel(Protocol):
    name: str

    def score(self, samples: Sequence[Sample]) -> list[float]:
        """One reward per sample, in order; higher means a better conversation for its media."""


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


class RewardModelHandler(ModelHandler[Sample, PredictionResult, RewardModel]):
    """RunInference handler for any `RewardModel`.

    Weights load in `load_model` (once per process, or once per machine when the model is
    large), never in `__init__`, so the handler pickles cheaply to workers.
    """

    def __init__(
        self,
        loader: Callable[[], RewardModel],
        model_name: str,
        large_model: bool = False,
        **batching: Any,
    ):
        batching.setdefault("max_batch_size", 16)
        super().__init__(large_model=large_model, **batching)
        self._loader = loader
        self._model_name = model_name

    def load_model(self) -> RewardModel:
        return self._loader()

    def run_inference(
        self,
        batch: Sequence[Sample],
        model: RewardModel,
        inference_args: dict[str, Any] | None = None,
    ) -> Iterable[PredictionResult]:
        outcomes = score_isolating_failures(model, list(batch))
        return [
            PredictionResult(example=sample, inference=outcome, model_id=self._model_name)
            for sample, outcome in zip(batch, outcomes, strict=True)
        ]

    def get_metrics_namespace(self) -> str:
        return f"rmclean_{self._model_name}"

    def get_num_bytes(self, batch: Sequence[Sample]) -> int:
        return sum(len(ref.data or b"") for sample in batch for ref in sample.media)


def score_isolating_failures(model: RewardModel, batch: list[Sample]) -> list[ScoreOutcome]:
    """Score a batch; if it fails, split it in halves and retry down to single samples.

    Halving handles both an out-of-memory batch (smaller batches fit) and one poisonous
    sample (only it ends up failing), at log2(batch) extra calls rather than one per sample.
    A backend that refuses a sample before its forward pass (`SampleRejected`) costs no GPU
    time on the way down: only halves without the refused sample reach the model.
    """
    started = time.perf_counter()
    try:
        scores = model.score(batch)
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
    per_sample = (time.perf_counter() - started) / len(batch)
    return [_checked(float(score), per_sample) for score in scores]


def _checked(score: float, seconds: float) -> ScoreOutcome:
    if math.isfinite(score):
        return ScoreOutcome(score, None, seconds)
    return ScoreOutcome(None, f"the model returned a non-finite score ({score})", seconds)
