"""Ctrl-C and SIGTERM mid-scoring: exit 130/143 with one line, no traceback, nothing left at
the output prefix, and every score that reached the cache spares the rerun that sample."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.helpers import conversation, write_json
from transforms.samples.score_cache import count_cached

REPO = Path(__file__).resolve().parent.parent
SAMPLES, BATCH = 120, 4


def write_setup(tmp_path: Path) -> Path:
    records = [
        {"id": f"t{i}", "conversations": conversation(f"Question {i}?", f"Answer {i}.", "")}
        for i in range(SAMPLES)
    ]
    write_json(tmp_path / "data" / "t.json", records)
    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": "slow",
                "root": str(tmp_path / "data"),
                "output": str(tmp_path / "out"),
                "model": "tests.helpers:SlowModel",
                "threshold": -2.0,
                "batch_size": BATCH,
                "score_cache": str(tmp_path / "cache"),
                "sources": [{"name": "text", "manifests": "*.json"}],
            }
        )
    )
    return config


def scored_ids(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_mid_scoring_stops_cleanly_and_the_rerun_resumes(tmp_path, sig, code):
    config = write_setup(tmp_path)
    log = tmp_path / "scored.log"
    env = {**os.environ, "RMCLEAN_TEST_SCORED_LOG": str(log)}
    command = [sys.executable, "-m", "pipelines.cli", "clean", "--config", str(config)]
    command += ["--output", str(tmp_path / "out")]
    process = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    while len(scored_ids(log)) < 5 * BATCH:
        assert process.poll() is None and time.monotonic() < deadline, "never started scoring"
        time.sleep(0.05)
    signalled = time.monotonic()
    process.send_signal(sig)
    out, err = process.communicate(timeout=60)
    assert time.monotonic() - signalled < 10  # stops within seconds, not at the end of the run
    assert process.returncode == code, err
    assert "Traceback" not in err + out
    (line,) = err.strip().splitlines()
    cache = tmp_path / "cache"
    (model_cache,) = [p for p in cache.iterdir() if p.is_dir()]
    kept = count_cached(str(model_cache))
    assert line == (
        f"rmclean: interrupted; {kept} scores kept in the cache; rerun the same command to resume"
    )
    assert not (tmp_path / "out").exists()  # an unfinished run leaves nothing behind
    before = scored_ids(log)
    # At most the one batch the model had just returned was lost with the process.
    assert len(before) - BATCH <= kept <= len(before) < SAMPLES

    rerun = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads((tmp_path / "out" / "report" / "summary.json").read_text())
    assert summary["scoring"] == {"scored": SAMPLES - kept, "from_cache": kept, "not_scored": 0}
    assert summary["counts"]["total"]["input"] == SAMPLES


@pytest.mark.parametrize("delay", [0.5, 1.5, 3.0])
def test_ctrl_c_in_the_first_seconds_is_one_line_not_a_traceback(tmp_path, delay):
    """Imports, the config and model checks, listing the inputs: before the run's own handler
    is in place, Ctrl-C still ends with one line and 130."""
    config = write_setup(tmp_path)
    rmclean = Path(sys.executable).parent / "rmclean"
    process = subprocess.Popen(
        [str(rmclean), "clean", "--config", str(config), "--output", str(tmp_path / "out")],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(delay)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, (out, err)
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    (line,) = err.strip().splitlines()
    assert line.startswith("rmclean: interrupted")
