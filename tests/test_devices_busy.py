"""The pipeline keeps its devices busy: decoding runs while the model computes, every device
gets its own model copy and a share of the batches, batches are full, and a decoder that dies
mid-video costs that sample alone. Asserted by the order of logged timestamps, never by wall
time (the throughput figures are in bench/gpu_util_bench.py)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

import pipelines.stages.score_samples as score_samples
from pipelines.config import RunConfig, SourceConfig
from pipelines.jobs.clean import run
from tests.helpers import (
    CRASH_MARKER,
    conversation,
    mp4_bytes,
    read_parquet_dir,
    write_json,
    write_tar_gz,
)

SLOW_MODEL = "tests.helpers:SlowLoggedModel"


def _video_dataset(root: Path, count: int, crash_at: int | None = None) -> Path:
    root.mkdir(parents=True)
    video = mp4_bytes()
    members = {
        f"vids/v{i}.mp4": video + (CRASH_MARKER if i == crash_at else b"") for i in range(count)
    }
    write_tar_gz(root / "videos_1.tar.gz", members)
    records = [
        {
            "id": f"v{i}",
            "video": f"vids/v{i}.mp4",
            "conversations": conversation("Describe.", "A blue bar moves right.", "<video>\n"),
        }
        for i in range(count)
    ]
    write_json(root / "videos.json", records)
    return root


def _config(root: Path, out: Path, log: Path, **overrides) -> RunConfig:
    config = RunConfig(
        name="busy",
        root=str(root),
        output=str(out),
        model=SLOW_MODEL,
        model_options={"seconds": overrides.pop("seconds", 0.5), "log": str(log)},
        batch_size=2,
        max_error_fraction=1.0,
        sources=(SourceConfig("videos", ("videos.json",), video_archives=("videos_*.tar.gz",)),),
    )
    return config.with_overrides(**overrides)


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def video_decoder(monkeypatch):
    """Run the pipeline with a replacement decoder in the decode pool."""

    def use(spec: str, **settings):
        original = score_samples.decode_settings

        def with_decoder(config, processes):
            base = original(config, processes)
            return dataclasses.replace(base, video_decoder=spec, **settings)

        monkeypatch.setattr(score_samples, "decode_settings", with_decoder)

    return use


@pytest.mark.slow
def test_decoding_overlaps_a_slow_model(tmp_path, monkeypatch, video_decoder):
    decode_log, model_log = tmp_path / "decodes.jsonl", tmp_path / "calls.jsonl"
    monkeypatch.setenv("RMCLEAN_TEST_DECODE_LOG", str(decode_log))
    # A small prefetch: later videos can only be decoded after earlier ones went to the model.
    video_decoder("tests.helpers:logged_decode", prefetch_mb=0.01, workers=2)
    root = _video_dataset(tmp_path / "data", 8)
    summary = run(_config(root, tmp_path / "out", model_log, seconds=1.0))
    assert summary["counts"]["total"] == {"input": 8, "clean": 8, "review": 0, "errors": 0}
    decodes = _lines(decode_log)
    calls = [c for c in _lines(model_log) if "start" in c]
    assert len(decodes) == 8 and len(calls) == 4
    # Some video was decoded while the model was scoring a batch; one model call at a time
    # on the feeding thread (the old way) can never produce this order.
    overlapped = [
        d for d in decodes for c in calls if c["start"] < d["start"] and d["end"] < c["end"]
    ]
    assert overlapped
    assert min(c["start"] for c in calls) < max(d["start"] for d in decodes)


@pytest.mark.slow
def test_each_device_gets_its_own_copy_and_batches_go_to_the_free_one(tmp_path):
    log = tmp_path / "calls.jsonl"
    root = _video_dataset(tmp_path / "data", 8)
    config = _config(root, tmp_path / "out", log, seconds=1.0, devices=("cpu:0", "cpu:1"))
    summary = run(config)
    loads = [line for line in _lines(log) if "loaded" in line]
    assert sorted(line["loaded"] for line in loads) == ["cpu:0", "cpu:1"]
    calls = [line for line in _lines(log) if "start" in line]
    assert {c["device"] for c in calls} == {"cpu:0", "cpu:1"}
    # The copies scored at the same time: a call on one started before a call on the other ended.
    zero, one = (
        min((c for c in calls if c["device"] == device), key=lambda c: c["start"])
        for device in ("cpu:0", "cpu:1")
    )
    assert zero["start"] < one["end"] and one["start"] < zero["end"]
    scored_ids = sorted(i for c in calls for i in c["ids"])
    assert scored_ids == sorted(f"v{i}" for i in range(8))  # each sample scored once
    cost = summary["cost"]
    assert set(cost["devices"]) == {"cpu:0", "cpu:1"}
    assert sum(d["samples"] for d in cost["devices"].values()) == 8
    assert all(0 < d["busy_fraction"] <= 1 for d in cost["devices"].values())
    assert cost["device_hours_per_million_samples"] > 0


@pytest.mark.slow
def test_batches_are_full_and_counted(tmp_path):
    log = tmp_path / "calls.jsonl"
    root = _video_dataset(tmp_path / "data", 7)
    summary = run(_config(root, tmp_path / "out", log, seconds=0.0, batch_size=3))
    sizes = sorted(len(c["ids"]) for c in _lines(log) if "ids" in c)
    assert sizes == [1, 3, 3]  # only the last batch of the run is short
    batches = summary["batches"]
    assert batches["count"] == 3 and batches["mean_samples"] == pytest.approx(7 / 3, abs=0.01)
    # A plain plug-in factory has no token estimate: the figure says so instead of guessing.
    assert batches["mean_tokens"] is None


@pytest.mark.slow
def test_a_decoder_dying_mid_video_costs_that_sample_alone(tmp_path, video_decoder):
    video_decoder("tests.helpers:crash_on_marker", workers=2)
    root = _video_dataset(tmp_path / "data", 6, crash_at=4)
    out = tmp_path / "out"
    summary = run(_config(root, out, tmp_path / "calls.jsonl", seconds=0.0))
    assert summary["counts"]["total"] == {"input": 6, "clean": 5, "review": 0, "errors": 1}
    assert summary["errors_by_reason"] == {"decode/decoder_crashed": 1}
    clean_ids = read_parquet_dir(out / "clean")["id"].tolist()
    assert sorted(clean_ids) == ["v0", "v1", "v2", "v3", "v5"]  # none lost, none twice
    (error,) = [json.loads(line) for f in (out / "errors").glob("*.jsonl") for line in f.open()]
    assert error["id"] == "v4" and "vids/v4.mp4" in error["detail"]


@pytest.mark.slow
def test_a_large_model_is_loaded_once_per_device_per_machine(tmp_path):
    """`--runner local` starts several worker processes; they share one copy per device."""
    log = tmp_path / "calls.jsonl"
    root = _video_dataset(tmp_path / "data", 8)
    config = _config(
        root, tmp_path / "out", log, seconds=0.3, devices=("cpu:0", "cpu:1"), large_model=True
    )
    summary = run(config, ["--direct_num_workers=2"], runner="local")
    assert summary["counts"]["total"]["clean"] == 8
    loads = [line for line in _lines(log) if "loaded" in line]
    assert sorted(line["loaded"] for line in loads) == ["cpu:0", "cpu:1"]
    assert len({line["pid"] for line in loads}) == 1  # both copies in one process
    calls = [line for line in _lines(log) if "start" in line]
    assert sorted(i for c in calls for i in c["ids"]) == sorted(f"v{i}" for i in range(8))
