"""Padding-free packed micro-batches on tiny real transformers models: Qwen2-VL, Qwen2.5-VL, a
Llama-style and a Gemma-2-style text RM (sliding window, soft-capped logits). Packed scores
equal one-at-a-time scores, no position is padding, every image and video frame of a
micro-batch goes through the vision tower in one attention call per block, a failing sample is
still isolated, and each batch's first micro-batch is prepared before a copy is free for it."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch

import models.value_head.varlen_attention as varlen
from bench.random_text_rm import make_text_samples
from bench.random_value_head import make_mixed_samples
from models.base import reward_values, score_of
from models.device_pool import DevicePool
from models.handler import RewardModelHandler
from models.micro_batches import MicroBatchedModel
from models.registry import loader_for
from tests.tiny_models import VALUE_HEAD_CHECKPOINTS
from transforms.core.record import Sample

ATOL = 1e-4
CHECKPOINTS = VALUE_HEAD_CHECKPOINTS


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("packing")
    return {name: build(root / name) for name, (_, build) in CHECKPOINTS.items()}


def samples_for(name: str) -> list[Sample]:
    """Media models: text-only samples, images of 1-10 crops, videos and two-image samples in
    turn; text models: conversations of 1-4 turns."""
    if CHECKPOINTS[name][0] == "vlm-value-head":
        return make_mixed_samples(16, seed=1, scale=0.05)
    return make_text_samples(12, seed=1, scale=0.02)


def own_tokens(model, sample: Sample) -> int:
    """The tokens a sample has alone (its packed row of one)."""
    prepared = model._prepare([sample])
    return getattr(prepared, "row", prepared).tokens


def load(name: str, path: Path, **options):
    return loader_for(CHECKPOINTS[name][0], {"path": str(path), **options})()


@pytest.mark.parametrize("name", list(CHECKPOINTS))
def test_packed_scores_equal_one_at_a_time_scores_with_no_padding(checkpoints, name):
    samples = samples_for(name)
    alone = load(name, checkpoints[name], packing=False)
    reference = [alone.score([sample])[0] for sample in samples]
    budget = 4 * sum(alone.sample_tokens(s) for s in samples) // len(samples)  # ~4 per pass
    packed = load(name, checkpoints[name], max_batch_tokens=budget)
    assert packed.packed and packed.model.config._attn_implementation == varlen.VARLEN_ATTENTION
    scores = packed.score(samples[:9]) + packed.score(samples[9:])  # two handler batches
    assert reward_values(scores) == pytest.approx(reward_values(reference), abs=ATOL)
    work = packed.work.take()
    # Several samples per forward pass, every position a real token.
    assert work.forward_passes < len(samples) / 2
    assert work.computed_tokens == work.real_tokens == sum(own_tokens(packed, s) for s in samples)
    padded = load(name, checkpoints[name], packing=False, max_batch_tokens=budget)
    padded.score(samples)
    assert padded.work.take().computed_tokens > work.real_tokens  # padding, for comparison


@pytest.mark.parametrize("name, attention", [("qwen2_5_vl", "sdpa"), ("gemma2", "eager")])
def test_an_attention_asked_for_packs_through_transformers_own_masks(checkpoints, name, attention):
    """sdpa and eager get no boundaries: transformers masks each sample from its restarting
    positions (masking_utils' packed-sequence detection)."""
    samples = samples_for(name)[:8]
    alone = load(name, checkpoints[name], packing=False)
    reference = [alone.score([sample])[0] for sample in samples]
    packed = load(name, checkpoints[name], attn_implementation=attention)
    assert packed.packed and packed.model.config._attn_implementation == attention
    assert reward_values(packed.score(samples)) == pytest.approx(reward_values(reference), abs=ATOL)


@pytest.mark.parametrize("name", ["qwen2_vl", "qwen2_5_vl"])
def test_one_vision_attention_call_per_block_for_all_media_of_a_micro_batch(
    checkpoints, name, monkeypatch
):
    calls = []
    original = varlen.varlen_attention

    def counted(module, *args, **kwargs):
        calls.append(hasattr(module, "qkv"))  # vision attention holds one fused qkv projection
        return original(module, *args, **kwargs)

    monkeypatch.setattr(varlen, "varlen_attention", counted)
    model = load(name, checkpoints[name])  # registers the counted function
    media = [s for s in samples_for(name) if s.media][:6]
    windows_per_image = model.inputs.media(media[:1]).grid_thw.prod().item() // 64
    model.score(media)  # one micro-batch
    depth = len(model.model.visual.blocks)
    assert calls.count(True) == depth
    assert calls.count(False) == model.model.config.text_config.num_hidden_layers
    assert len(media) * max(1, windows_per_image) > depth  # stock sdpa: a call per window


@pytest.mark.parametrize("name", ["qwen2_5_vl", "gemma2"])
def test_a_failing_sample_is_still_isolated_by_halving(checkpoints, name):
    samples = samples_for(name)[:8]
    model = load(name, checkpoints[name])
    singles = [score_of(model.score([sample])[0]) for sample in samples]
    bad = 5
    if CHECKPOINTS[name][0] == "vlm-value-head":
        samples[bad] = samples[4].replace(id="undecoded", decoded=None)  # an image, not decoded
    else:
        samples[bad] = samples[bad].replace(id="media", media=samples_for("qwen2_vl")[0].media)
    handler = RewardModelHandler(lambda device: model, model.name, devices=["cpu"])
    outcomes = [r.inference for r in handler.score_batch(samples, handler.load_model())[0]]
    assert outcomes[bad].score is None and samples[bad].id in outcomes[bad].error
    kept = [o.score for i, o in enumerate(outcomes) if i != bad]
    assert kept == pytest.approx([s for i, s in enumerate(singles) if i != bad], abs=ATOL)


class _Gated(MicroBatchedModel):
    """Records on which thread and when each micro-batch was prepared; forwards wait for a
    gate, so a test can hold the copy busy."""

    name = "gated"
    prepare_ahead = True
    packed = True
    max_batch_tokens = None
    max_batch_size = 2

    def __init__(self):
        self.prepared: list[tuple[str, str]] = []
        self.gate = threading.Event()
        self.second_batch_prepared = threading.Event()
        self.estimate_tokens = lambda sample: 1

    def _prepare(self, samples):
        self.prepared.append((samples[0].id, threading.current_thread().name))
        if samples[0].id.startswith("b"):
            self.second_batch_prepared.set()
        return samples

    def _forward(self, samples):
        assert self.gate.wait(10)
        return [float(len(s.id)) for s in samples]


def test_a_waiting_batch_has_its_first_micro_batch_prepared_before_a_copy_is_free():
    model = _Gated()
    pool = DevicePool({"cpu": model})
    first = [Sample(f"a{i}", "src", []) for i in range(4)]
    second = [Sample(f"b{i}", "src", []) for i in range(4)]
    results = {}
    runner = threading.Thread(target=lambda: results.setdefault("a", pool.score_batch(first)))
    runner.start()
    waiter = threading.Thread(target=lambda: results.setdefault("b", pool.score_batch(second)))
    waiter.start()
    # The only copy is still inside batch a's first forward: batch b is prepared anyway.
    assert model.second_batch_prepared.wait(10)
    assert runner.is_alive()
    model.gate.set()
    runner.join(10)
    waiter.join(10)
    assert [o.score for o in results["b"].outcomes] == [2.0] * 4
    assert all(thread.startswith("rmclean-prepare") for _, thread in model.prepared)


def test_without_a_helper_thread_nothing_is_prepared_on_the_waiting_thread():
    model = _Gated()
    model.prepare_ahead = False
    assert model.head_start([Sample("x", "src", [])]) is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.gpu
def test_torch_varlen_kernel_equals_the_exact_fallback_on_cuda():
    from tests.test_packing import qkv

    lengths = [37, 5, 120, 64]
    q, k, v = (t.cuda().to(torch.bfloat16) for t in qkv(lengths, heads=8, kv_heads=2, dim=64))
    bounds = torch.tensor([0, 37, 42, 162, 226], dtype=torch.int32, device="cuda")
    for causal, window in ((False, None), (True, None), (True, 16)):
        kernel = varlen._kernel_for(q, 64**-0.5, window, None)
        assert kernel is not None
        fast = kernel(q, k, v, bounds, 120, causal, window, 64**-0.5)
        exact = varlen.exact_attention(q, k, v, bounds.tolist(), causal, window, 64**-0.5, None)
        assert (fast.float() - exact.float()).abs().max() < 2e-2
