"""Padding-free micro-batches: the samples of a micro-batch laid end to end in one row.

Each sample keeps the positions it would have alone (0, 1, 2, ... restarting at its first
token), attention never crosses from one sample into another (`varlen_attention.py`, or
transformers' own packed-sequence masks, which it derives from those restarting positions), and
each sample's values are read at its own tokens (`value_reads.py`: its last token, and the end
of each assistant turn where those are known). No position is padding, so the language model
computes exactly the tokens the samples have.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from models.value_head.value_reads import ValueReads


@dataclass(frozen=True)
class PackedRow:
    """One micro-batch as a single row of token ids, with what attention and pooling need."""

    input_ids: torch.Tensor  # (1, L)
    positions: torch.Tensor  # (1, L): 0, 1, ... restarting at every sample
    bounds: torch.Tensor  # int32 (samples + 1,): cumulative sample boundaries
    longest: int  # the longest sample's length
    read_at: torch.Tensor  # long: indices into the row where the values are read
    reads: ValueReads  # which of those values are whose score and turn scores

    @property
    def tokens(self) -> int:
        return int(self.input_ids.shape[1])

    def to(self, device: torch.device) -> PackedRow:
        return PackedRow(
            self.input_ids.to(device),
            self.positions.to(device),
            self.bounds.to(device),
            self.longest,
            self.read_at.to(device),
            self.reads,
        )

    def attention_kwargs(self) -> dict:
        """The sequence boundaries in transformers' packed-attention keywords (flash-attn and
        `varlen_attention` read them; sdpa and eager read the restarting positions instead)."""
        return {
            "cu_seq_lens_q": self.bounds,
            "cu_seq_lens_k": self.bounds,
            "max_length_q": self.longest,
            "max_length_k": self.longest,
        }


def pack(
    sequences: Sequence[Sequence[int]], turn_ends: Sequence[Sequence[int] | None] | None = None
) -> PackedRow:
    """Token id lists -> one packed row; every sequence must have at least one token.

    `turn_ends[i]`: the offsets in sequence i where its assistant turns end (`turn_ends.py`),
    or None: its value is read at its last token only."""
    lengths = [len(sequence) for sequence in sequences]
    if not lengths or min(lengths) < 1:
        raise ValueError("packing needs at least one sequence, none of them empty")
    bounds = [0, *itertools.accumulate(lengths)]
    ids = torch.tensor([token for sequence in sequences for token in sequence], dtype=torch.long)
    positions = torch.cat([torch.arange(length) for length in lengths])
    reads = ValueReads.of(lengths, turn_ends)
    return PackedRow(
        input_ids=ids.unsqueeze(0),
        positions=positions.unsqueeze(0),
        bounds=torch.tensor(bounds, dtype=torch.int32),
        longest=max(lengths),
        read_at=torch.tensor(reads.packed(bounds), dtype=torch.long),
        reads=reads,
    )
