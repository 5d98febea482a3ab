"""The whole job on a real Apache Spark and a real Apache Flink, each on loopback with Beam's
job server, SDK workers as processes (deploy/engines/): the same routes, counts, scores and
cuts as the default runner, reruns served from the score cache, Ctrl-C / SIGTERM cancelling
the job on the engine, and no media bytes in any shuffle."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from pipelines.cli import main
from tests.engines import Engine, require_engines, start_engine

REPO = Path(__file__).resolve().parents[1]
CONFIG = str(REPO / "configs" / "sample.yaml")
ENGINES = ("spark", "flink")
# An engine run of the sample takes a minute or two on 2 shared cores; never hang CI.
RUN_TIMEOUT_S = 900

pytestmark = [pytest.mark.slow, pytest.mark.engines]


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    require_engines()
    target = tmp_path_factory.mktemp("engines") / "sample"
    assert main(["sample", "--output", str(target)]) == 0
    return target


@pytest.fixture(scope="module", params=ENGINES)
def engine(request):
    started = start_engine(request.param)
    try:
        yield started
    finally:
        started.script("stop")


def _default_run(sample: Path, output: Path, *cut: str) -> dict:
    """The reference: the same command on the default runner (in this process)."""
    argv = ["clean", "--config", CONFIG, "--input", str(sample), "--output", str(output)]
    assert main([*argv, *cut, "--no-score-cache"]) == 0
    return json.loads((output / "report" / "summary.json").read_text())


@pytest.fixture(scope="module")
def default_threshold(sample, tmp_path_factory) -> tuple[Path, dict]:
    output = tmp_path_factory.mktemp("default") / "threshold"
    return output, _default_run(sample, output, "--threshold", "-2.0")


@pytest.fixture(scope="module")
def default_percentile(sample, tmp_path_factory) -> tuple[Path, dict]:
    output = tmp_path_factory.mktemp("default") / "percentile"
    return output, _default_run(sample, output, "--percentile", "20")


def _engine_run(engine: Engine, sample: Path, output: Path, cache: Path, *cut: str) -> dict:
    argv = ["--config", CONFIG, "--input", str(sample), "--output", str(output)]
    done = subprocess.run(
        engine.rmclean(*argv, *cut, "--score-cache", str(cache)),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads((output / "report" / "summary.json").read_text())


def _routes(run: Path) -> pd.DataFrame:
    """Every sample's route, reason and score, and every error's stage and reason."""
    routed = [
        pd.read_parquet(run / "index" / f"{route}.parquet").assign(route=route)
        for route in ("clean", "review")
    ]
    errors = [
        json.loads(line)
        for path in sorted((run / "errors").glob("*.jsonl"))
        for line in path.read_text().splitlines()
    ]
    failed = pd.DataFrame(
        [
            {
                "source": e["source"],
                "id": e["id"],
                "origin": e["origin"],
                "route": "errors",
                "reason": f"{e['stage']}/{e['reason']}",
            }
            for e in errors
        ]
    )
    table = pd.concat(
        [*(r[["source", "id", "origin", "route", "reason", "score"]] for r in routed), failed]
    )
    return table.sort_values(["source", "origin", "id"]).reset_index(drop=True)


def _assert_same_run(
    engine_run: Path, engine_summary: dict, default_run: Path, default_summary: dict
):
    assert engine_summary["counts"] == default_summary["counts"]
    assert (engine_run / "_SUCCESS").exists()
    expected, actual = _routes(default_run), _routes(engine_run)
    pd.testing.assert_frame_equal(
        actual.drop(columns="score"), expected.drop(columns="score"), check_dtype=False
    )
    # Bundles, and so batches, differ between runners: float32 sums over another batch size
    # move the last digits of a score (at most 3e-6 seen), never more.
    pd.testing.assert_series_equal(actual["score"], expected["score"], rtol=0, atol=1e-5)


@pytest.fixture(scope="module")
def engine_run(engine, sample, tmp_path_factory) -> tuple[Path, dict, Path, float]:
    """The sample at the default threshold on the engine: (output, summary, cache, start)."""
    folder = tmp_path_factory.mktemp(f"{engine.name}-run")
    started = time.time()
    summary = _engine_run(engine, sample, folder / "run", folder / "cache", "--threshold", "-2.0")
    return folder / "run", summary, folder / "cache", started


def test_the_sample_routes_and_scores_as_on_the_default_runner(
    engine, engine_run, default_threshold
):
    output, summary, _, _ = engine_run
    _assert_same_run(output, summary, *default_threshold)
    assert summary["runner"] == "PortableRunner"
    assert summary["scoring"]["from_cache"] == 0 and summary["scoring"]["scored"] > 0
    assert set(engine.jobs().values()) == {"DONE"}


def test_no_media_bytes_cross_a_shuffle_on_the_engine(engine, engine_run, sample):
    """Shuffled samples carry no media: the engine's shuffles hold less than half the sample's
    media bytes. A shuffle of the samples with their media would hold at least all of them
    (JPEG and MP4 do not compress); without, they hold the samples' text, about a quarter of
    the media's size as Flink sends it, a thirtieth as Spark compresses it."""
    _, summary, _, started = engine_run
    media = sum(
        path.stat().st_size
        for path in sample.rglob("*")
        if path.suffix in {".jpg", ".jpeg", ".png", ".mp4", ".gz"}
    )
    shuffled = engine.shuffle_bytes(since=started)
    labels = (sample / "labels.jsonl").read_text().splitlines()  # one per generated sample
    assert summary["counts"]["total"]["input"] == len(labels)
    assert 0 < shuffled < media / 2, (shuffled, media)


def test_a_percentile_rerun_takes_its_scores_from_the_cache_and_cuts_the_same(
    engine, engine_run, sample, default_percentile, tmp_path
):
    _, first, cache, _ = engine_run
    output = tmp_path / "rerun"
    rerun = _engine_run(engine, sample, output, cache, "--percentile", "20")
    assert rerun["scoring"] == {
        "scored": 0,
        "from_cache": first["scoring"]["scored"],
        "not_scored": first["scoring"]["not_scored"],
    }
    assert rerun["cuts"] == pytest.approx(default_percentile[1]["cuts"], abs=1e-5)
    _assert_same_run(output, rerun, *default_percentile)


def _new_running_job(engine: Engine, known: set[str], process: subprocess.Popen) -> str:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1][-4000:]
        running = [j for j, state in engine.jobs().items() if j not in known and state == "RUNNING"]
        if running:
            return running[0]
        time.sleep(1)
    raise AssertionError("the job never reached RUNNING on the engine")


def _wait_for_scores(cache: Path, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while not any(cache.rglob("*.parquet")):
        assert process.poll() is None, process.communicate()[1][-4000:]
        assert time.monotonic() < deadline, "no score reached the cache"
        time.sleep(0.5)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_a_signal_cancels_the_job_on_the_engine(engine, sample, tmp_path, signum):
    output, cache = tmp_path / "run", tmp_path / "cache"
    argv = ["--config", CONFIG, "--input", str(sample), "--output", str(output)]
    known = set(engine.jobs())
    process = subprocess.Popen(
        engine.rmclean(*argv, "--score-cache", str(cache)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        job = _new_running_job(engine, known, process)
        # Mid-run, as a user would: the workers are scoring (their first scores are in the
        # cache). Beam's Spark job server leaks the SparkContext of a job cancelled while it
        # is still creating one (README, "Spark and Flink"), which a signal the moment the
        # job says RUNNING would hit.
        _wait_for_scores(cache, process)
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == {signal.SIGINT: 130, signal.SIGTERM: 143}[signum], stderr[-4000:]
    assert "rmclean: interrupted" in stderr and "scores kept in the cache" in stderr
    assert engine.jobs()[job] == "CANCELLED"
    assert not output.exists()  # the unfinished prefix is gone, and nothing writes it again
    # The engine itself stops running it (within a minute).
    deadline = time.monotonic() + 60
    while engine.running_on_engine() and time.monotonic() < deadline:
        time.sleep(1)
    assert not engine.running_on_engine()
