"""RouteByScore: scored samples -> clean or review, by a threshold or a per-source percentile;
samples a rule flagged before scoring -> review.

Each branch of scored samples is routed on its own; the light (source, routing score) pairs are
combined branch by branch (`CombineBranches`) to find each source's cut (`cuts`, which the
report marks on the histograms); a sample's routing score is the lowest of its score and its
turn scores, so the lowest p% are the samples with the lowest turn. A percentile needs every
score before any sample is routed, so the scored samples wait for it on disk
(`transforms/shuffle/spill.py`), not in memory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import apache_beam as beam
from apache_beam.transforms.stats import ApproximateQuantilesCombineFn

from pipelines.config import RunConfig
from transforms.beam.branches import Branches
from transforms.beam.combine_branches import CombineBranches
from transforms.beam.steps import ERRORS_TAG, guarded, unexpected_error
from transforms.core.record import ErrorRecord, Sample
from transforms.core.routes import REVIEW
from transforms.samples.repair import REPAIRED, truncated
from transforms.samples.route import (
    QUANTILE_POINTS,
    percentile_cut,
    route_by_cut,
    route_by_threshold,
)
from transforms.shards.write_shards import WriteTempShards
from transforms.shuffle.spill import SPILL_SHARD_MB, SpillShard, read_spilled

if TYPE_CHECKING:
    from pipelines.stages.score_samples import SamplesScored


def _route_spilled(path: str, cuts: dict[str, float], percentile: float):
    """Route every sample of one spill shard by its source's cut; a failure costs one sample.

    Each routed sample carries the run's cuts to the writers, which record them.
    """
    for sample in read_spilled(path):
        if isinstance(sample, ErrorRecord):
            yield beam.pvalue.TaggedOutput(ERRORS_TAG, sample)
            continue
        try:
            yield route_by_cut(sample.replace(run_cuts=cuts), cuts[sample.source], percentile)
        except Exception as exc:  # noqa: BLE001 - the same policy as every per-sample step
            yield beam.pvalue.TaggedOutput(ERRORS_TAG, unexpected_error(sample, "route", exc))


class RepairTurns(beam.DoFn):
    """Review samples -> the same (main), plus the good prefix of each one that has one
    (`repaired`, for clean/); the original then says which prefix of it is in clean/."""

    def __init__(self, threshold: float | None):
        self._threshold = threshold

    def process(self, sample: Sample):
        try:
            cut = self._threshold
            if cut is None:
                cut = sample.run_cuts[sample.source]  # a percentile run's cut for the source
            repaired = truncated(sample, cut)
        except Exception as exc:  # noqa: BLE001 - the same policy as every per-sample step
            yield beam.pvalue.TaggedOutput(ERRORS_TAG, unexpected_error(sample, "repair", exc))
            return
        if repaired is None:
            yield sample
            return
        prefix, original = repaired
        yield beam.pvalue.TaggedOutput(REPAIRED, prefix)
        yield original


class SamplesRouted(NamedTuple):
    """What RouteByScore gives the writers (and the cuts to `Finish`)."""

    clean: Branches
    review: Branches  # the rule-flagged samples first, then those routed by score
    errors: Branches
    cuts: beam.PCollection  # (source, cut) pairs


class RouteByScore(beam.PTransform):
    """`SamplesScored` -> `SamplesRouted`: the scored branches by score, the rule-flagged
    samples to review. With `repair: truncate`, the good prefixes of review samples routed by
    score join the clean branches (`RepairTurns`)."""

    def __init__(self, config: RunConfig, spill_dir: str):
        super().__init__()
        self._config = config
        self._spill_dir = spill_dir

    def expand(self, scored: SamplesScored):
        config = self._config
        branches = scored.scored
        # Combined branch by branch: a Flatten of one score per sample would be held in memory.
        scores = branches.each("SourceScore", beam.Map(lambda s: (s.source, s.routing_score)))
        if config.threshold is not None:
            cuts = (
                scores.each("Source", beam.Keys())
                | "ScoredSources" >> CombineBranches(beam.combiners.ToSetCombineFn())
                | "ThresholdCut"
                >> beam.FlatMap(
                    lambda sources, t: [(s, t) for s in sorted(sources)], config.threshold
                )
            )
            routed = Branches(
                guarded(
                    branch,
                    f"RouteByScore{i}",
                    "route",
                    route_by_threshold,
                    config.threshold,
                    tags=(REVIEW,),
                )
                for i, branch in enumerate(branches)
            )
        else:
            quantiles = ApproximateQuantilesCombineFn.create(num_quantiles=QUANTILE_POINTS)
            cuts = (
                scores
                | "SourceQuantiles" >> CombineBranches(quantiles, per_key=True)
                | "PercentileCut"
                >> beam.Map(lambda kv, pct: (kv[0], percentile_cut(kv[1], pct)), config.percentile)
            )
            # One spill shard path per element: few, so they may be flattened.
            spilled = branches.each(
                "SpillScored",
                beam.ParDo(WriteTempShards(self._spill_dir, SpillShard, SPILL_SHARD_MB)),
            ).flatten("AllSpilled")
            routed = Branches(
                (
                    spilled
                    | "RouteByPercentile"
                    >> beam.FlatMap(
                        _route_spilled, beam.pvalue.AsDict(cuts), config.percentile
                    ).with_outputs(ERRORS_TAG, REVIEW, main="samples"),
                )
            )
        clean, review, errors = (
            routed.tagged("samples"),
            routed.tagged(REVIEW),
            routed.tagged(ERRORS_TAG),
        )
        if config.repair:
            repaired = review.each(
                "RepairTurns",
                beam.ParDo(RepairTurns(config.threshold)).with_outputs(
                    REPAIRED, ERRORS_TAG, main="review"
                ),
            )
            clean += repaired.tagged(REPAIRED)
            review = repaired.tagged("review")
            errors += repaired.tagged(ERRORS_TAG)
        # What a rule flagged before scoring is reviewed as it is: no score to cut, nothing
        # to repair.
        review = Branches((scored.rule_flagged,)) + review
        return SamplesRouted(clean, review, errors, cuts)
