"""Inputs for a Qwen2-VL / Qwen2.5-VL model, built on the CPU from decoded samples.

Built here (tokenizer + the image processor, the torch one when torchvision is there, else the
PIL one) rather than by the stock processor, whose video path imports torchvision.

Videos: the decoded frames (1 fps, at most `video_max_frames`) are resized to one size within
`video_max_pixels` per frame, paired along time (Qwen's temporal patch of 2) and passed as
video patches with their `video_grid_thw`, i.e. as real video input with temporal positions.

Two layouts of the same tokens:
- `padded`: what the model's own forward takes (one padded row per sample);
- `packed`: one row for the whole micro-batch (`packing.py`), each sample's multimodal rope
  positions computed alone by the model's own `get_rope_index` and laid end to end, and every
  image's and video's patches in one tensor for a single vision-tower pass.

Both say where each sample's values are read (`value_reads.py`): its last token, and the end of
each assistant turn (`turn_ends.py`). Turn ends are found on the chat text before its media
placeholders are expanded (a cut and the whole hold the same media, so comparing them costs no
media tokens), then moved past each placeholder's expansion.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from models.chat import to_multimodal_chat
from models.tokens import qwen_resized
from models.value_head.packing import PackedRow, pack
from models.value_head.turn_ends import TurnEnds
from models.value_head.value_reads import ValueReads
from transforms.core.record import IMAGE, Sample

IMAGE_PAD, VIDEO_PAD = "<|image_pad|>", "<|video_pad|>"
TEXT, IMAGE_TYPE, VIDEO_TYPE = 0, 1, 2  # transformers' mm_token_type_ids


def image_processor_class() -> type:
    """transformers' fast (torch) Qwen2-VL image processor where torchvision imports, else
    its PIL one (PyPI's torchvision does not import beside every torch build)."""
    try:
        import torchvision  # noqa: F401
        from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor

        return Qwen2VLImageProcessor
    except ImportError:
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
            Qwen2VLImageProcessorPil,
        )

        return Qwen2VLImageProcessorPil


@dataclass(frozen=True)
class Media:
    """Every image's, then every video's, patches of a micro-batch, for one vision pass."""

    pixels: torch.Tensor | None  # (patches, C * temporal * patch * patch)
    grid_thw: torch.Tensor | None  # (items, 3): images first, then videos
    images: int  # how many of the items are images
    image_tokens: list[int]  # merged tokens per image, in order
    video_tokens: list[int]
    video_seconds_per_grid: float  # seconds one temporal patch spans (Qwen2.5-VL positions)


@dataclass(frozen=True)
class PackedQwenInputs:
    """One micro-batch packed into a single row, with its media for one vision pass."""

    row: PackedRow
    rope_positions: torch.Tensor  # (3, 1, L): temporal, height, width positions
    media: Media

    def to(self, device: torch.device, dtype: torch.dtype) -> PackedQwenInputs:
        media = self.media
        if media.pixels is not None:
            media = Media(
                media.pixels.to(device, dtype),
                media.grid_thw.to(device),
                media.images,
                media.image_tokens,
                media.video_tokens,
                media.video_seconds_per_grid,
            )
        return PackedQwenInputs(self.row.to(device), self.rope_positions.to(device), media)

    @property
    def position_ids(self) -> torch.Tensor:
        """(4, 1, L): the per-sample text positions first (transformers reads packing from
        that row), then the three rope rows."""
        return torch.cat([self.row.positions.unsqueeze(0), self.rope_positions])


@dataclass(frozen=True)
class PaddedQwenInputs:
    """One micro-batch as the model's own forward takes it, and where its values are read."""

    batch: dict[str, torch.Tensor]
    reads: ValueReads


class QwenVlInputs:
    """Chat text, media patches and token ids for a list of samples (CPU tensors only)."""

    def __init__(
        self,
        tokenizer: Any,
        image_processor: Any,
        chat_template: str,
        config: Any,
        rope_index: Callable,
        options: dict[str, Any],
        dtype: torch.dtype,
    ):
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.chat_template = chat_template
        self.rope_index = rope_index  # the model's own get_rope_index (reads the config only)
        self.dtype = dtype
        self.video_max_pixels = int(options["video_max_pixels"])
        self.video_max_frames = int(options["video_max_frames"])
        self.video_fps = float(options["video_fps"])
        size = image_processor.size
        self.min_pixels = int(options["min_pixels"] or size["shortest_edge"])
        self.max_pixels = int(options["max_pixels"] or size["longest_edge"])
        self.patch = int(image_processor.patch_size)
        self.merge = int(image_processor.merge_size)
        self.temporal = int(image_processor.temporal_patch_size)
        self.image_token_id = config.image_token_id
        self.video_token_id = config.video_token_id
        self.is_qwen25 = config.model_type.startswith("qwen2_5")
        self.turn_ends = TurnEnds("vlm-value-head", self.render, self.token_ids)

    # -- the two layouts ------------------------------------------------------------------
    def padded(self, samples: list[Sample], padding_side: str) -> PaddedQwenInputs:
        """Token ids with media placeholders expanded, pixels, grids and mask, as the model's
        forward takes them, and where each sample's values are read."""
        media = self.media(samples)
        rendered = [self.render(sample) for sample in samples]
        texts = self.expand(rendered, media)
        encoded = self.tokenizer(
            texts,
            padding=True,
            padding_side=padding_side,
            add_special_tokens=False,
            return_tensors="pt",
        )
        input_ids = encoded["input_ids"]
        batch = {
            "input_ids": input_ids,
            "attention_mask": encoded["attention_mask"],
            "mm_token_type_ids": self.token_types(input_ids),
        }
        if media.images:
            batch["pixel_values"] = media.pixels[: self._patches(media, 0, media.images)]
            batch["image_grid_thw"] = media.grid_thw[: media.images]
        if media.video_tokens:
            batch["pixel_values_videos"] = media.pixels[self._patches(media, 0, media.images) :]
            batch["video_grid_thw"] = media.grid_thw[media.images :]
            if self.is_qwen25:
                batch["second_per_grid_ts"] = torch.full(
                    (len(media.video_tokens),), media.video_seconds_per_grid, dtype=torch.float
                )
        mask = encoded["attention_mask"].bool()
        ids = [row[real].tolist() for row, real in zip(input_ids, mask, strict=True)]
        turn_ends = self.sample_turn_ends(samples, rendered, media, ids)
        return PaddedQwenInputs(batch, ValueReads.of([len(i) for i in ids], turn_ends))

    def packed(self, samples: list[Sample]) -> PackedQwenInputs:
        """The micro-batch as one row; each sample's rope positions as if it were alone."""
        media = self.media(samples)
        rendered = [self.render(sample) for sample in samples]
        ids = self.token_ids(self.expand(rendered, media))
        row = pack(ids, self.sample_turn_ends(samples, rendered, media, ids))
        grids = media.grid_thw if media.grid_thw is not None else torch.zeros(0, 3)
        images, videos = iter(grids[: media.images]), iter(grids[media.images :])
        positions = []
        for sample, sample_ids in zip(samples, ids, strict=True):
            tokens = torch.tensor([sample_ids], dtype=torch.long)
            kinds = [ref.kind for ref in sample.media]
            image_grids = [next(images) for kind in kinds if kind == IMAGE]
            video_grids = [next(videos) for kind in kinds if kind != IMAGE]
            sample_positions, _ = self.rope_index(
                tokens,
                mm_token_type_ids=self.token_types(tokens),
                image_grid_thw=torch.stack(image_grids) if image_grids else None,
                video_grid_thw=torch.stack(video_grids) if video_grids else None,
                second_per_grid_ts=torch.full(
                    (len(video_grids),), media.video_seconds_per_grid, dtype=torch.float
                )
                if video_grids and self.is_qwen25
                else None,
            )
            positions.append(sample_positions)
        return PackedQwenInputs(row, torch.cat(positions, dim=2), media)

    # -- pieces -----------------------------------------------------------------------------
    def render(self, sample: Sample) -> str:
        """The sample's chat text, one placeholder token per image or video."""
        return self.tokenizer.apply_chat_template(
            to_multimodal_chat(sample), chat_template=self.chat_template, tokenize=False
        )

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        return self.tokenizer(texts, add_special_tokens=False)["input_ids"]

    def expand(self, rendered: list[str], media: Media) -> list[str]:
        """Chat texts with every media placeholder expanded to its token count."""
        texts = expand_placeholders(rendered, IMAGE_PAD, media.image_tokens)
        return expand_placeholders(texts, VIDEO_PAD, media.video_tokens)

    def texts(self, samples: list[Sample], media: Media) -> list[str]:
        """Each sample's chat text with every media placeholder expanded to its token count."""
        return self.expand([self.render(sample) for sample in samples], media)

    def sample_turn_ends(
        self, samples: list[Sample], rendered: list[str], media: Media, ids: list[list[int]]
    ) -> list[tuple[int, ...] | None]:
        """Each sample's turn ends as offsets into `ids` (its expanded tokens), or None."""
        if self.turn_ends.unavailable:
            return [None] * len(samples)
        image_tokens, video_tokens = iter(media.image_tokens), iter(media.video_tokens)
        shorts, expanded_ends = [], []
        for sample, short, full in zip(samples, self.token_ids(rendered), ids, strict=True):
            # What each token of the short (unexpanded) text becomes in the expanded one.
            short_ids = np.asarray(short, dtype=np.int64)
            widths = np.ones(len(short), dtype=np.int64)
            for token, counts in (
                (self.image_token_id, image_tokens),
                (self.video_token_id, video_tokens),
            ):
                slots = np.flatnonzero(short_ids == token)
                widths[slots] = list(itertools.islice(counts, len(slots)))
            if not np.array_equal(np.repeat(short_ids, widths), np.asarray(full)):
                self.turn_ends.skip(
                    sample,
                    "expansion",
                    "its expanded media placeholders did not tokenize as the placeholders "
                    "repeated, so turn ends found before expanding cannot be moved across",
                )
                short, widths = None, None
            shorts.append(short)
            expanded_ends.append(None if widths is None else np.cumsum(widths) - 1)
        checked = [i for i, short in enumerate(shorts) if short is not None]
        short_ends = self.turn_ends.of([samples[i] for i in checked], [shorts[i] for i in checked])
        found: list[tuple[int, ...] | None] = [None] * len(samples)
        for i, ends in zip(checked, short_ends, strict=True):
            # expanded_ends[i][e]: the last expanded token of short token e.
            found[i] = None if ends is None else tuple(int(expanded_ends[i][e]) for e in ends)
        return found

    def media(self, samples: list[Sample]) -> Media:
        """Every image's then every video's patches, in sample and placeholder order."""
        images, videos = [], []
        for sample in samples:
            if sample.media and (not sample.decoded or len(sample.decoded) != len(sample.media)):
                raise ValueError(f"sample {sample.id}: media must be decoded before scoring")
            for ref, pixels in zip(sample.media, sample.decoded or [], strict=False):
                (images if ref.kind == IMAGE else videos).append(np.asarray(pixels))
        patches: list[torch.Tensor] = []
        grids: list[torch.Tensor] = []
        if images:
            processed = self.image_processor(
                images=images,
                size={"shortest_edge": self.min_pixels, "longest_edge": self.max_pixels},
                return_tensors="pt",
            )
            patches.append(processed["pixel_values"])
            grids.append(processed["image_grid_thw"])
        for frames in videos:
            video, grid = self.video_patches(frames)
            patches.append(torch.from_numpy(video))
            grids.append(torch.tensor([grid], dtype=torch.long))
        grid_thw = torch.cat(grids) if grids else None
        tokens = [int(g.prod()) // self.merge**2 for g in grid_thw] if grids else []
        return Media(
            pixels=torch.cat(patches).to(self.dtype) if patches else None,
            grid_thw=grid_thw,
            images=len(images),
            image_tokens=tokens[: len(images)],
            video_tokens=tokens[len(images) :],
            video_seconds_per_grid=self.temporal / self.video_fps,
        )

    def token_types(self, input_ids: torch.Tensor) -> torch.Tensor:
        """transformers' mm_token_type_ids: 0 text, 1 image, 2 video."""
        return (input_ids == self.image_token_id).int() * IMAGE_TYPE + (
            input_ids == self.video_token_id
        ).int() * VIDEO_TYPE

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

    def _patches(self, media: Media, start: int, end: int) -> int:
        """Patch rows of media items [start, end)."""
        return int(media.grid_thw[start:end].prod(dim=1).sum()) if end > start else 0


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
