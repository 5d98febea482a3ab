"""The reward benchmark's --tiny mode: the CPU check CI runs. Packed scores equal one-at-a-time
scores, and turn scores their cut conversations scored alone, within 1e-4 on tiny Qwen2-VL,
Qwen2.5-VL, Llama and Gemma-2 backends, and the packed path computes no padding; times are
recorded, never checked."""

import json

import pytest

from bench.gpu_reward_bench import MAX_COMPUTED_OVER_REAL, PARITY_ATOL, TINY_BACKENDS, main


@pytest.mark.slow
def test_tiny_benchmark_checks_parity_and_token_efficiency_per_backend(tmp_path):
    out = tmp_path / "bench.json"
    main(["--tiny", "--samples", "16", "--out", str(out)])
    result = json.loads(out.read_text())
    assert set(result["backends"]) == set(TINY_BACKENDS) and result["ok"] is True
    for entry in result["backends"].values():
        assert entry["packed_vs_one_at_a_time_max_abs_diff"] <= PARITY_ATOL
        # Every answer's turn score, packed and padded, is its cut conversation scored alone.
        assert entry["multi_turn_samples"] >= 8 and entry["turn_scores"] > 16 + 8
        assert entry["packed_turns_vs_cuts_alone_max_abs_diff"] <= PARITY_ATOL
        assert entry["padded_turns_vs_cuts_alone_max_abs_diff"] <= PARITY_ATOL
        packed, padded = entry["packed"], entry["padded"]
        assert packed["computed_over_real"] <= MAX_COMPUTED_OVER_REAL
        # The same samples padded in length-sorted micro-batches do compute padding.
        assert packed["real_tokens"] == padded["real_tokens"]
        assert padded["computed_tokens"] > packed["computed_tokens"]
        assert packed["samples"] == padded["samples"] == 16


@pytest.mark.slow
@pytest.mark.parametrize("label", ["vlm-value-head:qwen2_5_vl", "text-rm:llama"])
def test_the_real_shape_measurement_runs_on_tiny_models(label):
    """The GPU mode's own code (padded, then packed through score()), on tiny CPU models."""
    import argparse

    import torch

    from bench.gpu_reward_bench import build, gpu_measure

    bench = build(label, True, torch.device("cpu"), torch.float32, 8)
    args = argparse.Namespace(max_batch_tokens=None, batch_size=4, handler_batch=4)
    result = gpu_measure(bench, args)
    assert result["packed"]["computed_over_real"] == 1.0
    assert result["padded"]["computed_tokens"] >= result["packed"]["computed_tokens"]
    assert result["packed_vs_padded_max_abs_diff"] <= PARITY_ATOL  # fp32 here
    assert result["packed_speedup"] > 0
    vision = result["packed"]["vision_seconds"]
    assert (vision is None) == label.startswith("text-rm")
