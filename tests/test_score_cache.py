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

from pipelines.clean import run
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
    from pipelines.clean import cache_dir_of

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


def test_the_cache_serves_turn_scores_and_reads_files_written_without_them(tmp_path):
    import pyarrow as pa

    from transforms.core.record import Sample
    from transforms.samples.score_cache import (
        CACHED,
        cache_key,
        compact,
        look_up_cached,
        read_cache_file,
        save_scored,
    )

    turns = conversation("Colour?", "Red.", "") + conversation("Count?", "Two.", "")
    multi = Sample("m", "s", turns, score=0.5, turn_scores=[1.0, 0.5])
    single = Sample("o", "s", conversation("Q?", "A.", ""), score=-1.0)
    cache = tmp_path / "cache"
    assert save_scored(str(cache), [multi, single]) == 2
    # A file from before turn scores: its samples are served their score alone.
    older = Sample("old", "s", conversation("Old?", "Yes.", ""))
    pq.write_table(
        pa.table({"key": [cache_key(older)], "score": [0.25]}), cache / "scores-old.parquet"
    )
    known = dict(kv for path in sorted(cache.glob("*.parquet")) for kv in read_cache_file(path))
    assert known[cache_key(multi)] == (0.5, (1.0, 0.5))
    assert known[cache_key(single)] == (-1.0, None) and known[cache_key(older)] == (0.25, None)
    served = look_up_cached(multi.replace(score=None, turn_scores=None), known)
    assert served.tag == CACHED and served.value.turn_scores == [1.0, 0.5]
    assert served.value.score == 0.5 and served.value.cached
    assert compact(str(cache), min_files=2) == 2
    (merged,) = cache.glob("*.parquet")
    assert dict(read_cache_file(merged)) == known
