"""The sample on the default runner, loopback Spark and loopback Flink: engine start-up and the
run's wall time apart, into bench/results/engines.json (needs `make engines`).

    .venv/bin/python -m bench.engines_bench
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONFIG = str(REPO / "configs" / "sample.yaml")
ENGINE_SCRIPT = str(REPO / "deploy" / "engines" / "engine.sh")
ENGINE_RMCLEAN = str(REPO / ".engines" / "venv" / "bin" / "rmclean")


def timed(command: list[str], env=None) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    return round(time.perf_counter() - started, 1)


def one_run(rmclean: str, sample: Path, output: Path, extra: list[str]) -> dict:
    argv = ["clean", "--config", CONFIG, "--input", str(sample), "--output", str(output)]
    wall = timed([rmclean, *argv, "--threshold", "-2.0", "--no-score-cache", *extra])
    summary = json.loads((output / "report" / "summary.json").read_text())
    return {"wall_s": wall, "pipeline_s": round(summary["durations"]["wall_seconds"], 1)}


def main() -> None:
    results = {"machine": f"{os.cpu_count()} cores, {platform.machine()}", "runs": {}}
    with tempfile.TemporaryDirectory() as scratch:
        sample = Path(scratch) / "sample"
        subprocess.run(
            [str(REPO / ".venv" / "bin" / "rmclean"), "sample", "--output", str(sample)], check=True
        )
        results["runs"]["default"] = one_run(
            str(REPO / ".venv" / "bin" / "rmclean"), sample, Path(scratch) / "default", []
        )
        for engine in ("spark", "flink"):
            env = {**os.environ, "ENGINE_PORT_BASE": {"spark": "28099", "flink": "28199"}[engine]}
            start = timed(["bash", ENGINE_SCRIPT, "start", engine], env)
            try:
                job_args = subprocess.run(
                    ["bash", ENGINE_SCRIPT, "job-args", engine],
                    env=env,
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout.splitlines()
                run = one_run(
                    ENGINE_RMCLEAN,
                    sample,
                    Path(scratch) / engine,
                    ["--runner", engine, *job_args],
                )
            finally:
                subprocess.run(["bash", ENGINE_SCRIPT, "stop", engine], env=env, check=True)
            results["runs"][engine] = {"engine_start_s": start, **run}
            print(engine, results["runs"][engine], file=sys.stderr)
    out = REPO / "bench" / "results" / "engines.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
