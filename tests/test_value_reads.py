"""Where a value head's values are read and how they become each sample's score and turn
scores: the same offsets in a packed row and in a left- or right-padded batch."""

import pytest
import torch

from models.base import Reward
from models.value_head.value_reads import ValueReads


def test_a_turn_ending_at_the_last_token_shares_the_score_read():
    reads = ValueReads.of([5, 3, 4], [(1, 4), None, (3,)])
    assert reads.offsets == ((1, 4), (2,), (3,)) and reads.count == 4
    assert reads.rewards([0.5, 1.5, 7.0, -2.0]) == [
        Reward(1.5, (0.5, 1.5)),
        7.0,  # no turn ends known: the score alone
        Reward(-2.0, (-2.0,)),
    ]


def test_a_conversation_ending_after_its_last_answer_still_scores_at_its_last_token():
    """A trailing user turn: the last answer ends before the last token; the score is read
    at the last token, as always."""
    reads = ValueReads.of([6], [(1, 3)])
    assert reads.offsets == ((1, 3, 5),)
    assert reads.rewards([0.1, 0.2, 0.3]) == [Reward(0.3, (0.1, 0.2))]


def test_packed_and_padded_indices_name_the_same_tokens():
    lengths, ends = [3, 1, 2], [(0, 2), None, (1,)]
    reads = ValueReads.of(lengths, ends)
    tokens = [[10, 11, 12], [20], [30, 31]]
    row = [t for sample in tokens for t in sample]
    packed = [row[i] for i in reads.packed([0, 3, 4, 6])]
    assert packed == [10, 12, 20, 31]
    for side in ("left", "right"):
        padded, mask = [], []
        for sample in tokens:
            pad = [0] * (3 - len(sample))
            padded.append(pad + sample if side == "left" else sample + pad)
            real = [0] * len(pad)
            mask.append(real + [1] * len(sample) if side == "left" else [1] * len(sample) + real)
        rows, columns = reads.padded(torch.tensor(mask))
        assert torch.tensor(padded)[rows, columns].tolist() == packed


def test_reads_refuse_ends_outside_the_sample_and_a_wrong_count_of_values():
    with pytest.raises(ValueError, match="outside"):
        ValueReads.of([3], [(3,)])
    with pytest.raises(ValueError, match="2 values for 3 reads"):
        ValueReads.of([3, 2], [(0, 2), None]).rewards([1.0, 2.0])
