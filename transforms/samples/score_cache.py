"""A score cache so weekly reruns score only what is new.

Keyed by (model id, content of the sample: conversation and media bytes), kept as Parquet
files under one folder per model id; each row holds the score and, from a backend that reads
them, the turn scores (null otherwise, and in files written before turn scores existed).
Scores are persisted as they are computed (every 64 samples or 30 seconds), so a run that dies
has saved what it scored and a rerun skips those samples.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import uuid
import weakref
from collections.abc import Iterator

import apache_beam as beam
import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from transforms.core.content_hash import content_hash
from transforms.core.record import Sample
from transforms.core.storage import glob_paths, open_for_write

_log = logging.getLogger(__name__)
SCHEMA = pa.schema(
    [("key", pa.string()), ("score", pa.float64()), ("turn_scores", pa.list_(pa.float64()))]
)
CACHED = "cached"
# What the cache knows about one sample: (score, turn scores or None).
Cached = tuple[float, "tuple[float, ...] | None"]


def model_cache_id(models_used: list) -> str:
    """A folder name for the scoring setup (model names and options): another checkpoint or
    option, another cache."""
    described = json.dumps(models_used, sort_keys=True, default=str)
    readable = "".join(c if c.isalnum() or c in "-_" else "_" for c in str(models_used[0]))[:40]
    return f"{readable}-{hashlib.sha1(described.encode()).hexdigest()[:12]}"


def cache_key(sample: Sample) -> str:
    """The model is the folder; within it, the sample's content is the key."""
    return content_hash(sample)


def cache_files(directory: str) -> list[str]:
    return glob_paths(f"{directory.rstrip('/')}/*.parquet")


def read_cache_file(path: str) -> Iterator[tuple[str, Cached]]:
    """The (key, (score, turn scores)) pairs of one cache file; an unreadable file is skipped
    with a warning (its samples are simply scored again), never the end of the run."""
    try:
        with fsspec.open(path, "rb") as handle:
            for batch in pq.ParquetFile(handle).iter_batches(batch_size=65536):
                keys, scores = batch.column("key").to_pylist(), batch.column("score").to_pylist()
                has_turns = "turn_scores" in batch.schema.names
                turns = batch.column("turn_scores").to_pylist() if has_turns else [None] * len(keys)
                for key, score, turn_scores in zip(keys, scores, turns, strict=True):
                    yield key, (score, tuple(turn_scores) if turn_scores is not None else None)
    except Exception as exc:  # noqa: BLE001 - a cache is an optimisation, not input data
        _log.warning(
            "score cache file %s is unreadable (%s); its samples will be rescored", path, exc
        )


def compact(directory: str, min_files: int = 64) -> int:
    """Merge the cache's small files into one once there are `min_files` of them.

    Writers add a file every 64 samples, so a million-sample run leaves thousands; each run
    lists and reads them all at its start. Only the files listed here are removed, after the
    merged file is in place, so a run writing at the same time loses nothing. Returns the
    number of files merged (0 when there were too few).
    """
    paths = cache_files(directory)
    if len(paths) < min_files:
        return 0
    tables = []
    for path in paths:
        with fsspec.open(path, "rb") as handle:
            tables.append(pq.read_table(handle, schema=SCHEMA))
    _write_table(directory, pa.concat_tables(tables))
    fs = fsspec.get_fs_token_paths(paths[0])[0]
    fs.rm([fsspec.get_fs_token_paths(p)[2][0] for p in paths])
    return len(paths)


def look_up_cached(sample: Sample, known_scores: dict[str, Cached]):
    """Samples whose content has a cached score skip decoding and scoring."""
    known = known_scores.get(cache_key(sample))
    if known is None:
        return sample
    score, turns = known
    cached = sample.replace(score=score, turn_scores=list(turns) if turns else None, cached=True)
    return beam.pvalue.TaggedOutput(CACHED, cached)


class PersistScores(beam.DoFn):
    """Pass scored samples through, appending (key, score, turn scores) to the cache as they
    come.

    Rows reach the cache every `flush_every` samples or `flush_seconds`, whichever comes
    first (a timer covers a slow model that sends nothing for a while), so a killed run loses
    at most that much; an interrupted run flushes what it holds (`flush_all_pending`).
    """

    def __init__(self, directory: str, flush_every: int = 64, flush_seconds: float = 30.0):
        self._directory = directory.rstrip("/")
        self._flush_every = flush_every
        self._flush_seconds = flush_seconds

    def setup(self):
        self._rows: list[tuple[str, float, list[float] | None]] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        _LIVE.add(self)
        self._timer = threading.Thread(target=self._flush_on_time, daemon=True)
        self._timer.start()

    def process(self, sample: Sample):
        try:
            row = (cache_key(sample), sample.score, sample.turn_scores)
        except Exception:  # noqa: BLE001 - an uncacheable sample is scored again next run
            _log.warning("sample %s (%s) could not be cached", sample.id, sample.origin)
            row = None
        if row is not None:
            with self._lock:
                self._rows.append(row)
                full = len(self._rows) >= self._flush_every
            if full:
                self.flush()
        yield sample

    def finish_bundle(self):
        self.flush()

    def teardown(self):
        self._stopped.set()
        self.flush()
        _LIVE.discard(self)

    def _flush_on_time(self):
        while not self._stopped.wait(self._flush_seconds):
            self.flush()

    def flush(self) -> int:
        """Write the rows held so far as one cache file; return how many."""
        with self._lock:
            rows, self._rows = self._rows, []
            if not rows:
                return 0
            write_scores(self._directory, rows)
            return len(rows)


# Every live writer in this process, so an interrupted run can flush them (pipelines/interrupt.py).
_LIVE: weakref.WeakSet[PersistScores] = weakref.WeakSet()


def flush_all_pending() -> int:
    """Flush every score writer of this process; return how many scores that saved."""
    return sum(writer.flush() for writer in list(_LIVE))


def save_scored(directory: str, samples: list[Sample]) -> int:
    """Cache the finite scores of `samples` now (an interrupted run's last batches); return
    how many."""
    rows = [
        (cache_key(s), s.score, s.turn_scores)
        for s in samples
        if isinstance(s.score, float) and math.isfinite(s.score)
    ]
    if rows:
        write_scores(directory, rows)
    return len(rows)


def write_scores(directory: str, rows: list[tuple[str, float, list[float] | None]]) -> None:
    """One cache file of (key, score, turn scores or None) rows."""
    keys, scores, turns = zip(*rows, strict=True)
    columns = {"key": list(keys), "score": list(scores), "turn_scores": list(turns)}
    _write_table(directory, pa.table(columns, schema=SCHEMA))


def _write_table(directory: str, table: pa.Table) -> None:
    """Written then renamed, so no reader ever sees half a file."""
    name = f"{directory}/scores-{uuid.uuid4().hex}.parquet"
    # A killed run leaves only an ignored .tmp behind.
    with open_for_write(name + ".tmp") as handle:
        pq.write_table(table, handle)
    fs, _, (path,) = fsspec.get_fs_token_paths(name)
    fs.mv(path + ".tmp", path)


def count_cached(directory: str) -> int:
    """How many scores the cache folder holds (from the Parquet footers alone)."""
    total = 0
    for path in cache_files(directory):
        with fsspec.open(path, "rb") as handle:
            total += pq.ParquetFile(handle).metadata.num_rows
    return total
