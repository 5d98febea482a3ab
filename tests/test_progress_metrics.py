"""Beam metrics counters a runner UI shows: read, scored, per route, errors by reason."""

from collections import Counter

import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter

from pipelines.clean import build
from pipelines.steps import METRICS_NAMESPACE
from tests.helpers import tiny_config


def test_counters_match_the_routes(tiny_dataset, tmp_path):
    pipeline = beam.Pipeline()
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
