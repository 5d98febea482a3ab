"""Read a finished run back for its HTML report, with memory bounded whatever the run's size.

The report needs every score (histograms), an order over every flagged sample (the review
pages, `review_pages.py`) and the media of the samples it shows (thumbnails). So shards are
read twice, differently:
- a metadata pass reads only the light columns (Parquet column projection; only the `.json`
  members of a tar, media streamed past), feeds `StreamingHistogram`s, tells the caller each
  flagged sample's score, and keeps the near misses of each source (the clean samples just
  above its cut) in a heap of at most `limit` entries;
- the samples shown are then read again whole (`stored_samples.py`) for their thumbnails.
Positions identify a sample within its shard, as in the id -> shard index: the row number in
Parquet, the sample key in a tar.
"""

from __future__ import annotations

import heapq
import json
import math
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow.parquet as pq

from transforms.core.record import Sample
from transforms.core.routes import CLEAN, REVIEW
from transforms.io.webdataset_shards import split_member_name
from transforms.report.thumbs import Thumb, ThumbWriter
from transforms.shards.stored_samples import StoredShardError, iter_stored_samples

METADATA_COLUMNS = (
    "id",
    "source",
    "score",
    "reason",
    "detail",
    "origin",
    "review_decision",
    "review_note",
    "turn_scores",
    "repaired_from",
    "repaired_prefix",
)
METADATA_BATCH_ROWS = 1024
START_BIN_WIDTH = 2.0**-8  # finer than any score difference worth seeing
MAX_BINS = 48
NEAR_MISSES = 50  # clean samples just above the cut shown per source


class ReportInputError(FileNotFoundError):
    """The prefix is not a finished run: the message says what is missing."""


class StreamingHistogram:
    """Clean and review counts per score bin [i * width, (i + 1) * width), at most `max_bins`.

    The score range is unknown until the last shard, and keeping every score would grow with the
    run. Bin widths are powers of two: when a score would widen the span past `max_bins`, the
    width doubles and neighbouring bins merge (index // 2), so one pass suffices.
    """

    def __init__(self, max_bins: int = MAX_BINS):
        self.max_bins = max_bins
        self.width = START_BIN_WIDTH
        self.bins: dict[int, list[int]] = {}  # index -> [clean count, review count]
        self.unscored = 0

    def add(self, score: float | None, route: str) -> None:
        if score is None or not math.isfinite(score):
            self.unscored += 1
            return
        index = math.floor(score / self.width)
        while self.bins and max(index, *self.bins) - min(index, *self.bins) >= self.max_bins:
            merged: dict[int, list[int]] = {}
            for old, (clean, review) in self.bins.items():
                counts = merged.setdefault(old // 2, [0, 0])
                counts[0] += clean
                counts[1] += review
            self.bins, self.width = merged, self.width * 2
            index = math.floor(score / self.width)
        self.bins.setdefault(index, [0, 0])[0 if route == CLEAN else 1] += 1

    def rows(self) -> list[tuple[float, float, int, int]]:
        """(low, high, clean, review) for every bin from the lowest to the highest, gaps as 0."""
        if not self.bins:
            return []
        return [
            (i * self.width, (i + 1) * self.width, *self.bins.get(i, [0, 0]))
            for i in range(min(self.bins), max(self.bins) + 1)
        ]


@dataclass
class Pick:
    """A sample shown on a page; `sample` and `thumbs` are filled when it is read whole."""

    source: str
    id: str
    score: float | None
    reason: str
    detail: str
    shard: str
    position: str
    origin: str = ""
    route: str = REVIEW
    decision: str | None = None  # a verdict applied by an earlier apply-review
    note: str | None = None
    sample: Sample | None = None
    thumbs: list[tuple[str, Thumb]] = field(default_factory=list)  # (relative src, thumb)
    turn_scores: list[float] | None = None
    cut: float | None = None  # the score its source was cut at, to mark low turns
    repaired_prefix: dict | None = None  # an original whose first turns are in clean/

    @property
    def order(self) -> tuple[int, float]:
        return order_key(self.score)


def order_key(score: float | None) -> tuple[int, float]:
    """Rule-flagged (unscored) samples sort before every score, then the lowest reward first."""
    if score is None or not math.isfinite(score):
        return (0, 0.0)
    return (1, score)


class LowestPicks:
    """The `limit` lowest `Pick`s of one source, in a heap of at most `limit` entries.

    Among clean samples (all at or above the cut) the lowest are the nearest misses.
    """

    def __init__(self, limit: int):
        self.limit = limit
        self.total = 0
        self._heap: list[tuple[int, float, int, Pick]] = []  # negated order: root is the worst

    def offer(self, pick: Pick) -> None:
        self.total += 1
        rank, score = pick.order
        entry = (-rank, -score, -self.total, pick)  # on a tie the earlier sample stays
        if len(self._heap) < self.limit:
            heapq.heappush(self._heap, entry)
        elif self._heap and entry[:3] > self._heap[0][:3]:
            heapq.heapreplace(self._heap, entry)

    def picks(self) -> list[Pick]:
        return [entry[3] for entry in self._heap]


def _shards(fs, root: str, route: str) -> list[str]:
    found = fs.glob(f"{root}/{route}/part-*.parquet") + fs.glob(f"{root}/{route}/part-*.tar")
    return sorted(found)


def _shard_metadata(fs, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    if path.endswith(".parquet"):
        with fs.open(path, "rb") as handle:
            parquet = pq.ParquetFile(handle)
            columns = [c for c in METADATA_COLUMNS if c in parquet.schema_arrow.names]
            position = 0
            for batch in parquet.iter_batches(batch_size=METADATA_BATCH_ROWS, columns=columns):
                for row in batch.to_pylist():
                    yield str(position), row
                    position += 1
        return
    with fs.open(path, "rb") as raw, tarfile.open(fileobj=raw, mode="r|*") as tar:
        for member in tar:
            key, suffix = split_member_name(member.name)
            if not member.isfile() or suffix != "json":
                continue
            handle = tar.extractfile(member)
            try:
                metadata = json.loads(handle.read().decode("utf-8")) if handle else None
            except (UnicodeDecodeError, json.JSONDecodeError):
                continue
            if isinstance(metadata, dict):
                yield key, metadata


def _score(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None


def _pick(meta: dict[str, Any], route: str, path: str, position: str) -> Pick:
    return Pick(
        str(meta.get("source") or "unknown"),
        str(meta.get("id")),
        _score(meta.get("score")),
        str(meta.get("reason") or ""),
        str(meta.get("detail") or ""),
        path,
        position,
        str(meta.get("origin") or ""),
        route,
        meta.get("review_decision"),
        meta.get("review_note"),
        turn_scores=meta.get("turn_scores"),
        repaired_prefix=meta.get("repaired_prefix"),
    )


FlaggedCallback = Callable[[str, "float | None", str], None]


def scan_scores(fs, root: str, cuts: dict[str, Any], on_flagged: FlaggedCallback):
    """({source: histogram}, {source: near-miss LowestPicks}) from the clean and review shards.

    `on_flagged(source, score, reason)` is called for every flagged sample, in the order the review
    pages' pass will meet them again. Near misses are the clean samples scoring at or above
    their source's cut (a reviewed run's clean/ also holds kept samples below it), less the
    prefixes a repair kept (their originals are on the review pages). The histograms count a
    repaired conversation once, as its prefix in clean.
    """
    histograms: dict[str, StreamingHistogram] = {}
    near_misses: dict[str, LowestPicks] = {}
    for route in (CLEAN, REVIEW):
        for path in _shards(fs, root, route):
            for position, meta in _shard_metadata(fs, path):
                source = str(meta.get("source") or "unknown")
                score = _score(meta.get("score"))
                if meta.get("repaired_prefix") is None:  # an original counts as its prefix
                    histograms.setdefault(source, StreamingHistogram()).add(score, route)
                if route == REVIEW:
                    on_flagged(source, score, str(meta.get("reason") or ""))
                    continue
                cut = cuts.get(source)
                repaired = meta.get("repaired_from") is not None
                if (
                    score is not None
                    and isinstance(cut, (int, float))
                    and score >= cut
                    and not repaired
                ):
                    pick = _pick(meta, CLEAN, path, position)
                    pick.cut = float(cut)
                    near_misses.setdefault(source, LowestPicks(NEAR_MISSES)).offer(pick)
    return histograms, near_misses


def review_shards(fs, root: str) -> list[str]:
    return _shards(fs, root, REVIEW)


def attach_media(fs, picks: list[Pick], thumbs: ThumbWriter) -> None:
    """Read each pick's sample once (shard by shard) and write its thumbnails."""
    by_shard: dict[str, dict[str, Pick]] = {}
    for pick in picks:
        by_shard.setdefault(pick.shard, {})[pick.position] = pick
    for shard in sorted(by_shard):
        waiting = by_shard[shard]
        try:
            for position, sample in iter_stored_samples(fs, shard):
                pick = waiting.pop(position, None)
                if pick is not None:
                    pick.thumbs = thumbs.write(sample.media)
                    pick.sample = sample.replace(media=[])  # the bytes are no longer needed
                if not waiting:
                    break
        except (StoredShardError, OSError, tarfile.TarError):
            continue  # the rows left say "could not be re-read" rather than failing the page


def scan_errors(fs, root: str, limit: int) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The first `limit` error records per source (without `record`), and each source's total."""
    shown: list[dict[str, Any]] = []
    totals: dict[str, int] = {}
    for path in sorted(fs.glob(f"{root}/errors/*.jsonl")):
        with fs.open(path, "r", encoding="utf-8") as handle:
            for line in handle:
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    record = {"stage": "report", "reason": "unreadable_line", "detail": line}
                if not isinstance(record, dict):
                    continue
                source = str(record.get("source") or "unknown")
                totals[source] = totals.get(source, 0) + 1
                if totals[source] <= limit:
                    shown.append({**record, "source": source, "record": None})
    return shown, totals


def load_summary(fs, root: str) -> dict[str, Any]:
    path = f"{root}/report/summary.json"
    if not fs.exists(path):
        raise ReportInputError(
            f"{path} does not exist: give the output prefix of a finished `rmclean clean` run "
            "(summary.json is written when the run finishes)"
        )
    with fs.open(path, "r", encoding="utf-8") as handle:
        return json.load(handle)
