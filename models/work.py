"""What a model copy's forward passes computed, for the run's figures (summary.json, report).

Any backend can report it: it keeps a `WorkMeter` as its `work` attribute and `record`s each
forward pass: the tokens its samples have (real), the positions the language model computed
(padding included), and, where it is cheap to tell, the time spent in the vision tower and in
the language model (`timed_forward`). The device pool `take`s the sum after each handler batch
(retries of a failing batch included: that work was done too) and hands it on with the batch to
the run's figures (`transforms/counts/run_cost.py`).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the record itself travels to the report, which needs no torch
    import torch


def _plus(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else a + b


@dataclass(frozen=True)
class ModelWork:
    """Forward passes and tokens: real (the samples' own) and computed (padding included)."""

    forward_passes: int = 0
    real_tokens: int = 0
    computed_tokens: int = 0
    vision_seconds: float | None = None  # None: not measured
    language_seconds: float | None = None

    def __add__(self, other: ModelWork) -> ModelWork:
        return ModelWork(
            self.forward_passes + other.forward_passes,
            self.real_tokens + other.real_tokens,
            self.computed_tokens + other.computed_tokens,
            _plus(self.vision_seconds, other.vision_seconds),
            _plus(self.language_seconds, other.language_seconds),
        )

    @property
    def padding_fraction(self) -> float | None:
        """Share of computed positions that were padding."""
        if not self.computed_tokens:
            return None
        return 1 - self.real_tokens / self.computed_tokens


class WorkMeter:
    """Sums the work of one model copy until it is taken (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._total = ModelWork()

    def record(
        self,
        real_tokens: int,
        computed_tokens: int,
        vision_seconds: float | None = None,
        language_seconds: float | None = None,
    ) -> None:
        done = ModelWork(
            1, int(real_tokens), int(computed_tokens), vision_seconds, language_seconds
        )
        with self._lock:
            self._total = self._total + done

    def take(self) -> ModelWork | None:
        """The work since the last take (None if no forward pass ran), and start again."""
        with self._lock:
            total, self._total = self._total, ModelWork()
        return total if total.forward_passes else None


@dataclass
class ForwardTimes:
    """Seconds in the vision tower and in the rest of one forward pass (set when it ends)."""

    vision_seconds: float | None = None
    language_seconds: float | None = None


class _Clock:
    """Marks on the device's own timeline (CUDA events: no synchronisation until read) or on
    the host clock elsewhere."""

    def __init__(self, device: torch.device):
        self._cuda = device.type == "cuda"

    def mark(self):
        if not self._cuda:
            return time.perf_counter()
        import torch

        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def seconds(self, start, end) -> float:
        if not self._cuda:
            return end - start
        end.synchronize()
        return start.elapsed_time(end) / 1000.0


@contextlib.contextmanager
def timed_forward(
    device: torch.device, vision: torch.nn.Module | None = None
) -> Iterator[ForwardTimes]:
    """Times the block and, with `vision`, every call of that module inside it (hooks): read
    the result after the block, whose outputs must have reached the host by then."""
    clock = _Clock(device)
    times = ForwardTimes()
    spans: list[list] = []
    hooks = []
    if vision is not None:
        hooks.append(vision.register_forward_pre_hook(lambda *_: spans.append([clock.mark()])))
        hooks.append(vision.register_forward_hook(lambda *_: spans[-1].append(clock.mark())))
    start = clock.mark()
    try:
        yield times
        end = clock.mark()
    finally:
        for hook in hooks:
            hook.remove()
    total = clock.seconds(start, end)
    vision_total = sum(clock.seconds(*span) for span in spans if len(span) == 2)
    times.vision_seconds = vision_total if vision is not None else None
    times.language_seconds = max(0.0, total - vision_total)
