"""Progress a person can watch: Beam metrics counters, a progress bar, or periodic log lines.

Runners with their own UI (Dataflow, Flink, Spark) show the counters. A local run shows a
progress bar on a terminal (samples routed of those read, per second, time left) drawn by the
CLI's process, where the default runner's steps run; worker processes of `--runner local`,
and runs whose stderr is not a terminal, log their running totals every few seconds instead.
Every sample is read before any is routed (the shuffle waits for all of them), so once routing
starts the number read is the total and the time left can be estimated.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator

import apache_beam as beam
from apache_beam.metrics import Metrics

from transforms.beam.steps import METRICS_NAMESPACE
from transforms.core.record import ErrorRecord
from transforms.core.routes import CLEAN, ERRORS, REVIEW

# Counter names, in the order the progress line shows them (routes share their route names).
READ = "read"
SCORED = "scored"
STAGES = (READ, SCORED, CLEAN, REVIEW, ERRORS)
LOG_INTERVAL_SECONDS = 10.0
BAR_INTERVAL_SECONDS = 0.5
BAR_WIDTH = 24

_log = logging.getLogger("rmclean.progress")
_lock = threading.Lock()
_totals: Counter[str] = Counter()
_last_logged: list[float] = []  # when this process last logged its totals (or first counted)
_bar_shown = threading.Event()  # set while a ProgressBar draws this process's totals


def _tick(stage: str) -> None:
    with _lock:
        _totals[stage] += 1
        if _bar_shown.is_set():
            return
        now = time.monotonic()
        if not _last_logged:
            _last_logged.append(now)  # the first line comes an interval after counting starts
        if now - _last_logged[0] < LOG_INTERVAL_SECONDS:
            return
        _last_logged[0] = now
        line = ", ".join(f"{name} {_totals[name]}" for name in STAGES)
    _log.info("progress: %s", line)


def totals() -> dict[str, int]:
    with _lock:
        return {name: _totals[name] for name in STAGES}


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


def render(counts: dict[str, int], seconds: float, rate: float | None) -> str:
    """One line: a bar of samples routed out of those read, the rate and the time left."""
    read = counts[READ]
    routed = counts[CLEAN] + counts[REVIEW] + counts[ERRORS]
    share = routed / read if read else 0.0
    filled = min(BAR_WIDTH, int(share * BAR_WIDTH))
    bar = "#" * filled + "." * (BAR_WIDTH - filled)
    speed = f"{rate:.1f}/s" if rate else "-/s"
    left = (read - routed) / rate if rate and routed else None
    eta = _clock(left) if left is not None else "--:--"
    return (
        f"[{bar}] {routed}/{read} routed {speed} left {eta} elapsed {_clock(seconds)} | "
        f"scored {counts[SCORED]} clean {counts[CLEAN]} review {counts[REVIEW]} "
        f"errors {counts[ERRORS]}"
    )


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class ProgressBar:
    """Redraws `render(...)` on one terminal line until stopped; the rate is routed samples
    per second over the last ~10 seconds, so it follows the model rather than start-up."""

    def __init__(self, stream=None, interval: float = BAR_INTERVAL_SECONDS):
        self._stream = stream or sys.stderr
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._draw_until_stopped, daemon=True)
        self._history: list[tuple[float, int]] = []

    def __enter__(self) -> ProgressBar:
        self._started = time.monotonic()
        _bar_shown.set()
        # A log line printed while the bar is up starts on a cleared line, not after the bar.
        self._clear = _ClearLineFirst(self._stream)
        for handler in logging.getLogger().handlers:
            handler.addFilter(self._clear)
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        _bar_shown.clear()
        for handler in logging.getLogger().handlers:
            handler.removeFilter(self._clear)
        self._stream.write("\r\x1b[K")  # leave the line to the summary that follows
        self._stream.flush()

    def _draw_until_stopped(self) -> None:
        while not self._stop.wait(self._interval):
            counts = totals()
            now = time.monotonic()
            routed = counts[CLEAN] + counts[REVIEW] + counts[ERRORS]
            self._history = [(t, n) for t, n in self._history if now - t <= 10.0]
            self._history.append((now, routed))
            first_time, first_routed = self._history[0]
            rate = (routed - first_routed) / (now - first_time) if now > first_time else None
            line = render(counts, now - self._started, rate)
            self._stream.write("\r\x1b[K" + line)
            self._stream.flush()


class _ClearLineFirst(logging.Filter):
    def __init__(self, stream):
        super().__init__()
        self._stream = stream

    def filter(self, record: logging.LogRecord) -> bool:
        self._stream.write("\r\x1b[K")
        return True


@contextlib.contextmanager
def shown(stream=None) -> Iterator[None]:
    """A progress bar while the block runs, if `stream` (stderr) is a terminal."""
    stream = stream or sys.stderr
    if not stream.isatty():
        yield
        return
    with ProgressBar(stream):
        yield
