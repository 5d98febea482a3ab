"""What changed from one finished run of a dataset to another: `rmclean compare OLD NEW`, and
each run against the previous one when it finishes.

Per source: the input count; samples added, removed and changed, told by id and content hash;
the flagged share before and after; how far the scores moved (PSI and KS) on the samples present
in both runs and on all; and every sample whose route changed, with both scores, in NEW's
`report/route_changes.jsonl`. A changed model, weights or cut explains most shifts, so those
come first (`setting_changes`). The runs are joined by `run_join.py` and their scores measured
by `score_shift.py`, both in memory that does not grow with the runs.
"""

from __future__ import annotations

import json
from typing import Any

import fsspec

from transforms.core.routes import REVIEW
from transforms.core.run_identity import run_id
from transforms.history.run_join import ROUTE_CHANGES, RunJoin, SourceTally, sorted_rows
from transforms.history.score_shift import distribution_stats, overlays

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
    join = RunJoin(new)
    try:
        join.run(sorted_rows(old), sorted_rows(new))
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


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _per_source(old: dict[str, Any], new: dict[str, Any], join: RunJoin) -> dict[str, dict]:
    old_counts = (old.get("counts") or {}).get("per_source") or {}
    new_counts = (new.get("counts") or {}).get("per_source") or {}
    sources = sorted(set(old_counts) | set(new_counts) | set(join.tallies))
    on_all = distribution_stats(join, sources, "all")
    on_common = distribution_stats(join, sources, "common")
    histograms = overlays(join, sources)
    result = {}
    for source in sources:
        tally = join.tallies.get(source) or SourceTally()
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
            "histogram": histograms.get(source),
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
