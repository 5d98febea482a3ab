"""InternLM-XComposer2.5-Reward through its own remote-code `get_scores` API.

The model reads media from FILE PATHS and picks image vs video by extension, so each call
writes the batch's media bytes to a fresh temporary directory (per worker process, per call)
and removes it afterwards, also when scoring fails. Its code comes with the checkpoint
(`trust_remote_code`), so it only runs after an explicit opt-in.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
from collections.abc import Sequence
from typing import Any

import torch

from models.chat import to_chat
from models.loading import resolve_device, resolve_dtype, take_options
from models.tokens import IXC_VIDEO_TOKENS, IxcTokenEstimator, MicroBatchedModel
from transforms.record import IMAGE, VIDEO, Sample

# The extensions the model's own code recognises (REFERENCE.md).
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "gif", "bmp", "webp")
VIDEO_EXTENSIONS = ("mp4", "avi", "mkv", "mov", "wmv")
PIL_FORMAT_EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "GIF": "gif", "BMP": "bmp", "WEBP": "webp"}

DEFAULTS: dict[str, Any] = {
    "path": "internlm/internlm-xcomposer2d5-7b-reward",
    "dtype": "auto",
    "device": "auto",
    "hd_num": 9,
    "max_length": 16384,
    # Token budget of one get_scores call (padded: samples x longest); None = the whole batch.
    "max_batch_tokens": None,
    "max_batch_size": None,
    "video_tokens": IXC_VIDEO_TOKENS,
    "trust_remote_code": False,
    "remote_code_allowlist": [],
    # Where the per-call media directories go (default: the system temp dir).
    "tmp_dir": None,
}


class RemoteCodeNotAllowed(PermissionError):
    pass


def check_remote_code_allowed(path: str, trust: bool, allowlist: Sequence[str]) -> None:
    """Refuse to run checkpoint-supplied code unless the user opted in for this path."""
    if trust:
        return
    wanted = {path, os.path.realpath(path)}
    allowed = {entry for item in allowlist for entry in (item, os.path.realpath(item))}
    if wanted & allowed:
        return
    raise RemoteCodeNotAllowed(
        f"the ixc25 backend runs Python code shipped with the checkpoint {path!r} "
        "(trust_remote_code). Opt in with --trust-remote-code, or list the checkpoint under "
        f"`remote_code_allowlist:` in the config (e.g. remote_code_allowlist: [{path!r}]) "
        "after reviewing its code."
    )


def media_extension(kind: str, name_extension: str, data: bytes | None) -> str:
    """An extension the model maps to the right modality: the file's own if it is one it knows,
    else the image format sniffed from the bytes (images) or mp4 (videos)."""
    known = IMAGE_EXTENSIONS if kind == IMAGE else VIDEO_EXTENSIONS
    if name_extension in known:
        return name_extension
    if kind == VIDEO:
        return "mp4"
    from PIL import Image

    with contextlib.suppress(Exception), Image.open(io.BytesIO(data or b"")) as image:
        return PIL_FORMAT_EXTENSIONS.get(image.format or "", "png")
    return "png"


def write_media(sample: Sample, index: int, directory: str) -> str:
    """One media item as a file the model can open; decoded pixels if the bytes are gone."""
    ref = sample.media[index]
    if ref.kind not in (IMAGE, VIDEO):
        raise ValueError(f"sample {sample.id}: unsupported media kind {ref.kind!r}")
    data = ref.data
    if data is None and ref.kind == IMAGE and sample.decoded and sample.decoded[index] is not None:
        from PIL import Image

        buffer = io.BytesIO()
        Image.fromarray(sample.decoded[index]).save(buffer, format="PNG")
        data = buffer.getvalue()
        extension = "png"
    elif data is None:
        raise ValueError(f"sample {sample.id}: media {ref.path!r} has no bytes to score")
    else:
        extension = media_extension(ref.kind, ref.extension, data)
    file_path = os.path.join(directory, f"{index:03d}.{extension}")
    with open(file_path, "wb") as handle:
        handle.write(data)
    return file_path


class Ixc25RewardModel(MicroBatchedModel):
    """`RewardModel` over a loaded IXC-2.5-Reward (or any model with the same get_scores API)."""

    name = "ixc25"

    def __init__(self, model: Any, device: torch.device, dtype: torch.dtype, options: dict):
        self.model = model
        self.device = device
        self.dtype = dtype
        self.hd_num = int(options["hd_num"])
        self.max_length = int(options["max_length"])
        self.max_batch_tokens = options["max_batch_tokens"]
        self.max_batch_size = options["max_batch_size"]
        self.tmp_dir = options["tmp_dir"]
        self.estimate_tokens = IxcTokenEstimator(self.hd_num, int(options["video_tokens"]))

    def _score_batch(self, samples: list[Sample]) -> list[float]:
        chats = [to_chat(sample, keep_system=False) for sample in samples]
        call_dir = tempfile.mkdtemp(prefix=f"rmclean-ixc25-{os.getpid()}-", dir=self.tmp_dir)
        try:
            path_lists = []
            for number, sample in enumerate(samples):
                sample_dir = os.path.join(call_dir, f"{number:04d}")
                os.mkdir(sample_dir)
                paths = [write_media(sample, i, sample_dir) for i in range(len(sample.media))]
                path_lists.append(paths)
            with torch.inference_mode(), self._autocast():
                scores = self.model.get_scores(
                    chats, path_lists, max_length=self.max_length, hd_num=self.hd_num
                )
        finally:
            shutil.rmtree(call_dir, ignore_errors=True)
        if isinstance(scores, torch.Tensor):
            scores = scores.float().flatten().tolist()
        return [float(s) for s in scores]

    def _autocast(self):
        # The model's own evaluation runs under CUDA autocast; on the CPU it runs as loaded.
        if self.device.type == "cuda" and self.dtype in (torch.float16, torch.bfloat16):
            return torch.autocast("cuda", dtype=self.dtype)
        return contextlib.nullcontext()


def load_ixc25(options: dict[str, Any] | None = None) -> Ixc25RewardModel:
    """Factory: options as in `DEFAULTS`; loads the weights once."""
    options = take_options("ixc25", options, DEFAULTS)
    path = str(options["path"])
    check_remote_code_allowed(
        path, bool(options["trust_remote_code"]), options["remote_code_allowlist"] or []
    )
    from transformers import AutoModel, AutoTokenizer

    device = resolve_device(options["device"])
    dtype = resolve_dtype(options["dtype"], device)
    model = AutoModel.from_pretrained(path, dtype=dtype, trust_remote_code=True)
    model.tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=True)
    model = model.to(device).eval()
    return Ixc25RewardModel(model, device, dtype, options)
