"""The two things IXC-2.5-Reward's code downloads while it is built, served from local files.

`__init__` fetches `SimHei.ttf` (it labels video frames) with a plain `urlopen`, outside the
Hugging Face cache, and loads its vision tower from a separate hub repo. Both lookups are
pointed, in the checkpoint's own module namespaces, at a local font and a local CLIP folder
(or the hub cache), so offline machines and workers with `HF_HUB_OFFLINE=1` can load it.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import sys
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import torch

from models.loading import ModelConfigError

FONT_REPO, FONT_FILE = "internlm/internlm-xcomposer2d5-7b", "SimHei.ttf"
CLIP_REPO = "internlm/internlm-xcomposer2d5-clip"
_PATCHING = threading.RLock()
FONT_HINT = (
    f"download it once (`hf download {FONT_REPO} {FONT_FILE} "
    "--local-dir data/models/fonts`) and set `font_path: data/models/fonts/SimHei.ttf`"
)
CLIP_HINT = (
    f"download it once (`hf download {CLIP_REPO} "
    "--local-dir data/models/internlm-xcomposer2d5-clip`) and set "
    "`clip_path: data/models/internlm-xcomposer2d5-clip`"
)


class OfflineFetchRefused(ConnectionRefusedError):
    pass


def cached_hub_file(repo: str, filename: str) -> str | None:
    """A file already in the local Hugging Face cache (no network), or None."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo, filename)
    return found if isinstance(found, str) else None


def local_font(font_path: str | None) -> str | None:
    """The font the model will get: `font_path`, else a copy in the Hugging Face cache."""
    return font_path or cached_hub_file(FONT_REPO, FONT_FILE)


def local_clip(clip_path: str | None) -> str | None:
    """The vision-tower folder: `clip_path`, else a snapshot in the Hugging Face cache."""
    if clip_path:
        return clip_path
    config_file = cached_hub_file(CLIP_REPO, "config.json")
    return os.path.dirname(config_file) if config_file else None


def hub_reachable() -> bool:
    """Whether the model's own downloads could work: not offline and the hub answers."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}:
        return False
    from huggingface_hub import constants

    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=3).close()
    except OSError:
        return False
    return True


def check_offline_assets(font_path: str | None, clip_path: str | None) -> None:
    """The font and vision tower must be local files, unless the hub can be reached."""
    if font_path:
        if not os.path.isfile(font_path):
            raise ModelConfigError(f"ixc25: font_path {font_path!r} is not a file; {FONT_HINT}")
        from PIL import ImageFont

        try:
            ImageFont.truetype(font_path, size=40)
        except OSError as exc:
            raise ModelConfigError(
                f"ixc25: font_path {font_path!r} is not a TrueType font ({exc})"
            ) from exc
    if clip_path and not os.path.isfile(os.path.join(clip_path, "config.json")):
        raise ModelConfigError(
            f"ixc25: clip_path {clip_path!r} holds no config.json (the CLIP vision tower); "
            + CLIP_HINT
        )
    missing = []
    if not local_font(font_path):
        missing.append(f"the font {FONT_FILE} from {FONT_REPO}: {FONT_HINT}")
    if not local_clip(clip_path):
        missing.append(f"the vision tower {CLIP_REPO}: {CLIP_HINT}")
    if missing and not hub_reachable():
        raise ModelConfigError(
            "ixc25: the model's code downloads files while it loads and this machine is "
            "offline; " + "; and ".join(missing)
        )


def checkpoint_modules(cls: type) -> list[Any]:
    """The modules of the checkpoint's code (the model's file and the files it imports)."""
    package = cls.__module__.rpartition(".")[0]
    return [m for name, m in list(sys.modules.items()) if name.startswith(package + ".")]


def _offline_urlopen(font: str | bytes):
    """Stands in for `urlopen` in the checkpoint's code: font URLs read the local font."""

    def urlopen(url: Any, *args: Any, **kwargs: Any):
        target = str(getattr(url, "full_url", url))
        if urlparse(target).path.lower().endswith((".ttf", ".ttc", ".otf")):
            # The caller reads and closes it.
            return io.BytesIO(font) if isinstance(font, bytes) else open(font, "rb")  # noqa: SIM115
        raise OfflineFetchRefused(
            f"ixc25: the checkpoint's code tried to download {target}; rmclean runs it "
            "offline (set font_path/clip_path to local copies)"
        )

    return urlopen


def _local_clip_class(
    original: type, clip_dir: str, built: list[torch.nn.Module], weights: bool
) -> type:
    """`CLIPVisionModel` whose from_pretrained reads `clip_dir` instead of the hub; without
    `weights`, it builds the model from the folder's config alone (for the meta device)."""

    class LocalCLIPVisionModel(original):  # type: ignore[misc, valid-type]
        @classmethod
        def from_pretrained(cls, name: Any, *args: Any, **kwargs: Any):
            source = name if os.path.isdir(str(name)) else clip_dir
            if weights:
                # In the dtype the rest of the model is built in, as transformers 4.x gave it.
                kwargs.setdefault("dtype", torch.get_default_dtype())
                model = original.from_pretrained(source, *args, **kwargs)
            else:
                model = original(original.config_class.from_pretrained(source))
            built.append(model)
            return model

    return LocalCLIPVisionModel


@contextlib.contextmanager
def served_locally(
    cls: type, font: str | bytes | None, clip: str | None, weights: bool = True
) -> Iterator[list[torch.nn.Module]]:
    """While the model is built: the code's font download reads `font` (a file or its bytes)
    and its vision-tower load reads `clip` (with `weights=False`, config only).

    Patched in the code's own module namespaces (it imported `urlopen` and `CLIPVisionModel`
    by name), so nothing outside this checkpoint changes, and put back afterwards. Yields the
    list that collects the vision towers the code builds, whose weights come from `clip`
    rather than the checkpoint.
    """
    with _PATCHING:  # two loads in one process must not wrap each other's patches
        built: list[torch.nn.Module] = []
        replaced: list[tuple[Any, str, Any]] = []
        for module in checkpoint_modules(cls):
            if font and hasattr(module, "urlopen"):
                replaced.append((module, "urlopen", module.urlopen))
                module.urlopen = _offline_urlopen(font)
            original = getattr(module, "CLIPVisionModel", None)
            if clip and isinstance(original, type):
                replaced.append((module, "CLIPVisionModel", original))
                module.CLIPVisionModel = _local_clip_class(original, clip, built, weights)
        try:
            yield built
        finally:
            for module, name, value in reversed(replaced):
                setattr(module, name, value)
