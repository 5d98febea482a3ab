"""The run history: one line per finished run in runs.jsonl, on local disk and on S3 (a real
S3-compatible server on loopback), none lost when runs finish at the same moment."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import fsspec
import pytest

from bench.indexed_runs import FakeRun, generated_samples, write_run
from pipelines.cli import main
from tests.s3_server import s3_server
from transforms.history.run_history import (
    previous_finished_run,
    read_history,
    record_finished_run,
    runs_folder,
)

REPO = Path(__file__).resolve().parents[1]
CONCURRENT_RUNS = 8


def _summary(prefix: str, run_id: str, finished_at: str, dataset: str = "fake") -> dict:
    return {
        "run_id": run_id,
        "dataset": dataset,
        "output": prefix,
        "finished_at": finished_at,
        "model": "demo",
        "counts": {"total": {"input": 3, "clean": 2, "review": 1, "errors": 0}},
        "scoring": {"scored": 3, "from_cache": 0, "not_scored": 0},
    }


def test_runs_folder_is_the_prefix_parent():
    assert runs_folder("out/sample/20250101-000000") == "out/sample"
    assert runs_folder("s3://bucket/runs/2025/") == "s3://bucket/runs"
    assert runs_folder("run1") == "."


def test_the_previous_run_is_the_latest_finished_one_of_the_same_dataset(tmp_path):
    runs = tmp_path / "runs"
    a = write_run(runs / "a", FakeRun(), "run-a", "2025-01-06T00:00:00Z")
    b = write_run(runs / "b", FakeRun(), "run-b", "2025-01-13T00:00:00Z")
    other = write_run(runs / "o", FakeRun(dataset="else"), "run-o", "2025-01-14T00:00:00Z")
    for prefix in (a, b, other):
        summary = json.loads((prefix / "report" / "summary.json").read_text())
        record_finished_run(str(prefix), summary)
    (b / "_SUCCESS").unlink()  # b's outputs were removed since
    now = _summary(str(runs / "c"), "run-c", "2025-01-20T00:00:00Z")
    assert previous_finished_run(str(runs / "c"), now)["run_id"] == "run-a"
    assert previous_finished_run(str(a), _summary(str(a), "run-a", "2025-01-06T00:00:00Z")) is None
    lines = (runs / "runs.jsonl").read_text().splitlines()
    assert [json.loads(line)["run_id"] for line in lines] == ["run-a", "run-b", "run-o"]
    # A derived output beside the runs is no run: only recorded runs are listed.
    write_run(runs / "a-reviewed", FakeRun(), "run-r", "2025-01-21T00:00:00Z")
    assert [e["run_id"] for e in read_history(str(runs))] == ["run-a", "run-b", "run-o"]


def _record_at_once(folder: str, count: int) -> None:
    """`count` processes, each recording one run in `folder` at the same moment (they wait for
    a common start time once Python and the imports are up)."""
    script = (
        "import sys, time; from transforms.history.run_history import record_finished_run\n"
        "folder, i, start = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])\n"
        "time.sleep(max(start - time.time(), 0))\n"
        "record_finished_run(f'{folder}/run-{i}', {'run_id': f'id-{i}', 'dataset': 'fake',"
        " 'output': f'{folder}/run-{i}', 'finished_at': '2025-01-06T00:00:00Z'})\n"
    )
    start = str(time.time() + 10)
    processes = [
        subprocess.Popen([sys.executable, "-c", script, folder, str(i), start], cwd=REPO)
        for i in range(count)
    ]
    assert [p.wait(timeout=120) for p in processes] == [0] * count


@pytest.mark.slow
def test_runs_finishing_at_once_lose_no_line_on_local_disk(tmp_path):
    _record_at_once(str(tmp_path), CONCURRENT_RUNS)
    lines = (tmp_path / "runs.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["run_id"] for line in lines) == sorted(
        f"id-{i}" for i in range(CONCURRENT_RUNS)
    )


@pytest.mark.slow
def test_runs_finishing_at_once_lose_no_line_on_s3():
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    with s3_server() as endpoint:
        fs = fsspec.filesystem("s3", endpoint_url=endpoint, skip_instance_cache=True)
        fs.mkdir("history-test")
        _record_at_once("s3://history-test/out/sample", CONCURRENT_RUNS)
        lines = fs.cat("history-test/out/sample/runs.jsonl").decode().splitlines()
        assert sorted(json.loads(line)["run_id"] for line in lines) == sorted(
            f"id-{i}" for i in range(CONCURRENT_RUNS)
        )
        entries = read_history("s3://history-test/out/sample")
        assert len(entries) == CONCURRENT_RUNS


def test_rmclean_runs_lists_the_history(tmp_path, capsys):
    runs = tmp_path / "runs"
    for name, when in (("a", "2025-01-06T00:00:00Z"), ("b", "2025-01-13T00:00:00Z")):
        prefix = write_run(runs / name, FakeRun(samples=generated_samples({"s": 4})), name, when)
        summary = json.loads((prefix / "report" / "summary.json").read_text())
        record_finished_run(str(prefix), summary)
    assert main(["runs", str(runs)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3 and out[1].startswith("2025-01-06T00:00:00Z") and str(runs / "b") in out[2]
    assert main(["runs", str(runs), "--json"]) == 0
    assert [json.loads(line)["run_id"] for line in capsys.readouterr().out.splitlines()] == [
        "a",
        "b",
    ]
    assert main(["runs", str(tmp_path / "nowhere")]) == 2
