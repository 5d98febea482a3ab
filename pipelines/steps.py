"""A guarded per-sample Beam step: a function's Sample results go on, its failures become data.

Every step that touches user data runs through `SampleStep`, so a bug or an unforeseen input
anywhere costs one error record, never the job and never a silent drop.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics

from transforms.record import ErrorRecord, Sample

ERRORS_TAG = "errors"
METRICS_NAMESPACE = "rmclean"


class SampleStep(beam.DoFn):
    """Apply `fn(sample, *args)` -> Sample | ErrorRecord; tag ErrorRecords to `errors`."""

    def __init__(self, stage: str, fn: Callable[..., Sample | ErrorRecord], *args: Any):
        self._stage = stage
        self._fn = fn
        self._args = args
        self._passed = Metrics.counter(METRICS_NAMESPACE, f"{stage}_ok")
        self._failed = Metrics.counter(METRICS_NAMESPACE, f"{stage}_errors")

    def process(self, sample: Sample):
        started = time.perf_counter()
        try:
            result = self._fn(sample, *self._args)
        except Exception as exc:  # noqa: BLE001 - recorded with its traceback, not swallowed
            tail = traceback.format_exc(limit=3).strip().splitlines()[-1]
            detail = f"unexpected {type(exc).__name__} in {self._stage}: {exc} ({tail})"[:1000]
            result = ErrorRecord.for_sample(sample, self._stage, "unexpected_error", detail)
        if isinstance(result, ErrorRecord):
            self._failed.inc()
            yield beam.pvalue.TaggedOutput(ERRORS_TAG, result)
            return
        result.timings[self._stage] = result.timings.get(self._stage, 0.0) + (
            time.perf_counter() - started
        )
        self._passed.inc()
        yield result


def apply_step(pcoll, label: str, stage: str, fn, *args):
    """(samples, errors) after running `fn` on every sample of `pcoll`."""
    outputs = pcoll | label >> beam.ParDo(SampleStep(stage, fn, *args)).with_outputs(
        ERRORS_TAG, main="samples"
    )
    return outputs.samples, outputs[ERRORS_TAG]


class SplitErrors(beam.DoFn):
    """Readers yield Samples and ErrorRecords mixed; send them to separate outputs."""

    def process(self, item):
        if isinstance(item, ErrorRecord):
            yield beam.pvalue.TaggedOutput(ERRORS_TAG, item)
        else:
            yield item
