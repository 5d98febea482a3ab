"""How many tokens a sample costs a reward model, from media geometry and text length alone.

Used for token-budget batching (Beam's `max_batch_weight` / `element_size_fn`, and the
backends' own length-sorted micro-batches), so it must be cheap: it reads array shapes or an
image header, never decodes pixels or loads weights. Estimates, not exact counts.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from models.chat import text_length
from transforms.core.image_header import header_size
from transforms.core.record import IMAGE, VIDEO, MediaRef, Sample

CHARS_PER_TOKEN = 4
# Fallback geometry when neither pixels nor a readable header are at hand.
DEFAULT_IMAGE_HW = (560, 560)

# IXC-2.5-Reward (its own code): CLIP ViT-L/14 at 560 px, 400 tokens per crop plus a global
# view, one separator per crop row; a video's frames are tiled into one tall or wide image.
IXC_CROP_PX = 560
IXC_TOKENS_PER_CROP = 400
IXC_ROW_TOKENS = 20
IXC_VIDEO_TOKENS = 9000
# With more than one image or video in a sample the model's code lowers hd_num to this.
IXC_MULTI_MEDIA_HD_NUM = 6
# Its video reader: one frame per second of video, at most this many frames.
IXC_VIDEO_MAX_FRAMES = 32
# Its chat format: begin/end markers, role and newlines per turn; BOS, end and reward token.
IXC_TURN_TOKENS = 5
IXC_PROMPT_TOKENS = 3
# Frames are scaled to this long side, then stacked with a 40 px label strip and 10 px gaps.
IXC_FRAME_PX = 1120
IXC_LABEL_PX = 40
IXC_FRAME_GAP_PX = 10

# Qwen2-VL / Qwen2.5-VL: 14 px patches merged 2x2, so one token per 28x28 px, plus
# <|vision_start|> and <|vision_end|>.
QWEN_FACTOR = 28
QWEN_MEDIA_WRAP = 2


def text_tokens(text_chars: int | str, tokenizer: Any = None) -> int:
    """The tokenizer's count when one is given, else characters / 4."""
    if tokenizer is not None and isinstance(text_chars, str):
        return len(tokenizer(text_chars, add_special_tokens=False)["input_ids"])
    chars = len(text_chars) if isinstance(text_chars, str) else text_chars
    return math.ceil(chars / CHARS_PER_TOKEN)


def media_geometry(
    sample: Sample, index: int, prefer_bytes: bool = False
) -> tuple[int, int, int] | None:
    """(frames, height, width) of one media item: decoded array shape, else image header.

    `prefer_bytes` is for models that read the original file (IXC), not the decoded pixels.
    Returns None for a video that has not been decoded (its geometry needs a decoder).
    """
    ref: MediaRef = sample.media[index]
    decoded = sample.decoded[index] if sample.decoded and index < len(sample.decoded) else None
    shape = getattr(decoded, "shape", None)
    if ref.kind == IMAGE:
        size = header_size(ref.data) if prefer_bytes or shape is None else None
        if size is None and shape is not None and len(shape) >= 2:
            size = (int(shape[0]), int(shape[1]))
        return (1, *(size or DEFAULT_IMAGE_HW))
    if shape is not None and len(shape) == 4:
        return int(shape[0]), int(shape[1]), int(shape[2])
    return None


def ixc_crop_grid(height: int, width: int, hd_num: int = 9) -> tuple[int, int]:
    """(rows, cols) of 560 px crops, as the model's own image transform lays them out.

    The long side is scaled to as many crops as it needs (one per started 560 px) but no more
    than the largest n whose `n x ceil(n / aspect)` grid fits in `hd_num`; the short side
    follows the aspect (rounded down to whole pixels, as the model does) and is padded up to
    whole crops. Rows run along the height, so a tall image has more rows than columns (and
    costs more row separators than the same image lying down).
    """
    long_side, short_side = max(height, width), max(1, min(height, width))
    aspect = long_side / short_side
    cols = 1
    while (cols + 1) * math.ceil((cols + 1) / aspect) <= hd_num:
        cols += 1
    cols = max(1, min(cols, math.ceil(long_side / IXC_CROP_PX)))
    scaled_short = int(cols * IXC_CROP_PX / aspect)
    rows = max(1, math.ceil(scaled_short / IXC_CROP_PX))
    # The model turns a tall image back upright: its long side is then the rows.
    return (cols, rows) if height > width else (rows, cols)


def ixc_grid_tokens(rows: int, cols: int) -> int:
    """(h*w + 1) * 400 + 1 + (h + 1) * 20: 841 for one crop, 4,081 for 3x3."""
    return (rows * cols + 1) * IXC_TOKENS_PER_CROP + 1 + (rows + 1) * IXC_ROW_TOKENS


def ixc_image_tokens(height: int, width: int, hd_num: int = 9) -> int:
    """Tokens for one image of this size at `hd_num`."""
    return ixc_grid_tokens(*ixc_crop_grid(height, width, hd_num))


def ixc_video_frames(frame_count: int, fps: float) -> int:
    """Frames the model's video reader keeps: one per second (stride = round(fps)), at most 32."""
    stride = max(1, round(fps))
    return min(IXC_VIDEO_MAX_FRAMES, math.ceil(frame_count / stride))


def ixc_video_tokens(frames: int, height: int, width: int) -> int:
    """Tokens for a video of `frames` sampled frames of height x width.

    The model scales each frame to 1120 px on its long side and stacks them (landscape frames
    one under another, others side by side) with a label strip above each; the strip image is
    then scaled to 560 px across its short side and cut into 560 px crops along its long side.
    """
    if frames < 1:
        return 0
    aspect = width / max(1, height)
    if width > height:
        frame_w, frame_h = IXC_FRAME_PX, int(IXC_FRAME_PX / aspect)
        canvas_w, canvas_h = frame_w, frames * (frame_h + IXC_FRAME_GAP_PX + IXC_LABEL_PX)
    else:
        frame_w, frame_h = int(IXC_FRAME_PX * aspect), IXC_FRAME_PX
        canvas_w, canvas_h = frames * (frame_w + IXC_FRAME_GAP_PX), frame_h + IXC_LABEL_PX
    tall = canvas_w < canvas_h
    long_side, short_side = max(canvas_w, canvas_h), max(1, min(canvas_w, canvas_h))
    crops = max(1, math.ceil(int(IXC_CROP_PX * long_side / short_side) / IXC_CROP_PX))
    return ixc_grid_tokens(crops, 1) if tall else ixc_grid_tokens(1, crops)


def qwen_resized(
    height: int, width: int, min_pixels: int, max_pixels: int, factor: int = QWEN_FACTOR
) -> tuple[int, int]:
    """The processor's resize: multiples of 28 px, area within [min_pixels, max_pixels]."""
    height, width = max(1, height), max(1, width)
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def qwen_media_tokens(
    frames: int, height: int, width: int, min_pixels: int, max_pixels: int, temporal: int = 2
) -> int:
    """Tokens for an image (frames=1) or a video: resized pixels / 28^2 per temporal pair."""
    h_bar, w_bar = qwen_resized(height, width, min_pixels, max_pixels)
    steps = math.ceil(frames / temporal) if frames > 1 else 1
    return steps * (h_bar // QWEN_FACTOR) * (w_bar // QWEN_FACTOR) + QWEN_MEDIA_WRAP


@dataclass(frozen=True)
class IxcTokenEstimator:
    """Tokens IXC-2.5-Reward spends on a sample (it reads the original file, not `decoded`)."""

    hd_num: int = 9
    video_tokens: int = IXC_VIDEO_TOKENS

    def __call__(self, sample: Sample) -> int:
        total = text_tokens(text_length(sample)) + IXC_PROMPT_TOKENS
        total += IXC_TURN_TOKENS * len(sample.conversations)
        return total + ixc_media_tokens(
            sample, self.hd_num, self.video_tokens, _decoded_video_geometry
        )


def ixc_media_tokens(
    sample: Sample,
    hd_num: int,
    video_tokens: int,
    video_geometry: Callable[[Sample, int], tuple[int, int, int] | None],
) -> int:
    """Tokens IXC-2.5-Reward spends on a sample's media: images at their file's size (fewer
    tiles when the sample has several media), videos at `video_geometry(sample, index)`
    (frames kept, height, width), or `video_tokens` where that is unknown."""
    hd_num = hd_num if len(sample.media) <= 1 else IXC_MULTI_MEDIA_HD_NUM
    total = 0
    for index, ref in enumerate(sample.media):
        if ref.kind == VIDEO:
            geometry = video_geometry(sample, index)
            total += ixc_video_tokens(*geometry) if geometry else video_tokens
        else:
            _, height, width = media_geometry(sample, index, prefer_bytes=True)
            total += ixc_image_tokens(height, width, hd_num)
    return total


def _decoded_video_geometry(sample: Sample, index: int) -> tuple[int, int, int] | None:
    """The decoded video's geometry, at most the frames the model keeps."""
    geometry = media_geometry(sample, index)
    if geometry is None:
        return None
    frames, height, width = geometry
    return min(frames, IXC_VIDEO_MAX_FRAMES), height, width


@dataclass(frozen=True)
class QwenTokenEstimator:
    """Tokens a Qwen2-VL-family model spends on a sample, after the processor's resize bounds."""

    min_pixels: int = 56 * 56
    max_pixels: int = 28 * 28 * 1280
    video_max_pixels: int = 28 * 28 * 128
    video_max_frames: int = 32
    template_tokens: int = 20

    def __call__(self, sample: Sample) -> int:
        total = self.template_tokens + text_tokens(text_length(sample))
        for i, ref in enumerate(sample.media):
            geometry = media_geometry(sample, i)
            if ref.kind == VIDEO:
                frames, height, width = geometry or (self.video_max_frames, 10_000, 10_000)
                frames = min(frames, self.video_max_frames)
                total += qwen_media_tokens(
                    frames, height, width, self.min_pixels, self.video_max_pixels
                )
            else:
                _, height, width = geometry
                total += qwen_media_tokens(1, height, width, self.min_pixels, self.max_pixels)
        return total


@dataclass(frozen=True)
class TextTokenEstimator:
    """Text-only reward models: characters / 4 plus the chat template's few tokens."""

    template_tokens: int = 10

    def __call__(self, sample: Sample) -> int:
        return self.template_tokens + text_tokens(text_length(sample))
