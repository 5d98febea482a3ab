"""Every flagged sample on a review page: report/review-<source>-<n>.html, at most N rows each.

Order: rule-flagged (unscored) samples and the lowest scores at one end, the samples nearest
the cut at the other. A source whose flagged samples fit on one page lists them lowest first; a
larger one nearest the cut first (page 1 holds the borderline samples, where a reviewer's
verdict most often differs from the model's), its last page the lowest scores.

Memory stays bounded whatever the size of the review bucket:
- during the report's metadata pass, `PageOrder` counts each source's flagged scores in at most
  MAX_ORDER_BINS fine bins, which fixes how many samples come before each bin in page order;
- `ReviewPages.render` then reads every review shard once, writes each sample's thumbnails,
  renders its row and appends it to its page's spool file on local disk;
- each page is written from its spool, sorted exactly within the page.
So pages follow the global order exactly, except that samples of one fine bin split across two
pages (ties within 1/MAX_ORDER_BINS of the source's score range) keep their shard order.
"""

from __future__ import annotations

import json
import math
import os
import re
import tarfile
import tempfile
from html import escape

from transforms.core.routes import REVIEW
from transforms.report.rows import (
    LOWEST,
    NEAREST,
    controls_html,
    counter_html,
    num,
    page_foot,
    page_head,
    row_html,
    samples_table,
)
from transforms.report.scan import START_BIN_WIDTH, Pick, order_key
from transforms.report.thumbs import ThumbWriter
from transforms.shards.stored_samples import StoredShardError, iter_stored_samples

MAX_ORDER_BINS = 4096
NAV_SPAN = 3  # pages linked on each side of the current one
UNSCORED = "unscored"  # the bin of rule-flagged samples, at the lowest end of the order


class PageOrder:
    """Which page each flagged sample of one source lands on, from counts taken in a 1st pass.

    Bins are [i * width, (i + 1) * width) with a power-of-two width that doubles (merging
    neighbours) whenever the scores span more than `max_bins`, as in `StreamingHistogram`; the
    low/high bin is tracked so adding a score costs O(1) until a merge.
    """

    def __init__(self, max_bins: int = MAX_ORDER_BINS):
        self.max_bins = max_bins
        self.width = START_BIN_WIDTH
        self.bins: dict[int | str, int] = {}
        self.low = self.high = 0
        self.total = 0
        self._scored = 0
        self.rows_per_page = 1
        self._start: dict[int | str, int] = {}
        self._seen: dict[int | str, int] = {}

    def _bin(self, score: float | None) -> int | str:
        if score is None or not math.isfinite(score):
            return UNSCORED
        return math.floor(score / self.width)

    def add(self, score: float | None) -> None:
        self.total += 1
        index = self._bin(score)
        if index != UNSCORED:
            if not self._scored:
                self.low = self.high = index
            while max(self.high, index) - min(self.low, index) >= self.max_bins:
                self._merge()
                index = self._bin(score)
            self.low, self.high = min(self.low, index), max(self.high, index)
            self._scored += 1
        self.bins[index] = self.bins.get(index, 0) + 1

    def _merge(self) -> None:
        merged: dict[int | str, int] = {}
        for old, count in self.bins.items():
            key = old if old == UNSCORED else old // 2
            merged[key] = merged.get(key, 0) + count
        self.bins, self.width = merged, self.width * 2
        self.low, self.high = self.low // 2, self.high // 2

    def plan(self, rows_per_page: int) -> None:
        """Fix the page order; call once every flagged sample was added."""
        self.rows_per_page = rows_per_page
        scored = sorted(key for key in self.bins if key != UNSCORED)
        groups: list[int | str] = ([UNSCORED] if UNSCORED in self.bins else []) + scored
        if self.nearest_first:
            groups.reverse()
        offset = 0
        for group in groups:
            self._start[group] = offset
            offset += self.bins[group]

    @property
    def nearest_first(self) -> bool:
        return self.total > self.rows_per_page

    @property
    def pages(self) -> int:
        return math.ceil(self.total / self.rows_per_page)

    def page_of(self, score: float | None) -> int:
        """The page (from 1) of the next flagged sample with this score, in 1st-pass order."""
        group = self._bin(score)
        seen = self._seen.get(group, 0)
        self._seen[group] = seen + 1
        if group not in self._start:  # the shards changed between the passes
            return self.pages
        return min((self._start[group] + seen) // self.rows_per_page + 1, self.pages)


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None


def page_stems(sources: list[str]) -> dict[str, str]:
    """A file-name-safe, unique stem per source: review-<stem>-<n>.html."""
    stems: dict[str, str] = {}
    used: set[str] = set()
    for source in sorted(sources):
        stem = re.sub(r"[^A-Za-z0-9_-]", "_", source) or "source"
        candidate, n = stem, 1
        while candidate in used:
            n += 1
            candidate = f"{stem}-{n}"
        used.add(candidate)
        stems[source] = candidate
    return stems


class _PageRange:
    """What one page holds: its score range and how many rule-flagged samples."""

    def __init__(self):
        self.low, self.high, self.unscored, self.rows = math.inf, -math.inf, 0, 0

    def add(self, score: float | None) -> None:
        self.rows += 1
        if order_key(score)[0] == 0:
            self.unscored += 1
        else:
            self.low, self.high = min(self.low, score), max(self.high, score)

    def describe(self) -> str:
        parts = []
        if self.high >= self.low:
            parts.append(f"scores {num(self.high)} to {num(self.low)}")
        if self.unscored:
            parts.append(f"{self.unscored} rule-flagged")
        return ", ".join(parts) or "empty"


class ReviewPages:
    """The review pages of one report: counted, rendered to spools, then written."""

    def __init__(self, rows_per_page: int, cuts: dict[str, float] | None = None):
        self.rows_per_page = rows_per_page
        self.cuts = cuts or {}  # per source, to mark each flagged conversation's low turns
        self.orders: dict[str, PageOrder] = {}
        self.reasons: set[str] = set()
        self.ranges: dict[tuple[str, int], _PageRange] = {}
        self.unreadable: list[str] = []
        self.stems: dict[str, str] = {}
        self._spool = tempfile.TemporaryDirectory(prefix="rmclean-review-pages-")

    # -- pass 1 ---------------------------------------------------------------------------
    def count(self, source: str, score: float | None, reason: str) -> None:
        self.orders.setdefault(source, PageOrder()).add(score)
        self.reasons.add(reason)

    def plan(self) -> None:
        for order in self.orders.values():
            order.plan(self.rows_per_page)
        self.stems = page_stems(list(self.orders))

    # -- pass 2 ---------------------------------------------------------------------------
    def _spool_path(self, source: str, page: int) -> str:
        return os.path.join(self._spool.name, f"{self.stems[source]}-{page}.jsonl")

    def render(self, fs, shards: list[str], thumbs: ThumbWriter) -> None:
        """Read every review shard once; spool each flagged sample's row under its page."""
        for shard in shards:
            try:
                for position, sample in iter_stored_samples(fs, shard):
                    self._render_one(shard, position, sample, thumbs)
            except (StoredShardError, OSError, tarfile.TarError) as exc:
                self.unreadable.append(f"{shard}: {exc}")

    def _render_one(self, shard, position, sample, thumbs: ThumbWriter) -> None:
        order = self.orders.get(sample.source)
        if order is None:  # not seen by the metadata pass: the shard changed meanwhile
            return
        page = order.page_of(sample.score)
        pick = Pick(
            sample.source,
            sample.id,
            sample.score,
            sample.reason or "",
            sample.detail or "",
            shard,
            position,
            sample.origin,
            REVIEW,
            sample.review_decision,
            sample.review_note,
            sample.replace(media=[]),
            thumbs.write(sample.media),
            sample.turn_scores,
            _number(self.cuts.get(sample.source)),
            sample.repaired_prefix,
        )
        self.ranges.setdefault((sample.source, page), _PageRange()).add(sample.score)
        line = json.dumps({"key": order_key(sample.score), "html": row_html(pick)})
        with open(self._spool_path(sample.source, page), "a", encoding="utf-8") as spool:
            spool.write(line + "\n")

    # -- writing ------------------------------------------------------------------------------
    def default_sort(self, source: str) -> str:
        return NEAREST if self.orders[source].nearest_first else LOWEST

    def rows(self, source: str, page: int) -> str:
        """The rows of one page, sorted in the source's default order."""
        path = self._spool_path(source, page)
        if not os.path.exists(path):
            return ""
        with open(path, encoding="utf-8") as spool:
            entries = [json.loads(line) for line in spool]
        nearest = self.orders[source].nearest_first
        entries.sort(key=lambda e: tuple(e["key"]), reverse=nearest)  # stable either way
        return "".join(e["html"] for e in entries)

    def file_name(self, source: str, page: int) -> str:
        return f"review-{self.stems[source]}-{page}.html"

    def nav_html(self, source: str, current: int) -> str:
        """Links to the first, last and nearby pages (the index lists them all): a page's
        size must not grow with the number of pages."""
        last = self.orders[source].pages
        shown = sorted(
            {1, last, *range(max(current - NAV_SPAN, 1), min(current + NAV_SPAN, last) + 1)}
        )
        links, previous = [], 0
        for page in shown:
            if page > previous + 1:
                links.append("…")
            described = escape(self.ranges.get((source, page), _PageRange()).describe())
            if page == current:
                links.append(f'<b title="{described}">{page}</b>')
            else:
                links.append(
                    f'<a href="{escape(self.file_name(source, page))}" title="{described}">'
                    f"{page}</a>"
                )
            previous = page
        return " ".join(links)

    def pages_list_html(self, source: str) -> str:
        """Every page of a source with what it holds, for the index."""
        items = "".join(
            f'<li><a href="{escape(self.file_name(source, page))}">page {page}</a>: '
            f"{escape(self.ranges.get((source, page), _PageRange()).describe())}</li>"
            for page in range(1, self.orders[source].pages + 1)
        )
        return f'<ul class="pages">{items}</ul>'

    def write(self, fs, report_dir: str, title: str, run: str) -> list[str]:
        """Write every page; return their paths. Old pages of an earlier build are removed."""
        for old in fs.glob(f"{report_dir}/review-*.html"):
            fs.rm(old)
        sources, reasons = sorted(self.orders), sorted(self.reasons)
        written = []
        for source in sources:
            order = self.orders[source]
            for page in range(1, order.pages + 1):
                heading = f"{title}: {source}, page {page} of {order.pages}"
                rows = self.rows(source, page)
                html = (
                    page_head(heading, run)
                    + '<p><a href="index.html">back to the report</a> · pages: '
                    + self.nav_html(source, page)
                    + f" · {counter_html(source, order.total)} · this page: "
                    + f"{escape(self.ranges.get((source, page), _PageRange()).describe())}</p>"
                    + controls_html(sources, reasons)
                    + samples_table(rows, "below", self.default_sort(source))
                    + page_foot()
                )
                path = f"{report_dir}/{self.file_name(source, page)}"
                with fs.open(path, "w", encoding="utf-8") as handle:
                    handle.write(html)
                written.append(path)
        return written

    def close(self) -> None:
        self._spool.cleanup()
