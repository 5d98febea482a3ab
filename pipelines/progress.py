"""Progress a person can watch: Beam metrics counters, plus a periodic log line for local runs.

Runners with their own UI (Dataflow, Flink, Spark) show the counters; the DirectRunner shows
nothing while it works, so each worker process also logs its running totals every few seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

import apache_beam as beam
from apache_beam.metrics import Metrics

from pipelines.steps import METRICS_NAMESPACE
from transforms.record import ErrorRecord
from transforms.route import CLEAN, ERRORS, REVIEW

# Counter names, in the order the progress line shows them (routes share their route names).
READ = "read"
SCORED = "scored"
STAGES = (READ, SCORED, CLEAN, REVIEW, ERRORS)
LOG_INTERVAL_SECONDS = 10.0

_log = logging.getLogger("rmclean.progress")
_lock = threading.Lock()
_totals: Counter[str] = Counter()
_last_logged = [time.monotonic()]


def _tick(stage: str) -> None:
    with _lock:
        _totals[stage] += 1
        now = time.monotonic()
        if now - _last_logged[0] < LOG_INTERVAL_SECONDS:
            return
        _last_logged[0] = now
        line = ", ".join(f"{name} {_totals[name]}" for name in STAGES)
    _log.warning("progress: %s", line)


class CountProgress(beam.DoFn):
    """Pass elements through unchanged, counting them (and errors by reason) as `stage`."""

    def __init__(self, stage: str):
        self._stage = stage
        self._counter = Metrics.counter(METRICS_NAMESPACE, stage)
        self._reason_counters: dict[str, object] = {}

    def process(self, element):
        self._counter.inc()
        if isinstance(element, ErrorRecord):
            name = f"{ERRORS}.{element.stage}.{element.reason}"
            if name not in self._reason_counters:
                self._reason_counters[name] = Metrics.counter(METRICS_NAMESPACE, name)
            self._reason_counters[name].inc()
        _tick(self._stage)
        yield element
