"""Load InternLM-XComposer2.5-Reward's own (remote) code under transformers 5, offline.

The checkpoint's code was written for transformers 4.33, and building it does five things
that break here:
- `__init__` reads `config.max_length`, which transformers 5 drops from configs;
- `__init__` builds the CLIP vision tower with `CLIPVisionModel.from_pretrained(
  "internlm/internlm-xcomposer2d5-clip")`, a separate hub repo, and transformers 5 refuses
  `from_pretrained` on the meta device it builds models on;
- `__init__` downloads `SimHei.ttf` (it labels video frames) with a plain `urlopen`, outside
  the Hugging Face cache, so `HF_HUB_OFFLINE` does not stop it;
- config.json asks for `flash_attention_2`, which raises at the first forward without
  flash-attn; the code's other choice, eager, needs memory square in the sample length;
- the shards name the vision tower's tensors as transformers 4.33 saved them
  (`vit.vision_tower.vision_model.*`), which transformers 5 renames only in `from_pretrained`.
So the model is built here by hand: its class comes from transformers' dynamic-module
utilities, the font and vision-tower lookups in the code's own modules are served from local
files while it is constructed (`ixc25/offline.py`), on the target device (never meta), with
attention flash-attn, else torch's SDPA (`ixc25/attention.py`); the shards are then copied in
under transformers 5's names (`ixc25/names.py`), every key accounted for.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
from collections.abc import Iterator
from typing import Any

import torch

from models.ixc25.attention import SDPA, install_sdpa
from models.ixc25.names import checkpoint_files, mismatch, renamer
from models.ixc25.offline import checkpoint_modules, local_clip, local_font, served_locally
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


ATTENTIONS = ("auto", "flash_attention_2", "sdpa", "eager")


def _flash_attn_imports() -> bool:
    # Imported, not just found: a wheel built for another torch is installed but fails here.
    try:
        importlib.import_module("flash_attn")
    except Exception:  # noqa: BLE001 - any failure means the code's flash path would fail
        return False
    return True


def choose_attention(config: Any, wanted: str, modules: list[Any]) -> str:
    """The attention the code's decoder layers will build, set on `config`.

    auto: flash_attention_2 when flash-attn imports, else torch's SDPA added to the code's
    attention table (eager only if this code has no table to add it to).
    """
    if wanted not in ATTENTIONS:
        raise ModelConfigError(f"ixc25: attention must be one of {', '.join(ATTENTIONS)}")
    asked = getattr(config, "attn_implementation", None)
    has_flash = _flash_attn_imports()
    usable = wanted
    if wanted == "auto":
        usable = "flash_attention_2" if has_flash else SDPA
    if usable == SDPA and not install_sdpa(modules):
        if wanted == SDPA:
            raise ModelConfigError(
                "ixc25: this checkpoint's code has no INTERNLM2_ATTENTION_CLASSES table to add "
                "sdpa to; set attention: eager or install flash-attn"
            )
        usable = "eager"
    if usable == "flash_attention_2" and not has_flash:
        raise ModelConfigError("ixc25: attention: flash_attention_2 needs flash-attn installed")
    config.attn_implementation = usable
    logger.warning(
        "ixc25: attention %s (the checkpoint asks for %s; flash-attn %s)",
        usable,
        asked,
        "is installed" if has_flash else "is not installed",
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
def _read_shard(file: str) -> dict[str, torch.Tensor]:
    if file.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(file)
    return torch.load(file, map_location="cpu", weights_only=True)


def module_prefixes(model: torch.nn.Module, modules: list[torch.nn.Module]) -> tuple[str, ...]:
    wanted = {id(m) for m in modules}
    return tuple(f"{name}." for name, m in model.named_modules() if id(m) in wanted and name)


def tied_names(model: torch.nn.Module) -> set[str]:
    """Weights that share another's tensor, so need not be saved (none here unless tied)."""
    tied = getattr(model, "_tied_weights_keys", None) or ()
    return set(tied) if getattr(model.config, "tie_word_embeddings", False) else set()


def load_weights(model: torch.nn.Module, folder: str, towers: list[torch.nn.Module]) -> None:
    """Copy every shard into the model under transformers 5's names; fail unless each weight
    is found exactly once.

    The vision towers the code built from `clip_path` already hold weights, so the checkpoint
    may (and IXC's does) overwrite them but need not.
    """
    rename = renamer(model)
    found: set[str] = set()
    for shard in checkpoint_files(folder):
        tensors = {rename(name): tensor for name, tensor in _read_shard(shard).items()}
        model.load_state_dict(tensors, strict=False)
        found |= set(tensors)
        del tensors
    problem = mismatch(
        set(model.state_dict()), found, module_prefixes(model, towers), tied_names(model)
    )
    if problem:
        raise ModelConfigError(
            f"ixc25: the weights in {folder} do not match the model its code builds: {problem}"
        )


def load_ixc_model(
    path: str,
    device: torch.device,
    dtype: torch.dtype,
    font_path: str | None,
    clip_path: str | None,
    attention: str = "auto",
) -> Any:
    """The model, with `.tokenizer` set, in eval mode."""
    from transformers import AutoConfig, AutoTokenizer

    folder = local_checkpoint(path)
    config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
    fill_max_length(config, folder)
    cls = model_class(config, folder)
    choose_attention(config, attention, checkpoint_modules(cls))
    with served_locally(cls, local_font(font_path), local_clip(clip_path)) as towers:
        with built_on(device, dtype):
            model = cls(config)
    load_weights(model, folder, towers)
    # Scores need no key/value cache: without this, every forward keeps one per layer.
    model.config.use_cache = False
    model.tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    # Not `.to(dtype)`: buffers the code made in fp32 on purpose (rotary tables) stay so.
    return model.eval()
