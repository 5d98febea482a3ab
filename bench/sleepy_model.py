"""A stand-in for a GPU reward model, for measuring how busy the pipeline keeps a device.

`score()` sleeps for a time proportional to the batch's estimated tokens, so a batch costs what
a real forward pass would, while the GIL is released (as it is while CUDA kernels run) and no
CPU is used. One lock per simulated device: two copies placed on one device take turns, as two
models sharing a GPU would. Every call appends one line to a log the benchmark reads back:
`{"device", "pid", "start", "end", "samples", "tokens"}` (wall-clock seconds).

Options (the config's `model_options`): `seconds_per_token`, `log` (the file to append to),
`device` (set by the pipeline's device pool; `sim:0` when the pipeline does not set one).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Sequence

from models.tokens import QwenTokenEstimator
from transforms.core.record import Sample

_DEVICE_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _device_lock(device: str) -> threading.Lock:
    with _LOCKS_GUARD:
        return _DEVICE_LOCKS.setdefault(device, threading.Lock())


class SleepyRewardModel:
    name = "sleepy"

    def __init__(self, options: dict | None = None):
        options = dict(options or {})
        self.seconds_per_token = float(options.pop("seconds_per_token", 1e-4))
        self.log = options.pop("log", None)
        self.device = str(options.pop("device", "sim:0"))
        if options:
            raise ValueError(f"sleepy: unknown model option(s) {sorted(options)}")
        # The same estimate the pipeline batches by (Qwen-VL geometry for plug-in backends).
        self.estimate_tokens = QwenTokenEstimator()

    def score(self, samples: Sequence[Sample]) -> list[float]:
        tokens = sum(self.estimate_tokens(sample) for sample in samples)
        with _device_lock(self.device):
            start = time.time()
            time.sleep(tokens * self.seconds_per_token)
            end = time.time()
        if self.log:
            line = {
                "device": self.device,
                "pid": os.getpid(),
                "start": start,
                "end": end,
                "samples": len(samples),
                "tokens": tokens,
            }
            with open(self.log, "a") as handle:
                handle.write(json.dumps(line) + "\n")
        return [0.0] * len(samples)
