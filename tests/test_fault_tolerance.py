"""A run killed with SIGKILL at any point leaves no _SUCCESS, and a rerun is complete and
correct; two runs over the same input write the same rows."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from pipelines.jobs.clean import run
from tests.helpers import read_parquet_dir, tiny_config
from tests.test_cli import write_config

ALL_IDS = sorted(
    [
        "img-good",
        "img-bad",
        "img-empty",
        "img-missing",
        "img-broken",
        "img-nan",
        "vid-good",
        "vid-bad",
        "txt-1",
    ]
)
REPO = Path(__file__).resolve().parent.parent


def routed_ids(out: Path) -> list[str]:
    ids = list(read_parquet_dir(out / "clean")["id"]) + list(read_parquet_dir(out / "review")["id"])
    for errors in sorted((out / "errors").glob("*.jsonl")):
        ids += [json.loads(line)["id"] for line in errors.read_text().splitlines()]
    return sorted(ids)


def start_run(config: str, out: Path) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "pipelines.cli",
        "clean",
        "--config",
        config,
        "--output",
        str(out),
    ]
    return subprocess.Popen(
        command,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


@pytest.mark.slow
def test_sigkill_at_any_point_then_rerun_gives_complete_outputs(tiny_dataset, tmp_path):
    config = write_config(tmp_path, tiny_dataset)
    timing = start_run(config, tmp_path / "timing")
    started = time.monotonic()
    assert timing.wait(timeout=300) == 0
    duration = time.monotonic() - started

    killed_mid_run = 0
    for step in range(6):
        out = tmp_path / f"run{step}"
        process = start_run(config, out)
        time.sleep(duration * step / 8)
        if process.poll() is None:  # still running: kill the whole group, CLI and decoder
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            # A kill that lands after _SUCCESS (the process was exiting) found a finished run:
            # it is checked below like one. Any other kill must leave no _SUCCESS.
            if not (out / "_SUCCESS").exists():
                killed_mid_run += 1
                rerun = start_run(config, out)
                assert rerun.wait(timeout=300) == 0
        else:  # finished before the kill time came: it must have finished properly
            assert process.returncode == 0
        assert (out / "_SUCCESS").exists()
        assert routed_ids(out) == ALL_IDS  # every sample once: none lost, none duplicated
    assert killed_mid_run >= 4


@pytest.mark.slow
def test_two_runs_route_and_write_identically(tiny_dataset, tmp_path):
    summaries = [run(tiny_config(tiny_dataset, tmp_path / name)) for name in ("a", "b")]
    for route in ("clean", "review"):
        a, b = (
            read_parquet_dir(tmp_path / name / route).sort_values("id").reset_index(drop=True)
            for name in ("a", "b")
        )
        pd.testing.assert_frame_equal(a, b)
    assert summaries[0]["counts"] == summaries[1]["counts"]
    assert routed_ids(tmp_path / "a") == routed_ids(tmp_path / "b") == ALL_IDS
