"""report/index.html: the page a person opens from disk to see what a run flagged and why.

It is built from a finished run's output prefix alone, so `rmclean report OUTPUT` can rebuild
it, and its size is bounded whatever the run's: at most `max_rows_per_source` flagged samples
(the lowest scores, chosen while streaming; see `report_scan`) and as many errors per source,
with long text clipped. It must be safe to open on untrusted data and work offline, so:
- every piece of dataset text goes through `html.escape` into HTML, never into a script;
- the only script is the constant filter code below; no external scripts, styles or fonts;
- histograms are inline SVG and thumbnails relative JPEG files in report/thumbs/.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

import fsspec

from transforms.report_cost import cost_html
from transforms.report_scan import (
    Pick,
    StreamingHistogram,
    attach_media,
    load_summary,
    scan_errors,
    scan_scores,
)
from transforms.route import CLEAN, ERRORS, REVIEW

TURNS_SHOWN = 8
TURN_CHARS = 1500
DETAIL_CHARS = 400
SVG_WIDTH, SVG_HEIGHT, SVG_MARGIN = 560, 190, 36  # px

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
th,td{border:1px solid #ccc;padding:4px 8px;vertical-align:top;text-align:left}
td.num,th.num{text-align:right}
.muted{color:#777}.note{background:#fff8e0;padding:6px 10px;border-left:3px solid #e0b000}
.charts{display:flex;flex-wrap:wrap;gap:1em}
.histogram .bar.clean{fill:#4a7fc1}.histogram .bar.review{fill:#d9534f}
.histogram .axis{stroke:#444}.histogram .cut{stroke:#000;stroke-dasharray:4 3;stroke-width:2}
.histogram text{font-size:11px}
.media{display:flex;flex-wrap:wrap;gap:4px;max-width:540px}
.media img{max-width:256px;max-height:256px;display:block}
.missing{width:120px;min-height:60px;background:#eee;color:#a00;font-size:12px;padding:4px}
.turn{white-space:pre-wrap;word-break:break-word;max-width:640px;margin-bottom:4px}
.role{font-weight:bold;color:#555;margin-right:.4em}
.filters{position:sticky;top:0;background:#fff;padding:6px 0;border-bottom:1px solid #ddd}
"""

SCRIPT = """
(function () {
  var source = document.getElementById('filter-source');
  var reason = document.getElementById('filter-reason');
  function apply() {
    var shown = 0;
    document.querySelectorAll('tr.flagged').forEach(function (row) {
      var ok = (!source.value || row.dataset.source === source.value) &&
               (!reason.value || row.dataset.reason === reason.value);
      row.hidden = !ok;
      if (ok) { shown += 1; }
    });
    document.querySelectorAll('tr.error-row, .chart').forEach(function (el) {
      el.hidden = !!source.value && el.dataset.source !== source.value;
    });
    document.getElementById('visible-count').textContent = String(shown);
  }
  source.addEventListener('change', apply);
  reason.addEventListener('change', apply);
  apply();
})();
"""


def _clip(text: Any, limit: int) -> str:
    text = "" if text is None else str(text)
    if len(text) <= limit:
        return escape(text)
    return escape(text[:limit]) + f'<span class="muted">… [{len(text) - limit} more chars]</span>'


def _num(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, (int, float)) else "–"


def histogram_svg(source: str, histogram: StreamingHistogram, cut: float | None) -> str:
    """Clean (blue) stacked on review (red) per score bin; the cut as a dashed line."""
    rows = histogram.rows()
    if not rows:
        return f'<p class="muted">{escape(source)}: no scored samples.</p>'
    low, high = rows[0][0], rows[-1][1]
    has_cut = isinstance(cut, (int, float)) and math.isfinite(cut)
    if has_cut:
        low, high = min(low, cut - histogram.width), max(high, cut + histogram.width)
    plot_w, plot_h = SVG_WIDTH - 2 * SVG_MARGIN, SVG_HEIGHT - 2 * SVG_MARGIN
    base_y = SVG_MARGIN + plot_h
    peak = max(clean + review for _, _, clean, review in rows)

    def x(value: float) -> float:
        return SVG_MARGIN + (value - low) / (high - low) * plot_w

    parts = [
        f'<svg class="histogram" width="{SVG_WIDTH}" height="{SVG_HEIGHT}" '
        f'viewBox="0 0 {SVG_WIDTH} {SVG_HEIGHT}" role="img">'
        f"<title>{escape(source)}: reward score histogram</title>"
        f'<line class="axis" x1="{SVG_MARGIN}" y1="{base_y}" x2="{SVG_MARGIN + plot_w}" '
        f'y2="{base_y}"/>'
    ]
    for bin_low, bin_high, clean, review in rows:
        top = base_y
        for count, route in ((review, REVIEW), (clean, CLEAN)):
            if count:
                height = count / peak * plot_h
                top -= height
                parts.append(
                    f'<rect class="bar {route}" x="{x(bin_low):.1f}" y="{top:.1f}" '
                    f'width="{max(x(bin_high) - x(bin_low) - 1, 1):.1f}" height="{height:.1f}">'
                    f"<title>[{_num(bin_low)}, {_num(bin_high)}): {clean} clean, "
                    f"{review} review</title></rect>"
                )
    parts.append(
        f'<text x="{SVG_MARGIN}" y="{base_y + 14}">{_num(low)}</text>'
        f'<text x="{SVG_MARGIN + plot_w}" y="{base_y + 14}" text-anchor="end">{_num(high)}</text>'
        f'<text x="{SVG_MARGIN}" y="{SVG_MARGIN - 8}">{escape(source)} · tallest bin {peak}'
        f"{f' · {histogram.unscored} not scored' if histogram.unscored else ''}</text>"
    )
    if has_cut:
        parts.append(
            f'<line class="cut" x1="{x(cut):.1f}" y1="{SVG_MARGIN - 2}" x2="{x(cut):.1f}" '
            f'y2="{base_y}"/><text x="{x(cut) + 3:.1f}" y="{SVG_MARGIN + 10}">'
            f"cut {_num(cut)}</text>"
        )
    return "".join(parts) + "</svg>"


def _summary_html(summary: dict[str, Any]) -> str:
    if summary.get("percentile") is not None:
        cut = f"lowest {summary['percentile']:g}% of each source"
    elif summary.get("threshold") is not None:
        cut = f"score below {summary['threshold']:g}"
    else:
        cut = "–"
    wall = (summary.get("durations") or {}).get("wall_seconds")
    settings = [
        ("dataset", summary.get("dataset")),
        ("model", summary.get("model")),
        ("review rule", cut),
        ("runner", summary.get("runner")),
        ("format", summary.get("format")),
        ("duration", f"{wall:.1f} s" if isinstance(wall, (int, float)) else None),
        ("finished", summary.get("finished_at")),
        ("input", summary.get("input")),
        ("output", summary.get("output")),
    ]
    rows = "".join(
        f"<tr><th>{name}</th><td>{escape(str(value))}</td></tr>"
        for name, value in settings
        if value is not None
    )
    counts = summary.get("counts") or {}
    cuts = summary.get("cuts") or {}
    header = "".join(f'<th class="num">{c}</th>' for c in ("input", CLEAN, REVIEW, ERRORS))
    body = ""
    for source, c in sorted((counts.get("per_source") or {}).items()):
        cells = "".join(
            f'<td class="num">{escape(str(c.get(k, 0)))}</td>'
            for k in ("input", CLEAN, REVIEW, ERRORS)
        )
        body += f"<tr><td>{escape(source)}</td>{cells}<td>{_num(cuts.get(source))}</td></tr>"
    total = counts.get("total") or {}
    cells = "".join(
        f'<td class="num">{escape(str(total.get(k, 0)))}</td>'
        for k in ("input", CLEAN, REVIEW, ERRORS)
    )
    return (
        f'<table class="settings">{rows}</table><h2>Counts</h2>'
        f'<table class="counts"><tr><th>source</th>{header}<th>score cut</th></tr>{body}'
        f"<tr><th>total</th>{cells}<td></td></tr></table>"
    )


def _media_html(pick: Pick) -> str:
    cells = []
    for src, thumb in pick.thumbs:
        if src:
            cells.append(
                f'<img src="{escape(src)}" alt="{escape(thumb.label)}" '
                f'title="{escape(thumb.label)}">'
            )
        else:
            cells.append(
                f'<div class="missing">{escape(thumb.label)}: {escape(thumb.problem or "")}</div>'
            )
    return (
        f'<div class="media">{"".join(cells)}</div>'
        if cells
        else '<span class="muted">text only</span>'
    )


def _conversation_html(pick: Pick) -> str:
    turns = pick.sample.conversations if pick.sample else []
    parts = [
        f'<div class="turn"><span class="role">{escape(str(t.get("from", "?")))}</span>'
        f"{_clip(t.get('value'), TURN_CHARS)}</div>"
        for t in turns[:TURNS_SHOWN]
    ]
    if len(turns) > TURNS_SHOWN:
        parts.append(f'<div class="muted">… {len(turns) - TURNS_SHOWN} more turns</div>')
    if pick.sample is None:
        parts.append('<div class="muted">sample could not be re-read from its shard</div>')
    return "".join(parts)


def _flagged_table(title: str, picks: list[Pick]) -> str:
    rows = "".join(
        f'<tr class="flagged" data-source="{escape(p.source)}" data-reason="{escape(p.reason)}">'
        f"<td>{_media_html(p)}</td><td>{_conversation_html(p)}</td>"
        f'<td class="num">{"not scored" if p.score is None else _num(p.score)}</td>'
        f"<td><b>{escape(p.reason)}</b><br>{_clip(p.detail, DETAIL_CHARS)}</td>"
        f"<td>{escape(p.source)}<br><code>{_clip(p.id, 200)}</code></td></tr>"
        for p in picks
    )
    return (
        f"<h3>{title} ({len(picks)} shown)</h3><table><tr><th>media</th><th>conversation</th>"
        f'<th class="num">score</th><th>reason</th><th>source / id</th></tr>{rows}</table>'
    )


def _flagged_html(picks: list[Pick], totals: dict[str, int], limit: int) -> str:
    shown: dict[str, int] = {}
    for pick in picks:
        shown[pick.source] = shown.get(pick.source, 0) + 1
    notes = "".join(
        f"<li>{escape(source)}: showing {shown.get(source, 0)} of {total} flagged samples"
        f"{' (the lowest scores)' if shown.get(source, 0) < total else ''}</li>"
        for source, total in sorted(totals.items())
    )
    cut_off = any(shown.get(s, 0) < t for s, t in totals.items())
    more = (
        f'<p class="note">At most {limit} samples per source are shown. Every flagged sample is '
        'listed in <a href="flagged.jsonl">flagged.jsonl</a> and '
        '<a href="flagged.csv">flagged.csv</a> next to this page.</p>'
        if cut_off
        else ""
    )
    sources = sorted(totals)
    reasons = sorted({p.reason for p in picks})

    def options(values: list[str]) -> str:
        return "".join(f'<option value="{escape(v)}">{escape(v)}</option>' for v in values)

    filters = (
        '<div class="filters">source <select id="filter-source"><option value="">all</option>'
        f'{options(sources)}</select> reason <select id="filter-reason">'
        f'<option value="">all</option>{options(reasons)}</select> '
        '<span id="visible-count"></span> rows visible</div>'
    )
    unscored = [p for p in picks if p.order[0] == 0]
    scored = [p for p in picks if p.order[0] == 1]
    return (
        f"{filters}<ul>{notes}</ul>{more}"
        f"{_flagged_table('Rule-flagged (not scored)', unscored)}"
        f"{_flagged_table('Low reward, lowest score first', scored)}"
    )


def _errors_html(summary, errors: list[dict[str, Any]], totals: dict[str, int], limit) -> str:
    by_reason = "".join(
        f'<tr><td>{escape(str(reason))}</td><td class="num">{escape(str(n))}</td></tr>'
        for reason, n in (summary.get("errors_by_reason") or {}).items()
    )
    notes = "".join(
        f"<li>{escape(source)}: showing {min(total, limit)} of {total} errors</li>"
        for source, total in sorted(totals.items())
    )
    rows = "".join(
        f'<tr class="error-row" data-source="{escape(e["source"])}"><td>{escape(e["source"])}</td>'
        f"<td>{_clip(e.get('stage'), 40)}</td><td>{_clip(e.get('reason'), 80)}</td>"
        f"<td>{_clip(e.get('detail'), DETAIL_CHARS)}</td><td><code>{_clip(e.get('id'), 200)}"
        f"</code></td><td>{_clip(e.get('origin'), 300)}</td></tr>"
        for e in errors
    )
    return (
        f"<table><tr><th>stage/reason</th><th>count</th></tr>{by_reason}</table><ul>{notes}</ul>"
        "<p>All errors, with each sample's original record, are in errors/errors-*.jsonl.</p>"
        "<table><tr><th>source</th><th>stage</th><th>reason</th><th>detail</th><th>id</th>"
        f"<th>origin</th></tr>{rows}</table>"
    )


def render_page(summary, histograms, picks, flagged_totals, errors, error_totals, limit) -> str:
    cuts = summary.get("cuts") or {}
    charts = "".join(
        f'<div class="chart" data-source="{escape(source)}">'
        f"{histogram_svg(source, histograms[source], cuts.get(source))}</div>"
        for source in sorted(histograms)
    )
    title = f"rmclean report: {summary.get('dataset', '')}"
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{escape(title)}</h1>{_summary_html(summary)}"
        f"<h2>Scoring cost</h2>{cost_html(summary)}"
        '<h2>Scores</h2><p class="muted">Blue: clean; red: review; dashed: the score cut.'
        f'</p><div class="charts">{charts or "<p>No scored samples.</p>"}</div>'
        f"<h2>Flagged samples</h2>{_flagged_html(picks, flagged_totals, limit)}"
        f"<h2>Errors</h2>{_errors_html(summary, errors, error_totals, limit)}"
        f"<script>{SCRIPT}</script></body></html>\n"
    )


def write_html_report(
    prefix: str, summary: dict | None = None, max_rows_per_source: int = 500
) -> str:
    """Write `<prefix>/report/index.html` and `report/thumbs/*.jpg`; return the page's path.

    `summary` is the run's summary.json contents, read from the prefix when None (raises
    `ReportInputError` when there is none). At most `max_rows_per_source` flagged samples and
    as many errors are shown per source.
    """
    prefix = prefix.rstrip("/")
    fs, root = fsspec.core.url_to_fs(prefix)
    root = root.rstrip("/")
    summary = load_summary(fs, root) if summary is None else summary
    histograms, lowest = scan_scores(fs, root, max_rows_per_source)
    picks = [pick for source in sorted(lowest) for pick in lowest[source].picks()]
    attach_media(fs, root, picks)
    picks.sort(key=lambda p: (p.order, p.source, p.id))
    flagged_totals = {source: heap.total for source, heap in lowest.items()}
    errors, error_totals = scan_errors(fs, root, max_rows_per_source)
    page = render_page(
        summary, histograms, picks, flagged_totals, errors, error_totals, max_rows_per_source
    )
    with fs.open(f"{root}/report/index.html", "w", encoding="utf-8") as handle:
        handle.write(page)
    return f"{prefix}/report/index.html"
