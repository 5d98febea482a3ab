"""The same pipeline through Beam's portable Fn API path (what Flink, Spark and Dataflow use)
and the multi-process DirectRunner: unpicklable state or non-deterministic coders fail here."""

from __future__ import annotations

import pytest

from pipelines.jobs.clean import run
from pipelines.runners import beam_args_for
from tests.helpers import tiny_config

RUNNERS = {name: beam_args_for(name, []) for name in ("local", "portable")}


@pytest.mark.slow
@pytest.mark.parametrize("runner", sorted(RUNNERS))
def test_runner_gives_the_same_routes(tiny_dataset, tmp_path, runner):
    summary = run(tiny_config(tiny_dataset, tmp_path / "out"), RUNNERS[runner])
    assert summary["counts"]["per_source"] == {
        "images": {"input": 6, "clean": 1, "review": 2, "errors": 3},
        "videos": {"input": 2, "clean": 1, "review": 1, "errors": 0},
        "text": {"input": 1, "clean": 1, "review": 0, "errors": 0},
    }
    assert (tmp_path / "out" / "_SUCCESS").exists()
    assert (tmp_path / "out" / "report" / "index.html").exists()
