"""A score cache so weekly reruns score only what is new.

Keyed by (model id, content of the sample: conversation and media bytes), kept as Parquet
files under one folder per model id. Scores are persisted as they are computed, a few hundred
at a time, so a run that dies has saved what it scored and a rerun skips those samples.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator

import apache_beam as beam
import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from transforms.record import Sample
from transforms.storage import glob_paths, open_for_write

SCHEMA = pa.schema([("key", pa.string()), ("score", pa.float64())])
CACHED = "cached"


def model_cache_id(models_used: list) -> str:
    """A folder name for the scoring setup (model names and options): another checkpoint or
    option, another cache."""
    described = json.dumps(models_used, sort_keys=True, default=str)
    readable = "".join(c if c.isalnum() or c in "-_" else "_" for c in str(models_used[0]))[:40]
    return f"{readable}-{hashlib.sha1(described.encode()).hexdigest()[:12]}"


def cache_key(sample: Sample) -> str:
    digest = hashlib.sha1()
    digest.update(json.dumps(sample.conversations, sort_keys=True).encode("utf-8", "replace"))
    for ref in sample.media:
        digest.update(f"|{ref.kind}|".encode())
        digest.update(hashlib.sha1(ref.data or b"").digest())
    return digest.hexdigest()


def cache_files(directory: str) -> list[str]:
    return glob_paths(f"{directory.rstrip('/')}/*.parquet")


def read_cache_file(path: str) -> Iterator[tuple[str, float]]:
    with fsspec.open(path, "rb") as handle:
        for batch in pq.ParquetFile(handle).iter_batches(batch_size=65536):
            yield from zip(
                batch.column("key").to_pylist(), batch.column("score").to_pylist(), strict=True
            )


def look_up_cached(sample: Sample, known_scores: dict[str, float]):
    """Samples whose content has a cached score skip decoding and scoring."""
    score = known_scores.get(cache_key(sample))
    if score is None:
        return sample
    return beam.pvalue.TaggedOutput(CACHED, sample.replace(score=score, cached=True))


class PersistScores(beam.DoFn):
    """Pass scored samples through, appending (key, score) to the cache every `flush_every`."""

    def __init__(self, directory: str, flush_every: int = 500):
        self._directory = directory.rstrip("/")
        self._flush_every = flush_every

    def start_bundle(self):
        self._rows: list[tuple[str, float]] = []

    def process(self, sample: Sample):
        self._rows.append((cache_key(sample), sample.score))
        if len(self._rows) >= self._flush_every:
            self._flush()
        yield sample

    def finish_bundle(self):
        self._flush()

    def _flush(self):
        if not self._rows:
            return
        keys, scores = zip(*self._rows, strict=True)
        table = pa.table({"key": list(keys), "score": list(scores)}, schema=SCHEMA)
        name = f"{self._directory}/scores-{uuid.uuid4().hex}.parquet"
        # Write then rename, so a reader never sees half a file (a killed run leaves only
        # an ignored .tmp).
        with open_for_write(name + ".tmp") as handle:
            pq.write_table(table, handle)
        fs, _, (path,) = fsspec.get_fs_token_paths(name)
        fs.mv(path + ".tmp", path)
        self._rows = []
