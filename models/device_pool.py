"""One reward-model copy per device, and each batch to whichever copy is free.

`devices:` in the config lists the devices a run uses (`[cuda:0, cuda:1]`), or `auto`: every
GPU this machine shows, else the CPU. The backend is built once per device with its `device`
option set to it; `score_batch` waits for a free copy, scores there (isolating the sample that
breaks a batch) and says which device did it, for how long and what its forward passes
computed (`work.py`), for the run's cost figures.
Thread-safe: the scoring step calls it from one thread per copy, so every copy stays busy.
"""

from __future__ import annotations

import itertools
import os
import queue
import re
import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

from models.base import Reward, RewardModel, ScoreOutcome, score_isolating_failures
from models.work import ModelWork
from transforms.core.record import Sample

AUTO = "auto"
DEVICE_PATTERN = re.compile(r"^[a-z]+(:\d+)?$")


def visible_devices() -> list[str]:
    """Every CUDA device this process can see, else the CPU."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return [f"cuda:{i}" for i in range(count)] or ["cpu"]


def check_devices(spec: str | Sequence[str]) -> str | tuple[str, ...]:
    """`auto`, or distinct device names such as cuda:0 (one name alone is a list of one).

    Raises ValueError naming what is wrong.
    """
    if spec == AUTO:
        return AUTO
    if isinstance(spec, str):
        spec = (spec,)
    if not isinstance(spec, (list, tuple)) or not spec:
        raise ValueError(f"devices must be 'auto' or a list such as [cuda:0, cuda:1], got {spec!r}")
    devices = tuple(str(d).strip() for d in spec)
    bad = [d for d in devices if not DEVICE_PATTERN.match(d)]
    if bad:
        raise ValueError(f"devices: {bad} are not device names such as cpu, cuda:0 or cuda:1")
    if len(set(devices)) != len(devices):
        raise ValueError(f"devices lists a device twice: {list(devices)}")
    return devices


def resolve_devices(spec: str | Sequence[str]) -> list[str]:
    """The devices to load copies on, checked against what this machine has."""
    spec = check_devices(spec)
    if spec == AUTO:
        return visible_devices()
    visible = visible_devices()
    for device in spec:
        if device.startswith("cuda") and device not in visible and device != "cuda":
            raise ValueError(
                f"device {device} is not visible on this machine (it has {visible}); "
                "check devices: in the config and CUDA_VISIBLE_DEVICES"
            )
    return list(spec)


@dataclass(frozen=True)
class ScoredBatch:
    """One batch's outcomes, the device that scored it, and when (wall clock) and how long."""

    outcomes: list[ScoreOutcome]
    device: str
    host: str
    process: int  # the process holding the copy: several may hold copies on one device
    started_at: float
    busy_seconds: float
    work: ModelWork | None = None  # what the copy's forward passes computed, if it says


class DevicePool:
    """Copies of one backend, one per device; batches go to whichever copy is free."""

    def __init__(self, copies: dict[str, RewardModel]):
        if not copies:
            raise ValueError("a device pool needs at least one model copy")
        self._copies = dict(copies)
        self._free: queue.SimpleQueue[str] = queue.SimpleQueue()
        for device in self._copies:
            self._free.put(device)
        first = next(iter(self._copies.values()))
        self.name = getattr(first, "name", "model")
        self._host = socket.gethostname()
        self._process = os.getpid()
        self._turns = itertools.cycle(list(self._copies))
        self._turn_lock = threading.Lock()

    @classmethod
    def load(
        cls, load_copy: Callable[[str], RewardModel], devices: str | Sequence[str] = AUTO
    ) -> DevicePool:
        resolved = resolve_devices(devices)
        check = getattr(load_copy, "check_devices", None)
        if check is not None:
            check(resolved)  # e.g. a plug-in that cannot be placed, on several devices
        return cls({device: load_copy(device) for device in resolved})

    def devices(self) -> list[str]:
        return list(self._copies)

    def device_count(self) -> int:
        return len(self._copies)

    def copy_on(self, device: str) -> RewardModel:
        return self._copies[device]

    def score_batch(self, batch: Sequence[Sample]) -> ScoredBatch:
        batch = list(batch)
        # While this batch waits for a free copy, a copy's helper thread builds its first
        # micro-batch (on the CPU, so whichever copy frees up first can run it).
        head_start = self._head_start(batch)
        device = self._free.get()  # blocks until some copy is free
        copy = self._copies[device]
        try:
            started_at, started = time.time(), time.perf_counter()
            outcomes = score_isolating_failures(copy, batch, head_start)
            busy = time.perf_counter() - started
            meter = getattr(copy, "work", None)
            work = meter.take() if meter is not None else None
        finally:
            self._free.put(device)
        return ScoredBatch(outcomes, device, self._host, self._process, started_at, busy, work)

    def _head_start(self, batch: list[Sample]) -> Future | None:
        """The batch's scoring begun on the next copy's helper thread in turn, if it has one."""
        with self._turn_lock:
            copy = self._copies[next(self._turns)]
        begin = getattr(copy, "head_start", None)
        return begin(batch) if begin is not None else None

    def score(self, samples: Sequence[Sample]) -> list[float | Reward]:
        """The `RewardModel` contract on whichever copy is free (raises if the batch fails)."""
        device = self._free.get()
        try:
            return self._copies[device].score(samples)
        finally:
            self._free.put(device)
