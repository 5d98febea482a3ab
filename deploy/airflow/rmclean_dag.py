"""Scheduled cleaning on Airflow: clean -> compare with the previous run -> (optional) drift gate.

Drop this file into Airflow's DAGs folder and set the RMCLEAN_* variables below in the
scheduler's and workers' environment (or call `build_dag` from a DAG file of your own):

- `clean` runs the pipeline with the Beam provider's `BeamRunPythonPipelineOperator`, as
  `<python> -m pipelines.clean_job --runner=<runner> --config=... --output=<runs>/<run time>`
  (`pipelines/clean_job.py`: `rmclean clean` with Beam-style flags). The run compares itself
  with the previous finished run and adds its line to `<runs>/runs.jsonl` when it finishes.
- `compare` prints that comparison (`rmclean compare NEW --json`; its last line, the JSON, is the
  task's XCom): setting changes, per source the added/removed/changed samples, flagged shares,
  PSI and KS, and the route changes.
- `drift_gate`, only with a drift limit, fails when any source's score PSI is above it, so the
  training job downstream does not start and Airflow's failure alerts (`on_failure_callback`,
  e-mail) fire.

This file imports no rmclean module: Airflow may run in its own environment, with `python`
pointing at the interpreter of the environment rmclean is installed in (`make install`'s
`.venv/bin/python`). By default both share one environment (`pip install 'rmclean[airflow]'`).
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml
from airflow.providers.apache.beam.operators.beam import BeamRunPythonPipelineOperator
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, task
from airflow.sdk.exceptions import AirflowFailException

# The run's folder name, as `rmclean clean` names runs itself (UTC, to the second).
# No single quotes in it: the compare task's command quotes the run's prefix with them.
RUN_NAME = '{{ (logical_date or dag_run.run_after).strftime("%Y%m%d-%H%M%S") }}'


def _resolve(path: str, project_dir: Path) -> str:
    """A config's relative path, as rmclean resolves it when run from the project folder."""
    if "://" in path or os.path.isabs(path):
        return path
    return str((project_dir / path).resolve())


def build_dag(
    dag_id: str,
    config: str,
    *,
    python: str = sys.executable,
    project_dir: str | None = None,
    runner: str = "DirectRunner",
    schedule: str | None = "@weekly",
    runs: str | None = None,
    input_root: str | None = None,
    threshold: float | None = None,
    percentile: float | None = None,
    score_cache: str | None = None,
    drift_psi: float | None = None,
    pipeline_options: dict[str, Any] | None = None,
    dataflow_config: Any = None,
    start_date: datetime = datetime(2025, 1, 1, tzinfo=timezone.utc),
    default_args: dict[str, Any] | None = None,
) -> DAG:
    """The rmclean DAG for one dataset config.

    `config` is the dataset's YAML; its relative paths (`root`, `output`) are taken from
    `project_dir` (default: the config's folder's parent, the rmclean checkout). `runner` is
    passed through: `DirectRunner`, rmclean's presets (`local`, `portable`, `spark`, `flink`,
    `dataflow`) or a Beam runner class (`DataflowRunner` with `dataflow_config`, a
    `DataflowConfiguration`, needs apache-airflow-providers-google). `runs` is the folder the
    runs go in (default: the config's `output`), `score_cache` the shared score cache (default:
    `<runs>/score-cache`); `pipeline_options` adds any rmclean or Beam flag (`{"trust_remote_code":
    True, "direct_num_workers": 4}`); `drift_psi` adds the drift gate.
    """
    config_path = Path(config).resolve()
    project = Path(project_dir).resolve() if project_dir else config_path.parent.parent
    with open(config_path, encoding="utf-8") as handle:
        settings = yaml.safe_load(handle)
    runs = runs or _resolve(str(settings["output"]), project)
    runs = runs.rstrip("/")
    new_run = f"{runs}/{RUN_NAME}"
    options: dict[str, Any] = {
        "config": str(config_path),
        "input": input_root or _resolve(str(settings["root"]), project),
        "output": new_run,
        "score_cache": score_cache or f"{runs}/score-cache",
        "threshold": threshold,
        "percentile": percentile,
        **(pipeline_options or {}),
    }
    with DAG(
        dag_id=dag_id,
        schedule=schedule,
        start_date=start_date,
        catchup=False,
        max_active_runs=1,  # each run compares with the one before it: run them in turn
        default_args=default_args or {},
        tags=["rmclean"],
        doc_md=__doc__,
    ) as dag:
        clean = BeamRunPythonPipelineOperator(
            task_id="clean",
            py_interpreter=python,
            py_options=["-m"],
            py_file="pipelines.clean_job",
            runner=runner,
            pipeline_options={k: v for k, v in options.items() if v is not None},
            dataflow_config=dataflow_config,
        )
        compare = BashOperator(
            task_id="compare",
            bash_command=f"{shlex.quote(python)} -m pipelines.cli compare "
            f"{shlex.quote(new_run)} --json",
        )
        clean >> compare
        if drift_psi is not None:

            @task(task_id="drift_gate")
            def drift_gate(comparison_json: str, limit: float) -> float:
                comparison = json.loads(comparison_json or "null")
                if not comparison:
                    return 0.0  # the dataset's first run: nothing to compare with
                worst = comparison.get("max_psi") or {}
                value = worst.get("value") or 0.0
                if value > limit:
                    raise AirflowFailException(
                        f"score drift: PSI {value:.3f} of {worst.get('source')} "
                        f"({worst.get('on')} samples) is above {limit:g}; see the run's "
                        "report page, section 'Since the last run'"
                    )
                return value

            drift_gate(compare.output, drift_psi)
    return dag


def _from_environment() -> DAG | None:
    """The DAG these variables describe; None (no DAG) until RMCLEAN_CONFIG is set."""
    env = os.environ
    if not env.get("RMCLEAN_CONFIG"):
        return None

    def number(name: str) -> float | None:
        return float(env[name]) if env.get(name) else None

    return build_dag(
        env.get("RMCLEAN_DAG_ID", "rmclean"),
        env["RMCLEAN_CONFIG"],
        python=env.get("RMCLEAN_PYTHON", sys.executable),
        project_dir=env.get("RMCLEAN_PROJECT_DIR"),
        runner=env.get("RMCLEAN_RUNNER", "DirectRunner"),
        schedule=env.get("RMCLEAN_SCHEDULE", "@weekly") or None,
        runs=env.get("RMCLEAN_RUNS"),
        input_root=env.get("RMCLEAN_INPUT"),
        threshold=number("RMCLEAN_THRESHOLD"),
        percentile=number("RMCLEAN_PERCENTILE"),
        drift_psi=number("RMCLEAN_DRIFT_PSI"),
        pipeline_options=json.loads(env.get("RMCLEAN_PIPELINE_OPTIONS") or "{}"),
    )


dag = _from_environment()
