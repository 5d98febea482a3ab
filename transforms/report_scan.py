"""Read a finished run back for its HTML report, with memory bounded whatever the run's size.

The report needs every score (histograms) but the media of only a few hundred flagged samples
(thumbnails). So review shards are read twice, differently:
- a metadata pass reads only id/source/score/reason/detail (Parquet column projection; only
  the `.json` members of a tar, media streamed past), feeds `StreamingHistogram`s and keeps the
  lowest-scoring flagged samples of each source in a heap of at most `limit` entries;
- `attach_media` then re-reads just those samples, media included, and writes their thumbnails.
Positions identify a sample within its shard: a row number in Parquet, the sample key in a tar.
"""

from __future__ import annotations

import heapq
import json
import math
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow.parquet as pq

from transforms.parquet_rows import row_to_sample
from transforms.read_webdataset import read_webdataset_shard, split_member_name
from transforms.record import Sample
from transforms.report_thumbs import Thumb, sample_thumbs
from transforms.route import CLEAN, REVIEW
from transforms.video_worker import KillableVideoDecoder

METADATA_COLUMNS = ("id", "source", "score", "reason", "detail")
METADATA_BATCH_ROWS = 1024
MEDIA_BATCH_ROWS = 16  # full rows carry media bytes: keep a batch to a few MB
START_BIN_WIDTH = 2.0**-8  # finer than any score difference worth seeing
MAX_BINS = 48
VIDEO_TIMEOUT_S = 30.0  # a thumbnail strip is not worth waiting longer for


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
    """A flagged sample chosen for the page; `sample` and `thumbs` are filled in the 2nd pass."""

    source: str
    id: str
    score: float | None
    reason: str
    detail: str
    shard: str
    position: int | str
    sample: Sample | None = None
    thumbs: list[tuple[str, Thumb]] = field(default_factory=list)  # (relative src, thumb)

    @property
    def order(self) -> tuple[int, float]:
        """Unscored (rule-flagged) samples first, then the lowest reward first."""
        if self.score is None or not math.isfinite(self.score):
            return (0, 0.0)
        return (1, self.score)


class LowestPicks:
    """The `limit` lowest `Pick`s of one source, in a heap of at most `limit` entries."""

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


def _shard_metadata(fs, path: str) -> Iterator[tuple[int | str, dict[str, Any]]]:
    if path.endswith(".parquet"):
        with fs.open(path, "rb") as handle:
            parquet = pq.ParquetFile(handle)
            columns = [c for c in METADATA_COLUMNS if c in parquet.schema_arrow.names]
            position = 0
            for batch in parquet.iter_batches(batch_size=METADATA_BATCH_ROWS, columns=columns):
                for row in batch.to_pylist():
                    yield position, row
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


def scan_scores(fs, root: str, limit: int):
    """({source: histogram}, {source: LowestPicks}) from the clean and review shards."""
    histograms: dict[str, StreamingHistogram] = {}
    lowest: dict[str, LowestPicks] = {}
    for route in (CLEAN, REVIEW):
        for path in _shards(fs, root, route):
            for position, meta in _shard_metadata(fs, path):
                source = str(meta.get("source") or "unknown")
                score = _score(meta.get("score"))
                histograms.setdefault(source, StreamingHistogram()).add(score, route)
                if route == REVIEW:
                    reason, detail = meta.get("reason") or "", meta.get("detail") or ""
                    pick = Pick(
                        source, str(meta.get("id")), score, str(reason), str(detail), path, position
                    )
                    lowest.setdefault(source, LowestPicks(limit)).offer(pick)
    return histograms, lowest


def _row_sample(row: dict[str, Any], source: str, path: str) -> Sample | None:
    try:
        sample = row_to_sample(row, source, path)
    except (KeyError, TypeError, ValueError):
        return None  # shown as "could not be re-read" rather than failing the page
    return sample if isinstance(sample, Sample) else None


def _read_picked(
    fs, path: str, picks: dict[int | str, Pick]
) -> Iterator[tuple[Pick, Sample | None]]:
    if path.endswith(".parquet"):
        with fs.open(path, "rb") as handle:
            position = 0
            for batch in pq.ParquetFile(handle).iter_batches(batch_size=MEDIA_BATCH_ROWS):
                for row in batch.to_pylist():
                    if position in picks:
                        yield picks[position], _row_sample(row, picks[position].source, path)
                    position += 1
        return
    url = fs.unstrip_protocol(path)
    for item in read_webdataset_shard(url, REVIEW):
        key = item.origin[len(url) + 1 :]
        if isinstance(item, Sample) and key in picks:
            yield picks[key], item


def attach_media(fs, root: str, picks: list[Pick]) -> None:
    """Read each chosen sample once and write its thumbnails as report/thumbs/NNNNNN.jpg."""
    by_shard: dict[str, dict[int | str, Pick]] = {}
    for pick in picks:
        by_shard.setdefault(pick.shard, {})[pick.position] = pick
    thumbs_dir = f"{root}/report/thumbs"
    if fs.exists(thumbs_dir):
        fs.rm(thumbs_dir, recursive=True)  # a rebuilt page must not keep an older run's pictures
    fs.makedirs(thumbs_dir, exist_ok=True)
    written = 0
    decode_video = KillableVideoDecoder(VIDEO_TIMEOUT_S)
    try:
        for shard in sorted(by_shard):
            for pick, sample in _read_picked(fs, shard, by_shard[shard]):
                if sample is None:
                    continue
                for thumb in sample_thumbs(sample.media, decode_video):
                    src = ""
                    if thumb.jpeg:
                        written += 1
                        src = f"thumbs/{written:06d}.jpg"
                        with fs.open(f"{thumbs_dir}/{written:06d}.jpg", "wb") as handle:
                            handle.write(thumb.jpeg)
                    pick.thumbs.append((src, thumb))
                pick.sample = sample.replace(media=[])  # the bytes are no longer needed
    finally:
        decode_video.close()


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
