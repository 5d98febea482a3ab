"""How far each source's scores moved between two joined runs (`run_join.py`): PSI and KS per
source (`drift_stats.py`) on all scores or on those of samples in both runs, and the overlay
histogram counts, each read from the join's sorted score spools one source at a time."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import groupby

from transforms.core.sorted_spool import SortedSpool
from transforms.history import drift_stats
from transforms.history.run_join import RunJoin, SourceTally


def _scores_by_source(spool: SortedSpool) -> Iterator[tuple[str, Iterator[float]]]:
    for source, items in groupby(spool.sorted_items(), key=lambda item: item[0][0]):
        yield source, (key[1] for key, _ in items)


def _each_source(spool: SortedSpool, sources: list[str]) -> Iterator[tuple[str, Iterator[float]]]:
    """(source, its sorted scores) for every one of `sources`, in order; empty when it has none."""
    groups = _scores_by_source(spool)
    group = next(groups, None)
    for source in sources:
        while group is not None and group[0] < source:
            group = next(groups, None)
        if group is not None and group[0] == source:
            yield source, group[1]
            group = next(groups, None)
        else:
            yield source, iter(())


def distribution_stats(join: RunJoin, sources: list[str], which: str) -> dict[str, dict]:
    """PSI and KS per source of the `which` ("all" or "common") scores, before vs after."""
    before, after = join.scores[f"{which}_before"], join.scores[f"{which}_after"]

    def counts(source: str) -> tuple[int, int]:
        tally = join.tallies.get(source) or SourceTally()
        if which == "all":
            return tally.scored_before, tally.scored_after
        return tally.common_scored, tally.common_scored

    edges = {
        source: drift_stats.quantile_edges(scores, counts(source)[0])
        for source, scores in _each_source(before, sources)
    }
    stats: dict[str, dict] = {s: {} for s in sources}
    for (source, old), (_, new) in zip(
        _each_source(before, sources), _each_source(after, sources), strict=True
    ):
        stats[source]["psi"] = drift_stats.psi(old, new, edges[source])
    for (source, old), (_, new) in zip(
        _each_source(before, sources), _each_source(after, sources), strict=True
    ):
        n_before, n_after = counts(source)
        stats[source]["ks"] = drift_stats.ks_statistic((n_before, old), (n_after, new))
    return stats


def overlays(join: RunJoin, sources: list[str]) -> dict[str, dict]:
    overlays = {}
    for (source, old), (_, new) in zip(
        _each_source(join.scores["all_before"], sources),
        _each_source(join.scores["all_after"], sources),
        strict=True,
    ):
        tally = join.tallies.get(source)
        if tally is None or tally.low > tally.high:
            continue
        overlays[source] = {
            "low": tally.low,
            "high": tally.high,
            "before": drift_stats.overlay_counts(old, tally.low, tally.high),
            "after": drift_stats.overlay_counts(new, tally.low, tally.high),
        }
    return overlays
