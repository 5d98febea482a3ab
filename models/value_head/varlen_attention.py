"""Attention over packed sequences: many samples laid end to end in one row, none seeing another.

`VARLEN_ATTENTION` is registered with transformers' `AttentionInterface`. Its name contains
"flash", which is what transformers' Qwen2-VL / Qwen2.5-VL vision blocks look for before they
hand an attention function their `cu_seqlens`: every window of every image and video frame of a
micro-batch then goes through one call instead of one call per window. transformers builds no
mask for an implementation it does not know, so the language model's layers reach it with no
mask either; the sequences come from `cu_seq_lens_q` when the caller passes it, else from the
position ids, which restart at 0 for every packed sample (transformers' own rule for packed
rows, `masking_utils.find_packed_sequence_indices`).

Two ways to compute it, the same maths:
- on CUDA in bf16/fp16, torch's own varlen flash kernel (`torch.nn.attention.varlen`, no
  flash-attn package needed), called with what the installed torch's signature takes;
- elsewhere (the CPU, fp32, logit soft-capping, a torch without the kernel), an exact fallback:
  sdpa over chunks of whole sequences with a block-diagonal (causal, sliding-window) mask inside
  each chunk, so memory stays bounded however many sequences are packed.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable

import torch

VARLEN_ATTENTION = "rmclean_flash_varlen"
# The exact fallback's chunk: whole sequences up to this many tokens share one sdpa call (its
# boolean mask is at most this squared); a longer sequence gets a call of its own.
CHUNK_TOKENS = 1024
KERNEL_DTYPES = (torch.float16, torch.bfloat16)
KERNEL_MAX_HEAD_DIM = 256


def varlen_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """transformers' attention-function contract: (batch 1, heads, tokens, dim) in, (1, tokens,
    heads, dim) out. Sequences: `cu_seq_lens_q` if given, else restarts in `position_ids`."""
    if query.shape[0] != 1 or attention_mask is not None:
        raise ValueError(
            f"{VARLEN_ATTENTION} reads packed sequences (one row, no padding mask); got a batch "
            f"of {query.shape[0]} rows{' with a mask' if attention_mask is not None else ''}"
        )
    if dropout and module.training:
        raise ValueError(f"{VARLEN_ATTENTION} is for inference: it applies no dropout")
    length = query.shape[2]
    bounds, longest = sequence_bounds(
        length,
        query.device,
        kwargs.get("cu_seq_lens_q"),
        kwargs.get("max_length_q"),
        kwargs.get("position_ids"),
    )
    causal = bool(kwargs.get("is_causal", getattr(module, "is_causal", True)))
    window = kwargs.get("sliding_window") if causal else None
    softcap = kwargs.get("softcap")
    scale = query.shape[-1] ** -0.5 if scaling is None else float(scaling)
    kernel = _kernel_for(query, scale, window, softcap)
    if kernel is not None:
        return kernel(query, key, value, bounds, longest, causal, window, scale), None
    return exact_attention(query, key, value, bounds.tolist(), causal, window, scale, softcap), None


def sequence_bounds(
    length: int,
    device: torch.device,
    cu_seqlens: torch.Tensor | None = None,
    longest: int | torch.Tensor | None = None,
    position_ids: torch.Tensor | None = None,
) -> tuple[torch.Tensor, int]:
    """(int32 cumulative bounds [0, ..., length], longest sequence) of one packed row."""
    if cu_seqlens is None:
        if position_ids is None:
            starts = torch.zeros(1, dtype=torch.long, device=device)
        else:
            positions = position_ids.reshape(-1, position_ids.shape[-1])[0]
            # A sequence starts wherever the position does not follow the previous one (and
            # at the first token, which the prepended value never follows).
            step = torch.diff(positions, prepend=positions[:1] + 1)
            starts = torch.nonzero(step != 1).flatten()
        end = torch.tensor([length], dtype=starts.dtype, device=starts.device)
        cu_seqlens = torch.cat([starts, end])
        longest = None
    cu_seqlens = cu_seqlens.to(device=device, dtype=torch.int32)
    if longest is None:
        longest = (cu_seqlens[1:] - cu_seqlens[:-1]).max()
    return cu_seqlens, int(longest)


def exact_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    bounds: list[int],
    causal: bool,
    window: int | None,
    scale: float,
    softcap: float | None,
) -> torch.Tensor:
    """The reference maths on any device: sdpa (or, with soft-capping, the eager formula) over
    chunks of whole sequences, masked block-diagonally within each chunk. (1, L, H, D) out."""
    groups = query.shape[1] // key.shape[1]
    if groups > 1:  # grouped-query attention: each key/value head serves `groups` query heads
        key, value = key.repeat_interleave(groups, dim=1), value.repeat_interleave(groups, dim=1)
    out = torch.empty_like(query)
    for cuts in _chunks(bounds):
        start, end = cuts[0], cuts[-1]
        local = [cut - start for cut in cuts]
        mask = _chunk_mask(tuple(local), causal, window, query.device)
        out[:, :, start:end] = _attend(
            query[:, :, start:end],
            key[:, :, start:end],
            value[:, :, start:end],
            mask,
            causal and mask is None,
            scale,
            softcap,
        )
    return out.transpose(1, 2).contiguous()


def _chunks(bounds: list[int]) -> list[list[int]]:
    """Consecutive sequences grouped into chunks of at most CHUNK_TOKENS (a longer one alone),
    each chunk as its cut points [start, ..., end]."""
    chunks: list[list[int]] = []
    current = [bounds[0]]
    for end in bounds[1:]:
        if len(current) > 1 and end - current[0] > CHUNK_TOKENS:
            chunks.append(current)
            current = [current[-1]]
        current.append(end)
    chunks.append(current)
    return chunks


@functools.lru_cache(maxsize=64)  # every layer of a forward pass asks for the same masks
def _chunk_mask(
    cuts: tuple[int, ...], causal: bool, window: int | None, device: torch.device
) -> torch.Tensor | None:
    """True where a query may see a key: same sequence, not ahead (causal), within the window.
    None for one sequence without a window (sdpa's own is_causal then does it)."""
    if len(cuts) == 2 and window is None:
        return None
    length = cuts[-1]
    index = torch.arange(length, device=device)
    sequence = torch.bucketize(index, torch.tensor(cuts[1:-1], device=device), right=True)
    allowed = sequence[:, None] == sequence[None, :]
    if causal:
        allowed &= index[None, :] <= index[:, None]
    if window is not None:
        allowed &= index[:, None] - index[None, :] < window
    return allowed


def _attend(q, k, v, mask, is_causal: bool, scale: float, softcap: float | None):
    if softcap is None:
        return torch.nn.functional.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=is_causal, scale=scale
        )
    # Gemma-2's eager formula: scores soft-capped by tanh before the mask and the softmax.
    scores = torch.matmul(q, k.transpose(-1, -2)) * scale
    scores = torch.tanh(scores / softcap) * softcap
    if mask is None and is_causal:
        mask = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool, device=q.device).tril()
    if mask is not None:
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    weights = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
    return torch.matmul(weights, v)


# -- torch's varlen flash kernel (CUDA) -----------------------------------------------------
@functools.cache
def _varlen_kernel() -> tuple[Callable, frozenset[str]] | None:
    """torch.nn.attention.varlen.varlen_attn and the keywords this torch's version takes
    (2.10: is_causal only; 2.11: scale, window_size; 2.12: enable_gqa), or None."""
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return None
    return varlen_attn, frozenset(inspect.signature(varlen_attn).parameters)


def _kernel_for(query, scale: float, window: int | None, softcap: float | None):
    """The kernel call when torch's varlen kernel can compute exactly this, else None."""
    found = _varlen_kernel()
    if (
        found is None
        or not query.is_cuda
        or query.dtype not in KERNEL_DTYPES
        or query.shape[-1] > KERNEL_MAX_HEAD_DIM
        or softcap is not None
    ):
        return None
    kernel, takes = found
    if window is not None and "window_size" not in takes:
        return None
    if "scale" not in takes and abs(scale - query.shape[-1] ** -0.5) > 1e-12:
        return None

    def call(query, key, value, bounds, longest, causal, window, scale):
        groups = query.shape[1] // key.shape[1]
        if groups > 1 and "enable_gqa" not in takes:
            key, value = key.repeat_interleave(groups, 1), value.repeat_interleave(groups, 1)
        options = {}
        if "window_size" in takes:
            left = -1 if window is None else window - 1
            options["window_size"] = (left, 0) if causal else (-1, -1)
        else:
            options["is_causal"] = causal
        if "scale" in takes:
            options["scale"] = scale
        if "enable_gqa" in takes and query.shape[1] != key.shape[1]:
            options["enable_gqa"] = True
        q, k, v = (t[0].transpose(0, 1).contiguous() for t in (query, key, value))
        out = kernel(q, k, v, bounds, bounds, longest, longest, **options)
        return out.unsqueeze(0)

    return call


def register() -> str:
    """Make `VARLEN_ATTENTION` a valid `attn_implementation` (idempotent); returns the name."""
    from transformers import AttentionInterface

    AttentionInterface.register(VARLEN_ATTENTION, varlen_attention)
    return VARLEN_ATTENTION


def flash_attn_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("flash_attn") is not None


def packed_attention(requested: str | None, device: torch.device) -> str:
    """The attention a packed forward runs: the one asked for; else flash-attn's varlen kernels
    when the package is there and the model is on CUDA; else `VARLEN_ATTENTION` (torch's own
    varlen kernel on CUDA, the exact fallback elsewhere)."""
    if requested:
        return requested
    if device.type == "cuda" and flash_attn_installed():
        return "flash_attention_2"
    return register()


def use_attention(model: torch.nn.Module, implementation: str) -> None:
    """Switch a loaded transformers model, and every sub-model (vision tower, language model),
    to `implementation`. transformers' own switch would try to fetch a flash-attn kernel for
    any name containing "flash"; each sub-model still checks that it supports the name."""
    from transformers import PreTrainedModel

    if implementation in ("flash_attention_2", "flash_attention_3", "sdpa", "eager"):
        model.set_attn_implementation(implementation)
        return
    for module in model.modules():
        if isinstance(module, PreTrainedModel):
            checked = module.get_correct_attn_implementation(implementation)
            module.config._attn_implementation = checked
