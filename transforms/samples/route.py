"""Where a scored sample goes: an absolute threshold or the lowest p% of its source.

Like every per-sample step (`transforms/beam/steps.py`), a routing function returns the sample to
pass it on (clean) or a `TaggedOutput` to divert it (review). A conversation of several
assistant turns with turn scores is flagged when any turn scores below the cut, and its
reason (`low_score_turn`) and detail name the first such turn; a sample without turn scores,
or of one turn, is routed by its score alone, as it always was.
"""

from __future__ import annotations

from apache_beam.pvalue import TaggedOutput

from transforms.core.record import Sample
from transforms.core.routes import REVIEW
from transforms.samples.turns import first_low_turn

LOW_SCORE_TURN = "low_score_turn"
EXCERPT_CHARS = 80


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _low_turn(sample: Sample, turn: int, where: str) -> TaggedOutput:
    answer = sample.assistant_turns()[turn]
    detail = (
        f"assistant turn {turn + 1} of {len(sample.turn_scores)} scored "
        f"{sample.turn_scores[turn]:.3f}, {where}: {excerpt(answer)!r}"
    )
    return TaggedOutput(REVIEW, sample.replace(reason=LOW_SCORE_TURN, detail=detail))


def route_by_threshold(sample: Sample, threshold: float) -> Sample | TaggedOutput:
    turn = first_low_turn(sample.turn_scores, threshold)
    if turn is not None:
        return _low_turn(sample, turn, f"below the threshold {threshold:g}")
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
    """`cut` is the percentile of the source's routing scores (`Sample.routing_score`)."""
    # Strictly below: a source of one sample has nothing below its own percentile.
    turn = first_low_turn(sample.turn_scores, cut)
    if turn is not None:
        return _low_turn(sample, turn, f"in the lowest {percentile:g}% of {sample.source}")
    if sample.score < cut:
        detail = f"score {sample.score:.3f} is in the lowest {percentile:g}% of {sample.source}"
        return TaggedOutput(REVIEW, sample.replace(reason="low_percentile", detail=detail))
    return sample
