"""The Airflow DAG users drop in (deploy/airflow/rmclean_dag.py), run for real with
`dag.test()` on the bundled sample twice, Airflow on SQLite in a folder of the test's own.

The first run cleans the sample; the dataset then grows by six text samples and the second
run must score only those (the score cache), compare itself with the first and report them,
and its drift gate (set to a tiny PSI) must stop the DAG. Skipped where the `airflow` extra is
not installed, unless RMCLEAN_REQUIRE_AIRFLOW=1 (CI installs it and sets that).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from synth.dataset import write_sample_dataset
from tests.airflow.grow import NEW_RECORDS

REPO = Path(__file__).resolve().parents[1]


def _require_airflow(env: dict[str, str]) -> None:
    """Checked in a process of its own: importing Airflow here would set it up in ~/airflow."""
    probe = subprocess.run(
        [sys.executable, "-c", "import airflow.providers.apache.beam.operators.beam"],
        env=env,
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        message = (
            "Airflow with its Beam provider does not import (make install EXTRAS=dev,ixc,airflow): "
            + probe.stderr.strip().splitlines()[-1]
        )
        if os.environ.get("RMCLEAN_REQUIRE_AIRFLOW") == "1":
            pytest.fail(message)
        pytest.skip(message)


def _airflow_env(home: Path, **rmclean: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "RMCLEAN_"))}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(home / "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
        PYTHONPATH=str(REPO),
        **rmclean,
    )
    return env


@pytest.mark.slow
def test_the_dag_runs_the_sample_twice_and_reports_what_changed(tmp_path):
    home, data, runs, donor = (tmp_path / n for n in ("airflow", "data", "runs", "donor"))
    (home / "dags").mkdir(parents=True)
    shutil.copy(REPO / "deploy" / "airflow" / "rmclean_dag.py", home / "dags")
    write_sample_dataset(data, seed=0)
    write_sample_dataset(donor, seed=1)
    env = _airflow_env(
        home,
        RMCLEAN_DAG_ID="rmclean_sample",
        RMCLEAN_CONFIG=str(REPO / "configs" / "sample.yaml"),
        RMCLEAN_INPUT=str(data),
        RMCLEAN_RUNS=str(runs),
        RMCLEAN_DRIFT_PSI="0.0001",
    )
    _require_airflow(env)
    airflow = str(Path(sys.executable).with_name("airflow"))
    migrate = subprocess.run(
        [airflow, "db", "migrate"], env=env, capture_output=True, text=True, timeout=300
    )
    assert migrate.returncode == 0, migrate.stdout[-2000:] + migrate.stderr[-2000:]
    done = subprocess.run(
        [sys.executable, "-m", "tests.airflow.run_dag_twice", str(data), str(donor)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-4000:]
    first, second = json.loads(log.split("RESULT ", 1)[1].splitlines()[0])

    # The operator launched our entry point with Beam-style flags, and it accepted them.
    assert "-m pipelines.clean_job --runner=DirectRunner --config=" in log
    assert "--score_cache=" in log and "--labels=airflow-version=" in log
    assert first == {
        "state": "success",
        "tasks": {"clean": "success", "compare": "success", "drift_gate": "success"},
    }
    # The second run found six new samples: it compared, then its drift gate stopped the DAG.
    assert second["tasks"] == {"clean": "success", "compare": "success", "drift_gate": "failed"}
    assert second["state"] == "failed"
    assert "score drift: PSI" in log

    history = [json.loads(line) for line in (runs / "runs.jsonl").read_text().splitlines()]
    assert [entry["output"] for entry in history] == [
        str(runs / "20250106-000000"),
        str(runs / "20250113-000000"),
    ]
    summary = json.loads((runs / "20250113-000000" / "report" / "summary.json").read_text())
    # Only the new samples were scored; everything else came from the first run's cache.
    first_scored = history[0]["scoring"]["scored"]
    assert summary["scoring"]["scored"] == NEW_RECORDS
    assert summary["scoring"]["from_cache"] == first_scored
    change = summary["since_last_run"]
    assert change["previous_run"]["run_id"] == history[0]["run_id"]
    assert change["setting_changes"] == []
    text = change["per_source"]["allava_text"]
    assert text["input"] == {"before": 48, "after": 48 + NEW_RECORDS, "change": NEW_RECORDS}
    assert text["samples"] == {
        "added": NEW_RECORDS,
        "removed": 0,
        "changed": 0,
        "unchanged": 48,
        "content_unknown": 0,
    }
    others = {s: v for s, v in change["per_source"].items() if s != "allava_text"}
    assert all(v["samples"]["added"] == v["samples"]["removed"] == 0 for v in others.values())
    assert all(v["scores"]["all"]["psi"] == 0 for v in others.values())
    # The compare task's XCom (its last line) is the same comparison.
    assert '"added": 6' in log
