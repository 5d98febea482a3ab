"""Beam metrics counters a runner UI shows: read, scored, per route, errors by reason."""

from collections import Counter

import apache_beam as beam
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.jobs.clean import build
from pipelines.runners import beam_args_for
from tests.helpers import tiny_config
from transforms.beam.steps import METRICS_NAMESPACE


@pytest.mark.slow
def test_counters_match_the_routes(tiny_dataset, tmp_path):
    # On the runner `rmclean clean` chooses when none is named.
    pipeline = beam.Pipeline(options=PipelineOptions(beam_args_for(None, [])))
    build(pipeline, tiny_config(tiny_dataset, tmp_path / "out"))
    result = pipeline.run()
    result.wait_until_finish()
    counters = result.metrics().query(MetricsFilter().with_namespace(METRICS_NAMESPACE))
    # A counter is reported per step; routes counted on several branches add up.
    totals = Counter()
    for counter in counters["counters"]:
        totals[counter.key.metric.name] += counter.committed
    assert totals["read"] == 9 and totals["scored"] == 5
    assert (totals["clean"], totals["review"], totals["errors"]) == (3, 3, 3)
    assert totals["errors.fetch.media_missing"] == 1
    assert totals["errors.decode.corrupt_image"] == 1
    assert totals["errors.score.non_finite_score"] == 1


def test_the_bar_shows_routed_of_read_the_rate_and_the_time_left():
    from pipelines.progress import render

    counts = {"read": 400, "scored": 90, "clean": 80, "review": 15, "errors": 5}
    line = render(counts, seconds=75, rate=20.0)
    assert line.startswith("[######..................] 100/400 routed 20.0/s left 0:15")
    assert "elapsed 1:15" in line and "errors 5" in line
    assert "left --:--" in render({**counts, "clean": 0, "review": 0, "errors": 0}, 3, None)


@pytest.mark.slow
def test_a_terminal_gets_a_bar_and_a_pipe_gets_none(tiny_dataset, tmp_path):
    import io

    from pipelines import progress
    from pipelines.jobs.clean import run

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal, pipe = Terminal(), io.StringIO()
    with progress.shown(terminal):
        run(tiny_config(tiny_dataset, tmp_path / "a"))
    with progress.shown(pipe):
        run(tiny_config(tiny_dataset, tmp_path / "b"))
    assert "routed" in terminal.getvalue() and terminal.getvalue().endswith("\r\x1b[K")
    assert pipe.getvalue() == ""
