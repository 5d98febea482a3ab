"""`python -m pipelines.clean_job`: `rmclean clean` as Airflow's Beam operator calls it.

The operator (apache-airflow-providers-apache-beam's BeamRunPythonPipelineOperator) runs
`<python> -m pipelines.clean_job --runner=<runner>` followed by one flag per pipeline option,
written by its `beam_options_to_args`: `--key=value`, a bare `--key` for True, nothing for
None or False, the flag repeated for a list, and `--labels=airflow-version=...` always. The
DAG test runs the real operator; this checks the same spelling of every rmclean flag quickly.
"""

from __future__ import annotations

import json

import pytest

from pipelines.clean_job import run_job
from tests.helpers import TEST_MODEL
from tests.test_cli import write_config


@pytest.mark.slow
def test_every_flag_in_beam_spelling_runs_the_job(tiny_dataset, tmp_path, capsys):
    config = write_config(tmp_path, tiny_dataset)
    output = tmp_path / "runs" / "first"
    argv = [
        "--runner=DirectRunner",
        f"--config={config}",
        f"--input={tiny_dataset}",
        f"--output={output}",
        "--threshold=-2.0",
        f"--model={TEST_MODEL}",
        "--format=parquet",
        f"--score_cache={tmp_path / 'cache'}",
        "--max_error_fraction=0.5",
        "--trust_remote_code",
        "--labels=airflow-version=v3-3-2",
        "--direct_num_workers=1",
    ]
    assert run_job(argv) == 0, capsys.readouterr().err
    summary = json.loads((output / "report" / "summary.json").read_text())
    assert summary["runner"] == "DirectRunner" and summary["threshold"] == -2.0
    assert summary["counts"]["total"]["input"] == 9
    assert (tmp_path / "cache").is_dir()
    # The same run again, as the operator writes booleans: bare flags.
    assert run_job([*argv[:3], f"--output={output}", "--overwrite", "--no_score_cache"]) == 0


def test_a_mistyped_option_is_refused_in_one_line(tmp_path, capsys):
    assert run_job(["--runner=DirectRunner", "--config=x.yaml", "--treshold=-2"]) == 2
    err = capsys.readouterr().err.strip()
    assert "did you mean --threshold?" in err and len(err.splitlines()) == 1
