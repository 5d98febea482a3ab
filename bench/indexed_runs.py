"""Finished runs made of exactly what `rmclean compare` reads, written directly: the id -> shard
index (index/clean.parquet, index/review.parquet, in the pipeline's schema), errors/,
report/summary.json and `_SUCCESS`, and no shards. A 100k-sample run takes a second to write,
so the compare benchmark measures comparing, not cleaning; the tests use the same builder.

Scores come from a seeded generator per source (a normal distribution, `shift` moving its
centre); ids are `<source>-<n>`, and the content hash follows the id and a `content_seed`, so
two runs built with the same seed hold the same samples.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from transforms.shards.shard_index import INDEX_SCHEMA

ROW_GROUP = 10_000


@dataclass
class FakeSample:
    source: str
    id: str
    score: float | None
    route: str  # clean, review or errors
    content: str = ""
    reason: str | None = None


@dataclass
class FakeRun:
    dataset: str = "fake"
    model: str = "demo"
    threshold: float = -2.0
    samples: list[FakeSample] = field(default_factory=list)


def generated_samples(
    sources: dict[str, int], seed: int = 0, shift: dict[str, float] | None = None
) -> list[FakeSample]:
    """`count` samples per source, scored N(2 + shift, 2), routed by the -2 threshold."""
    samples = []
    for source, count in sorted(sources.items()):
        rng = random.Random(f"{seed}:{source}")
        centre = 2.0 + (shift or {}).get(source, 0.0)
        for n in range(count):
            score = rng.gauss(centre, 2.0)
            route = "clean" if score >= -2.0 else "review"
            reason = None if route == "clean" else "low_score"
            samples.append(FakeSample(source, f"{source}-{n}", score, route, str(seed), reason))
    return samples


def write_run(prefix: Path, run: FakeRun, run_id: str, finished_at: str) -> Path:
    """Write `run` as a finished run at `prefix`; return the prefix."""
    prefix.mkdir(parents=True, exist_ok=True)
    counts: dict[str, dict[str, int]] = {}
    for route in ("clean", "review"):
        rows = [s for s in run.samples if s.route == route]
        _write_index(prefix / "index" / f"{route}.parquet", rows)
    errors = prefix / "errors"
    errors.mkdir(exist_ok=True)
    with open(errors / "errors-00000-of-00001.jsonl", "w", encoding="utf-8") as handle:
        for sample in run.samples:
            if sample.route == "errors":
                record = {
                    "source": sample.source,
                    "id": sample.id,
                    "stage": "decode",
                    "reason": sample.reason or "corrupt_image",
                    "origin": f"{sample.source}.json[{sample.id}]",
                    "record": {"id": sample.id},
                }
                handle.write(json.dumps(record) + "\n")
    for sample in run.samples:
        per = counts.setdefault(sample.source, {"input": 0, "clean": 0, "review": 0, "errors": 0})
        per["input"] += 1
        per[sample.route] += 1
    totals = {k: sum(c[k] for c in counts.values()) for k in ("input", "clean", "review", "errors")}
    summary = {
        "run_id": run_id,
        "dataset": run.dataset,
        "input": "/data/fake",
        "output": str(prefix),
        "model": run.model,
        "text_model": None,
        "model_fingerprint": f"{run.model}-0",
        "threshold": run.threshold,
        "percentile": None,
        "cuts": dict.fromkeys(sorted(counts), run.threshold),
        "format": "parquet",
        "runner": "FnApiRunner",
        "counts": {"total": totals, "per_source": counts},
        "scoring": {"scored": totals["input"], "from_cache": 0, "not_scored": 0},
        "errors_by_reason": {},
        "durations": {"wall_seconds": 1.0, "stage_seconds": {}},
        "started_at": finished_at,
        "finished_at": finished_at,
    }
    (prefix / "report").mkdir(exist_ok=True)
    (prefix / "report" / "summary.json").write_text(json.dumps(summary))
    (prefix / "_SUCCESS").write_text("")
    return prefix


def _write_index(path: Path, samples: list[FakeSample]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with pq.ParquetWriter(path, INDEX_SCHEMA) as writer:
        for start in range(0, max(len(samples), 1), ROW_GROUP):
            chunk = samples[start : start + ROW_GROUP]
            writer.write_table(pa.Table.from_pylist([_index_row(s) for s in chunk], INDEX_SCHEMA))


def _index_row(sample: FakeSample) -> dict:
    return {
        "source": sample.source,
        "id": sample.id,
        "origin": f"{sample.source}.json[{sample.id}]",
        "shard": f"{sample.route}/part-00000-of-00001.parquet",
        "position": sample.id,
        "score": sample.score,
        "reason": sample.reason,
        "content_hash": hashlib.sha1(f"{sample.id}|{sample.content}".encode()).hexdigest(),
    }
