"""Where a scored sample goes: an absolute threshold or the lowest p% of its source.

Like every per-sample step (`pipelines/steps.py`), a routing function returns the sample to
pass it on (clean) or a `TaggedOutput` to divert it (review).
"""

from __future__ import annotations

from apache_beam.pvalue import TaggedOutput

from transforms.core.record import Sample

CLEAN = "clean"
REVIEW = "review"
ERRORS = "errors"
ROUTES = (CLEAN, REVIEW, ERRORS)
DROPPED = "dropped"  # only after a review: samples reviewers dropped (pipelines/apply_review.py)


def route_by_threshold(sample: Sample, threshold: float) -> Sample | TaggedOutput:
    if sample.score < threshold:
        detail = f"score {sample.score:.3f} is below the threshold {threshold:g}"
        return TaggedOutput(REVIEW, sample.replace(reason="low_score", detail=detail))
    return sample


# Per-source quantiles come from Beam's ApproximateQuantiles (bounded memory for any number of
# samples): QUANTILE_POINTS points give the cut to a resolution of 0.1 percentile.
QUANTILE_POINTS = 1001


def percentile_cut(quantiles: list[float], percentile: float) -> float:
    """The score at the `percentile`-th percentile, from evenly spaced quantiles (min..max)."""
    position = round(percentile / 100.0 * (len(quantiles) - 1))
    return quantiles[min(max(position, 0), len(quantiles) - 1)]


def route_by_cut(sample: Sample, cut: float, percentile: float) -> Sample | TaggedOutput:
    # Strictly below: a source of one sample has nothing below its own percentile.
    if sample.score < cut:
        detail = f"score {sample.score:.3f} is in the lowest {percentile:g}% of {sample.source}"
        return TaggedOutput(REVIEW, sample.replace(reason="low_percentile", detail=detail))
    return sample
