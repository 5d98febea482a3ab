"""A comparison of two runs (`run_compare.py`) for people: printed by `rmclean compare`, and
stored in NEW's summary.json and report page."""

from __future__ import annotations

from typing import Any

from transforms.report import summary as report
from transforms.report.html import write_html_report


def write_comparison(new: str, summary: dict[str, Any], comparison: dict[str, Any]) -> None:
    """Put `comparison` into NEW's summary.json (`since_last_run`) and rebuild its page."""
    summary["since_last_run"] = comparison
    report.write_json(f"{new.rstrip('/')}/report/summary.json", summary)
    write_html_report(new, summary)


def _value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def describe(comparison: dict[str, Any], new: str) -> str:
    """The comparison as text: what was compared, setting changes first, then per source."""
    previous = comparison["previous_run"]
    lines = [
        f"compared {previous['output']} (run {previous['run_id']}, finished "
        f"{previous['finished_at']}) -> {new}"
    ]
    changes = comparison.get("setting_changes") or []
    for change in changes:
        lines.append(
            f"  changed: {change['setting']}: {_value(change['before'])} -> "
            f"{_value(change['after'])}"
        )
    if not changes:
        lines.append("  same model, weights, cut and input root")
    header = (
        f"  {'source':<30} {'input':>13} {'added':>6} {'removed':>7} {'changed':>7} "
        f"{'flagged':>15} {'PSI all':>8} {'PSI both':>8} {'KS all':>7} {'routes':>6}"
    )
    lines.append(header)
    for source, stats in sorted(comparison["per_source"].items()):
        counts, samples = stats["input"], stats["samples"]
        shares, scores = stats["flagged_share"], stats["scores"]
        lines.append(
            f"  {source:<30} {str(counts['before']) + '->' + str(counts['after']):>13} "
            f"{samples['added']:>6} {samples['removed']:>7} {samples['changed']:>7} "
            f"{_share(shares['before']) + '->' + _share(shares['after']):>15} "
            f"{_value(scores['all']['psi']):>8} {_value(scores['common']['psi']):>8} "
            f"{_value(scores['all']['ks']):>7} {stats['route_changes']:>6}"
        )
    routes = comparison["route_changes"]
    lines.append(f"  {routes['count']} samples changed route: {new.rstrip('/')}/{routes['file']}")
    worst = comparison.get("max_psi")
    if worst:
        lines.append(
            f"  largest score shift: PSI {worst['value']:.3g} of {worst['source']} "
            f"({worst['on']} samples)"
        )
    return "\n".join(lines)
