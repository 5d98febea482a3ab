"""Tensor names: what IXC-2.5-Reward's checkpoint holds against what its code builds.

The checkpoint was saved by transformers 4.33, whose `CLIPVisionModel` held its layers in a
`vision_model` child: the vision tower's tensors are `vit.vision_tower.vision_model.*`.
transformers 5's `CLIPVisionModel` has no such child and renames old names only inside
`from_pretrained`, through its checkpoint conversion mapping. The checkpoint's shards are
copied into the model by hand (`ixc25/loading.py`), so the same renames are applied here: for
every library model class the code builds (the CLIP tower), the conversion mapping the
installed transformers registers for that class, scoped to where the class sits in the model.
A transformers whose CLIPVisionModel still has `vision_model` registers none, and the names
already match.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterable

import torch

from models.loading import ModelConfigError

SHOWN = 4


def checkpoint_files(folder: str) -> list[str]:
    """The weight files of a checkpoint folder: the index's shards, else the single file."""
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


def saved_names(folder: str) -> set[str] | None:
    """Every tensor name in the folder's safetensors files, read from their headers only
    (None for .bin checkpoints, whose names need the weights loaded)."""
    files = checkpoint_files(folder)
    if not all(file.endswith(".safetensors") for file in files):
        return None
    from safetensors import safe_open

    names: set[str] = set()
    for file in files:
        if not os.path.isfile(file):
            raise ModelConfigError(f"ixc25: {file} is missing (the checkpoint's index names it)")
        with safe_open(file, "pt") as handle:
            names.update(handle.keys())
    return names


def _library_submodels(model: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    """(prefix, module) for each transformers library model inside `model` (outermost only)."""
    from transformers import PreTrainedModel

    found: list[tuple[str, torch.nn.Module]] = []
    for name, module in model.named_modules():
        if not isinstance(module, PreTrainedModel):
            continue
        if not type(module).__module__.startswith("transformers."):
            continue  # the checkpoint's own classes: transformers registers nothing for them
        if any(name == p or name.startswith(p + ".") for p, _ in found):
            continue
        found.append((name, module))
    return found


def _renamings(module: torch.nn.Module) -> list:
    """The renames transformers registers for this library model (by class, then model_type)."""
    from transformers.conversion_mapping import get_checkpoint_conversion_mapping
    from transformers.core_model_loading import WeightRenaming

    transforms = get_checkpoint_conversion_mapping(type(module).__name__)
    if transforms is None:
        transforms = get_checkpoint_conversion_mapping(module.config.model_type) or []
    return [t for t in transforms if isinstance(t, WeightRenaming)]


def renamer(model: torch.nn.Module) -> Callable[[str], str]:
    """Checkpoint name -> the name in `model`, as transformers 5's `from_pretrained` renames
    the tensors of each library model class inside it."""
    scoped = []
    for name, module in _library_submodels(model):
        renames = _renamings(module)
        if renames:
            scoped.append((f"{name}." if name else "", renames))

    def rename(key: str) -> str:
        for prefix, renames in scoped:
            if key.startswith(prefix):
                inner = key[len(prefix) :]
                for renaming in renames:
                    inner, _ = renaming.rename_source_key(inner)
                return prefix + inner
        return key

    return rename


def prefix_difference(unexpected: Iterable[str], missing: Iterable[str]) -> str | None:
    """Where checkpoint and model names differ only before a common tail, the most frequent
    such pair of prefixes, as "'a.' in the checkpoint is 'b.' in the model (n tensors)"."""
    by_tail: dict[str, str] = {}
    for name in missing:
        parts = name.split(".")
        for cut in range(len(parts)):
            by_tail.setdefault(".".join(parts[cut:]), ".".join(parts[:cut]))
    pairs: Counter[tuple[str, str]] = Counter()
    for name in unexpected:
        parts = name.split(".")
        for cut in range(1, len(parts)):
            tail = ".".join(parts[cut:])
            if tail in by_tail and tail.count(".") >= 1:
                pairs[(".".join(parts[:cut]), by_tail[tail])] += 1
                break
    if not pairs:
        return None
    (saved, built), count = pairs.most_common(1)[0]
    saved = f"'{saved}.'" if saved else "no prefix"
    built = f"'{built}.'" if built else "no prefix"
    return f"{saved} in the checkpoint is {built} in the model ({count} tensors)"


def mismatch(
    expected: set[str], found: set[str], exempt: tuple[str, ...], tied: set[str]
) -> str | None:
    """Why `found` (checkpoint names, renamed) cannot fill `expected` (the model's), or None.

    Names under `exempt` (vision towers already loaded from their own folder) may be missing.
    """
    unexpected = sorted(found - expected)
    missing = sorted(k for k in expected - found - tied if not k.startswith(exempt))
    if not (unexpected or missing):
        return None
    parts = []
    differing = prefix_difference(unexpected, expected - found)
    if differing:
        parts.append(f"names differ: {differing}")
    for what, names in (("unexpected", unexpected), ("missing", missing)):
        if names:
            more = f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
            parts.append(f"{what}: {', '.join(names[:SHOWN])}{more}")
    return "; ".join(parts)
