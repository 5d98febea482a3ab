"""Qwen2-VL / Qwen2.5-VL checkpoints with a scalar value head (Skywork-VL-Reward design).

score = value_head(last hidden state at the last NON-padding token), one padded forward per
batch, left or right padding. Everything goes through transformers' own model classes; inputs
are built here (tokenizer + the PIL image processor, which needs no torchvision) because the
stock processor's video path imports torchvision.

The value head and the chat template are found by `value_head_checkpoint.py`.

Videos: the decoded frames (1 fps, at most `video_max_frames`) are resized to one size within
`video_max_pixels` per frame, paired along time (Qwen's temporal patch of 2) and passed as
`pixel_values_videos` with `video_grid_thw`, i.e. as real video input with temporal positions.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import torch

from models.chat import to_multimodal_chat
from models.loading import (
    ModelConfigError,
    check_device,
    checkpoint_fingerprint,
    last_token_index,
    resolve_device,
    resolve_dtype,
    take_options,
)
from models.micro_batches import MicroBatchedModel
from models.spec import BackendSpec
from models.tokens import QwenTokenEstimator, qwen_resized
from models.value_head_checkpoint import (
    chat_template_of,
    find_value_head,
    load_value_head,
)
from transforms.core.record import IMAGE, Sample

IMAGE_PAD, VIDEO_PAD = "<|image_pad|>", "<|video_pad|>"


DEFAULTS: dict[str, Any] = {
    "path": None,
    "dtype": "auto",
    "device": "auto",
    "padding_side": "right",
    "attn_implementation": "sdpa",
    "min_pixels": None,  # default: the checkpoint's preprocessor_config.json
    "max_pixels": None,
    "video_max_pixels": 28 * 28 * 128,
    "video_max_frames": 32,
    "video_fps": 1.0,  # the decode step's sampling rate; sets Qwen2.5-VL's temporal positions
    "max_batch_tokens": None,  # padded token budget per forward; None = the whole batch
    "max_batch_size": None,
}


class VlmValueHeadRewardModel(MicroBatchedModel):
    """`RewardModel` over a Qwen2-VL-family base model plus a linear value head."""

    name = "vlm-value-head"
    prepare_ahead = True  # resizing, patching and tokenizing overlap the previous forward

    def __init__(
        self,
        model: Any,
        value_head: torch.nn.Linear,
        tokenizer: Any,
        image_processor: Any,
        chat_template: str,
        options: dict[str, Any],
        device: torch.device | None = None,
    ):
        self.model = model.eval()
        self.device = device or next(model.parameters()).device
        self.value_head = value_head.float().to(self.device).eval()
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.chat_template = chat_template
        self.padding_side = options["padding_side"]
        self.video_max_pixels = int(options["video_max_pixels"])
        self.video_max_frames = int(options["video_max_frames"])
        self.video_fps = float(options["video_fps"])
        self.max_batch_tokens = options["max_batch_tokens"]
        self.max_batch_size = options["max_batch_size"]
        size = image_processor.size
        self.min_pixels = int(options["min_pixels"] or size["shortest_edge"])
        self.max_pixels = int(options["max_pixels"] or size["longest_edge"])
        self.patch = int(image_processor.patch_size)
        self.merge = int(image_processor.merge_size)
        self.temporal = int(image_processor.temporal_patch_size)
        config = model.config
        self.image_token_id = config.image_token_id
        self.video_token_id = config.video_token_id
        self.is_qwen25 = config.model_type.startswith("qwen2_5")
        self.estimate_tokens = QwenTokenEstimator(
            self.min_pixels, self.max_pixels, self.video_max_pixels, self.video_max_frames
        )

    def _prepare(self, samples: list[Sample]) -> dict[str, torch.Tensor]:
        return self.build_inputs(samples)

    def _forward(self, inputs: dict[str, torch.Tensor]) -> list[float]:
        with torch.inference_mode():
            output = self.model(**inputs, use_cache=False)
            hidden = output.last_hidden_state
            last = last_token_index(inputs["attention_mask"])
            pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
            values = self.value_head(pooled.float()).squeeze(-1)
        return values.cpu().tolist()

    # -- inputs ---------------------------------------------------------------------------
    def build_inputs(self, samples: list[Sample]) -> dict[str, torch.Tensor]:
        """Token ids with media placeholders expanded, pixels, grids and mask, on the device."""
        texts, images, videos = [], [], []
        for sample in samples:
            if sample.media and (not sample.decoded or len(sample.decoded) != len(sample.media)):
                raise ValueError(f"sample {sample.id}: media must be decoded before scoring")
            texts.append(
                self.tokenizer.apply_chat_template(
                    to_multimodal_chat(sample), chat_template=self.chat_template, tokenize=False
                )
            )
            for ref, pixels in zip(sample.media, sample.decoded or [], strict=False):
                (images if ref.kind == IMAGE else videos).append(np.asarray(pixels))
        batch: dict[str, torch.Tensor] = {}
        image_tokens: list[int] = []
        video_tokens: list[int] = []
        if images:
            processed = self.image_processor(
                images=images,
                size={"shortest_edge": self.min_pixels, "longest_edge": self.max_pixels},
                return_tensors="pt",
            )
            batch["pixel_values"] = processed["pixel_values"]
            batch["image_grid_thw"] = processed["image_grid_thw"]
            image_tokens = [int(g.prod()) // self.merge**2 for g in processed["image_grid_thw"]]
        if videos:
            patches, grids = zip(*(self.video_patches(frames) for frames in videos), strict=True)
            batch["pixel_values_videos"] = torch.from_numpy(np.concatenate(patches))
            batch["video_grid_thw"] = torch.tensor(grids, dtype=torch.long)
            video_tokens = [int(np.prod(g)) // self.merge**2 for g in grids]
            if self.is_qwen25:
                batch["second_per_grid_ts"] = torch.full(
                    (len(grids),), self.temporal / self.video_fps, dtype=torch.float
                )
        texts = expand_placeholders(texts, IMAGE_PAD, image_tokens)
        texts = expand_placeholders(texts, VIDEO_PAD, video_tokens)
        encoded = self.tokenizer(
            texts,
            padding=True,
            padding_side=self.padding_side,
            add_special_tokens=False,
            return_tensors="pt",
        )
        input_ids = encoded["input_ids"]
        batch["input_ids"] = input_ids
        batch["attention_mask"] = encoded["attention_mask"]
        batch["mm_token_type_ids"] = (input_ids == self.image_token_id).int() + 2 * (
            input_ids == self.video_token_id
        ).int()
        dtype = self.model.dtype
        return {
            key: value.to(self.device, dtype=dtype if value.is_floating_point() else None)
            if key.startswith("pixel")
            else value.to(self.device)
            for key, value in batch.items()
        }

    def video_patches(self, frames: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int]]:
        """(T, H, W, 3) uint8 frames -> Qwen's flat patches (n, C*2*14*14) and grid (t, h, w)."""
        from PIL import Image

        frames = frames[: self.video_max_frames]
        if len(frames) % self.temporal:
            pad = self.temporal - len(frames) % self.temporal
            frames = np.concatenate([frames, np.repeat(frames[-1:], pad, axis=0)])
        height, width = qwen_resized(
            frames.shape[1], frames.shape[2], self.min_pixels, self.video_max_pixels
        )
        resized = np.stack(
            [np.asarray(Image.fromarray(f).resize((width, height), Image.BICUBIC)) for f in frames]
        ).astype(np.float32)
        mean = np.asarray(self.image_processor.image_mean, dtype=np.float32)
        std = np.asarray(self.image_processor.image_std, dtype=np.float32)
        normed = ((resized / 255.0 - mean) / std).transpose(0, 3, 1, 2)  # T, C, H, W
        p, m, tp = self.patch, self.merge, self.temporal
        t, gh, gw = len(frames) // tp, height // p, width // p
        patches = normed.reshape(t, tp, 3, gh // m, m, p, gw // m, m, p)
        patches = patches.transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)
        return patches.reshape(t * gh * gw, 3 * tp * p * p), (t, gh, gw)


def expand_placeholders(texts: list[str], token: str, counts: list[int]) -> list[str]:
    """Replace each single media placeholder, in order across the batch, by its token count."""
    if not counts:
        return texts
    remaining = iter(counts)
    out = []
    for text in texts:
        pieces = text.split(token)
        rebuilt = pieces[0]
        for piece in pieces[1:]:
            rebuilt += token * next(remaining) + piece
        out.append(rebuilt)
    if next(remaining, None) is not None:
        raise ValueError(f"more {token} inputs than placeholders in the chat template output")
    return out


def preflight(options: dict[str, Any] | None, workers_here: bool = True) -> None:
    """Unknown options; with `workers_here`, a missing checkpoint or value head, or an
    unusable device, too: all before any weight loads."""
    options = take_options("vlm-value-head", options, DEFAULTS)
    if not workers_here:
        return
    path = str(options["path"])
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise ModelConfigError(
            f"vlm-value-head: {path!r} is not a checkpoint folder (no config.json); download "
            "it first, e.g. `hf download Skywork/Skywork-VL-Reward-7B "
            f"--local-dir {path}`"
        )
    find_value_head(path)
    check_device("vlm-value-head", path, options["device"])


def load_vlm_value_head(options: dict[str, Any] | None = None) -> VlmValueHeadRewardModel:
    """Factory: options as in `DEFAULTS`; `path` is a local checkpoint directory."""
    options = take_options("vlm-value-head", options, DEFAULTS)
    from transformers import AutoConfig, AutoModel, AutoTokenizer
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )

    path = str(options["path"])
    check_device("vlm-value-head", path, options["device"])
    device = resolve_device(options["device"])
    dtype = resolve_dtype(options["dtype"], device)
    config = AutoConfig.from_pretrained(path)
    if not config.model_type.startswith(("qwen2_vl", "qwen2_5_vl")):
        raise ValueError(f"vlm-value-head supports Qwen2-VL / Qwen2.5-VL, not {config.model_type}")
    head = load_value_head(path, config.get_text_config().hidden_size)
    model = AutoModel.from_pretrained(
        path, dtype=dtype, attn_implementation=options["attn_implementation"]
    ).to(device)
    tokenizer = AutoTokenizer.from_pretrained(path)
    image_processor = Qwen2VLImageProcessorPil.from_pretrained(path)
    return VlmValueHeadRewardModel(
        model, head, tokenizer, image_processor, chat_template_of(path, tokenizer), options, device
    )


def saved_pixel_bounds(path: str | None) -> tuple[int, int]:
    """(min_pixels, max_pixels) from a local checkpoint's preprocessor_config.json."""
    default = (56 * 56, 28 * 28 * 1280)
    config_file = os.path.join(path, "preprocessor_config.json") if path else ""
    if not config_file or not os.path.exists(config_file):
        return default
    with open(config_file) as handle:
        saved = json.load(handle)
    size = saved.get("size") or {}
    return (
        int(size.get("shortest_edge", saved.get("min_pixels", default[0]))),
        int(size.get("longest_edge", saved.get("max_pixels", default[1]))),
    )


def _estimator(options: dict[str, Any]) -> QwenTokenEstimator:
    saved = saved_pixel_bounds(options.get("path"))
    return QwenTokenEstimator(
        int(options["min_pixels"] or saved[0]),
        int(options["max_pixels"] or saved[1]),
        int(options["video_max_pixels"]),
        int(options["video_max_frames"]),
    )


def _fingerprint(options: dict[str, Any]) -> str | None:
    return checkpoint_fingerprint(options.get("path"))


SPEC = BackendSpec(
    name="vlm-value-head",
    defaults=DEFAULTS,
    load=load_vlm_value_head,
    estimator=_estimator,
    check=preflight,
    fingerprint=_fingerprint,
    # Frames are sampled by the decode step (decode.video_fps / decode.max_frames): the
    # model's temporal positions must say the same.
    run_options=("max_batch_tokens", "max_batch_size", "video_fps", "video_max_frames"),
)
