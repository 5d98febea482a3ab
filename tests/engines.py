"""The loopback Spark and Flink engines for the tests, as a user starts them.

`deploy/engines/engine.sh` starts each engine (its cluster and Beam's job server) on free
ports; jobs go to it with the engine environment's `rmclean` (the Beam SDK of the job
servers' release). Tests skip when `make engines` has not been run, unless
RMCLEAN_REQUIRE_ENGINES=1 (CI sets it), where a missing engine fails them.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from apache_beam.portability.api import beam_job_api_pb2, beam_job_api_pb2_grpc

REPO = Path(__file__).resolve().parents[1]
ENGINE_SCRIPT = REPO / "deploy" / "engines" / "engine.sh"
ENGINES_DIR = Path(os.environ.get("ENGINES_DIR", REPO / ".engines"))
ENGINE_RMCLEAN = ENGINES_DIR / "venv" / "bin" / "rmclean"
# engine.sh's ports: the job endpoint at the base, the rest from base-2 to base+5.
PORT_SPAN = range(-2, 6)
UI_PORT_OFFSET = 3  # the Spark master's web UI, the Flink JobManager's REST endpoint


def require_engines() -> None:
    installed = ENGINE_RMCLEAN.exists() and all(
        (ENGINES_DIR / f"{name}-job-server.classpath").exists() for name in ("spark", "flink")
    )
    if installed:
        return
    message = f"the loopback engines are not installed in {ENGINES_DIR} (make engines)"
    if os.environ.get("RMCLEAN_REQUIRE_ENGINES") == "1":
        pytest.fail(message)
    pytest.skip(message)


def _free_port_base() -> int:
    for _ in range(200):
        base = random.randrange(20000, 60000, 10)
        if all(_port_free(base + offset) for offset in PORT_SPAN):
            return base
    raise RuntimeError("no block of free ports on loopback")


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class Engine:
    name: str
    base: int

    @property
    def env(self) -> dict:
        return {**os.environ, "ENGINES_DIR": str(ENGINES_DIR), "ENGINE_PORT_BASE": str(self.base)}

    @property
    def run_dir(self) -> Path:
        return ENGINES_DIR / "run" / f"{self.name}-{self.base}"

    def script(self, action: str) -> str:
        done = subprocess.run(
            ["bash", str(ENGINE_SCRIPT), action, self.name],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            raise RuntimeError(f"engine.sh {action} {self.name} failed:\n{done.stderr}")
        return done.stdout

    def job_args(self) -> list[str]:
        return self.script("job-args").splitlines()

    def rmclean(self, *args: str) -> list[str]:
        """The command line that runs `rmclean clean` on this engine."""
        return [str(ENGINE_RMCLEAN), "clean", *args, "--runner", self.name, *self.job_args()]

    def jobs(self) -> dict[str, str]:
        """Every job Beam's job server knows: job id -> its state name."""
        with grpc.insecure_channel(f"127.0.0.1:{self.base}") as channel:
            stub = beam_job_api_pb2_grpc.JobServiceStub(channel)
            response = stub.GetJobs(beam_job_api_pb2.GetJobsRequest(), timeout=30)
        return {
            info.job_id: beam_job_api_pb2.JobState.Enum.Name(info.state)
            for info in response.job_info
        }

    def shuffle_bytes(self, since: float) -> int:
        """Bytes the engine shuffled for the jobs that started after `since` (epoch s)."""
        measure = _spark_shuffle_bytes if self.name == "spark" else _flink_shuffle_bytes
        return measure(self, since)

    def running_on_engine(self) -> list:
        """What the engine itself still runs: Spark applications, or Flink jobs not ended."""
        if self.name == "spark":
            return self.ui("/json/")["activeapps"]
        ended = {"FINISHED", "CANCELED", "FAILED"}
        return [j for j in self.ui("/jobs/overview")["jobs"] if j["state"] not in ended]

    def ui(self, path: str):
        """JSON from the Spark master's web UI or the Flink JobManager's REST endpoint."""
        url = f"http://127.0.0.1:{self.base + UI_PORT_OFFSET}{path}"
        with urllib.request.urlopen(url, timeout=30) as response:
            return json.load(response)


def start_engine(name: str) -> Engine:
    require_engines()
    engine = Engine(name, _free_port_base())
    try:
        engine.script("start")
    except Exception:
        engine.script("stop")
        raise
    return engine


def _spark_shuffle_bytes(engine: Engine, since: float) -> int:
    """Shuffle bytes written by the Spark applications that started after `since`, from
    Spark's event logs (engine.sh turns them on for the job server's driver)."""
    written = 0
    for log in (engine.run_dir / "events").iterdir():
        if log.stat().st_mtime < since:
            continue
        for line in log.read_text().splitlines():
            event = json.loads(line)
            if event["Event"] == "SparkListenerTaskEnd":
                metrics = event.get("Task Metrics") or {}
                written += metrics.get("Shuffle Write Metrics", {}).get("Shuffle Bytes Written", 0)
    return written


def _flink_shuffle_bytes(engine: Engine, since: float) -> int:
    """Bytes that Flink jobs started after `since` read through hash-partitioned exchanges
    (the groupings), from the JobManager's REST API: each job's plan says which inputs are
    hash-partitioned, its vertices' metrics how many bytes they read."""
    total = 0
    for job in engine.ui("/jobs/overview")["jobs"]:
        if job["start-time"] / 1000 < since:
            continue
        plan = engine.ui(f"/jobs/{job['jid']}/plan")["plan"]["nodes"]
        hashed = {
            node["id"]
            for node in plan
            for feed in node.get("inputs", [])
            if "HASH" in feed.get("ship_strategy", "").upper()
        }
        for vertex in engine.ui(f"/jobs/{job['jid']}")["vertices"]:
            if vertex["id"] in hashed:
                total += vertex["metrics"]["read-bytes"]
    return total
