"""ScoreSamples: samples with media -> scored samples, before any GPU time the cheap checks.

Rules first (an empty answer, a missing turn: held back unscored, for RouteByScore to send to
review), then the score cache (a sample scored before, by the same model and weights, is not
scored again), then decoding ahead of the model in a pool of killable processes, then scoring
on one model copy per device (text-only samples on the text model, if the run has one). Scores
are persisted to the cache before routing, so a killed or interrupted run keeps them.
"""

from __future__ import annotations

import os
import uuid
from typing import NamedTuple

import apache_beam as beam

from models.registry import results_held, weights_fingerprint
from pipelines.config import RunConfig
from pipelines.progress import SCORED, CountProgress
from pipelines.reward_handlers import reward_handler, scored_sample
from transforms.beam.branches import Branches
from transforms.beam.steps import ERRORS_TAG, guarded
from transforms.core.record import Sample
from transforms.core.routes import REVIEW
from transforms.media.decode_ahead import DecodeAhead, DecodeSettings
from transforms.samples.rules import check_rules
from transforms.samples.score_cache import CACHED, PersistScores, look_up_cached, model_cache_id
from transforms.scoring.score_ahead import BATCHES_TAG, ScoreAhead


def cache_dir_of(config: RunConfig, setup_id: str | None = None) -> str | None:
    """The score cache folder for this scoring setup (`scoring_setup_id`, derived when not
    given), or None without a cache."""
    if not config.score_cache:
        return None
    return f"{config.score_cache.rstrip('/')}/{setup_id or scoring_setup_id(config)}"


def scoring_setup_id(config: RunConfig) -> str:
    """The models, their options and weights as one id: another of any, another id."""
    # Weights changed in place (a retrained or re-downloaded model) make a new id too, and so
    # does a backend's results gaining a part (turn scores): older cached scores lack it.
    models_used = [
        config.model,
        config.model_options,
        weights_fingerprint(config.model, config.backend_options()),
        *_held(config.model),
    ]
    if config.text_model:
        models_used += [
            config.text_model,
            config.text_model_options,
            weights_fingerprint(config.text_model, config.backend_options(text=True)),
            *_held(config.text_model),
        ]
    return model_cache_id(models_used)


def _held(model: str) -> list[str]:
    """[what the backend's results hold], or [] (ids of backends without it stay as they were)."""
    held = results_held(model)
    return [held] if held else []


def _rule_route(sample: Sample):
    broken = check_rules(sample)
    if broken is None:
        return sample
    reason, detail = broken
    return beam.pvalue.TaggedOutput(REVIEW, sample.replace(reason=reason, detail=detail))


def decode_settings(config: RunConfig, processes: int | None) -> DecodeSettings:
    """The decode step's settings; a fresh key names this run's machine-wide decoder slots."""
    decode = config.decode
    return DecodeSettings(
        max_side=decode.max_side,
        video_fps=decode.video_fps,
        max_frames=decode.max_frames,
        video_timeout_s=decode.video_timeout_s,
        workers=decode.workers,
        prefetch_mb=decode.prefetch_mb,
        # Remote runners may start one worker process per core: budget for that many.
        processes_per_machine=processes or os.cpu_count() or 1,
        run_key=uuid.uuid4().hex,
    )


class SamplesScored(NamedTuple):
    """What ScoreSamples gives the routing stage (and the run's cost to `Finish`)."""

    scored: Branches  # one branch per model, then the samples served from the score cache
    rule_flagged: beam.PCollection  # flagged by a rule before scoring, unscored: for review
    errors: Branches
    batches: Branches  # one stat per scored batch, one branch per model


class ScoreSamples(beam.PTransform):
    """Samples -> `SamplesScored`.

    `processes`: pipeline worker processes per machine (None: remote).
    """

    def __init__(self, config: RunConfig, processes: int | None, cache_dir: str | None):
        super().__init__()
        self._config = config
        self._processes = processes
        self._cache_dir = cache_dir

    def expand(self, samples):
        config = self._config
        checked = guarded(samples, "CheckRules", "rules", _rule_route, tags=(REVIEW,))
        to_score, errors = checked.samples, Branches((checked[ERRORS_TAG],))
        from_models, from_cache = Branches(), Branches()
        cache_dir = self._cache_dir
        if cache_dir:
            # Each sample carries the scores cached for its digest (AttachKnownScores, before
            # its media was loaded); its key, from the media bytes, picks one here.
            looked_up = guarded(
                to_score, "LookUpScoreCache", "cache", look_up_cached, tags=(CACHED,)
            )
            to_score = looked_up.samples
            from_cache += looked_up[CACHED]
            errors += looked_up[ERRORS_TAG]
        decoded = to_score | "DecodeMedia" >> beam.ParDo(
            DecodeAhead(decode_settings(config, self._processes))
        ).with_outputs(ERRORS_TAG, main="samples")
        errors += decoded[ERRORS_TAG]
        batches = Branches()
        for i, (label, branch, handler) in enumerate(self._models(decoded.samples)):
            shared = config.large_model and self._processes != 1
            outputs = branch | label >> ScoreAhead(handler, shared)
            attached = guarded(
                outputs.predictions,
                f"AttachScores{i}",
                "score",
                scored_sample,
                sample_of=lambda r: r.example,
            )
            ok = attached.samples | f"CountScored{i}" >> beam.ParDo(CountProgress(SCORED))
            if cache_dir:
                ok = ok | f"PersistScores{i}" >> beam.ParDo(
                    PersistScores(
                        cache_dir, config.score_cache_flush_every, config.score_cache_flush_seconds
                    )
                )
            from_models += ok
            errors += attached[ERRORS_TAG]
            batches += outputs[BATCHES_TAG]
        return SamplesScored(
            scored=from_models + from_cache,
            rule_flagged=checked[REVIEW],
            errors=errors,
            batches=batches,
        )

    def _models(self, decoded):
        """(label, samples, handler) per model: text-only samples to the text model, if any."""
        config = self._config
        if not config.text_model:
            return [("ScoreSamples", decoded, reward_handler(config))]
        parts = decoded | "SplitTextOnly" >> beam.Partition(
            lambda sample, _: 1 if sample.is_text_only else 0, 2
        )
        return [
            ("ScoreSamples", parts[0], reward_handler(config)),
            ("ScoreTextSamples", parts[1], reward_handler(config, text=True)),
        ]
