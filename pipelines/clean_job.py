"""`python -m pipelines.clean_job --runner=... --config=... [--key=value ...]`: `rmclean clean`
for schedulers that launch a Beam pipeline as `python <file or -m module> <Beam-style flags>`.

Airflow's `BeamRunPythonPipelineOperator` runs `<py_interpreter> <py_options> <py_file>` and then
`--runner=<runner>` and one flag per pipeline option: `--key=value`, a bare `--key` for True,
the flag repeated for a list, JSON for a dict (and always `--labels=airflow-version=...`). That
is `rmclean clean`'s command line without the word `clean`: every rmclean flag takes the Beam
spelling, and what is not ours must be a Beam pipeline option, as for `rmclean clean`.
(`deploy/airflow/rmclean_dag.py` sets `py_options=["-m"]`, `py_file="pipelines.clean_job"`.)
"""

from __future__ import annotations

import sys

from pipelines.cli import main
from pipelines.commands import clean


def run_job(argv: list[str]) -> int:
    return main([clean.NAME, *argv])


if __name__ == "__main__":
    sys.exit(run_job(sys.argv[1:]))
