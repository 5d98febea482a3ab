"""Packed vs padded scoring for each checkpoint backend, at real shapes on a GPU or tiny on a CPU.

GPU (the default; random weights at the real shapes, bf16, no downloads):
  - vlm-value-head: Qwen2.5-VL-7B + a value head, images of 1-10 crops (~180 tokens each,
    mean ~1,000 image tokens) with QA text;
  - text-rm: a Llama-3.1-8B sequence classifier (Skywork-Reward-V2-Llama-3.1-8B's shapes),
    conversations of 1-4 turns, ~100-2,000 words.
Each backend scores the same samples through its own `score()` (inputs built on its helper
thread, as in a run) on handler batches of `--handler-batch`, micro-batches within
`--max-batch-tokens` (default 8 x the mean estimate), once padded (the model's own padded
forward, sdpa) and once packed (one padding-free row per micro-batch, one vision pass, varlen
attention). Per mode: samples/s, real and computed tokens, the padding fraction, seconds in the
vision tower and in the language model (the backend's own work record, timed with CUDA
events), peak memory; and the largest score difference between the modes (bf16: rough).

`--tiny` (the CPU, fp32, seconds; a CI check, times are not checked): tiny Qwen2-VL, Qwen2.5-VL,
Llama and Gemma-2 (sliding window, soft-capped logits) backends score micro-batches mixing
text-only samples, 1-10-crop images, videos and two-image samples, single- and multi-turn
(`random_value_head.with_turns`). Packed scores and turn scores must equal one-at-a-time
(padded) ones within 1e-4, every turn score (packed and padded, read from the one forward
pass) must equal its cut conversation scored alone within 1e-4, and packed computed tokens /
real tokens must be at most 1.02; the exit status says whether every backend did.

    python -m bench.gpu_reward_bench                        # both backends, CUDA, bf16
    python -m bench.gpu_reward_bench --backends vlm-value-head --samples 64
    python -m bench.gpu_reward_bench --tiny                 # the CPU check
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from bench.random_text_rm import build_text_backend, make_text_samples
from bench.random_value_head import build_backend, make_mixed_samples, make_samples, with_turns
from models.base import Reward, reward_values
from models.chat import role_of
from models.value_head.varlen_attention import packed_attention, use_attention
from transforms.core.record import Sample

PARITY_ATOL = 1e-4  # fp32 on the CPU
MAX_COMPUTED_OVER_REAL = 1.02
TINY_BACKENDS = ("vlm-value-head:qwen2_vl", "vlm-value-head:qwen2_5_vl", "text-rm:llama",
                 "text-rm:gemma2")  # fmt: skip
GPU_BACKENDS = ("vlm-value-head", "text-rm")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Bench:
    """One backend and its samples; `run(packed)` switches its layout and attention."""

    def __init__(self, label: str, backend, samples: list[Sample]):
        self.label, self.backend, self.samples = label, backend, samples
        # The attention the padded forward runs: what the model was built with.
        self.padded_attention = backend.model.config._attn_implementation

    def use(self, packed: bool) -> None:
        self.backend.packed = packed
        attention = packed_attention(None, self.backend.device) if packed else None
        use_attention(self.backend.model, attention or self.padded_attention)

    def run(self, packed: bool, handler_batch: int) -> tuple[dict, list[float | Reward]]:
        """Results of `score()` on handler batches, and what the forward passes did."""
        backend = self.backend
        self.use(packed)
        backend.score(self.samples[: min(4, len(self.samples))])  # warm-up (kernels, caches)
        backend.work.take()
        sync(backend.device)
        started = time.perf_counter()
        scores = []
        for start in range(0, len(self.samples), handler_batch):
            scores += backend.score(self.samples[start : start + handler_batch])
        sync(backend.device)
        seconds = time.perf_counter() - started
        return figures(backend.work.take(), len(self.samples), seconds, handler_batch), scores

    def one_at_a_time(self) -> list[float | Reward]:
        """The reference: each sample alone through the padded forward."""
        self.use(False)
        scores = [self.backend.score([sample])[0] for sample in self.samples]
        self.backend.work.take()
        return scores

    def cuts_one_at_a_time(self) -> list[list[float]]:
        """The turn scores' reference: for each sample, the conversation cut after each of its
        answers, scored alone through the padded forward (one pass per cut)."""
        self.use(False)
        found = []
        for sample in self.samples:
            turns = sample.conversations
            answers = [i for i, t in enumerate(turns) if role_of(t, sample.id) == "assistant"]
            cuts = [sample.replace(conversations=turns[: i + 1]) for i in answers]
            found.append([reward_values(self.backend.score([cut]))[0] for cut in cuts])
        self.backend.work.take()
        return found


def figures(work, samples: int, seconds: float, handler_batch: int) -> dict:
    ratio = work.computed_tokens / work.real_tokens

    def rounded(value, digits=4):
        return None if value is None else round(value, digits)

    return {
        "samples": samples,
        "handler_batch": handler_batch,
        "forward_passes": work.forward_passes,
        "seconds": round(seconds, 4),
        "samples_per_s": round(samples / seconds, 3),
        "real_tokens": work.real_tokens,
        "computed_tokens": work.computed_tokens,
        "computed_over_real": round(ratio, 4),
        "padding_fraction": rounded(work.padding_fraction),
        "real_tokens_per_s": round(work.real_tokens / seconds, 1),
        "vision_seconds": rounded(work.vision_seconds),
        "language_seconds": rounded(work.language_seconds),
    }


def largest_difference(a: list[float | Reward], b: list[float | Reward]) -> float:
    """Over every score and turn score; infinite when one side lacks a turn score."""
    a, b = reward_values(a), reward_values(b)
    if len(a) != len(b):
        return float("inf")
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))))


def turn_check(results: list[float | Reward], cuts: list[list[float]]) -> float:
    """The largest difference between turn scores and their cuts scored alone; infinite when
    a sample has no turn score for some answer."""
    worst = 0.0
    for result, reference in zip(results, cuts, strict=True):
        turns = result.turn_scores if isinstance(result, Reward) else ()
        if len(turns) != len(reference):
            return float("inf")
        worst = max([worst, *(abs(t - r) for t, r in zip(turns, reference, strict=True))])
    return worst


def build(label: str, tiny: bool, device: torch.device, dtype: torch.dtype, count: int) -> Bench:
    backend_name, _, variant = label.partition(":")
    if backend_name == "vlm-value-head":
        model_type = variant or "qwen2_5_vl"
        backend = build_backend(tiny, device, dtype, None, model_type=model_type)
        if tiny:
            samples = with_turns(make_mixed_samples(count, 0, 0.05), seed=0, max_answers=5)
        else:
            samples = make_samples(count, 0, 1.0)
    else:
        backend = build_text_backend(variant or "llama", tiny, device, dtype, None)
        samples = make_text_samples(count, 0, 0.02 if tiny else 1.0)
        samples = with_turns(samples, seed=0, max_answers=1) if tiny else samples
    return Bench(label, backend, samples)


def budget(bench: Bench, requested: int | None, per_batch: int) -> int:
    """Token budget per micro-batch: as asked, else `per_batch` samples of mean size."""
    mean = float(np.mean([bench.backend.sample_tokens(s) for s in bench.samples]))
    return requested or int(per_batch * mean)


def tiny_check(bench: Bench, args) -> dict:
    """Parity and token efficiency on the CPU: packed micro-batches vs one at a time, and every
    turn score vs its cut conversation scored alone."""
    bench.backend.max_batch_tokens = budget(bench, args.max_batch_tokens, 4)
    reference = bench.one_at_a_time()
    cuts = bench.cuts_one_at_a_time()
    padded, padded_scores = bench.run(False, args.handler_batch)
    packed, packed_scores = bench.run(True, args.handler_batch)
    parity = largest_difference(packed_scores, reference)
    turn_parity = max(turn_check(packed_scores, cuts), turn_check(padded_scores, cuts))
    result = {
        "max_batch_tokens": bench.backend.max_batch_tokens,
        "padded": padded,
        "packed": packed,
        "multi_turn_samples": sum(len(c) > 1 for c in cuts),
        "turn_scores": sum(len(c) for c in cuts),
        "packed_vs_one_at_a_time_max_abs_diff": parity,
        "padded_vs_one_at_a_time_max_abs_diff": largest_difference(padded_scores, reference),
        "packed_turns_vs_cuts_alone_max_abs_diff": turn_check(packed_scores, cuts),
        "padded_turns_vs_cuts_alone_max_abs_diff": turn_check(padded_scores, cuts),
        "parity_ok": parity <= PARITY_ATOL and turn_parity <= PARITY_ATOL,
        "efficiency_ok": packed["computed_over_real"] <= MAX_COMPUTED_OVER_REAL,
        "note": "CPU figures: parity and tokens are the check; times are not",
    }
    result["ok"] = result["parity_ok"] and result["efficiency_ok"]
    return result


def gpu_measure(bench: Bench, args) -> dict:
    """Packed vs padded through score() at real shapes."""
    bench.backend.max_batch_tokens = budget(bench, args.max_batch_tokens, args.batch_size)
    device = bench.backend.device
    padded, padded_scores = bench.run(False, args.handler_batch)
    packed, packed_scores = bench.run(True, args.handler_batch)
    result = {
        "max_batch_tokens": bench.backend.max_batch_tokens,
        "padded": padded,
        "packed": packed,
        "packed_speedup": round(packed["samples_per_s"] / padded["samples_per_s"], 3),
        "packed_vs_padded_max_abs_diff": largest_difference(packed_scores, padded_scores),
        "turn_scores": sum(len(getattr(r, "turn_scores", ())) for r in packed_scores),
        "packed_attention": packed_attention(None, device),
    }
    if device.type == "cuda":
        result["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    return result


def varlen_kernel_check(device: torch.device) -> dict:
    """torch's varlen kernel against the exact path on random bf16 tensors at the 7B vision
    (16 heads of 80, 64-patch windows, bidirectional) and language (28 query / 4 key-value
    heads of 128, causal) shapes: the largest output difference, or why it did not run."""
    from models.value_head.varlen_attention import _kernel_for, _varlen_kernel, exact_attention

    if _varlen_kernel() is None:
        return {"skipped": f"torch {torch.__version__} has no torch.nn.attention.varlen"}
    generator = torch.Generator(device=device).manual_seed(0)
    found = {}
    for name, heads, kv_heads, dim, lengths, causal in (
        ("vision_windows", 16, 16, 80, [64] * 48 + [16, 40], False),
        ("language_packed", 28, 4, 128, [1172, 503, 2210, 87], True),
    ):
        total = sum(lengths)
        q = torch.randn(1, heads, total, dim, device=device, generator=generator)
        k, v = (torch.randn(1, kv_heads, total, dim, device=device, generator=generator)
                for _ in range(2))  # fmt: skip
        q, k, v = (t.to(torch.bfloat16) for t in (q, k, v))
        bounds = torch.tensor(np.cumsum([0, *lengths]), dtype=torch.int32, device=device)
        kernel = _kernel_for(q, dim**-0.5, None, None)
        fast = kernel(q, k, v, bounds, max(lengths), causal, None, dim**-0.5)
        exact = exact_attention(q, k, v, bounds.tolist(), causal, None, dim**-0.5, None)
        found[name] = round(float((fast.float() - exact.float()).abs().max()), 5)
    return {"max_abs_diff_bf16": found}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny models on the CPU: the check")
    parser.add_argument("--backends", nargs="+", default=None, help="default: all of the mode's")
    parser.add_argument("--samples", type=int, default=None, help="per backend (64; tiny 24)")
    parser.add_argument("--batch-size", type=int, default=8, help="samples per micro-batch budget")
    parser.add_argument("--handler-batch", type=int, default=None, help="32 (tiny 12)")
    parser.add_argument("--max-batch-tokens", type=int, default=None, help="default: from sizes")
    parser.add_argument("--device", default=None, help="default cuda (cpu with --tiny)")
    parser.add_argument("--out", default=None, help="JSON path (default bench/results/...)")
    args = parser.parse_args(argv)

    device = torch.device(args.device or ("cpu" if args.tiny else "cuda"))
    dtype = torch.float32 if args.tiny else torch.bfloat16
    count = args.samples or (24 if args.tiny else 64)
    args.handler_batch = args.handler_batch or (12 if args.tiny else 32)
    labels = args.backends or (TINY_BACKENDS if args.tiny else GPU_BACKENDS)
    result = {
        "mode": "tiny parity check" if args.tiny else "real shapes, random weights",
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or "cpu",
        "dtype": str(dtype).replace("torch.", ""),
        "torch": torch.__version__,
        "samples_per_backend": count,
        "backends": {},
    }
    for label in labels:
        started = time.perf_counter()
        bench = build(label, args.tiny, device, dtype, count)
        build_seconds = round(time.perf_counter() - started, 2)
        entry = (tiny_check if args.tiny else gpu_measure)(bench, args)
        result["backends"][label] = {"build_seconds": build_seconds, **entry}
        print(label, json.dumps(result["backends"][label]), flush=True)
        del bench
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
    if args.tiny:
        result["ok"] = all(entry["ok"] for entry in result["backends"].values())
    elif device.type == "cuda":
        result["varlen_kernel"] = varlen_kernel_check(device)
    out = Path(args.out or f"bench/results/gpu_reward_bench_{'tiny' if args.tiny else 'gpu'}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    outcome = main()
    sys.exit(0 if outcome.get("ok", True) else 1)
