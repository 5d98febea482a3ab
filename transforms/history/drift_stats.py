"""How far one score distribution moved from another, from two streams of sorted scores.

- PSI (population stability index): the earlier run's scores cut into ten bins of equal count
  (its deciles), each run's share per bin, PSI = sum((after - before) * ln(after / before)).
  Under 0.1 is usually read as no real shift, above 0.25 as a large one. Every bin's count gets
  `PSEUDO_COUNT` added first, so a bin one run leaves empty gives a finite number that shrinks
  as the runs grow (a few dozen scores per source are noisy: expect about
  (bins - 1) * (1 / n_before + 1 / n_after) from sampling alone).
- KS: the Kolmogorov-Smirnov statistic, the largest gap between the two empirical CDFs (0 for
  the same scores, 1 for ranges that do not overlap), exact.
- An overlay histogram: both runs counted into the same fixed-width bins, for the report page.

Every function takes the scores already sorted ascending and reads each stream once, so the
caller can keep them on disk (`sorted_spool.py`) whatever the run's size.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Iterator

PSI_BINS = 10
PSEUDO_COUNT = 0.5
OVERLAY_BINS = 24


def quantile_edges(sorted_scores: Iterable[float], count: int, bins: int = PSI_BINS) -> list[float]:
    """The inner bin edges that cut `count` sorted scores into `bins` bins of equal count
    (duplicates merged, so tied scores share a bin)."""
    if count == 0:
        return []
    wanted = {(count * k) // bins: k for k in range(1, bins)}
    edges: list[float] = []
    for position, score in enumerate(sorted_scores):
        if position in wanted and (not edges or score > edges[-1]):
            edges.append(score)
    return edges


def psi(before: Iterable[float], after: Iterable[float], edges: list[float]) -> float | None:
    """PSI of `after` against `before` over the bins `edges` make (see the module doc)."""
    counts_before = _bin_counts(before, edges)
    counts_after = _bin_counts(after, edges)
    total_before, total_after = sum(counts_before), sum(counts_after)
    if not total_before or not total_after:
        return None
    value = 0.0
    padding = PSEUDO_COUNT * len(counts_before)
    for b, a in zip(counts_before, counts_after, strict=True):
        share_b = (b + PSEUDO_COUNT) / (total_before + padding)
        share_a = (a + PSEUDO_COUNT) / (total_after + padding)
        value += (share_a - share_b) * math.log(share_a / share_b)
    return value


def _bin_counts(scores: Iterable[float], edges: list[float]) -> list[int]:
    counts = [0] * (len(edges) + 1)
    for score in scores:
        counts[bisect.bisect_right(edges, score)] += 1
    return counts


def ks_statistic(before: Iterable[float], after: Iterable[float]) -> float | None:
    """The largest gap between the two empirical CDFs, from two ascending streams.

    Needs each stream's length, so the streams are (count, iterator) pairs read once.
    """
    (n, xs), (m, ys) = before, after
    if not n or not m:
        return None
    x, y = _Peek(xs), _Peek(ys)
    below_x = below_y = 0
    gap = 0.0
    while x.value is not None or y.value is not None:
        # Step past every score equal to the next smallest, in both streams at once.
        low = min(v for v in (x.value, y.value) if v is not None)
        while x.value is not None and x.value <= low:
            below_x += 1
            x.advance()
        while y.value is not None and y.value <= low:
            below_y += 1
            y.advance()
        gap = max(gap, abs(below_x / n - below_y / m))
    return gap


class _Peek:
    def __init__(self, values: Iterable[float]):
        self._values: Iterator[float] = iter(values)
        self.advance()

    def advance(self) -> None:
        self.value = next(self._values, None)


def overlay_counts(
    scores: Iterable[float], low: float, high: float, bins: int = OVERLAY_BINS
) -> list[int]:
    """Counts of `scores` in `bins` equal bins over [low, high] (high falls in the last)."""
    counts = [0] * bins
    width = (high - low) / bins if high > low else 1.0
    for score in scores:
        counts[min(max(int((score - low) / width), 0), bins - 1)] += 1
    return counts
