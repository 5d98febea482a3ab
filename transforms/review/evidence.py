"""What the reviewers' verdicts say about the score cut, per source and per score band.

A run's THRESHOLD is a guess until someone looks at what it flags. Once reviewers have decided,
their keep/drop counts per score band show where the samples stop being mostly bad: the cut
below which reviewers dropped at least half of the reviewed samples in every band (walking up
from the lowest band, stopping at the first band where more were kept than dropped). Near
misses (clean samples just above the run's cut) count too, so the evidence can move the cut
either way. Rule-flagged samples have no score and are counted apart: no cut reaches them.

A band's share is only as good as the decisions it rests on: each band carries its count and a
95% (Wilson score) interval for the share kept, and no cut is advised from a band with fewer
than MIN_DECISIONS_PER_BAND decisions; the walk stops there, and a source whose lowest band is
that thin says "not enough decisions yet".
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from transforms.review.decisions import DROP
from transforms.review.matching import Match

MAX_BANDS = 10
NICE_STEPS = (1.0, 2.0, 2.5, 5.0)
# Ten decisions split evenly still leave the kept share's 95% interval at 0.24 to 0.76; fewer
# cannot tell a mostly-bad band from a mixed one, so no cut is advised from them.
MIN_DECISIONS_PER_BAND = 10
Z_95 = 1.959964
# What the walk up the bands concluded, per source.
ADVISED, NOT_ENOUGH, KEPT_LOWEST = "cut", "not_enough_decisions", "kept_in_lowest_band"


def band_width(low: float, high: float, max_bands: int = MAX_BANDS) -> float:
    """The smallest 'nice' width (1, 2, 2.5 or 5 times a power of ten) giving <= max_bands."""
    span = (high - low) or 1.0  # one score: any width gives one band; keep it readable
    exponent = math.floor(math.log10(span / max_bands))
    for power in (exponent, exponent + 1):
        for step in NICE_STEPS:
            width = step * 10.0**power
            if math.floor(high / width) - math.floor(low / width) + 1 <= max_bands:
                return width
    return 10.0 ** (exponent + 2)


def wilson_interval(kept: int, total: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval for a share of `kept` in `total` (sound at small counts and at
    0 or 1, where the normal approximation collapses to a point)."""
    if total == 0:
        return 0.0, 1.0
    share = kept / total
    denominator = 1 + z * z / total
    centre = (share + z * z / (2 * total)) / denominator
    spread = z * math.sqrt(share * (1 - share) / total + z * z / (4 * total * total)) / denominator
    return round(max(0.0, centre - spread), 4), round(min(1.0, centre + spread), 4)


def _round(value: float) -> float:
    return round(value, 9)  # 0.1 * 3 is 0.30000000000000004; the page shows bands as edges


def source_evidence(matches: list[Match]) -> dict:
    """{reviewed, kept, dropped, unscored, band_width, bands, half_dropped_below, advice,
    min_decisions_per_band} for one source."""
    scored, unscored = [], []
    for match in matches:
        has_score = match.score is not None and math.isfinite(match.score)
        (scored if has_score else unscored).append(match)
    evidence: dict = {
        "reviewed": len(matches),
        "kept": sum(m.verdict != DROP for m in matches),
        "dropped": sum(m.verdict == DROP for m in matches),
        "unscored": {
            "kept": sum(m.verdict != DROP for m in unscored),
            "dropped": sum(m.verdict == DROP for m in unscored),
        },
        "band_width": None,
        "bands": [],
        "half_dropped_below": None,
        "advice": NOT_ENOUGH,
        "min_decisions_per_band": MIN_DECISIONS_PER_BAND,
    }
    if not scored:
        return evidence
    low, high = min(m.score for m in scored), max(m.score for m in scored)
    width = band_width(low, high)
    counts: dict[int, list[int]] = {}
    for match in scored:
        band = counts.setdefault(math.floor(match.score / width), [0, 0])
        band[match.verdict == DROP] += 1
    evidence["band_width"] = width
    evidence["bands"] = [
        {
            "low": _round(i * width),
            "high": _round((i + 1) * width),
            "kept": k,
            "dropped": d,
            "decisions": k + d,
            "kept_share": round(k / (k + d), 4),
            "kept_share_interval": list(wilson_interval(k, k + d)),
        }
        for i, (k, d) in sorted(counts.items())
    ]
    for number, band in enumerate(evidence["bands"]):
        if band["decisions"] < MIN_DECISIONS_PER_BAND:
            break  # too few to say which way this band goes, or any above it
        if band["dropped"] < band["kept"]:
            if number == 0:
                evidence["advice"] = KEPT_LOWEST
            break
        evidence["half_dropped_below"] = band["high"]
        evidence["advice"] = ADVISED
    return evidence


def threshold_evidence(matches: Iterable[Match]) -> dict[str, dict]:
    """source_evidence for every source with at least one decision."""
    by_source: dict[str, list[Match]] = {}
    for match in matches:
        by_source.setdefault(match.source, []).append(match)
    return {source: source_evidence(found) for source, found in sorted(by_source.items())}
