"""A bounded pool of decoder processes that can be killed.

decord can spin forever at 100% CPU holding the GIL (e.g. on a container that over-reports its
frame count) and has leaked memory on long runs: only a separate process, killed at a
deadline, stops that. Each decoder is a `transforms.media.decode_worker` process started with
`subprocess` (not multiprocessing's spawn, which would re-import the pipeline in every child).
A job is one sample's media; while the decoders work, the caller is free (e.g. to feed the
model). A decoder that times out or dies is killed, its job answered with a `decode_timeout`
or `decoder_crashed` failure, and a fresh one starts on the next job, so a bad video costs one
error record and never the run. Decoders start lazily, up to `size`, as jobs queue up, each
taking a machine-wide slot (`decode_slots`) when the run's processes share a cap, and end
after `idle_exit_s` without work.

Not thread-safe: one thread submits and collects.
"""

from __future__ import annotations

import collections
import os
import socket
import subprocess
import sys
import time
import weakref
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait

import numpy as np

from transforms.core.record import IMAGE
from transforms.media.decode_slots import DecodeSlots
from transforms.media.shared_frames import receive_arrays

DECODER_CRASHED = "decoder_crashed"
DECODE_TIMEOUT = "decode_timeout"
IDLE_EXIT_S = 10.0
# A new decoder imports decord and numpy before it can start a job: its first job is allowed
# this much longer (the job's own timeout runs from when the decoder starts it).
STARTUP_ALLOWANCE_S = 60.0
# How often a pool with work but no free machine-wide slot looks again.
SLOT_RETRY_S = 0.1


@dataclass(frozen=True)
class DecodeJob:
    """One sample's media: (kind, path, bytes) each, decoded as `decode_media` does."""

    job_id: int
    media: tuple[tuple[str, str, bytes], ...]
    fps: float
    max_frames: int
    max_side: int | None
    timeout_s: float

    def message(self) -> tuple:
        return (self.job_id, self.media, self.fps, self.max_frames, self.max_side, self.timeout_s)


@dataclass
class DecodeResult:
    """Frames for every media item, or the failure: (media index, reason, detail)."""

    job_id: int
    frames: list[np.ndarray] | None
    failure: tuple[int, str, str] | None
    seconds: float


def _child_environment() -> dict[str, str]:
    # The child resolves modules as this process does (tests, plug-ins, Beam workers).
    paths = [p for p in sys.path if p and os.path.isdir(p)]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


class _Decoder:
    """One decoder process and the job it is working on."""

    def __init__(self, video_decoder: str | None, idle_exit_s: float, slot: int | None):
        ours, theirs = socket.socketpair()
        command = [sys.executable, "-m", "transforms.media.decode_worker", str(theirs.fileno())]
        command.append(f"{idle_exit_s:g}")
        if video_decoder:
            command.append(video_decoder)
        # The slot's lock goes with the decoder: released whenever it ends, however it ends.
        handed = (theirs.fileno(),) if slot is None else (theirs.fileno(), slot)
        try:
            self.process = subprocess.Popen(
                command, pass_fds=handed, env=_child_environment(), close_fds=True
            )
        finally:
            theirs.close()
            if slot is not None:
                os.close(slot)
        self.connection = Connection(ours.detach())
        self.job: DecodeJob | None = None
        self.deadline = 0.0

    def start_job(self, job: DecodeJob) -> None:
        self.connection.send(job.message())
        self.job = job
        # Until the decoder says it started the job (it may be starting up), allow for that.
        self.deadline = time.monotonic() + STARTUP_ALLOWANCE_S + job.timeout_s

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()
        self.connection.close()


class DecodePool:
    def __init__(
        self,
        size: int,
        video_decoder: str | None = None,
        slots: DecodeSlots | None = None,
        idle_exit_s: float = IDLE_EXIT_S,
    ):
        """`size` decoder processes at most, and no more than `slots` has free on the machine.

        `video_decoder` (`module:function`) replaces decord, for tests.
        """
        if size < 1:
            raise ValueError(f"a decode pool needs at least one process, got {size}")
        self.size = size
        self._video_decoder = video_decoder
        self._slots = slots
        self._idle_exit_s = idle_exit_s
        self._queued: collections.deque[DecodeJob] = collections.deque()
        self._idle: list[_Decoder] = []
        self._busy: dict[Connection, _Decoder] = {}
        _LIVE.add(self)

    @property
    def pending(self) -> int:
        """Jobs submitted and not yet answered."""
        return len(self._queued) + len(self._busy)

    @property
    def processes(self) -> int:
        return len(self._idle) + len(self._busy)

    def submit(self, job: DecodeJob) -> None:
        self._queued.append(job)
        self._dispatch()

    def results(self, block: bool) -> list[DecodeResult]:
        """Answers that are ready; with `block`, waits for at least one if any job is pending."""
        answered: list[DecodeResult] = []
        while True:
            self._dispatch()
            answered += self._collect(self._wait_seconds() if block and not answered else 0.0)
            if answered or not block or not self.pending:
                self._dispatch()
                return answered
            if not self._busy:
                time.sleep(SLOT_RETRY_S)  # every slot of the machine is taken: wait for one

    def close(self) -> None:
        for decoder in [*self._idle, *self._busy.values()]:
            decoder.kill()
        self._idle, self._busy = [], {}
        self._queued.clear()
        if self._slots is not None:
            self._slots.remove_if_unused()
        _LIVE.discard(self)

    def _wait_seconds(self) -> float | None:
        if not self._busy:
            return None
        earliest = min(d.deadline for d in self._busy.values())
        return max(0.0, earliest - time.monotonic())

    def _dispatch(self) -> None:
        while self._queued:
            if self._idle:
                decoder = self._idle.pop()
            elif self.processes < self.size:
                slot = self._slots.take() if self._slots is not None else None
                if self._slots is not None and slot is None:
                    return  # the machine's decoders are all taken, by this run's processes
                decoder = _Decoder(self._video_decoder, self._idle_exit_s, slot)
            else:
                return
            job = self._queued.popleft()
            try:
                decoder.start_job(job)
            except OSError:
                # It died while idle (e.g. the OOM killer): the job has not started, so it
                # goes back to the front of the queue for a fresh decoder.
                decoder.kill()
                self._queued.appendleft(job)
                continue
            self._busy[decoder.connection] = decoder

    def _collect(self, timeout: float | None) -> list[DecodeResult]:
        if not self._busy:
            return []
        answered = []
        for connection in wait(list(self._busy), timeout):
            decoder = self._busy.pop(connection)
            result = self._answer(decoder)
            if result is not None:
                answered.append(result)
        now = time.monotonic()
        for connection, decoder in list(self._busy.items()):
            if now >= decoder.deadline:
                del self._busy[connection]
                decoder.kill()
                job = decoder.job
                detail = f"decoding took longer than {job.timeout_s:g}s; the decoder was killed"
                failure = _failure(job, DECODE_TIMEOUT, detail)
                answered.append(DecodeResult(job.job_id, None, failure, job.timeout_s))
        return answered

    def _answer(self, decoder: _Decoder) -> DecodeResult | None:
        job = decoder.job
        try:
            message = decoder.connection.recv()
            if message[0] == "bye":
                # It ended for idleness as the job arrived: the job never started; redo it.
                decoder.kill()
                self._queued.appendleft(job)
                return None
            if message[0] == "started":
                decoder.deadline = time.monotonic() + job.timeout_s
                self._busy[decoder.connection] = decoder
                return None
            if message[0] == "ok":
                _, job_id, seconds, payload = message
                frames = receive_arrays(decoder.connection, payload)
                result = DecodeResult(job_id, frames, None, seconds)
            else:
                _, job_id, seconds, failure = message
                result = DecodeResult(job_id, None, failure, seconds)
        except (EOFError, OSError) as exc:
            decoder.kill()
            code = decoder.process.returncode
            detail = f"the decoder process died (exit code {code}; {type(exc).__name__})"
            return DecodeResult(job.job_id, None, _failure(job, DECODER_CRASHED, detail), 0.0)
        decoder.job = None
        self._idle.append(decoder)
        return result


# Every pool of this process, so an interrupted run can stop its decoders at once
# (pipelines/interrupt.py) rather than leave them to notice the closed socket.
_LIVE: weakref.WeakSet[DecodePool] = weakref.WeakSet()


def close_all() -> None:
    for pool in list(_LIVE):
        pool.close()


def _failure(job: DecodeJob, reason: str, detail: str) -> tuple[int, str, str]:
    """Blame the first video (what hangs or crashes decoders), else the first media item."""
    index = next((i for i, (kind, _, _) in enumerate(job.media) if kind != IMAGE), 0)
    return index, reason, detail
