"""Token-budget micro-batches: how a backend splits the handler's batch into forward passes.

Samples are sorted by their token count and grouped so that each group fits the budget: its
padded size (count x longest) for a padded forward, its total for a packed one
(`packing.py`); a sample longer than the model reads is refused, never cut. Every group's inputs
are built on a helper thread ahead of its forward pass, the first one included: the device pool
starts the next batch's first group while the previous batch still runs (`head_start`).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from models.base import Reward, SampleTooLong
from transforms.core.record import Sample

_PREPARER_LOCK = threading.Lock()


def micro_batches(
    costs: Sequence[int],
    max_tokens: int | None,
    max_size: int | None = None,
    packed: bool = False,
) -> list[list[int]]:
    """Indices grouped shortest-first so that each group fits the budget: size x longest
    (padded), or the sum of the costs (`packed`).

    A sample over the budget on its own still gets a group of one (the model decides whether
    it fits). `max_tokens=None` means one group (in the original order).
    """
    if not costs:
        return []
    if max_tokens is None and max_size is None:
        return [list(range(len(costs)))]
    budget = max_tokens if max_tokens is not None else math.inf
    size_cap = max_size if max_size is not None else len(costs)
    groups: list[list[int]] = []
    current: list[int] = []
    longest = total = 0
    for index in sorted(range(len(costs)), key=lambda i: costs[i]):
        cost = max(1, int(costs[index]))
        grown = total + cost if packed else max(longest, cost) * (len(current) + 1)
        if current and (len(current) >= size_cap or grown > budget):
            groups.append(current)
            current, longest, total = [], 0, 0
        current.append(index)
        longest, total = max(longest, cost), total + cost
    groups.append(current)
    return groups


def score_in_micro_batches(
    samples: Sequence[Sample],
    costs: Sequence[int],
    prepare: Callable[[list[Sample]], Any],
    forward: Callable[[Any], list[float | Reward]],
    max_tokens: int | None,
    max_size: int | None = None,
    ahead: Executor | None = None,
    packed: bool = False,
) -> list[float | Reward]:
    """Run `forward(prepare(group))` on token-budget groups; return scores in input order."""
    groups = micro_batches(costs, max_tokens, max_size, packed)
    return score_groups(samples, groups, prepare, forward, ahead)


def score_groups(
    samples: Sequence[Sample],
    groups: list[list[int]],
    prepare: Callable[[list[Sample]], Any],
    forward: Callable[[Any], list[float | Reward]],
    ahead: Executor | None = None,
    first: Any = None,
) -> list[float | Reward]:
    """Run `forward(prepare(group))` on each group; return scores (or `Reward`s) in input order.

    `first`: the first group's inputs, already prepared. With `ahead` (an executor of one
    thread), each next group's inputs are prepared while the current group's forward pass
    runs, so the device does not wait for the CPU work of building inputs (resizing, patching,
    tokenizing).
    """
    scores: list[float | Reward | None] = [None] * len(samples)

    def inputs_of(group: list[int]) -> Any:
        return prepare([samples[i] for i in group])

    pending: Future | None = None
    try:
        for number, group in enumerate(groups):
            if number == 0 and first is not None:
                inputs = first
            elif ahead is None:
                inputs = inputs_of(group)
            else:
                inputs = (pending or ahead.submit(inputs_of, group)).result()
            following = groups[number + 1] if number + 1 < len(groups) else None
            pending = ahead.submit(inputs_of, following) if ahead and following else None
            group_scores = forward(inputs)
            if len(group_scores) != len(group):
                raise RuntimeError(f"backend returned {len(group_scores)} scores for {len(group)}")
            for index, value in zip(group, group_scores, strict=True):
                scores[index] = value if isinstance(value, Reward) else float(value)
    finally:
        if pending is not None:
            # A failed forward leaves the next group in preparation: let it finish, so the
            # retry (the handler halves the batch) never shares the tokenizer with it.
            wait([pending])
    return scores  # type: ignore[return-value]


def refuse_too_long(samples: Sequence[Sample], counts: Sequence[int], max_length: int) -> None:
    """Raise `SampleTooLong` for the first sample over `max_length` tokens.

    Models cut such input from the end, which is where the reward is read: the score would be
    meaningless, so the sample goes to errors/ instead. Raised before any forward pass, so the
    handler's halving isolates it without scoring anything twice.
    """
    for sample, count in zip(samples, counts, strict=True):
        if count > max_length:
            raise SampleTooLong(
                f"sample {sample.id}: {count} tokens, more than the model's max_length "
                f"{max_length}; cutting it would drop the end the reward is read from"
            )


@dataclass(frozen=True)
class ScoringPlan:
    """A handler batch ready to score: what is scored (the samples, or with per-turn cuts the
    cuts and the samples), its micro-batches and the first one's inputs. `turns`, with cuts:
    per sample, (where its scores start, how many are turn scores, how many in all; the last
    is the sample's own)."""

    samples: list[Sample]
    groups: list[list[int]]
    first: Any
    turns: list[tuple[int, int, int]] | None = None


class MicroBatchedModel:
    """Mixin for backends: `score` splits the handler's batch into token-budget micro-batches.

    Subclasses set `estimate_tokens`, `max_batch_tokens`, `max_batch_size` and implement
    `_forward(inputs) -> list[float | Reward]` (one forward pass) over what `_prepare(samples)`
    builds (by default the samples themselves); `packed` backends budget micro-batches by their
    total tokens rather than their padded size. With `prepare_ahead`, everything that builds inputs
    (token counts included: it may tokenize) runs on one helper thread per model copy, each
    micro-batch while the previous one runs, and `head_start` lets the device pool start a
    batch's first micro-batch before a copy is free for it. A backend whose model reads at
    most `max_length` tokens sets it and counts tokens exactly in `sample_tokens`; longer
    samples are refused (`SampleTooLong`), never cut.
    """

    max_length: int | None = None
    prepare_ahead: bool = False
    packed: bool = False

    def sample_tokens(self, sample: Sample) -> int:
        """This backend's token count for one sample (the estimate unless it counts exactly)."""
        return self.estimate_tokens(sample)

    def _prepare(self, samples: list[Sample]) -> Any:
        return samples

    def _turn_cuts(self, sample: Sample) -> list[Sample] | None:
        """The cuts scored beside `sample` to give each assistant turn a score (see
        `chat.assistant_turn_cuts`), or None: a backend that reads one reward at the end
        scores per turn only this way, and only when asked to (it costs forward work)."""
        return None

    def score(self, samples: Sequence[Sample]) -> list[float | Reward]:
        return self.finish(self.begin(samples))

    def begin(self, samples: Sequence[Sample]) -> Future:
        """Start scoring `samples`: count their tokens, refuse the too-long, group them and
        prepare the first group, on the helper thread with `prepare_ahead` (else here, now)."""
        samples = list(samples)
        if self.prepare_ahead:
            return self._preparer().submit(self._plan, samples)
        started: Future = Future()
        try:
            started.set_result(self._plan(samples))
        except Exception as exc:  # noqa: BLE001 - raised again by finish(), as score() would
            started.set_exception(exc)
        return started

    def head_start(self, samples: Sequence[Sample]) -> Future | None:
        """`begin` for a batch that waits for a free copy, or None without a helper thread
        (preparing on the waiting thread would share this copy's tokenizer with its forward
        pass). Its inputs are on the CPU: any copy of the model can `finish` it."""
        return self.begin(samples) if self.prepare_ahead else None

    def finish(self, started: Future) -> list[float | Reward]:
        """Score what `begin` started (on this copy: its device, its helper thread)."""
        plan: ScoringPlan = started.result()
        values = score_groups(
            plan.samples,
            plan.groups,
            self._prepare,
            self._forward,
            self._preparer() if self.prepare_ahead else None,
            first=plan.first,
        )
        if plan.turns is None:
            return values
        return [
            Reward(values[start + scored - 1], tuple(values[start : start + turns]))
            for start, turns, scored in plan.turns
        ]

    def _plan(self, samples: list[Sample]) -> ScoringPlan:
        scored, turns = samples, None
        cuts = [self._turn_cuts(sample) for sample in samples]
        if any(c is not None for c in cuts):
            # Every cut is one more sample to the micro-batches: sorted by length with the
            # rest, so a conversation's cuts share forward passes with other samples.
            scored, turns = [], []
            for sample, sample_cuts in zip(samples, cuts, strict=True):
                sample_cuts = sample_cuts or []
                ends_with_answer = bool(sample_cuts) and sample_cuts[-1] is sample
                extra = [] if ends_with_answer else [sample]
                turns.append((len(scored), len(sample_cuts), len(sample_cuts) + len(extra)))
                scored.extend([*sample_cuts, *extra])
        counts = [self.sample_tokens(sample) for sample in scored]
        if self.max_length is not None:
            refuse_too_long(scored, counts, self.max_length)
        groups = micro_batches(counts, self.max_batch_tokens, self.max_batch_size, self.packed)
        first = self._prepare([scored[i] for i in groups[0]]) if groups else None
        return ScoringPlan(scored, groups, first, turns)

    def _preparer(self) -> Executor:
        # One per model copy, made on first use: copies are loaded inside workers, never
        # pickled, and each is used by one scoring thread at a time.
        # The device pool's waiting threads call it too (`head_start`): made once, under a lock.
        with _PREPARER_LOCK:
            if getattr(self, "_prepare_thread", None) is None:
                self._prepare_thread = ThreadPoolExecutor(1, thread_name_prefix="rmclean-prepare")
        return self._prepare_thread
