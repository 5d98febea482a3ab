"""What the reviewers' verdicts say about the score cut, per source and per score band.

A run's THRESHOLD is a guess until someone looks at what it flags. Once reviewers have decided,
their keep/drop counts per score band show where the samples stop being mostly bad: the cut
below which reviewers dropped at least half of the reviewed samples in every band (walking up
from the lowest band, stopping at the first band where more were kept than dropped). Near
misses (clean samples just above the run's cut) count too, so the evidence can move the cut
either way. Rule-flagged samples have no score and are counted apart: no cut reaches them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from transforms.review.decisions import DROP
from transforms.review.matching import Match

MAX_BANDS = 10
NICE_STEPS = (1.0, 2.0, 2.5, 5.0)


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


def _round(value: float) -> float:
    return round(value, 9)  # 0.1 * 3 is 0.30000000000000004; the page shows bands as edges


def source_evidence(matches: list[Match]) -> dict:
    """{reviewed, kept, dropped, unscored, band_width, bands, half_dropped_below} for one source."""
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
        {"low": _round(i * width), "high": _round((i + 1) * width), "kept": k, "dropped": d}
        for i, (k, d) in sorted(counts.items())
    ]
    for band in evidence["bands"]:
        if band["dropped"] < band["kept"]:
            break
        evidence["half_dropped_below"] = band["high"]
    return evidence


def threshold_evidence(matches: Iterable[Match]) -> dict[str, dict]:
    """source_evidence for every source with at least one decision."""
    by_source: dict[str, list[Match]] = {}
    for match in matches:
        by_source.setdefault(match.source, []).append(match)
    return {source: source_evidence(found) for source, found in sorted(by_source.items())}
