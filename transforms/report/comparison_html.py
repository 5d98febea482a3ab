"""The report page's "since the last run" section: a comparison (`run_compare.py`) as HTML.

Setting changes first (a new model or cut explains most shifts), then per source the counts,
flagged shares, PSI and KS, and both runs' score histograms overlaid. Dataset text (source
names, paths) goes through `html.escape`, like everywhere on the page.
"""

from __future__ import annotations

from html import escape
from typing import Any

from transforms.report.histogram import overlay_svg
from transforms.report.rows import clip, num


def comparison_html(summary: dict[str, Any]) -> str:
    """What changed since the run before this one (or the run `rmclean compare` was given)."""
    comparison = summary.get("since_last_run")
    if not comparison:
        return ""
    previous = comparison.get("previous_run") or {}
    title = "Since the last run" if comparison.get("last_run") else "Since an earlier run"
    said = (
        f"<p>Compared with run {escape(str(previous.get('run_id')))}, finished "
        f"{escape(str(previous.get('finished_at')))} ({escape(str(previous.get('output')))}).</p>"
    )
    if comparison.get("error"):
        return (
            f'<h2 id="since-last-run">{title}</h2>{said}'
            f'<p class="note">The comparison failed: {clip(comparison["error"], 300)}</p>'
        )
    changes = comparison.get("setting_changes") or []
    if changes:
        items = "".join(
            f"<li><b>{escape(str(c['setting']))}</b>: {escape(str(c['before']))} → "
            f"{escape(str(c['after']))}</li>"
            for c in changes
        )
        settings = (
            '<div class="note setting-changes">Changed since then (these explain most shifts):'
            f"<ul>{items}</ul></div>"
        )
    else:
        settings = '<p class="muted">Same model, weights, cut and input root.</p>'
    rows = ""
    charts = ""
    for source, stats in sorted((comparison.get("per_source") or {}).items()):
        counts, samples, shares = stats["input"], stats["samples"], stats["flagged_share"]
        on_all, on_both = stats["scores"]["all"], stats["scores"]["common"]
        share = "–" if shares["before"] is None else f"{shares['before']:.1%}"
        share += " → " + ("–" if shares["after"] is None else f"{shares['after']:.1%}")
        rows += (
            f'<tr class="since-source" data-source="{escape(source)}"><td>{escape(source)}</td>'
            f'<td class="num">{counts["before"]} → {counts["after"]} ({counts["change"]:+d})</td>'
            f'<td class="num">{samples["added"]}</td><td class="num">{samples["removed"]}</td>'
            f'<td class="num">{samples["changed"]}</td><td class="num">{share}</td>'
            f'<td class="num">{num(on_all["psi"])}</td><td class="num">{num(on_both["psi"])}</td>'
            f'<td class="num">{num(on_all["ks"])}</td><td class="num">{num(on_both["ks"])}</td>'
            f'<td class="num">{stats["route_changes"]}</td></tr>'
        )
        if stats.get("histogram"):
            charts += (
                f'<div class="chart by-source" data-source="{escape(source)}">'
                f"{overlay_svg(source, stats['histogram'])}</div>"
            )
    routes = comparison.get("route_changes") or {}
    return (
        f'<h2 id="since-last-run">{title}</h2>{said}{settings}'
        '<table class="since"><tr><th>source</th><th class="num">input</th>'
        '<th class="num">added</th><th class="num">removed</th><th class="num">changed</th>'
        '<th class="num">flagged</th><th class="num">PSI all</th><th class="num">PSI both</th>'
        '<th class="num">KS all</th><th class="num">KS both</th>'
        f'<th class="num">route changes</th></tr>{rows}</table>'
        '<p class="muted">Samples are matched by id; "changed" means the same id with other '
        'content. "both": the samples scored in both runs. PSI under 0.1 is little shift, '
        f"above 0.25 a large one. {routes.get('count', 0)} samples changed route, each with "
        'both scores in <a href="route_changes.jsonl">route_changes.jsonl</a>.</p>'
        f'<div class="charts">{charts}</div>'
    )
