"""Throughput of the vlm-value-head backend at 7B scale, with random weights (no downloads).

Builds Qwen2.5-VL-7B's shapes plus a value head (bf16, CUDA) — or, with `--tiny`, a tiny
config on the CPU so the script stays tested — and scores a mix of image sizes (1 to 10
"crops" of ~180 tokens each, mean ~1,000 image tokens) five ways:

  a. one sample per forward (model only: inputs prepared outside the timer)
  b. arrival-order batches of 8 (model only)
  c. length-sorted batches of 8 (model only)
  d. the pipeline's path: `score()` on handler-sized batches, which sorts by `estimate_tokens`
     and packs micro-batches under `--max-batch-tokens` (preprocessing included), the next
     micro-batch prepared on a helper thread while the current one runs (`prepare_ahead`)
  e. the same path with each micro-batch prepared only when its turn comes (the CPU work and
     the forward passes one after the other), for comparison

plus the vision-tower / language-model split of forward time on the 16 largest samples.
Needs only torch, transformers, pillow and numpy; writes JSON to `--out`.

    python -m bench.gpu_reward_bench                 # 7B shapes, CUDA, bf16
    python -m bench.gpu_reward_bench --tiny          # seconds on a CPU
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from bench.random_value_head import (
    build_backend,
    make_samples,
)
from models.loading import last_token_index
from models.vlm_value_head import VlmValueHeadRewardModel
from transforms.core.record import Sample


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def forward_scores(backend: VlmValueHeadRewardModel, inputs: dict) -> torch.Tensor:
    with torch.inference_mode():
        hidden = backend.model(**inputs, use_cache=False).last_hidden_state
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        pooled = hidden[rows, last_token_index(inputs["attention_mask"])]
        return backend.value_head(pooled.float()).squeeze(-1)


def model_only(backend, batches: list[list[Sample]]) -> dict:
    """Forward time for prepared batches; preprocessing (CPU) timed separately."""
    started = time.perf_counter()
    prepared = [backend.build_inputs(batch) for batch in batches]
    prepare_s = time.perf_counter() - started
    real = sum(int(p["attention_mask"].sum()) for p in prepared)
    padded = sum(p["attention_mask"].numel() for p in prepared)
    sync(backend.device)
    started = time.perf_counter()
    for inputs in prepared:
        forward_scores(backend, inputs)
    sync(backend.device)
    seconds = time.perf_counter() - started
    count = sum(len(b) for b in batches)
    return {
        "samples": count,
        "batches": len(batches),
        "seconds": round(seconds, 4),
        "samples_per_s": round(count / seconds, 3),
        "preprocess_seconds": round(prepare_s, 4),
        "padding_fraction": round(1 - real / padded, 4),
        "tokens_per_s": round(real / seconds, 1),
    }


def pipeline_path(
    backend, samples: list[Sample], handler_batch: int, prepare_ahead: bool = True
) -> dict:
    """`score()` on arrival-order handler batches: the backend sorts and packs by tokens."""
    backend.prepare_ahead = prepare_ahead
    sync(backend.device)
    started = time.perf_counter()
    for start in range(0, len(samples), handler_batch):
        backend.score(samples[start : start + handler_batch])
    sync(backend.device)
    seconds = time.perf_counter() - started
    del backend.prepare_ahead  # back to the backend's own setting
    return {
        "samples": len(samples),
        "handler_batch": handler_batch,
        "max_batch_tokens": backend.max_batch_tokens,
        "prepare_ahead": prepare_ahead,
        "seconds": round(seconds, 4),
        "samples_per_s": round(len(samples) / seconds, 3),
        "note": "includes CPU preprocessing (resize, patchify, tokenize)",
    }


def vision_language_split(backend, samples: list[Sample], batch_size: int = 8) -> dict:
    """Forward time in the vision tower vs the rest, timed with hooks and device syncs."""
    visual = backend.model.visual
    spans: list[float] = []
    marks: dict[str, float] = {}

    def before(*_):
        sync(backend.device)
        marks["start"] = time.perf_counter()

    def after(*_):
        sync(backend.device)
        spans.append(time.perf_counter() - marks["start"])

    hooks = [visual.register_forward_pre_hook(before), visual.register_forward_hook(after)]
    try:
        batches = [samples[i : i + batch_size] for i in range(0, len(samples), batch_size)]
        prepared = [backend.build_inputs(batch) for batch in batches]
        sync(backend.device)
        started = time.perf_counter()
        for inputs in prepared:
            forward_scores(backend, inputs)
        sync(backend.device)
        total = time.perf_counter() - started
    finally:
        for hook in hooks:
            hook.remove()
    vision = sum(spans)
    patches = sum(int(p["image_grid_thw"].prod(dim=1).sum()) for p in prepared)
    return {
        "samples": len(samples),
        "image_patches": patches,
        "total_seconds": round(total, 4),
        "vision_seconds": round(vision, 4),
        "language_model_seconds": round(total - vision, 4),
        "vision_share": round(vision / total, 4),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny config on the CPU (a test)")
    parser.add_argument("--samples", type=int, default=None, help="default 96 (16 with --tiny)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--handler-batch", type=int, default=32, help="batch the handler gets")
    parser.add_argument("--max-batch-tokens", type=int, default=None, help="default 8 x mean")
    parser.add_argument("--device", default=None, help="default cuda (cpu with --tiny)")
    parser.add_argument("--out", default=None, help="JSON path (default bench/results/...)")
    args = parser.parse_args(argv)

    device = torch.device(args.device or ("cpu" if args.tiny else "cuda"))
    dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    count = args.samples or (16 if args.tiny else 96)
    samples = make_samples(count, seed=0, scale=0.05 if args.tiny else 1.0)

    started = time.perf_counter()
    backend = build_backend(args.tiny, device, dtype, max_batch_tokens=1)
    build_s = time.perf_counter() - started
    estimates = [backend.estimate_tokens(s) for s in samples]
    mean_tokens = float(np.mean(estimates))
    # Warm-up (kernel selection, allocator, oneDNN primitives): one single and one full batch.
    backend.max_batch_tokens = None
    backend.score(samples[:1])
    backend.score(samples[: args.batch_size])
    backend.max_batch_tokens = args.max_batch_tokens or int(args.batch_size * mean_tokens)
    size = args.batch_size
    arrival = [samples[i : i + size] for i in range(0, count, size)]
    by_length = sorted(samples, key=backend.estimate_tokens)
    sorted_batches = [by_length[i : i + size] for i in range(0, count, size)]
    largest = sorted(samples, key=backend.estimate_tokens, reverse=True)[:16]
    result = {
        "config": "tiny" if args.tiny else "qwen2.5-vl-7b shapes, random weights",
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or "cpu",
        "dtype": str(dtype).replace("torch.", ""),
        "torch": torch.__version__,
        "build_seconds": round(build_s, 2),
        "samples": count,
        "estimated_tokens": {
            "mean": round(mean_tokens, 1),
            "min": min(estimates),
            "max": max(estimates),
        },
        "a_one_at_a_time": model_only(backend, [[s] for s in samples]),
        "b_arrival_batches": model_only(backend, arrival),
        "c_sorted_batches": model_only(backend, sorted_batches),
        "d_pipeline_token_budget": pipeline_path(backend, samples, args.handler_batch),
        "e_pipeline_prepared_inline": pipeline_path(
            backend, samples, args.handler_batch, prepare_ahead=False
        ),
        "vision_vs_language_16_largest": vision_language_split(backend, largest, size),
    }
    if device.type == "cuda":
        result["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    out = Path(args.out or f"bench/results/gpu_reward_bench_{'tiny' if args.tiny else '7b'}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
