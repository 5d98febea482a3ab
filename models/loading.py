"""Option handling shared by the checkpoint-backed reward backends.

Every backend factory takes one plain dict of options (from the config's `model_options`), so
a typo fails at load time with the list of keys the backend knows, not deep inside a worker.
"""

from __future__ import annotations

from typing import Any

import torch

DTYPES = {
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
    "float32": torch.float32,
    "fp32": torch.float32,
}


def take_options(backend: str, options: dict[str, Any] | None, defaults: dict[str, Any]) -> dict:
    """`defaults` updated with `options`; unknown keys raise, naming the ones that exist."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise ValueError(
            f"{backend}: unknown model option(s) {unknown}; known options: {sorted(defaults)}"
        )
    merged = {**defaults, **options}
    if backend != "demo" and not merged.get("path"):
        raise ValueError(
            f"{backend}: model option 'path' (checkpoint directory or hub name) is required"
        )
    return merged


def resolve_device(device: str | None) -> torch.device:
    """'auto' (or None) means the first CUDA device when there is one, else the CPU."""
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """'auto' means bf16 on CUDA (fp16 rewards can overflow to NaN) and fp32 on the CPU."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "", "auto"):
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; use auto or one of {sorted(DTYPES)}")
    return DTYPES[dtype]


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of each row's last non-padding token; right for left and right padding alike."""
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    return (positions * attention_mask.to(positions.dtype)).argmax(dim=1)


def padded_position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """0, 1, 2, ... over real tokens only, so left padding does not shift a sample's positions."""
    return (attention_mask.long().cumsum(dim=1) - 1).clamp(min=0)
