"""Packed rows and the attention over them: each sequence sees itself only, exactly as alone."""

from __future__ import annotations

import pytest
import torch

import models.value_head.varlen_attention as varlen
from models.micro_batches import micro_batches
from models.value_head.packing import pack
from models.work import ModelWork, WorkMeter


def reference(q, k, v, lengths, causal, window=None, softcap=None, scale=None):
    """Each sequence on its own through the eager formula: the maths packing must keep."""
    groups = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(groups, 1), v.repeat_interleave(groups, 1)
    scale = scale or q.shape[-1] ** -0.5
    outs, start = [], 0
    for length in lengths:
        end = start + length
        scores = q[:, :, start:end] @ k[:, :, start:end].transpose(-1, -2) * scale
        if softcap:
            scores = torch.tanh(scores / softcap) * softcap
        index = torch.arange(length)
        allowed = torch.ones(length, length, dtype=torch.bool)
        if causal:
            allowed &= index[None, :] <= index[:, None]
        if window:
            allowed &= index[:, None] - index[None, :] < window
        scores = scores.masked_fill(~allowed, float("-inf"))
        outs.append(torch.softmax(scores, dim=-1) @ v[:, :, start:end])
        start = end
    return torch.cat(outs, dim=2).transpose(1, 2)


class Module(torch.nn.Module):
    is_causal = True


def qkv(lengths, heads=4, kv_heads=2, dim=8, seed=0):
    generator = torch.Generator().manual_seed(seed)
    total = sum(lengths)
    q = torch.randn(1, heads, total, dim, generator=generator)
    k = torch.randn(1, kv_heads, total, dim, generator=generator)
    v = torch.randn(1, kv_heads, total, dim, generator=generator)
    return q, k, v


CASES = {
    "bidirectional (vision windows)": dict(causal=False),
    "causal": dict(causal=True),
    "causal, sliding window": dict(causal=True, window=3),
    "causal, soft-capped": dict(causal=True, softcap=0.5),
    "causal, window and cap (Gemma-2)": dict(causal=True, window=4, softcap=1.0),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("chunk", [1024, 9], ids=["one_chunk", "many_chunks"])
def test_packed_attention_equals_each_sequence_alone(case, chunk, monkeypatch):
    monkeypatch.setattr(varlen, "CHUNK_TOKENS", chunk)
    lengths = [5, 1, 12, 7, 3]
    q, k, v = qkv(lengths)
    options = CASES[case]
    bounds = torch.tensor([0, 5, 6, 18, 25, 28], dtype=torch.int32)
    out, _ = varlen.varlen_attention(
        Module(),
        q,
        k,
        v,
        None,
        scaling=0.3,
        cu_seq_lens_q=bounds,
        max_length_q=12,
        is_causal=options["causal"],
        sliding_window=options.get("window"),
        softcap=options.get("softcap"),
    )
    expected = reference(q, k, v, lengths, scale=0.3, **options)
    assert out.shape == (1, sum(lengths), 4, 8)
    assert torch.allclose(out, expected, atol=1e-5)
    # Run as one sequence instead, the answer changes: the boundaries matter.
    whole, _ = varlen.varlen_attention(Module(), q, k, v, None, scaling=0.3, is_causal=True)
    assert not torch.allclose(whole, expected, atol=1e-3)


def test_sequences_come_from_restarting_positions_when_no_bounds_are_given():
    lengths = [4, 6, 2]
    q, k, v = qkv(lengths, heads=2, kv_heads=2)
    positions = torch.cat([torch.arange(n) for n in lengths]).unsqueeze(0)
    out, _ = varlen.varlen_attention(Module(), q, k, v, None, position_ids=positions)
    assert torch.allclose(out, reference(q, k, v, lengths, causal=True), atol=1e-5)
    bounds, longest = varlen.sequence_bounds(12, torch.device("cpu"), position_ids=positions)
    assert bounds.tolist() == [0, 4, 10, 12] and longest == 6


def test_a_padded_batch_is_refused_with_the_reason():
    q, k, v = qkv([4])
    with pytest.raises(ValueError, match="one row, no padding mask"):
        varlen.varlen_attention(Module(), q, k, v, torch.ones(1, 1, 4, 4, dtype=torch.bool))
    two_rows = [t.expand(2, -1, -1, -1) for t in (q, k, v)]
    with pytest.raises(ValueError, match="batch of 2 rows"):
        varlen.varlen_attention(Module(), *two_rows, None)


def test_the_attention_choice_prefers_what_was_asked_then_flash_attn_then_ours(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert varlen.packed_attention("eager", cuda) == "eager"
    assert varlen.packed_attention(None, cpu) == varlen.VARLEN_ATTENTION
    monkeypatch.setattr(varlen, "flash_attn_installed", lambda: True)
    assert varlen.packed_attention(None, cuda) == "flash_attention_2"
    assert varlen.packed_attention(None, cpu) == varlen.VARLEN_ATTENTION
    monkeypatch.setattr(varlen, "flash_attn_installed", lambda: False)
    assert varlen.packed_attention(None, cuda) == varlen.VARLEN_ATTENTION


def test_the_varlen_kernel_is_only_used_where_it_computes_the_same():
    """On the CPU, in fp32, or with soft-capping, the exact fallback runs instead."""
    q, _, _ = qkv([4])
    assert varlen._kernel_for(q, 8**-0.5, None, None) is None  # a CPU tensor
    fake_cuda = type("T", (), {"is_cuda": True, "dtype": torch.bfloat16, "shape": (1, 4, 4, 8)})
    if varlen._varlen_kernel() is not None:
        assert varlen._kernel_for(fake_cuda, 8**-0.5, None, None) is not None
        assert varlen._kernel_for(fake_cuda, 8**-0.5, None, 50.0) is None
    fp32 = type("T", (), {"is_cuda": True, "dtype": torch.float32, "shape": (1, 4, 4, 8)})
    assert varlen._kernel_for(fp32, 8**-0.5, None, None) is None


def test_pack_lays_samples_end_to_end_with_their_own_positions():
    row = pack([[5, 6, 7], [8], [9, 10]])
    assert row.input_ids.tolist() == [[5, 6, 7, 8, 9, 10]]
    assert row.positions.tolist() == [[0, 1, 2, 0, 0, 1]]
    assert row.bounds.tolist() == [0, 3, 4, 6] and row.longest == 3 and row.tokens == 6
    assert row.read_at.tolist() == [2, 3, 5]  # each sample's last token
    turns = pack([[5, 6, 7], [8], [9, 10]], turn_ends=[(0, 2), None, (1,)])
    assert turns.read_at.tolist() == [0, 2, 3, 5]  # and the turn ends, once each
    assert row.attention_kwargs()["cu_seq_lens_q"] is row.bounds
    with pytest.raises(ValueError, match="none of them empty"):
        pack([[1], []])


def test_packed_micro_batches_budget_their_total_tokens_not_their_padded_size():
    costs = [100, 10, 300, 20, 900, 40, 250, 30]
    groups = micro_batches(costs, max_tokens=400, packed=True)
    assert sorted(i for g in groups for i in g) == list(range(len(costs)))
    for group in groups:
        assert len(group) == 1 or sum(costs[i] for i in group) <= 400
    padded = micro_batches(costs, max_tokens=400)
    # The same budget holds more samples per forward without padding.
    assert len(groups) < len(padded)


def test_the_work_meter_sums_until_taken_and_keeps_unmeasured_times_apart():
    meter = WorkMeter()
    assert meter.take() is None
    meter.record(90, 100, None, 0.5)
    meter.record(10, 10, 0.25, 0.25)
    work = meter.take()
    assert work == ModelWork(2, 100, 110, 0.25, 0.75)
    assert work.padding_fraction == pytest.approx(10 / 110)
    assert meter.take() is None
