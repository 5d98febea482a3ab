"""What changed from one finished run of a dataset to another: `rmclean compare OLD NEW`, and
each run against the previous one when it finishes.

Per source: the input count; samples added, removed and changed, told by id and content hash;
the flagged share before and after; how far the scores moved (PSI and KS, `drift_stats.py`) on
the samples present in both runs and on all; and every sample whose route changed, with both
scores, in NEW's `report/route_changes.jsonl`. A changed model, weights or cut explains most
shifts, so those come first (`setting_changes`).

Both runs are read from their light files only (the id -> shard index and errors/), never the
shards. Memory stays bounded whatever the runs' size: each run's rows are sorted on local disk
by (source, id) (`SortedSpool`) and joined as two sorted streams, one id at a time; the scores
go to sorted spools too, read back once per statistic.

Samples are matched by (source, id). An id some datasets repeat (LLaVA-Video asks several
questions about one video under its id) is matched within the id: same content first, then in
order of origin; what is left over was added or removed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

import fsspec
import pyarrow.parquet as pq

from transforms.core.json_lines import json_line
from transforms.core.run_identity import run_id
from transforms.core.sorted_spool import SortedSpool
from transforms.core.storage import glob_paths
from transforms.io.shard_index import INDEX_DIR, iter_index
from transforms.report import drift_stats
from transforms.samples.route import ERRORS, REVIEW

ROUTE_CHANGES = "report/route_changes.jsonl"
INDEX_COLUMNS = ["source", "id", "origin", "score", "reason", "content_hash"]
# Small sort buffers: a 100k-sample compare then holds no more than a 10k one (bench/).
ROW_BUFFER_BYTES = 2 << 20
SCORE_BUFFER_BYTES = 1 << 20
# What a run's settings are called when they change, in the order they are listed.
SETTINGS = (
    ("model", "model"),
    ("text_model", "text model"),
    ("model_fingerprint", "model weights or options"),
    ("threshold", "threshold"),
    ("percentile", "percentile"),
    ("input", "input root"),
)


class CompareError(ValueError):
    """Two prefixes that cannot be compared: the message says why, in one line."""


def finished_summary(prefix: str) -> dict[str, Any]:
    """A finished run's summary.json, or CompareError saying what the prefix lacks."""
    fs, root = fsspec.core.url_to_fs(prefix)
    root = root.rstrip("/")
    if not fs.exists(f"{root}/report/summary.json"):
        raise CompareError(f"{prefix} is not a run's output prefix (no report/summary.json)")
    if not fs.exists(f"{root}/_SUCCESS"):
        raise CompareError(f"{prefix} is an unfinished run (no _SUCCESS); compare finished runs")
    with fs.open(f"{root}/report/summary.json", "r", encoding="utf-8") as handle:
        return json.load(handle)


def compare_runs(
    old: str, new: str, new_summary: dict[str, Any] | None = None, automatic: bool = False
) -> dict[str, Any]:
    """Compare the finished run at `old` with the one at `new`; write NEW's route changes and
    return the comparison (summary.json's `since_last_run`).

    `new_summary` is given by the finishing step, which compares before NEW has `_SUCCESS`.
    """
    old_summary = finished_summary(old)
    new_summary = finished_summary(new) if new_summary is None else new_summary
    if old_summary.get("dataset") != new_summary.get("dataset"):
        raise CompareError(
            f"{old} is a run of {old_summary.get('dataset')!r} and {new} of "
            f"{new_summary.get('dataset')!r}: compare two runs of the same dataset"
        )
    if run_id(old_summary) == run_id(new_summary):
        raise CompareError(f"{old} and {new} are the same run ({run_id(new_summary)})")
    join = _Join(new)
    try:
        join.run(_sorted_rows(old), _sorted_rows(new))
        per_source = _per_source(old_summary, new_summary, join)
    finally:
        join.close()
    return {
        "previous_run": {
            "run_id": run_id(old_summary),
            "output": old_summary.get("output") or old,
            "finished_at": old_summary.get("finished_at"),
        },
        "automatic": automatic,
        # Whether OLD is the run just before NEW (always, for the finishing step's comparison).
        "last_run": automatic,
        "setting_changes": setting_changes(old_summary, new_summary),
        "max_psi": _max_psi(per_source),
        "route_changes": {"count": join.route_change_count, "file": ROUTE_CHANGES},
        "per_source": per_source,
    }


def setting_changes(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    """The model, weights, cut and input settings that differ, then each source's cut."""
    changes = [
        {"setting": name, "before": old.get(key), "after": new.get(key)}
        for key, name in SETTINGS
        if old.get(key) != new.get(key)
    ]
    old_cuts, new_cuts = old.get("cuts") or {}, new.get("cuts") or {}
    for source in sorted(set(old_cuts) | set(new_cuts)):
        if old_cuts.get(source) != new_cuts.get(source):
            changes.append(
                {
                    "setting": f"cut of {source}",
                    "before": old_cuts.get(source),
                    "after": new_cuts.get(source),
                }
            )
    return changes


def max_drift(comparison: dict[str, Any]) -> float:
    """The largest PSI of any source, on all samples or on those in both runs (0 if none)."""
    return (comparison.get("max_psi") or {}).get("value") or 0.0


@dataclass
class _Row:
    origin: str
    content_hash: str  # "" when the run does not know it (errors, runs before content hashes)
    route: str
    score: float | None
    reason: str | None

    def side(self) -> dict[str, Any]:
        return {
            "route": self.route,
            "score": self.score,
            "reason": self.reason,
            "origin": self.origin,
        }


def _finite(score: Any) -> float | None:
    return float(score) if isinstance(score, (int, float)) and math.isfinite(score) else None


def _run_rows(prefix: str) -> Iterator[tuple[str, str, _Row]]:
    """(source, id, row) for every sample of a finished run: the index, then errors/."""
    prefix = prefix.rstrip("/")
    for index_file in glob_paths(f"{prefix}/{INDEX_DIR}/*.parquet"):
        route = index_file.rsplit("/", 1)[-1].removesuffix(".parquet")
        columns = [c for c in INDEX_COLUMNS if c in _index_columns(index_file)]
        for row in iter_index(index_file, columns):
            yield (
                str(row["source"]),
                str(row["id"]),
                _Row(
                    str(row.get("origin") or ""),
                    str(row.get("content_hash") or ""),
                    route,
                    _finite(row.get("score")),
                    row.get("reason"),
                ),
            )
    for errors_file in glob_paths(f"{prefix}/errors/*.jsonl"):
        with fsspec.open(errors_file, "r", encoding="utf-8") as handle:
            for line in handle:
                if not line.strip():
                    continue
                record = json.loads(line)
                yield (
                    str(record.get("source") or "unknown"),
                    str(record.get("id")),
                    _Row(str(record.get("origin") or ""), "", ERRORS, None, record.get("reason")),
                )


def _index_columns(url: str) -> list[str]:
    """An index written before a column existed lacks it (content_hash before compare)."""
    with fsspec.open(url, "rb") as handle:
        return pq.ParquetFile(handle).schema_arrow.names


def _sorted_rows(prefix: str) -> SortedSpool:
    """The run's rows sorted by (source, id); the rest of each row travels as its text, which
    the spool counts against its buffer."""
    spool = SortedSpool(buffer_bytes=ROW_BUFFER_BYTES)
    for source, sample_id, row in _run_rows(prefix):
        spool.add(
            (source, sample_id),
            json_line([row.origin, row.content_hash, row.route, row.score, row.reason]),
        )
    return spool


def _groups(spool: SortedSpool) -> Iterator[tuple[tuple[str, str], list[_Row]]]:
    """((source, id), its rows) in order of source and id."""
    for key, items in groupby(spool.sorted_items(), key=lambda item: tuple(item[0])):
        yield key, [_Row(*json.loads(text)) for _, text in items]


@dataclass
class _SourceTally:
    added: int = 0
    removed: int = 0
    changed: int = 0
    unchanged: int = 0
    content_unknown: int = 0  # matched by id, but one run does not know the content hash
    route_changes: int = 0
    common_scored: int = 0
    scored_before: int = 0
    scored_after: int = 0
    low: float = math.inf
    high: float = -math.inf

    def saw(self, score: float) -> None:
        self.low, self.high = min(self.low, score), max(self.high, score)


@dataclass
class _Join:
    """Both runs' rows joined by (source, id): counts, route changes and score spools."""

    new_prefix: str
    tallies: dict[str, _SourceTally] = field(default_factory=dict)
    route_change_count: int = 0

    def __post_init__(self):
        self.scores = {
            name: SortedSpool(buffer_bytes=SCORE_BUFFER_BYTES)
            for name in ("all_before", "all_after", "common_before", "common_after")
        }
        self._spools: list[SortedSpool] = []

    def run(self, old: SortedSpool, new: SortedSpool) -> None:
        self._spools += [old, new]
        path = f"{self.new_prefix.rstrip('/')}/{ROUTE_CHANGES}"
        fs, root = fsspec.core.url_to_fs(path)
        fs.makedirs(root.rsplit("/", 1)[0], exist_ok=True)
        with fs.open(root, "w", encoding="utf-8") as changes:
            for key, before, after in _merge(_groups(old), _groups(new)):
                self._match(key, before, after, changes)

    def _match(self, key, before: list[_Row], after: list[_Row], changes) -> None:
        source, sample_id = key
        tally = self.tallies.setdefault(source, _SourceTally())
        for row in before:
            self._score(source, tally, row.score, "all_before")
        for row in after:
            self._score(source, tally, row.score, "all_after")
        left = list(before)
        pairs = []
        for row in after:
            same = next(
                (r for r in left if row.content_hash and r.content_hash == row.content_hash),
                None,
            )
            if same is not None:
                left.remove(same)
                pairs.append((same, row))
        unpaired_after = [row for row in after if all(row is not b for _, b in pairs)]
        left.sort(key=lambda r: r.origin)
        unpaired_after.sort(key=lambda r: r.origin)
        pairs += list(zip(left, unpaired_after, strict=False))
        tally.removed += max(len(left) - len(unpaired_after), 0)
        tally.added += max(len(unpaired_after) - len(left), 0)
        for old_row, new_row in pairs:
            if not old_row.content_hash or not new_row.content_hash:
                tally.content_unknown += 1
            elif old_row.content_hash == new_row.content_hash:
                tally.unchanged += 1
            else:
                tally.changed += 1
            if old_row.score is not None and new_row.score is not None:
                tally.common_scored += 1
                self.scores["common_before"].add((source, old_row.score), "")
                self.scores["common_after"].add((source, new_row.score), "")
            if old_row.route != new_row.route:
                tally.route_changes += 1
                self.route_change_count += 1
                line = {
                    "source": source,
                    "id": sample_id,
                    "before": old_row.side(),
                    "after": new_row.side(),
                    "content_changed": (
                        old_row.content_hash != new_row.content_hash
                        if old_row.content_hash and new_row.content_hash
                        else None
                    ),
                }
                changes.write(json_line(line) + "\n")

    def _score(self, source: str, tally: _SourceTally, score: float | None, spool: str) -> None:
        if score is None:
            return
        tally.saw(score)
        if spool == "all_before":
            tally.scored_before += 1
        else:
            tally.scored_after += 1
        self.scores[spool].add((source, score), "")

    def close(self) -> None:
        for spool in [*self._spools, *self.scores.values()]:
            spool.close()


def _merge(old_groups, new_groups):
    """(key, rows before, rows after) over the union of keys, in order."""
    old, new = next(old_groups, None), next(new_groups, None)
    while old is not None or new is not None:
        if new is None or (old is not None and old[0] < new[0]):
            yield old[0], old[1], []
            old = next(old_groups, None)
        elif old is None or new[0] < old[0]:
            yield new[0], [], new[1]
            new = next(new_groups, None)
        else:
            yield old[0], old[1], new[1]
            old, new = next(old_groups, None), next(new_groups, None)


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


def _distribution_stats(join: _Join, sources: list[str], which: str) -> dict[str, dict]:
    """PSI and KS per source of the `which` ("all" or "common") scores, before vs after."""
    before, after = join.scores[f"{which}_before"], join.scores[f"{which}_after"]

    def counts(source: str) -> tuple[int, int]:
        tally = join.tallies.get(source) or _SourceTally()
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


def _overlays(join: _Join, sources: list[str]) -> dict[str, dict]:
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


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _per_source(old: dict[str, Any], new: dict[str, Any], join: _Join) -> dict[str, dict]:
    old_counts = (old.get("counts") or {}).get("per_source") or {}
    new_counts = (new.get("counts") or {}).get("per_source") or {}
    sources = sorted(set(old_counts) | set(new_counts) | set(join.tallies))
    on_all = _distribution_stats(join, sources, "all")
    on_common = _distribution_stats(join, sources, "common")
    overlays = _overlays(join, sources)
    result = {}
    for source in sources:
        tally = join.tallies.get(source) or _SourceTally()
        before, after = old_counts.get(source) or {}, new_counts.get(source) or {}
        result[source] = {
            "input": {
                "before": before.get("input", 0),
                "after": after.get("input", 0),
                "change": after.get("input", 0) - before.get("input", 0),
            },
            "samples": {
                "added": tally.added,
                "removed": tally.removed,
                "changed": tally.changed,
                "unchanged": tally.unchanged,
                "content_unknown": tally.content_unknown,
            },
            "flagged_share": {"before": _share(before), "after": _share(after)},
            "route_changes": tally.route_changes,
            "scores": {
                "all": {
                    "before": tally.scored_before,
                    "after": tally.scored_after,
                    "psi": _rounded(on_all[source].get("psi")),
                    "ks": _rounded(on_all[source].get("ks")),
                },
                "common": {
                    "samples": tally.common_scored,
                    "psi": _rounded(on_common[source].get("psi")),
                    "ks": _rounded(on_common[source].get("ks")),
                },
            },
            "histogram": overlays.get(source),
        }
    return result


def _share(counts: dict[str, Any]) -> float | None:
    total = counts.get("input") or 0
    return round(counts.get(REVIEW, 0) / total, 6) if total else None


def _max_psi(per_source: dict[str, dict]) -> dict[str, Any] | None:
    found = [
        (stats["scores"][on]["psi"], source, on)
        for source, stats in per_source.items()
        for on in ("all", "common")
        if stats["scores"][on]["psi"] is not None
    ]
    if not found:
        return None
    value, source, on = max(found)
    return {"value": value, "source": source, "on": on}
