"""Incremental reruns: only new or changed samples are scored; a dead run's scores are kept."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from pipelines.jobs.clean import run
from tests.helpers import conversation, tiny_config, write_json

REPO = Path(__file__).resolve().parent.parent


def text_dataset(root: Path, count: int, start: int = 0) -> None:
    records = [
        {"id": f"t{i}", "conversations": conversation(f"Question {i}?", f"Answer number {i}.", "")}
        for i in range(start, start + count)
    ]
    write_json(root / f"part-{start}.json", records)


@pytest.mark.slow
def test_rerun_scores_only_new_samples(tiny_dataset, tmp_path):
    cache = str(tmp_path / "cache")
    first = run(tiny_config(tiny_dataset, tmp_path / "a", score_cache=cache))
    assert first["scoring"] == {"scored": 5, "from_cache": 0, "not_scored": 1}
    second = run(tiny_config(tiny_dataset, tmp_path / "b", score_cache=cache))
    assert second["scoring"] == {"scored": 0, "from_cache": 5, "not_scored": 1}
    assert second["counts"] == first["counts"]

    # A changed answer is new content, so it is scored again; 10% more samples, only those.
    images = json.loads((tiny_dataset / "images.json").read_text())
    images[0]["conversations"][1]["value"] = "A changed answer about the square."
    (tiny_dataset / "images.json").write_text(json.dumps(images))
    third = run(tiny_config(tiny_dataset, tmp_path / "c", score_cache=cache))
    assert third["scoring"] == {"scored": 1, "from_cache": 4, "not_scored": 1}


@pytest.mark.slow
def test_ten_percent_new_samples_score_only_those(tmp_path):
    root, cache = tmp_path / "data", str(tmp_path / "cache")
    text_dataset(root, 100)
    config = tiny_config(root, tmp_path / "a", score_cache=cache)
    config = config.with_overrides(sources=(config.sources[2].__class__("text", ("*.json",)),))
    assert run(config)["scoring"]["scored"] == 100
    text_dataset(root, 10, start=100)
    rerun = run(config.with_overrides(output=str(tmp_path / "b")))
    assert rerun["scoring"] == {"scored": 10, "from_cache": 100, "not_scored": 0}


@pytest.mark.slow
def test_a_run_killed_mid_scoring_keeps_what_it_scored(tmp_path):
    root, cache = tmp_path / "data", tmp_path / "cache"
    text_dataset(root, 40)
    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": "dying",
                "root": str(root),
                "output": str(tmp_path / "out"),
                "model": "tests.helpers:DyingModel",
                "threshold": -2.0,
                "batch_size": 4,
                "score_cache": str(cache),
                "score_cache_flush_every": 1,
                "sources": [{"name": "text", "manifests": "*.json"}],
                "layout_help": "-",
            }
        )
    )
    out = tmp_path / "out"
    command = [sys.executable, "-m", "pipelines.cli", "clean", "--config", str(config)]
    command += ["--output", str(out)]
    died = subprocess.run(
        command, cwd=REPO, capture_output=True, env={**os.environ, "RMCLEAN_TEST_DIE_AT_CALL": "6"}
    )
    assert died.returncode == 137 and not (tmp_path / "out" / "_SUCCESS").exists()
    persisted = sum(pq.read_table(f).num_rows for f in cache.rglob("*.parquet"))
    assert 0 < persisted < 40
    assert subprocess.run(command, cwd=REPO, capture_output=True).returncode == 0
    summary = json.loads((tmp_path / "out" / "report" / "summary.json").read_text())
    # The rerun scored exactly what the dead run had not.
    assert summary["scoring"] == {
        "scored": 40 - persisted,
        "from_cache": persisted,
        "not_scored": 0,
    }


def test_new_weights_under_the_same_name_get_a_new_cache(tiny_dataset, tmp_path):
    """A retrained demo model or a checkpoint re-downloaded in place must not be served the
    old model's scores."""
    import shutil

    from models.demo.model import DEFAULT_DIR, WEIGHTS_FILE
    from pipelines.stages.score_samples import cache_dir_of

    copy = tmp_path / "demo"
    shutil.copytree(DEFAULT_DIR, copy)
    config = tiny_config(
        tiny_dataset,
        tmp_path / "out",
        model="demo",
        model_options={"path": str(copy)},
        score_cache=str(tmp_path / "cache"),
    )
    before = cache_dir_of(config)
    assert cache_dir_of(config) == before  # stable while the weights are
    weights = copy / WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # one changed byte: other weights
    weights.write_bytes(bytes(data))
    assert cache_dir_of(config) != before


@pytest.mark.parametrize("model", ["vlm-value-head", "text-rm"])
def test_scores_cached_before_a_backend_read_turn_scores_are_not_reused(tmp_path, model):
    """Cached before, a multi-turn sample would come back without its turn scores; a backend
    whose results hold nothing new (demo, ixc25) keeps its cache."""
    from models.registry import weights_fingerprint
    from pipelines.stages.score_samples import cache_dir_of
    from transforms.samples.score_cache import model_cache_id

    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "config.json").write_text("{}")

    def older_release_dir(config):  # the id before any backend held turn scores
        parts = [config.model, config.model_options]
        parts.append(weights_fingerprint(config.model, config.backend_options()))
        return f"{config.score_cache}/{model_cache_id(parts)}"

    options = {"path": str(tmp_path / "ckpt")}
    for name, expect_new in ((model, True), ("demo", False), ("ixc25", False)):
        config = tiny_config(
            tmp_path,
            tmp_path / "out",
            model=name,
            model_options=options if name != "demo" else {},
            score_cache=str(tmp_path / "cache"),
        )
        assert (cache_dir_of(config) != older_release_dir(config)) is expect_new


def test_a_checkpoints_fingerprint_follows_its_weight_files(tmp_path):
    from models.loading import checkpoint_fingerprint

    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"x" * 10)
    first = checkpoint_fingerprint(str(tmp_path))
    assert first and checkpoint_fingerprint(str(tmp_path)) == first
    (tmp_path / "model.safetensors").write_bytes(b"x" * 11)
    assert checkpoint_fingerprint(str(tmp_path)) != first
    assert checkpoint_fingerprint("org/hub-name") is None


def _text_samples(count: int) -> list:
    from transforms.core.record import Sample

    return [
        Sample(f"t{i}", "text", conversation(f"Question {i}?", f"Answer {i}.", ""))
        for i in range(count)
    ]


def _write_cache(directory: str, other_entries: int, samples) -> None:
    """A cache holding a score for each of `samples` and `other_entries` of other content."""
    from transforms.samples.score_cache import cache_row, write_scores

    rows = [cache_row(s.replace(score=2.0)) for s in samples]
    rows += [(f"{i:040x}", f"{i:040x}", -1.0, None) for i in range(other_entries)]
    for start in range(0, len(rows), 25_000):
        write_scores(directory, rows[start : start + 25_000])


def _lookup(tmp_path, other_entries: int) -> tuple[list[float], int]:
    """(scores the lookup served, peak Python memory of the lookup's pipeline in bytes)."""
    import tracemalloc

    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from transforms.samples.score_cache import AttachKnownScores, look_up_cached
    from transforms.shuffle.sorted_runs import GroupOnDisk

    samples = _text_samples(300)
    cache = str(tmp_path / f"cache-{other_entries}")
    _write_cache(cache, other_entries, samples)
    served = tmp_path / f"served-{other_entries}.txt"
    tracemalloc.start()
    with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as p:
        light = p | beam.Create(samples)
        runs = GroupOnDisk(str(tmp_path / f"runs-{other_entries}"), run_mb=0.25)
        known = (light,) | AttachKnownScores(cache, runs)
        (
            known
            | beam.Map(lambda s: look_up_cached(s).value.score)
            | beam.combiners.ToList()
            | beam.Map(lambda scores: served.write_text(json.dumps(scores)))
        )
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return json.loads(served.read_text()), peak


def test_the_lookup_holds_no_more_of_a_bigger_cache(tmp_path):
    """Ten times the cache entries, the same lookup memory: the entries go through sorted
    files and each sample meets only its own digest's, never the whole cache (a side input,
    or a GroupByKey held by the local runner, would add ~30 MB here)."""
    small_scores, small_peak = _lookup(tmp_path, 10_000)
    large_scores, large_peak = _lookup(tmp_path, 100_000)
    assert small_scores == large_scores == [2.0] * 300
    assert large_peak - small_peak < 2 << 20, (small_peak, large_peak)


def test_a_sample_is_served_only_the_score_of_its_own_media_bytes(tmp_path):
    """The digest (conversation, media paths) finds the candidates; the key (media bytes)
    decides: the same path with other bytes is a changed sample, scored again."""
    from transforms.core.record import IMAGE, MediaRef, Sample
    from transforms.samples.score_cache import (
        CACHED,
        attach_known_scores,
        cache_row,
        keyed_by_digest,
        look_up_cached,
        read_cache_entries,
        write_scores,
    )

    def sample(data: bytes) -> Sample:
        media = [MediaRef(IMAGE, "images/a.jpg", data)]
        return Sample("a", "images", conversation("What?", "A square."), media)

    write_scores(str(tmp_path), [cache_row(sample(b"old bytes").replace(score=1.5))])
    (path,) = tmp_path.glob("*.parquet")
    entries = list(read_cache_entries(str(path)))
    for data, expected in ((b"old bytes", 1.5), (b"new bytes", None)):
        light = sample(None)
        digest, _ = keyed_by_digest(light)
        (carrying,) = attach_known_scores((digest, [light, *(e for _, e in entries)]))
        assert carrying.known_scores  # the digest found the entry before any bytes were read
        result = look_up_cached(carrying.replace(media=sample(data).media))
        if expected is None:
            assert result.known_scores is None and not result.cached
        else:
            assert result.tag == CACHED and result.value.score == expected


def test_compaction_merges_the_small_files_and_keeps_every_score(tmp_path, monkeypatch):
    from transforms.samples import score_cache
    from transforms.samples.score_cache import compact, count_cached, write_scores

    def rows(batch: int, count: int) -> list[tuple[str, str, float, None]]:
        return [(f"d{batch}-{i}", f"k{batch}-{i}", 0.5, None) for i in range(count)]

    write_scores(str(tmp_path), rows(0, 5000))  # an earlier merge's result
    (big,) = tmp_path.glob("*.parquet")
    for batch in range(1, 6):
        write_scores(str(tmp_path), rows(batch, 10))
    small = max(p.stat().st_size for p in tmp_path.glob("*.parquet") if p != big)
    monkeypatch.setattr(score_cache, "COMPACT_BELOW_BYTES", small + 1)
    assert big.stat().st_size > small + 1
    assert compact(str(tmp_path), min_files=6) == 0  # five small files: too few to bother
    assert compact(str(tmp_path), min_files=5) == 5
    assert big.exists() and len(list(tmp_path.glob("*.parquet"))) == 2
    assert count_cached(str(tmp_path)) == 5050
    keys = {
        entry.key
        for path in tmp_path.glob("*.parquet")
        for _, entry in score_cache.read_cache_entries(str(path))
    }
    assert keys == {
        key for b, n in ((0, 5000), *((b, 10) for b in range(1, 6))) for _, key, *_ in rows(b, n)
    }


def test_the_cache_serves_turn_scores_and_reads_files_written_without_them(tmp_path):
    import pyarrow as pa

    from transforms.core.record import Sample
    from transforms.samples.score_cache import (
        CACHED,
        attach_known_scores,
        cache_digest,
        cache_key,
        compact,
        look_up_cached,
        read_cache_entries,
        save_scored,
    )

    turns = conversation("Colour?", "Red.", "") + conversation("Count?", "Two.", "")
    multi = Sample("m", "s", turns, score=0.5, turn_scores=[1.0, 0.5])
    single = Sample("o", "s", conversation("Q?", "A.", ""), score=-1.0)
    cache = tmp_path / "cache"
    assert save_scored(str(cache), [multi, single]) == 2
    # A file from before turn scores: its samples are served their score alone.
    older = Sample("old", "s", conversation("Old?", "Yes.", ""))
    columns = {"digest": [cache_digest(older)], "key": [cache_key(older)], "score": [0.25]}
    pq.write_table(pa.table(columns), cache / "scores-old.parquet")

    def entries() -> dict:
        found = {}
        for path in sorted(cache.glob("*.parquet")):
            for digest, entry in read_cache_entries(str(path)):
                found[digest, entry.key] = (entry.score, entry.turn_scores)
        return found

    known = entries()
    assert known[cache_digest(multi), cache_key(multi)] == (0.5, (1.0, 0.5))
    assert known[cache_digest(single), cache_key(single)] == (-1.0, None)
    assert known[cache_digest(older), cache_key(older)] == (0.25, None)
    light = multi.replace(score=None, turn_scores=None)
    group = [light, *(e for path in cache.glob("*.parquet") for _, e in read_cache_entries(path))]
    (carrying,) = attach_known_scores((cache_digest(light), group))
    served = look_up_cached(carrying)
    assert served.tag == CACHED and served.value.turn_scores == [1.0, 0.5]
    assert served.value.score == 0.5 and served.value.cached and not served.value.known_scores
    assert compact(str(cache), min_files=2) == 2
    (merged,) = cache.glob("*.parquet")
    assert entries() == known
