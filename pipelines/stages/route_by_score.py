"""RouteByScore: scored samples -> clean or review, by a threshold or a per-source percentile.

Each branch of scored samples is routed on its own; the light (source, routing score) pairs are
combined branch by branch (`CombineBranches`) to find each source's cut (`cuts`, which the
report marks on the histograms); a sample's routing score is the lowest of its score and its
turn scores, so the lowest p% are the samples with the lowest turn. A percentile needs every
score before any sample is routed, so the scored samples wait for it on disk
(`transforms/shuffle/spill.py`), not in memory.
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.transforms.stats import ApproximateQuantilesCombineFn

from pipelines.config import RunConfig
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


class RouteByScore(beam.PTransform):
    """[branches of scored samples] -> {`clean`, `review`, `errors`: lists of branches,
    `cuts`: (source, cut) pairs}. With `repair: truncate`, the good prefixes of review
    samples join the clean branches (`RepairTurns`)."""

    def __init__(self, config: RunConfig, spill_dir: str):
        super().__init__()
        self._config = config
        self._spill_dir = spill_dir

    def expand(self, branches):
        config = self._config
        # Combined branch by branch: a Flatten of one score per sample would be held in memory.
        scores = tuple(
            branch | f"SourceScore{i}" >> beam.Map(lambda s: (s.source, s.routing_score))
            for i, branch in enumerate(branches)
        )
        if config.threshold is not None:
            cuts = (
                tuple(score | f"Source{i}" >> beam.Keys() for i, score in enumerate(scores))
                | "ScoredSources" >> CombineBranches(beam.combiners.ToSetCombineFn())
                | "ThresholdCut"
                >> beam.FlatMap(
                    lambda sources, t: [(s, t) for s in sorted(sources)], config.threshold
                )
            )
            routed = [
                guarded(
                    branch,
                    f"RouteByScore{i}",
                    "route",
                    route_by_threshold,
                    config.threshold,
                    tags=(REVIEW,),
                )
                for i, branch in enumerate(branches)
            ]
        else:
            quantiles = ApproximateQuantilesCombineFn.create(num_quantiles=QUANTILE_POINTS)
            cuts = (
                scores
                | "SourceQuantiles" >> CombineBranches(quantiles, per_key=True)
                | "PercentileCut"
                >> beam.Map(lambda kv, pct: (kv[0], percentile_cut(kv[1], pct)), config.percentile)
            )
            spilled = (
                tuple(
                    branch
                    | f"SpillScored{i}"
                    >> beam.ParDo(WriteTempShards(self._spill_dir, SpillShard, SPILL_SHARD_MB))
                    for i, branch in enumerate(branches)
                )
                | "AllSpilled" >> beam.Flatten()
            )
            routed = [
                spilled
                | "RouteByPercentile"
                >> beam.FlatMap(
                    _route_spilled, beam.pvalue.AsDict(cuts), config.percentile
                ).with_outputs(ERRORS_TAG, REVIEW, main="samples")
            ]
        clean = [split.samples for split in routed]
        review = [split[REVIEW] for split in routed]
        errors = [split[ERRORS_TAG] for split in routed]
        if config.repair:
            repaired = [
                branch
                | f"RepairTurns{i}"
                >> beam.ParDo(RepairTurns(config.threshold)).with_outputs(
                    REPAIRED, ERRORS_TAG, main="review"
                )
                for i, branch in enumerate(review)
            ]
            clean += [split[REPAIRED] for split in repaired]
            review = [split.review for split in repaired]
            errors += [split[ERRORS_TAG] for split in repaired]
        return {"clean": clean, "review": review, "errors": errors, "cuts": cuts}
