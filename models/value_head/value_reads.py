"""Where a value head reads a micro-batch's values, and how they become each sample's reward.

A sample's score is the value at its last token, as it always was. A sample whose assistant
turns' ends are known (`turn_ends.py`) also has the value read at each of those tokens, from
the same hidden states: causal attention means the hidden state there saw nothing after it, so
it is the reward of the conversation cut after that turn. Offsets count from the sample's own
first token, so the same reads serve a packed row (`packing.py`) and a padded batch alike; a
turn ending at the last token shares its read with the score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from models.base import Reward


@dataclass(frozen=True)
class ValueReads:
    """Per sample: the token offsets read (ascending, its last token last) and, for each
    assistant turn, which of them is that turn's value (None: the sample gets a score only)."""

    offsets: tuple[tuple[int, ...], ...]
    turns: tuple[tuple[int, ...] | None, ...]

    @classmethod
    def of(
        cls, lengths: Sequence[int], turn_ends: Sequence[Sequence[int] | None] | None = None
    ) -> ValueReads:
        """Reads for samples of `lengths` tokens; `turn_ends[i]`: sample i's turn-end offsets,
        or None (and None for all: scores only)."""
        turn_ends = turn_ends if turn_ends is not None else [None] * len(lengths)
        if len(turn_ends) != len(lengths):
            raise ValueError(f"{len(turn_ends)} turn-end lists for {len(lengths)} samples")
        offsets, turns = [], []
        for length, ends in zip(lengths, turn_ends, strict=True):
            last = length - 1
            if ends is None:
                offsets.append((last,))
                turns.append(None)
                continue
            if any(not 0 <= end <= last for end in ends):
                raise ValueError(f"turn ends {list(ends)} outside a sample of {length} tokens")
            read = tuple(sorted({*ends, last}))
            where = {offset: index for index, offset in enumerate(read)}
            offsets.append(read)
            turns.append(tuple(where[end] for end in ends))
        return cls(tuple(offsets), tuple(turns))

    @property
    def count(self) -> int:
        """Values read in all (one per sample plus one per turn that does not end the sample)."""
        return sum(len(read) for read in self.offsets)

    def packed(self, bounds: Sequence[int]) -> list[int]:
        """Indices into a packed row whose cumulative sample boundaries are `bounds`."""
        return [int(bounds[i]) + offset for i, read in enumerate(self.offsets) for offset in read]

    def padded(self, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(rows, columns) into a padded batch, left or right padded: sample i's offsets count
        from the first token its row of `attention_mask` marks real."""
        starts = attention_mask.int().argmax(dim=1).tolist()  # argmax: the first 1
        rows = [i for i, read in enumerate(self.offsets) for _ in read]
        columns = [starts[i] + offset for i, read in enumerate(self.offsets) for offset in read]
        return torch.tensor(rows, dtype=torch.long), torch.tensor(columns, dtype=torch.long)

    def rewards(self, values: Sequence[float]) -> list[float | Reward]:
        """The values read, in the order `packed` / `padded` list them -> one result per sample:
        a `Reward` where turns were read, else the score alone."""
        if len(values) != self.count:
            raise ValueError(f"{len(values)} values for {self.count} reads")
        results: list[float | Reward] = []
        start = 0
        for read, turns in zip(self.offsets, self.turns, strict=True):
            mine = [float(value) for value in values[start : start + len(read)]]
            start += len(read)
            score = mine[-1]  # the last token's
            results.append(score if turns is None else Reward(score, tuple(mine[i] for i in turns)))
        return results
