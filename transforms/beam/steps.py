"""Guarded Beam steps: a function's results go on, any failure on a record becomes data.

Every step that handles a record runs through one of these, so a bug or an unforeseen input
anywhere costs one error record, never the job and never a silent drop:
- `SampleStep` for a function of one sample (fetch, rules, cache lookup, decode, routing, ...);
- `GroupStep` for a function of a group of samples (the shuffle's groups): if it fails part
  way, every sample of the group it has not passed on yet becomes an error record.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics

from transforms.core.record import ErrorRecord, Sample

ERRORS_TAG = "errors"
METRICS_NAMESPACE = "rmclean"


def unexpected_error(sample: Sample, stage: str, exc: BaseException) -> ErrorRecord:
    """The error record for an exception nobody foresaw, with where it came from."""
    tail = traceback.format_exc(limit=3).strip().splitlines()[-1]
    detail = f"unexpected {type(exc).__name__} in {stage}: {exc} ({tail})"[:1000]
    return ErrorRecord.for_sample(sample, stage, "unexpected_error", detail)


class SampleStep(beam.DoFn):
    """Apply `fn(element, *args)`; ErrorRecords (returned or raised) go to `errors`.

    `args` are given to `beam.ParDo(SampleStep(...), *args)`, so side inputs work.

    `fn` returns one output: a Sample, an ErrorRecord, a `TaggedOutput` (e.g. rules sending a
    sample to review) or any other value (e.g. a (key, sample) pair). `sample_of` finds the
    sample inside the element for the error record (the element itself by default).
    """

    def __init__(
        self,
        stage: str,
        fn: Callable[..., Any],
        sample_of: Callable[[Any], Sample] | None = None,
    ):
        self._stage = stage
        self._fn = fn
        self._sample_of = sample_of
        self._passed = Metrics.counter(METRICS_NAMESPACE, f"{stage}_ok")
        self._failed = Metrics.counter(METRICS_NAMESPACE, f"{stage}_errors")

    def process(self, element, *args):
        started = time.perf_counter()
        try:
            result = self._fn(element, *args)
        except Exception as exc:  # noqa: BLE001 - recorded with its traceback, not swallowed
            sample = self._sample_of(element) if self._sample_of else element
            result = unexpected_error(sample, self._stage, exc)
        if isinstance(result, ErrorRecord):
            self._failed.inc()
            yield beam.pvalue.TaggedOutput(ERRORS_TAG, result)
            return
        if isinstance(result, Sample):
            result.timings[self._stage] = result.timings.get(self._stage, 0.0) + (
                time.perf_counter() - started
            )
        self._passed.inc()
        yield result


class GroupStep(beam.DoFn):
    """Apply `fn((key, samples))`, a generator of Samples and ErrorRecords, one per sample.

    Each output answers one input sample (matched by origin, which readers make unique). If
    `fn` raises part way, the samples it has not answered yet become error records, so a broken
    archive or a reader bug costs the samples of that group and nothing else.
    """

    def __init__(self, stage: str, fn: Callable[[tuple[Any, Iterable[Sample]]], Iterator[Any]]):
        self._stage = stage
        self._fn = fn

    def process(self, group):
        key, samples = group
        samples = list(samples)  # light records: the shuffle already held them
        unanswered = {_identity(s): s for s in samples}
        try:
            for item in self._fn((key, samples)):
                unanswered.pop(_identity(item), None)
                if isinstance(item, ErrorRecord):
                    yield beam.pvalue.TaggedOutput(ERRORS_TAG, item)
                else:
                    yield item
        except Exception as exc:  # noqa: BLE001 - the rest of the group becomes error records
            for sample in unanswered.values():
                yield beam.pvalue.TaggedOutput(
                    ERRORS_TAG, unexpected_error(sample, self._stage, exc)
                )


def _identity(item: Sample | ErrorRecord) -> tuple[str, str, str | None]:
    return (item.source, item.origin, item.id)


def guarded(pcoll, label: str, stage: str, fn, *args, tags=(), sample_of=None):
    """`fn` on every element of `pcoll` under the one error policy (see SampleStep).

    Returns Beam's tagged outputs: `samples` (the main one), `errors`, and each of `tags`.
    """
    step = SampleStep(stage, fn, sample_of=sample_of)
    return pcoll | label >> beam.ParDo(step, *args).with_outputs(ERRORS_TAG, *tags, main="samples")


class SplitErrors(beam.DoFn):
    """Readers yield Samples and ErrorRecords mixed; send them to separate outputs."""

    def process(self, item):
        if isinstance(item, ErrorRecord):
            yield beam.pvalue.TaggedOutput(ERRORS_TAG, item)
        else:
            yield item
