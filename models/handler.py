"""The Beam ModelHandler that drives any reward backend (`base.py`'s contract), one model copy
per device (`device_pool.py`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import apache_beam.ml.inference.base as beam_inference
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from models.base import RewardModel
from transforms.core.record import Sample

if beam_inference.resource is None:
    # Beam imports `resource` in one try block with an optional scipy-based module, so without
    # scipy it loses `resource` too and warns on every model load that memory "cannot be
    # fetched". The module is there on every POSIX system: give it back.
    with contextlib.suppress(ImportError):
        import resource

        beam_inference.resource = resource


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
