"""Load InternLM-XComposer2.5-Reward's own (remote) code under transformers 5, offline.

The checkpoint's code was written for transformers 4.33, and building it does four things
that break here (REFERENCE.md, "IXC-2.5-Reward"):
- `__init__` reads `config.max_length`, which transformers 5 drops from configs;
- `__init__` builds the CLIP vision tower with `CLIPVisionModel.from_pretrained(
  "internlm/internlm-xcomposer2d5-clip")`, a separate hub repo, and transformers 5 refuses
  `from_pretrained` on the meta device it builds models on;
- `__init__` downloads `SimHei.ttf` (it labels video frames) with a plain `urlopen`, outside
  the Hugging Face cache, so `HF_HUB_OFFLINE` does not stop it;
- config.json asks for `flash_attention_2`, which raises at the first forward without
  flash-attn.
So the model is built here by hand: its class comes from transformers' dynamic-module
utilities, the font and vision-tower lookups in the code's own modules are pointed at local
files before construction (`ixc25_offline.py`), the model is constructed on the target
device (never meta), and the checkpoint's weights are loaded with every key accounted for.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
from collections.abc import Iterator
from typing import Any

import torch

from models.ixc25_offline import local_clip, local_font, redirect_fetches
from models.loading import ModelConfigError

logger = logging.getLogger(__name__)

DEFAULT_MAX_LENGTH = 16384


# -- building the model ----------------------------------------------------------------------
def local_checkpoint(path: str) -> str:
    """A local folder for `path`: itself, or the hub snapshot (downloaded unless offline)."""
    if os.path.isdir(path):
        return path
    from huggingface_hub import snapshot_download

    return snapshot_download(path)


def fill_max_length(config: Any, folder: str) -> None:
    """Give the config the `max_length` its code reads; transformers 5 drops it on load."""
    if getattr(config, "max_length", None) is not None:
        return
    with open(os.path.join(folder, "config.json")) as handle:
        saved = json.load(handle).get("max_length")
    config.max_length = int(saved or DEFAULT_MAX_LENGTH)


def choose_attention(config: Any) -> str:
    """flash_attention_2 when flash-attn imports, else eager (the code's two choices)."""
    asked = getattr(config, "attn_implementation", None)
    usable = "flash_attention_2" if importlib.util.find_spec("flash_attn") else "eager"
    config.attn_implementation = usable
    logger.warning(
        "ixc25: attention %s (the checkpoint asks for %s; flash-attn %s)",
        usable,
        asked,
        "is installed" if usable == "flash_attention_2" else "is not installed",
    )
    return usable


def model_class(config: Any, folder: str) -> type:
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    auto_map = getattr(config, "auto_map", None) or {}
    reference = auto_map.get("AutoModel") or auto_map.get("AutoModelForCausalLM")
    if not reference:
        raise ModelConfigError(f"ixc25: {folder}/config.json has no auto_map.AutoModel entry")
    return get_class_from_dynamic_module(reference, folder)


@contextlib.contextmanager
def built_on(device: torch.device, dtype: torch.dtype) -> Iterator[None]:
    """Tensors created inside land on `device`, floats in `dtype` unless the code asks for
    another, parameters uninitialised (the checkpoint's weights follow): what transformers 4.x
    did for this code, minus the random initialisation of 8B parameters."""
    from transformers.initialization import no_init_weights

    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device), no_init_weights():
            yield
    finally:
        torch.set_default_dtype(previous)


# -- weights ---------------------------------------------------------------------------------
def checkpoint_shards(folder: str) -> list[str]:
    for index in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index_file = os.path.join(folder, index)
        if os.path.exists(index_file):
            with open(index_file) as handle:
                names = sorted(set(json.load(handle)["weight_map"].values()))
            return [os.path.join(folder, name) for name in names]
    for single in ("model.safetensors", "pytorch_model.bin"):
        if os.path.exists(os.path.join(folder, single)):
            return [os.path.join(folder, single)]
    raise ModelConfigError(
        f"ixc25: no weights in {folder} (model.safetensors or pytorch_model.bin, or their "
        ".index.json)"
    )


def _read_shard(file: str) -> dict[str, torch.Tensor]:
    if file.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(file)
    return torch.load(file, map_location="cpu", weights_only=True)


def _module_prefixes(model: torch.nn.Module, modules: list[torch.nn.Module]) -> tuple[str, ...]:
    wanted = {id(m) for m in modules}
    return tuple(f"{name}." for name, m in model.named_modules() if id(m) in wanted and name)


def load_weights(model: torch.nn.Module, folder: str, towers: list[torch.nn.Module]) -> None:
    """Copy every shard into the model; fail unless each weight is found exactly once.

    The vision towers the code built from `clip_path` already hold weights, so the checkpoint
    may (and IXC's does) overwrite them but need not. Tied weights count as found with their
    source.
    """
    expected = set(model.state_dict())
    found: set[str] = set()
    unexpected: list[str] = []
    for shard in checkpoint_shards(folder):
        tensors = _read_shard(shard)
        result = model.load_state_dict(tensors, strict=False)
        unexpected += result.unexpected_keys
        found |= set(tensors) - set(result.unexpected_keys)
        del tensors
    tied = getattr(model, "_tied_weights_keys", None) or ()
    tied_found = set(tied) if getattr(model.config, "tie_word_embeddings", False) else set()
    exempt = _module_prefixes(model, towers)
    missing = sorted(k for k in expected - found - tied_found if not k.startswith(exempt))
    if missing or unexpected:
        raise ModelConfigError(
            f"ixc25: the weights in {folder} do not match the model its code builds: "
            f"missing {missing[:8]}{' ...' if len(missing) > 8 else ''} ({len(missing)}), "
            f"unexpected {unexpected[:8]}{' ...' if len(unexpected) > 8 else ''} "
            f"({len(unexpected)})"
        )


def load_ixc_model(
    path: str,
    device: torch.device,
    dtype: torch.dtype,
    font_path: str | None,
    clip_path: str | None,
) -> Any:
    """The model, with `.tokenizer` set, in eval mode."""
    from transformers import AutoConfig, AutoTokenizer

    folder = local_checkpoint(path)
    config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
    fill_max_length(config, folder)
    choose_attention(config)
    cls = model_class(config, folder)
    towers = redirect_fetches(cls, local_font(font_path), local_clip(clip_path))
    with built_on(device, dtype):
        model = cls(config)
    load_weights(model, folder, towers)
    model.tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    # Not `.to(dtype)`: buffers the code made in fp32 on purpose (rotary tables) stay so.
    return model.eval()
