"""Run the rmclean DAG with `dag.test()` on the sample: once, and again after the dataset grew.
Run by tests/test_airflow_dag.py
in a process of its own, with AIRFLOW_HOME, a SQLite database, a DAGs folder holding
deploy/airflow/rmclean_dag.py and its RMCLEAN_* variables set; prints one JSON line of what
happened."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

from tests.airflow.grow import grow_text_source


def load_dag():
    path = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / "rmclean_dag.py"
    spec = importlib.util.spec_from_file_location("rmclean_dag", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


def main(data: str, grow_with: str) -> None:
    results = []
    for day in (6, 13):
        if day == 13:
            grow_text_source(Path(data), Path(grow_with))
        dag_run = load_dag().test(logical_date=datetime(2025, 1, day, tzinfo=timezone.utc))
        tasks = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}
        results.append({"state": str(dag_run.state), "tasks": tasks})
    print("RESULT " + json.dumps(results))


if __name__ == "__main__":
    main(*sys.argv[1:])
