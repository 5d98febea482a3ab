"""The run's reward models as Beam model handlers: one per model (media, and text-only)."""

from __future__ import annotations

from apache_beam.ml.inference.base import PredictionResult

from models.handler import RewardModelHandler
from models.loading import ModelConfigError
from models.registry import CopyLoader, token_estimator_for
from pipelines.config import RunConfig
from transforms.core.record import ErrorRecord, Sample


def reward_handler(config: RunConfig, text: bool = False) -> RewardModelHandler:
    """The handler for the media model, or for the text-only model."""
    name = config.text_model if text else config.model
    options = config.backend_options(text)
    # Each copy gets its own device; a backend-level `device` option names the one device.
    device = options.pop("device", None)
    devices = config.devices if device in (None, "", "auto") else (device,)
    if config.max_batch_tokens:
        # Beam's own length-aware batching: with element_size_fn, BatchElements sizes batches
        # by the sum of estimated tokens and closes one before it would pass the budget.
        estimate = token_estimator_for(name, options)
        size = config.max_batch_tokens
        batching = {"min_batch_size": size, "max_batch_size": size, "element_size_fn": estimate}
    else:
        # A fixed size (min = max): full batches from the first, not Beam's ramp from 1.
        size = config.samples_per_batch
        batching = {"min_batch_size": size, "max_batch_size": size}
        estimate = _estimate_or_none(name, options)
    return RewardModelHandler(
        CopyLoader(name, options),
        name,
        large_model=config.large_model,
        devices=devices,
        estimate_tokens=estimate,
        **batching,
    )


def _estimate_or_none(name: str, options: dict):
    """The backend's token estimate for the run's cost figures, if it has one."""
    try:
        return token_estimator_for(name, options)
    except ModelConfigError:
        return None


def scored_sample(result: PredictionResult) -> Sample | ErrorRecord:
    """A model's answer on the sample: its score (and turn scores, one per assistant turn, if
    the backend reads them), or an error record saying why there is none."""
    sample: Sample = result.example.replace(decoded=None)
    outcome = result.inference
    if outcome.score is None:
        reason = outcome.reason or (
            "non_finite_score" if "non-finite" in (outcome.error or "") else "model_error"
        )
        return ErrorRecord.for_sample(sample, "score", reason, outcome.error or "no score")
    turns = outcome.turn_scores
    if turns is not None and len(turns) != len(sample.assistant_turns()):
        detail = (
            f"the model returned {len(turns)} turn scores for "
            f"{len(sample.assistant_turns())} assistant turns"
        )
        return ErrorRecord.for_sample(sample, "score", "turn_scores_mismatch", detail)
    sample.timings["score"] = outcome.seconds
    return sample.replace(score=outcome.score, turn_scores=list(turns) if turns else None)
