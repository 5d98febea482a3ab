"""Option handling shared by the checkpoint-backed reward backends.

Every backend factory takes one plain dict of options (from the config's `model_options`).
The same checks run twice: in the backend's `preflight` before the pipeline starts (so a typo
ends the command with one line and exit 2) and again when a worker loads the weights.
"""

from __future__ import annotations

import glob
import hashlib
import os
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


# Checkpoints above this size refuse an implicit fall-back to the CPU (hours become weeks).
CPU_REFUSAL_BYTES = 1_000_000_000
WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.pt", "*.pth")
CUDA_TORCH_HINT = (
    "install the CUDA build of torch, e.g. `.venv/bin/pip install --force-reinstall "
    "torch=={version} --index-url https://download.pytorch.org/whl/cu128` "
    "(README, Installing)"
)


class ModelConfigError(ValueError):
    """A model option that cannot work; the message is one line that says what to change."""


def take_options(backend: str, options: dict[str, Any] | None, defaults: dict[str, Any]) -> dict:
    """`defaults` updated with `options`; unknown keys raise, naming the ones that exist."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise ModelConfigError(
            f"{backend}: unknown model option(s) {unknown}; known options: {sorted(defaults)}"
        )
    merged = {**defaults, **options}
    if backend != "demo" and not merged.get("path"):
        raise ModelConfigError(
            f"{backend}: model option 'path' (checkpoint directory or hub name) is required"
        )
    return merged


def resolve_device(device: str | None) -> torch.device:
    """'auto' (or None) means the first CUDA device when there is one, else the CPU."""
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def looks_like_hub_name(path: str) -> bool:
    """`org/name` (a hub repository) rather than a folder path."""
    return path.count("/") == 1 and not path.startswith((".", "/", "~"))


def checkpoint_bytes(path: str) -> int:
    """Bytes of weight files in a local checkpoint folder (0 for a hub name: unknown here)."""
    if not os.path.isdir(path):
        return 0
    files = {f for pattern in WEIGHT_PATTERNS for f in glob.glob(os.path.join(path, pattern))}
    return sum(os.path.getsize(f) for f in files)


def checkpoint_fingerprint(path: str | None) -> str | None:
    """A cheap identity of the weights in a local checkpoint folder: the names, sizes and
    modification times of its weight files and its config.json. Another download or a
    fine-tune written in place changes it; None for a hub name or a folder not here."""
    if not path or not os.path.isdir(path):
        return None
    digest = hashlib.sha1()
    names = sorted(
        {
            f
            for pattern in (*WEIGHT_PATTERNS, "config.json")
            for f in glob.glob(os.path.join(path, pattern))
        }
    )
    for name in names:
        stat = os.stat(name)
        digest.update(f"{os.path.basename(name)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def check_device(backend: str, path: str, device: str | None) -> None:
    """Refuse a device that cannot run this checkpoint sensibly, before any weight loads.

    `device: auto` on a machine without CUDA would quietly score a multi-GB model on the CPU
    for weeks; only an explicit `device: cpu` gets that. `device: cuda` without CUDA fails
    here rather than halfway through loading.
    """
    wants_cuda = str(device or "auto").startswith("cuda")
    if torch.cuda.is_available() or not (wants_cuda or device in (None, "", "auto")):
        return
    size = checkpoint_bytes(path)
    if not wants_cuda and size <= CPU_REFUSAL_BYTES:
        return
    build = "a CPU-only build" if torch.version.cuda is None else "a CUDA build"
    what = f"its {size / 1e9:.1f} GB of weights" if size else "it"
    raise ModelConfigError(
        f"{backend}: no CUDA GPU is visible (torch {torch.__version__} is {build}), so {what} "
        f"would run on the CPU and take days; "
        + CUDA_TORCH_HINT.format(version=torch.__version__.split("+")[0])
        + ", or set `device: cpu` under model_options to run on the CPU anyway"
    )


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """'auto' means bf16 on CUDA (fp16 rewards can overflow to NaN) and fp32 on the CPU."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "", "auto"):
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; use auto or one of {sorted(DTYPES)}")
    return DTYPES[dtype]


def padded_position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """0, 1, 2, ... over real tokens only, so left padding does not shift a sample's positions."""
    return (attention_mask.long().cumsum(dim=1) - 1).clamp(min=0)
