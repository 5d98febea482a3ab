"""report/index.html and the review pages: where a person sees what a run flagged and decides.

Built from a finished run's output prefix alone, so `rmclean report OUTPUT` can rebuild it.
The index holds the summary, what changed since the last run (`comparison_html.py`), the
histograms, per source the first review page's rows, the page list and the near misses (clean
samples just above the cut), and the errors; every flagged sample is on a review page
(`review_pages.py`). Memory is bounded whatever the run's size (see
`scan.py` and `review_pages.py`); the index's size is bounded by the rows per page, the number
of sources and the errors shown per source. It must be safe to open on untrusted data and
work offline, so:
- every piece of dataset text goes through `html.escape` into HTML, never into a script;
- the only script is the constant one in `assets.py`; no external scripts, styles or
  fonts; decisions stay in the browser until the reviewer downloads them;
- histograms are inline SVG and thumbnails relative JPEG files in report/thumbs/.
"""

from __future__ import annotations

from html import escape
from typing import Any

import fsspec

from transforms.core.routes import CLEAN, DROPPED, ERRORS, REVIEW
from transforms.core.run_identity import run_id
from transforms.media.video_worker import KillableVideoDecoder
from transforms.report.comparison_html import comparison_html
from transforms.report.cost import cost_html
from transforms.report.histogram import histogram_svg
from transforms.report.review_pages import ReviewPages
from transforms.report.rows import (
    DETAIL_CHARS,
    LOWEST,
    clip,
    controls_html,
    counter_html,
    num,
    page_foot,
    page_head,
    row_html,
    samples_table,
)
from transforms.report.scan import (
    LowestPicks,
    attach_media,
    load_summary,
    order_key,
    review_shards,
    scan_errors,
    scan_scores,
)
from transforms.report.summary import REPAIRED, REPAIRED_ORIGINALS
from transforms.report.thumbs import ThumbWriter
from transforms.review.evidence import MIN_DECISIONS_PER_BAND

VIDEO_TIMEOUT_S = 30.0  # a thumbnail strip is not worth waiting longer for


def _summary_html(summary: dict[str, Any]) -> str:
    if summary.get("percentile") is not None:
        cut = f"lowest {summary['percentile']:g}% of each source"
    elif summary.get("threshold") is not None:
        cut = f"score below {summary['threshold']:g}"
    else:
        cut = "–"
    wall = (summary.get("durations") or {}).get("wall_seconds")
    repair = summary.get("repair")
    if isinstance(repair, dict):
        kept = repair.get("repaired", 0)
        repair = f"{repair.get('mode')}: {kept} conversation(s) kept their good start"
    settings = [
        ("dataset", summary.get("dataset")),
        ("model", summary.get("model")),
        ("review rule", cut),
        ("repair", repair),
        ("runner", summary.get("runner")),
        ("format", summary.get("format")),
        ("duration", f"{wall:.1f} s" if isinstance(wall, (int, float)) else None),
        ("finished", summary.get("finished_at")),
        ("input", summary.get("input")),
        ("output", summary.get("output")),
        ("run id", summary.get("run_id")),
    ]
    rows = "".join(
        f"<tr><th>{name}</th><td>{escape(str(value))}</td></tr>"
        for name, value in settings
        if value is not None
    )
    counts = summary.get("counts") or {}
    cuts = summary.get("cuts") or {}
    total = counts.get("total") or {}
    columns = ["input", CLEAN, REVIEW] + ([DROPPED] if DROPPED in total else [])
    columns.append(ERRORS)
    # A repaired run: the kept prefixes (counted in clean) and their originals (in review/).
    columns += [key for key in (REPAIRED, REPAIRED_ORIGINALS) if key in total]
    header = "".join(f'<th class="num">{c}</th>' for c in columns)
    body = ""
    for source, c in sorted((counts.get("per_source") or {}).items()):
        cells = "".join(f'<td class="num">{escape(str(c.get(k, 0)))}</td>' for k in columns)
        body += f"<tr><td>{escape(source)}</td>{cells}<td>{num(cuts.get(source))}</td></tr>"
    cells = "".join(f'<td class="num">{escape(str(total.get(k, 0)))}</td>' for k in columns)
    return (
        f'<table class="settings">{rows}</table><h2>Counts</h2>'
        f'<table class="counts"><tr><th>source</th>{header}<th>score cut</th></tr>{body}'
        f"<tr><th>total</th>{cells}<td></td></tr></table>"
    )


def _advice(evidence: dict[str, Any]) -> str:
    """What one source's decisions say about the cut, or why they say nothing yet."""
    least = evidence.get("min_decisions_per_band", MIN_DECISIONS_PER_BAND)
    bands = evidence.get("bands") or []
    if evidence.get("half_dropped_below") is not None:
        return (
            f"reviewers dropped at least half of every band below "
            f"<b>{num(evidence['half_dropped_below'])}</b> (each band from {least} decisions up)"
        )
    if evidence.get("advice") == "kept_in_lowest_band":
        return "reviewers kept more than they dropped in the lowest band"
    lowest = bands[0]["decisions"] if bands else 0
    return (
        f'<b class="not-enough">not enough decisions yet</b>: the lowest band rests on {lowest}; '
        f"a cut is suggested only from bands of at least {least} decisions"
    )


def _interval(band: dict[str, Any]) -> str:
    low, high = band.get("kept_share_interval") or (None, None)
    if low is None:
        return "–"
    return f"{band['kept_share']:.0%} ({low:.0%}–{high:.0%})"


def _evidence_html(summary: dict[str, Any]) -> str:
    """For a reviewed prefix: what the decisions were and what they say about the cut."""
    review = summary.get("review")
    if not review:
        return ""
    decided = review.get("decisions") or {}
    cuts = summary.get("cuts") or {}
    rows = ""
    for source, evidence in sorted((review.get("threshold_evidence") or {}).items()):
        rows += (
            f'<tr class="evidence-source"><th colspan="5">{escape(source)}: '
            f"{_advice(evidence)} (the run's cut: {num(cuts.get(source))})</th></tr>"
        )
        for band in evidence.get("bands") or []:
            decisions = band.get("decisions", band["kept"] + band["dropped"])
            rows += (
                f"<tr><td>[{num(band['low'])}, {num(band['high'])})</td>"
                f'<td class="num">{band["kept"]}</td><td class="num">{band["dropped"]}</td>'
                f'<td class="num">{decisions}</td><td class="num">{_interval(band)}</td></tr>'
            )
        unscored = evidence.get("unscored") or {}
        if unscored.get("kept") or unscored.get("dropped"):
            rows += (
                f'<tr><td>not scored (rule-flagged)</td><td class="num">{unscored["kept"]}</td>'
                f'<td class="num">{unscored["dropped"]}</td><td></td><td></td></tr>'
            )
    return (
        "<h2>Review applied</h2>"
        f"<p>Decisions from run {escape(str(review.get('from_run')))} "
        f"({escape(str(review.get('from_output')))}): {decided.get('keep', 0)} kept, "
        f"{decided.get('drop', 0)} dropped; flagged samples nobody decided went to "
        f"{escape(str(review.get('undecided')))}. Use the bands below to choose the next "
        "run's THRESHOLD: a band's kept share comes with its 95% interval, and the fewer "
        "decisions a band rests on, the wider it is.</p>"
        '<table class="evidence"><tr><th>score band</th><th class="num">kept</th>'
        '<th class="num">dropped</th><th class="num">decisions</th>'
        f'<th class="num">kept share (95% interval)</th></tr>{rows}</table>'
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
        f'<tr class="error-row by-source" data-source="{escape(e["source"])}">'
        f"<td>{escape(e['source'])}</td>"
        f"<td>{clip(e.get('stage'), 40)}</td><td>{clip(e.get('reason'), 80)}</td>"
        f"<td>{clip(e.get('detail'), DETAIL_CHARS)}</td><td><code>{clip(e.get('id'), 200)}"
        f"</code></td><td>{clip(e.get('origin'), 300)}</td></tr>"
        for e in errors
    )
    return (
        f"<table><tr><th>stage/reason</th><th>count</th></tr>{by_reason}</table><ul>{notes}</ul>"
        "<p>All errors, with each sample's original record, are in errors/errors-*.jsonl.</p>"
        "<table><tr><th>source</th><th>stage</th><th>reason</th><th>detail</th><th>id</th>"
        f"<th>origin</th></tr>{rows}</table>"
    )


REVIEW_HELP = (
    '<p class="muted">Press <b>Keep</b> or <b>Drop</b> on a row (or <b>k</b> / <b>d</b> on the '
    "highlighted one; <b>j</b>/<b>n</b> moves on, <b>u</b> undoes). Decisions are kept in this "
    "browser for this run, on every page of it, until you press <b>Download decisions</b>; "
    "then <code>rmclean apply-review OUTPUT --decisions decisions.jsonl --output NEW</code> "
    "writes the reviewed dataset. Every flagged sample is also listed in "
    '<a href="flagged.jsonl">flagged.jsonl</a> and <a href="flagged.csv">flagged.csv</a>.</p>'
)


def _source_html(source: str, pages: ReviewPages, near: LowestPicks | None) -> str:
    order = pages.orders.get(source)
    parts = [f'<section class="by-source" data-source="{escape(source)}"><h3>{escape(source)}</h3>']
    if order is None:
        parts.append("<p>No flagged samples.</p>")
    else:
        listed = "nearest the cut first" if order.nearest_first else "lowest score first"
        parts.append(
            f"<p>{counter_html(source, order.total)} · {order.total} flagged on "
            f"{order.pages} review page(s), {listed}:</p>{pages.pages_list_html(source)}"
            f"<h4>Page 1 of {order.pages}</h4>"
            f"{samples_table(pages.rows(source, 1), 'below', pages.default_sort(source))}"
        )
    if near is not None and near.total:
        picks = sorted(near.picks(), key=lambda p: order_key(p.score))
        parts.append(
            f"<h4>Near misses: the {len(picks)} clean samples just above the cut</h4>"
            '<p class="muted">Drop one to pull it out of the dataset; Keep confirms it '
            f'(<span class="near-decided-count" data-source="{escape(source)}">0</span> '
            "decided).</p>"
            f"{samples_table(''.join(row_html(p) for p in picks), 'above', LOWEST)}"
        )
    return "".join(parts) + "</section>"


def _index_html(summary, histograms, pages: ReviewPages, near, errors, error_totals, limit):
    cuts = summary.get("cuts") or {}
    charts = "".join(
        f'<div class="chart by-source" data-source="{escape(source)}">'
        f"{histogram_svg(source, histograms[source], cuts.get(source))}</div>"
        for source in sorted(histograms)
    )
    title = f"rmclean report: {summary.get('dataset', '')}"
    sources = sorted(set(pages.orders) | set(near))
    unreadable = "".join(f"<li>{escape(u)}</li>" for u in pages.unreadable)
    yield page_head(title, run_id(summary))
    yield _summary_html(summary)
    yield comparison_html(summary)
    yield _evidence_html(summary)
    yield f"<h2>Scoring cost</h2>{cost_html(summary)}"
    yield (
        '<h2>Scores</h2><p class="muted">Blue: clean; red: review; dashed: the score cut.'
        f'</p><div class="charts">{charts or "<p>No scored samples.</p>"}</div>'
    )
    yield f"<h2>Review</h2>{REVIEW_HELP}{controls_html(sources, sorted(pages.reasons))}"
    if unreadable:
        yield f'<p class="note">Shards that could not be read back:</p><ul>{unreadable}</ul>'
    for source in sources:
        yield _source_html(source, pages, near.get(source))
    yield f"<h2>Errors</h2>{_errors_html(summary, errors, error_totals, limit)}"
    yield page_foot()


def write_html_report(
    prefix: str, summary: dict | None = None, max_rows_per_source: int = 500
) -> str:
    """Write `<prefix>/report/index.html`, the review pages and thumbs; return the index's path.

    `summary` is the run's summary.json contents, read from the prefix when None (raises
    `ReportInputError` when there is none). Review pages hold at most `max_rows_per_source`
    rows; as many errors per source are shown.
    """
    prefix = prefix.rstrip("/")
    fs, root = fsspec.core.url_to_fs(prefix)
    root = root.rstrip("/")
    summary = load_summary(fs, root) if summary is None else summary
    report_dir = f"{root}/report"
    pages = ReviewPages(max_rows_per_source, summary.get("cuts") or {})
    decode_video = KillableVideoDecoder(VIDEO_TIMEOUT_S)
    try:
        histograms, near = scan_scores(fs, root, summary.get("cuts") or {}, pages.count)
        pages.plan()
        thumbs = ThumbWriter(fs, f"{report_dir}/thumbs", decode_video)
        attach_media(fs, [p for source in sorted(near) for p in near[source].picks()], thumbs)
        pages.render(fs, review_shards(fs, root), thumbs)
        title = f"rmclean review: {summary.get('dataset', '')}"
        pages.write(fs, report_dir, title, run_id(summary))
        errors, error_totals = scan_errors(fs, root, max_rows_per_source)
        with fs.open(f"{report_dir}/index.html", "w", encoding="utf-8") as handle:
            for part in _index_html(
                summary, histograms, pages, near, errors, error_totals, max_rows_per_source
            ):
                handle.write(part)
    finally:
        decode_video.close()
        pages.close()
    return f"{prefix}/report/index.html"
