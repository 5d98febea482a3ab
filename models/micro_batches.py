"""Token-budget micro-batches: how a backend splits the handler's batch into padded forward passes.

Samples are sorted by their token count and grouped so that each group's padded size (count x
longest) fits the budget; a sample longer than the model reads is refused, never cut.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor, wait
from typing import Any

from models.base import SampleTooLong
from transforms.core.record import Sample


def micro_batches(
    costs: Sequence[int], max_tokens: int | None, max_size: int | None = None
) -> list[list[int]]:
    """Indices grouped shortest-first so that each padded group (size x longest) fits the budget.

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
    longest = 0
    for index in sorted(range(len(costs)), key=lambda i: costs[i]):
        cost = max(1, int(costs[index]))
        grown = max(longest, cost)
        if current and (len(current) >= size_cap or grown * (len(current) + 1) > budget):
            groups.append(current)
            current, grown = [], cost
        current.append(index)
        longest = grown
    groups.append(current)
    return groups


def score_in_micro_batches(
    samples: Sequence[Sample],
    costs: Sequence[int],
    prepare: Callable[[list[Sample]], Any],
    forward: Callable[[Any], list[float]],
    max_tokens: int | None,
    max_size: int | None = None,
    ahead: Executor | None = None,
) -> list[float]:
    """Run `forward(prepare(group))` on length-sorted groups; return scores in input order.

    With `ahead` (an executor of one thread), the next group's inputs are prepared while the
    current group's forward pass runs, so the device does not wait for the CPU work of
    building inputs (resizing, patching, tokenizing).
    """
    groups = micro_batches(costs, max_tokens, max_size)
    scores: list[float | None] = [None] * len(samples)

    def inputs_of(group: list[int]) -> Any:
        return prepare([samples[i] for i in group])

    pending: Future | None = None
    try:
        for number, group in enumerate(groups):
            if ahead is None:
                inputs = inputs_of(group)
            else:
                inputs = (pending or ahead.submit(inputs_of, group)).result()
                following = groups[number + 1] if number + 1 < len(groups) else None
                pending = ahead.submit(inputs_of, following) if following else None
            group_scores = forward(inputs)
            if len(group_scores) != len(group):
                raise RuntimeError(f"backend returned {len(group_scores)} scores for {len(group)}")
            for index, value in zip(group, group_scores, strict=True):
                scores[index] = float(value)
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


class MicroBatchedModel:
    """Mixin for backends: `score` packs the handler's batch into token-budget micro-batches.

    Subclasses set `estimate_tokens`, `max_batch_tokens`, `max_batch_size` and implement
    `_forward(inputs) -> list[float]` (one padded forward pass) over what `_prepare(samples)`
    builds (by default the samples themselves). With `prepare_ahead`, the next micro-batch is
    prepared on a helper thread while the current one runs. A backend whose model reads at
    most `max_length` tokens sets it and counts tokens exactly in `sample_tokens`; longer
    samples are refused (`SampleTooLong`), never cut.
    """

    max_length: int | None = None
    prepare_ahead: bool = False

    def sample_tokens(self, sample: Sample) -> int:
        """This backend's token count for one sample (the estimate unless it counts exactly)."""
        return self.estimate_tokens(sample)

    def _prepare(self, samples: list[Sample]) -> Any:
        return samples

    def score(self, samples: Sequence[Sample]) -> list[float]:
        counts = [self.sample_tokens(sample) for sample in samples]
        if self.max_length is not None:
            refuse_too_long(samples, counts, self.max_length)
        return score_in_micro_batches(
            samples,
            counts,
            self._prepare,
            self._forward,
            self.max_batch_tokens,
            self.max_batch_size,
            self._preparer() if self.prepare_ahead else None,
        )

    def _preparer(self) -> Executor:
        # One per model copy, made on first use: copies are loaded inside workers, never
        # pickled, and each is used by one scoring thread at a time.
        if getattr(self, "_prepare_thread", None) is None:
            self._prepare_thread = ThreadPoolExecutor(1, thread_name_prefix="rmclean-prepare")
        return self._prepare_thread
