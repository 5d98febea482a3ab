"""Scoring that never makes the pipeline wait for the model, nor the model for the pipeline.

Beam's RunInference DoFn scores one batch at a time, in the thread that feeds it: with the
in-process runner (one thread) the devices would take turns and the decoding upstream would
stop while any of them computes. `ScoreAhead` keeps RunInference's parts (the handler's
`load_model` / `batch_elements_kwargs`, Beam's `BatchElements`, `Shared` and
`MultiProcessShared` for sharing the loaded model) but scores each batch on a thread of its
own: one per model copy, so every device has a batch while the feeding thread goes back to
decoding. At most one batch per copy waits beyond those being scored, and a bundle ends only
when all of its batches are scored, so nothing is lost or emitted twice.

Outputs: `PredictionResult`s (main) and, on `batches`, one `BatchStat` per batch: which device
scored it, when, for how long, how many samples and estimated tokens, and what the model's forward
passes computed when the backend says (`models/work.py`; combined in `run_cost.py`).
"""

from __future__ import annotations

import concurrent.futures
import uuid
import weakref
from dataclasses import dataclass

import apache_beam as beam
from apache_beam.ml.inference.base import PredictionResult
from apache_beam.utils import multi_process_shared, shared

from models.base import ScoreOutcome
from models.handler import RewardModelHandler
from models.work import ModelWork
from transforms.beam.bundle_outputs import in_global_window

BATCHES_TAG = "batches"


@dataclass(frozen=True)
class BatchStat:
    """One scored batch: light, for the run's batch and cost figures."""

    model: str
    device: str
    host: str
    process: int  # the process holding the model copy
    samples: int
    tokens: int | None  # None: the backend has no token estimate
    started_at: float  # wall clock, comparable across processes and machines
    busy_seconds: float  # inside the model's score(), retries of a failing batch included
    work: ModelWork | None = None  # tokens and stage times, when the backend reports them


class _LoadedModel:
    """Holds the device pool so Beam's `Shared` (weak references) keeps it for the process."""

    def __init__(self, handler: RewardModelHandler):
        self.pool = handler.load_model()


class _ScoreOnFreeCopies(beam.DoFn):
    def __init__(self, handler: RewardModelHandler, share_across_processes: bool, tag: str):
        self._handler = handler
        self._share_across_processes = share_across_processes
        self._tag = tag
        self._shared = shared.Shared()

    def setup(self):
        if self._share_across_processes:
            # One copy per device per machine, served to every worker process of the machine.
            self._pool = multi_process_shared.MultiProcessShared(
                self._handler.load_model, tag=self._tag, always_proxy=True
            ).acquire()
        else:
            self._loaded = self._shared.acquire(lambda: _LoadedModel(self._handler), self._tag)
            self._pool = self._loaded.pool
        # Every copy busy, and one more batch already handed over (for a shared model: already
        # sent to its process), waiting for the first copy to free up.
        self._limit = int(self._pool.device_count()) + 1
        self._threads = concurrent.futures.ThreadPoolExecutor(
            max_workers=self._limit, thread_name_prefix="rmclean-score"
        )
        self._in_flight: list[concurrent.futures.Future] = []
        _LIVE.add(self)

    def start_bundle(self):
        # A failed bundle's batches are retried with it: let them finish and drop them.
        concurrent.futures.wait(self._in_flight)
        self._in_flight = []

    def process(self, batch):
        self._in_flight.append(self._threads.submit(self._score, list(batch)))
        yield from self._finished(block=False)
        while len(self._in_flight) > self._limit:
            yield from self._finished(block=True)

    def finish_bundle(self):
        while self._in_flight:
            yield from map(in_global_window, self._finished(block=True))

    def teardown(self):
        # Stays in _LIVE: when a run is interrupted Beam tears its steps down before the CLI
        # asks them for the batches they finished (`unpassed`).
        threads = getattr(self, "_threads", None)
        if threads is not None:
            threads.shutdown(wait=True)

    def unpassed(self, wait_s: float) -> list[PredictionResult]:
        """Predictions scored but not yet passed on (waiting up to `wait_s` for batches still
        being scored), for an interrupted run to keep."""
        concurrent.futures.wait(list(self._in_flight), timeout=wait_s)
        return [p for future in self._in_flight if future.done() for p in future.result()[0]]

    def _score(self, batch: list) -> tuple[list[PredictionResult], BatchStat]:
        """On a scoring thread: the whole batch, every failure an outcome without a score."""
        handler = self._handler
        estimates = [handler.estimate_tokens(sample) for sample in batch]
        tokens = None if None in estimates else sum(estimates)
        try:
            predictions, scored = handler.score_batch(batch, self._pool)
            device, host, process = scored.device, scored.host, scored.process
            started_at, busy, work = scored.started_at, scored.busy_seconds, scored.work
        except Exception as exc:  # noqa: BLE001 - e.g. the shared model's process died
            error = f"the model could not be reached: {type(exc).__name__}: {exc}"[:500]
            outcome = ScoreOutcome(None, error)
            predictions = [
                PredictionResult(example=s, inference=outcome, model_id=handler.model_name)
                for s in batch
            ]
            device, host, process, started_at, busy, work = "unreachable", "", 0, 0.0, 0.0, None
        stat = BatchStat(
            handler.model_name, device, host, process, len(batch), tokens, started_at, busy, work
        )
        return predictions, stat

    def _finished(self, block: bool):
        if block and self._in_flight:
            concurrent.futures.wait(self._in_flight, return_when=concurrent.futures.FIRST_COMPLETED)
        done = [future for future in self._in_flight if future.done()]
        self._in_flight = [future for future in self._in_flight if not future.done()]
        for future in done:
            predictions, stat = future.result()
            yield from predictions
            yield beam.pvalue.TaggedOutput(BATCHES_TAG, stat)


# Every scoring step of this process, so an interrupted run keeps what they have scored.
_LIVE: weakref.WeakSet[_ScoreOnFreeCopies] = weakref.WeakSet()


def unpassed_predictions(wait_s: float) -> list[PredictionResult]:
    """What every scoring step of this process has scored and not yet passed on."""
    return [p for step in list(_LIVE) for p in step.unpassed(wait_s)]


class ScoreAhead(beam.PTransform):
    """Samples -> PredictionResults (main) and BatchStats (`batches`).

    `share_across_processes`: one model copy per device per machine, shared by the worker
    processes (for `large_model` when the runner runs several); otherwise one per process.
    """

    def __init__(self, handler: RewardModelHandler, share_across_processes: bool = False):
        super().__init__()
        self._handler = handler
        self._share_across_processes = share_across_processes
        # Unique per pipeline: a later run in the same process must not reuse these models.
        self._tag = f"rmclean-{handler.model_name}-{uuid.uuid4().hex}"

    def expand(self, samples):
        batches = samples | "BatchByBudget" >> beam.BatchElements(
            **self._handler.batch_elements_kwargs()
        )
        return batches | "ScoreOnFreeDevices" >> beam.ParDo(
            _ScoreOnFreeCopies(self._handler, self._share_across_processes, self._tag)
        ).with_outputs(BATCHES_TAG, main="predictions")
