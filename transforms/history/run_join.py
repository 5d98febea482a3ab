"""Two runs' samples joined by (source, id), in bounded memory: what `run_compare.py` counts.

Each run's rows come from its light files only (the id -> shard index, with each sample's
content hash, and errors/), never the shards. They are sorted on local disk by (source, id)
(`SortedSpool`) and joined as two sorted streams, one id at a time. An id some datasets repeat
(LLaVA-Video asks several questions about one video under its id) is matched within the id:
same content first, then in order of origin; what is left over was added or removed. Matched
samples whose route changed are written to NEW's `report/route_changes.jsonl` as they are
found; every finite score goes to a sorted spool per run (all, and those in both runs) for
`score_shift.py`.
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
from transforms.core.routes import CLEAN, ERRORS
from transforms.core.sorted_spool import SortedSpool
from transforms.core.storage import glob_paths
from transforms.samples.repair import ORIGINAL, REPAIRED
from transforms.shards.shard_index import INDEX_DIR, iter_index

ROUTE_CHANGES = "report/route_changes.jsonl"
INDEX_COLUMNS = ["source", "id", "origin", "score", "reason", "content_hash", "repair"]
# Small sort buffers: a 100k-sample compare then holds no more than a 10k one (bench/).
ROW_BUFFER_BYTES = 2 << 20
SCORE_BUFFER_BYTES = 1 << 20


@dataclass
class Row:
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


def _run_rows(prefix: str) -> Iterator[tuple[str, str, Row]]:
    """(source, id, row) for every sample of a finished run: the index, then errors/."""
    prefix = prefix.rstrip("/")
    for index_file in glob_paths(f"{prefix}/{INDEX_DIR}/*.parquet"):
        route = index_file.rsplit("/", 1)[-1].removesuffix(".parquet")
        columns = [c for c in INDEX_COLUMNS if c in _index_columns(index_file)]
        for row in iter_index(index_file, columns):
            repair = row.get("repair")
            if repair == REPAIRED:
                continue  # a repaired conversation is one sample: its original's row below
            yield (
                str(row["source"]),
                str(row["id"]),
                Row(
                    str(row.get("origin") or ""),
                    # The original's hash is the input's, comparable with a run without repair.
                    str(row.get("content_hash") or ""),
                    # Counted as clean, as the run's own counts do, its score the original's.
                    CLEAN if repair == ORIGINAL else route,
                    _finite(row.get("score")),
                    "repaired" if repair == ORIGINAL else row.get("reason"),
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
                    Row(str(record.get("origin") or ""), "", ERRORS, None, record.get("reason")),
                )


def _index_columns(url: str) -> list[str]:
    """An index written before a column existed lacks it (content_hash before compare)."""
    with fsspec.open(url, "rb") as handle:
        return pq.ParquetFile(handle).schema_arrow.names


def sorted_rows(prefix: str) -> SortedSpool:
    """The run's rows sorted by (source, id); the rest of each row travels as its text, which
    the spool counts against its buffer."""
    spool = SortedSpool(buffer_bytes=ROW_BUFFER_BYTES)
    for source, sample_id, row in _run_rows(prefix):
        spool.add(
            (source, sample_id),
            json_line([row.origin, row.content_hash, row.route, row.score, row.reason]),
        )
    return spool


def _groups(spool: SortedSpool) -> Iterator[tuple[tuple[str, str], list[Row]]]:
    """((source, id), its rows) in order of source and id."""
    for key, items in groupby(spool.sorted_items(), key=lambda item: tuple(item[0])):
        yield key, [Row(*json.loads(text)) for _, text in items]


@dataclass
class SourceTally:
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
class RunJoin:
    """Both runs' rows joined by (source, id): counts, route changes and score spools."""

    new_prefix: str
    tallies: dict[str, SourceTally] = field(default_factory=dict)
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

    def _match(self, key, before: list[Row], after: list[Row], changes) -> None:
        source, sample_id = key
        tally = self.tallies.setdefault(source, SourceTally())
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

    def _score(self, source: str, tally: SourceTally, score: float | None, spool: str) -> None:
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
