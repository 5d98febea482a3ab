"""What `rmclean clean` (and `rmclean doctor`) check about IXC-2.5-Reward before Beam starts,
without loading a weight: the packages its code imports, and that the checkpoint's tensor
names fill the model its code builds.

The names check builds the model with the checkpoint's own code on the meta device (no memory,
no weights; the vision tower from its folder's config alone, the font from Pillow's bundled
one), renames the names in the safetensors headers as loading will (`ixc25/names.py`) and
compares. It runs the checkpoint's code, so only after the remote-code opt-in.
"""

from __future__ import annotations

import contextlib
import importlib
import os

import torch

from models.ixc25.names import mismatch, renamer, saved_names
from models.loading import ModelConfigError

# What the checkpoint's code imports beyond rmclean's own dependencies (pyproject's ixc extra).
IXC_PACKAGES = ("einops", "sentencepiece", "torchvision")
PACKAGES_HINT = (
    "`make install` installs them (on a CUDA machine `make install-gpu`, which takes "
    "torchvision from the same index as torch)"
)


def check_packages() -> None:
    """One line naming every package the code needs that does not import here."""
    problems = []
    for package in IXC_PACKAGES:
        try:
            importlib.import_module(package)
        except Exception as exc:  # noqa: BLE001 - any failure to import is the finding
            problems.append(f"{package} ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})")
    if problems:
        raise ModelConfigError(
            "ixc25: the checkpoint's code imports packages that do not import here: "
            + "; ".join(problems)
            + f"; {PACKAGES_HINT}"
        )


def _font_bytes() -> bytes:
    from PIL import ImageFont

    return ImageFont.load_default(size=40).font_bytes


def _built_on_meta(folder: str, clip: str) -> tuple[torch.nn.Module, list[torch.nn.Module]]:
    """The model the checkpoint's code builds, on the meta device, and its vision towers."""
    from transformers import AutoConfig
    from transformers.initialization import no_init_weights

    from models.ixc25.loading import fill_max_length, model_class
    from models.ixc25.offline import served_locally

    config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
    fill_max_length(config, folder)
    config.attn_implementation = "eager"  # the attention class does not change the names
    cls = model_class(config, folder)
    with (
        served_locally(cls, _font_bytes(), clip, weights=False) as towers,
        torch.device("meta"),
        no_init_weights(),
        open(os.devnull, "w") as quiet,
        contextlib.redirect_stdout(quiet),  # the code prints its max length on every build
    ):
        return cls(config), towers


def _clip_problem(clip: str) -> str | None:
    """Whether the vision tower folder's names fill the CLIPVisionModel they are loaded into."""
    from transformers import CLIPVisionConfig, CLIPVisionModel

    try:
        found = saved_names(clip)
    except ModelConfigError:
        return f"no weights in the vision tower folder {clip}"
    if found is None:
        return None
    with torch.device("meta"):
        tower = CLIPVisionModel(CLIPVisionConfig.from_pretrained(clip))
    rename = renamer(tower)
    problem = mismatch(set(tower.state_dict()), {rename(n) for n in found}, (), set())
    return f"the vision tower folder {clip}: {problem}" if problem else None


def check_tensor_names(folder: str, clip: str | None) -> None:
    """One line if the checkpoint's (or the vision tower folder's) tensor names do not fill
    the model the code builds after transformers 5's renames; nothing for .bin checkpoints,
    whose names are not readable without loading them, or without a local vision tower."""
    found = saved_names(folder)
    if found is None or clip is None:
        return
    problem = _clip_problem(clip)
    if problem is None:
        from models.ixc25.loading import module_prefixes, tied_names

        model, towers = _built_on_meta(folder, clip)
        rename = renamer(model)
        problem = mismatch(
            set(model.state_dict()),
            {rename(name) for name in found},
            module_prefixes(model, towers),
            tied_names(model),
        )
    if problem:
        raise ModelConfigError(
            f"ixc25: the weights in {folder} do not match the model its code builds: {problem}"
        )
