"""The same pipeline through Beam's portable Fn API path (what Flink, Spark and Dataflow use)
and the multi-process DirectRunner: unpicklable state or non-deterministic coders fail here."""

from __future__ import annotations

import pytest

from pipelines.jobs.clean import run
from tests.helpers import tiny_config


@pytest.mark.slow
@pytest.mark.parametrize(
    ("runner", "beam_runner"), [("local", "FnApiRunner"), ("portable", "PortableRunner")]
)
def test_runner_gives_the_same_routes(tiny_dataset, tmp_path, runner, beam_runner):
    # The preset by name, as `rmclean clean --runner` takes it.
    summary = run(tiny_config(tiny_dataset, tmp_path / "out"), runner=runner)
    assert summary["runner"] == beam_runner
    assert summary["counts"]["per_source"] == {
        "images": {"input": 6, "clean": 1, "review": 2, "errors": 3},
        "videos": {"input": 2, "clean": 1, "review": 1, "errors": 0},
        "text": {"input": 1, "clean": 1, "review": 0, "errors": 0},
    }
    assert (tmp_path / "out" / "_SUCCESS").exists()
    assert (tmp_path / "out" / "report" / "index.html").exists()
