"""A score cache so weekly reruns score only what is new, looked up without holding it.

Each entry is (digest, key, score, turn scores), kept in Parquet files under one folder per
scoring setup (model ids, options and weights: `model_cache_id`):
- `key` covers what the model saw, the conversation and every media file's bytes: a sample is
  served a cached score only when its key matches (`cache_key`, the sample's `content_hash`);
- `digest` covers the conversation and the media paths (`cache_digest`), so it is known
  before any media is read;
- the turn scores are those of a backend that reads them (null otherwise).

Looking up never holds the cache in memory. Before media is loaded, the light samples and the
cache's entries meet in one shuffle keyed by digest (`AttachKnownScores`; on local runners
through sorted files, `transforms/shuffle/sorted_runs.py`), and each sample takes the scores cached
under its digest, usually none or one (`known_scores`). Once its media bytes are in, the
sample's key picks its score among those (`look_up_cached`). A renamed media file is a
changed sample.

Scores are persisted as they are computed (every 64 samples or 30 seconds), each batch one
file written then renamed, so a run that dies has saved what it scored (less the last
batch) and two runs may share a cache: each only adds files.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import threading
import uuid
import weakref
from collections.abc import Iterable, Iterator
from typing import NamedTuple

import apache_beam as beam
import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from transforms.core.content_hash import content_hash
from transforms.core.record import Sample
from transforms.core.storage import glob_paths, open_for_write
from transforms.samples import dedupe

_log = logging.getLogger(__name__)
SCHEMA = pa.schema(
    [
        ("digest", pa.string()),
        ("key", pa.string()),
        ("score", pa.float64()),
        ("turn_scores", pa.list_(pa.float64())),
    ]
)
# Part of every cache folder's name: caches of another layout are never read as this one.
CACHE_FORMAT = 2
CACHED = "cached"
READ_BATCH_ROWS = 8192
# Files below this size are merged by `compact`; bigger ones are left as they are.
COMPACT_BELOW_BYTES = 32 << 20


class CachedScore(NamedTuple):
    """One cache entry, as it travels to the samples of its digest."""

    key: str
    score: float
    turn_scores: tuple[float, ...] | None


# What the cache knows about one sample: (score, turn scores or None).
Cached = tuple[float, "tuple[float, ...] | None"]
# One cache row: (digest, key, score, turn scores or None).
CacheRow = tuple[str, str, float, "list[float] | None"]


def model_cache_id(models_used: list) -> str:
    """A folder name for the scoring setup (model names and options): another checkpoint or
    option, another cache."""
    described = json.dumps([CACHE_FORMAT, *models_used], sort_keys=True, default=str)
    readable = "".join(c if c.isalnum() or c in "-_" else "_" for c in str(models_used[0]))[:40]
    return f"{readable}-{hashlib.sha1(described.encode()).hexdigest()[:12]}"


def cache_key(sample: Sample) -> str:
    """The model is the folder; within it, the sample's content (media bytes included) is the
    key."""
    return content_hash(sample)


def cache_digest(sample: Sample) -> str:
    """What a light sample (media not yet read) is looked up by: conversation and media paths."""
    return dedupe.content_hash(sample)


def cache_files(directory: str) -> list[str]:
    return glob_paths(f"{directory.rstrip('/')}/*.parquet")


def read_cache_entries(path: str) -> Iterator[tuple[str, CachedScore]]:
    """(digest, entry) for every entry of one cache file, a batch at a time; an unreadable
    file is skipped with a warning (its samples are simply scored again), never the end of
    the run."""
    try:
        with fsspec.open(path, "rb") as handle:
            for batch in pq.ParquetFile(handle).iter_batches(batch_size=READ_BATCH_ROWS):
                keys, scores = batch.column("key").to_pylist(), batch.column("score").to_pylist()
                has_turns = "turn_scores" in batch.schema.names
                turns = batch.column("turn_scores").to_pylist() if has_turns else [None] * len(keys)
                for digest, key, score, turn_scores in zip(
                    batch.column("digest").to_pylist(), keys, scores, turns, strict=True
                ):
                    kept_turns = tuple(turn_scores) if turn_scores is not None else None
                    yield digest, CachedScore(key, score, kept_turns)
    except Exception as exc:  # noqa: BLE001 - a cache is an optimisation, not input data
        _log.warning(
            "score cache file %s is unreadable (%s); its samples will be rescored", path, exc
        )


def keyed_by_digest(sample: Sample) -> tuple[str, Sample]:
    return cache_digest(sample), sample


def attach_known_scores(group: tuple[str, Iterable]) -> Iterator[Sample]:
    """The samples of one digest, each carrying that digest's cached scores (key -> (score,
    turn scores))."""
    _, values = group
    samples: list[Sample] = []
    known: dict[str, Cached] = {}
    for value in values:
        if isinstance(value, CachedScore):
            known[value.key] = (value.score, value.turn_scores)
        else:
            samples.append(value)
    for sample in samples:
        yield sample.replace(known_scores=known) if known else sample


class AttachKnownScores(beam.PTransform):
    """Branches of light samples -> light samples carrying the scores cached for their digest.

    `group` is the shuffle (`sorted_runs.grouping`): the cache's entries and the samples meet
    there, so no step holds more than one digest's entries.
    """

    def __init__(self, directory: str, group: beam.PTransform):
        super().__init__()
        self._directory = directory
        self._group = group

    def expand(self, branches):
        entries = (
            branches[0].pipeline
            | "CacheFiles" >> beam.Create(cache_files(self._directory))
            | "ReadCache" >> beam.FlatMap(read_cache_entries)
        )
        keyed = tuple(
            branch | f"KeyByDigest{i}" >> beam.Map(keyed_by_digest)
            for i, branch in enumerate(branches)
        )
        return (
            (*keyed, entries)
            | "GroupByDigest" >> self._group
            | "Attach" >> beam.FlatMap(attach_known_scores)
        )


def look_up_cached(sample: Sample):
    """A sample whose key has a cached score skips decoding and scoring; the others go on
    without the scores they were carrying."""
    if not sample.known_scores:
        return sample
    known = sample.known_scores.get(cache_key(sample))
    if known is None:
        return sample.replace(known_scores=None)
    score, turns = known
    cached = sample.replace(
        score=score, turn_scores=list(turns) if turns else None, cached=True, known_scores=None
    )
    return beam.pvalue.TaggedOutput(CACHED, cached)


def cache_row(sample: Sample) -> CacheRow:
    return cache_digest(sample), cache_key(sample), sample.score, sample.turn_scores


class PersistScores(beam.DoFn):
    """Pass scored samples through, appending their entries (digest, key, score, turn scores)
    to the cache as they come.

    Rows reach the cache every `flush_every` samples or `flush_seconds`, whichever comes
    first (a timer covers a slow model that sends nothing for a while), so a killed run loses
    at most that much; an interrupted run flushes what it holds (`flush_all_pending`).
    """

    def __init__(self, directory: str, flush_every: int = 64, flush_seconds: float = 30.0):
        self._directory = directory.rstrip("/")
        self._flush_every = flush_every
        self._flush_seconds = flush_seconds

    def setup(self):
        self._rows: list[CacheRow] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        _LIVE.add(self)
        self._timer = threading.Thread(target=self._flush_on_time, daemon=True)
        self._timer.start()

    def process(self, sample: Sample):
        try:
            row = cache_row(sample)
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
    rows = [cache_row(s) for s in samples if isinstance(s.score, float) and math.isfinite(s.score)]
    if rows:
        write_scores(directory, rows)
    return len(rows)


def write_scores(directory: str, rows: list[CacheRow]) -> None:
    """One cache file of (digest, key, score, turn scores or None) rows."""
    digests, keys, scores, turns = zip(*rows, strict=True)
    columns = {
        "digest": list(digests),
        "key": list(keys),
        "score": list(scores),
        "turn_scores": list(turns),
    }
    table = pa.table(columns, schema=SCHEMA)
    with _new_cache_file(directory) as writer:
        writer.write_table(table)


@contextlib.contextmanager
def _new_cache_file(directory: str) -> Iterator[pq.ParquetWriter]:
    """A writer on a temp name, renamed into place only once written whole, so no reader
    ever sees half a file (a killed run leaves only an ignored .tmp behind)."""
    name = f"{directory.rstrip('/')}/scores-{uuid.uuid4().hex}.parquet"
    fs, _, (path,) = fsspec.get_fs_token_paths(name)
    with open_for_write(name + ".tmp") as handle, pq.ParquetWriter(handle, SCHEMA) as writer:
        yield writer
    fs.mv(path + ".tmp", path)


def compact(directory: str, min_files: int = 64) -> int:
    """Merge the cache's small files into one once there are `min_files` of them.

    Writers add a file every 64 samples, so a million-sample run leaves thousands, and every
    run reads them all. The merge streams a batch at a time, and files of COMPACT_BELOW_BYTES
    or more are left alone, so a big cache is not rewritten each time. Only the files merged
    here are removed, after the merged file is in place, so a run writing or reading at the
    same time loses nothing (a reader that listed a removed file skips it and rescores); an
    unreadable file is left where it is. Returns the number of files merged.
    """
    paths = cache_files(directory)
    if not paths:
        return 0
    fs = fsspec.get_fs_token_paths(paths[0])[0]
    small = [p for p in paths if fs.size(_fs_path(p)) < COMPACT_BELOW_BYTES]
    if len(small) < min_files:
        return 0
    merged = []
    with _new_cache_file(directory) as writer:
        for path in small:
            try:
                with fsspec.open(path, "rb") as handle:
                    for batch in pq.ParquetFile(handle).iter_batches(batch_size=READ_BATCH_ROWS):
                        writer.write_table(_in_schema(pa.Table.from_batches([batch])))
            except Exception as exc:  # noqa: BLE001 - kept for a person to look at
                _log.warning("score cache file %s is unreadable (%s); left as it is", path, exc)
                continue
            merged.append(_fs_path(path))
    if merged:
        fs.rm(merged)
    return len(merged)


def _in_schema(table: pa.Table) -> pa.Table:
    """A cache table in the current schema (files written before turn scores lack them)."""
    if "turn_scores" not in table.column_names:
        nulls = pa.nulls(table.num_rows, type=SCHEMA.field("turn_scores").type)
        table = table.append_column("turn_scores", nulls)
    return table.select(SCHEMA.names).cast(SCHEMA)


def _fs_path(url: str) -> str:
    return fsspec.get_fs_token_paths(url)[2][0]


def count_cached(directory: str) -> int:
    """How many scores the cache folder holds (from the Parquet footers alone)."""
    total = 0
    for path in cache_files(directory):
        with fsspec.open(path, "rb") as handle:
            total += pq.ParquetFile(handle).metadata.num_rows
    return total
