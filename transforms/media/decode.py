"""Bytes to pixels: images with Pillow, videos with decord, sampled as the reference model does.

Every failure raises `DecodeError` with a short reason code and a detail a person can act on;
the Beam step turns it into an error record.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageFile, ImageOps

# Formats we accept; restricting them stops Pillow from trying every plugin on garbage.
IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
# Decompression bombs: Pillow's own limit (Image.MAX_IMAGE_PIXELS, ~89 Mpx) applies; it warns
# above it, which `decode_image` turns into an error, and raises above twice that.


class DecodeError(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode to RGB; transparency is composited on white, as a viewer would show it."""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit greyscale: scale to 8 bits instead of clipping everything to white.
        array = np.asarray(image, dtype=np.float64)
        peak = array.max() or 1.0
        return Image.fromarray((array * (255.0 / peak)).astype(np.uint8)).convert("RGB")
    return image.convert("RGB")


def _fit(image: Image.Image, max_side: int | None) -> Image.Image:
    if max_side and max(image.size) > max_side:
        image = image.copy()
        image.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    return image


def decode_image(data: bytes, max_side: int | None = None) -> np.ndarray:
    """Fully decode an image to an (H, W, 3) uint8 RGB array with EXIF orientation applied."""
    if not data:
        raise DecodeError("empty_file", "the image file has zero bytes")
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as image:
                image.load()  # open() is lazy: truncation only shows up here
                image = ImageOps.exif_transpose(image)
                image = _fit(_to_rgb(image), max_side)
                return np.asarray(image, dtype=np.uint8)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DecodeError("decompression_bomb", str(exc)) from exc
    except Image.UnidentifiedImageError as exc:
        raise DecodeError(
            "not_an_image", f"not a readable {'/'.join(IMAGE_FORMATS)} image"
        ) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise DecodeError("corrupt_image", str(exc) or type(exc).__name__) from exc


def sample_frame_indices(num_frames: int, avg_fps: float, fps: float, max_frames: int) -> list[int]:
    """Frame indices at `fps` frames per second, evenly thinned to at most `max_frames`.

    Mirrors the reference reward model: one frame per second, capped at 32 for long videos.
    """
    if num_frames <= 0:
        return []
    step = max(avg_fps / fps, 1.0) if avg_fps > 0 else 1.0
    indices = [int(round(i * step)) for i in range(int(num_frames / step) or 1)]
    indices = [i for i in indices if i < num_frames] or [0]
    if len(indices) > max_frames:
        picks = np.linspace(0, len(indices) - 1, max_frames).round().astype(int)
        indices = [indices[i] for i in picks]
    return indices


def decode_video(
    data: bytes, fps: float = 1.0, max_frames: int = 32, max_side: int | None = None
) -> np.ndarray:
    """Decode sampled frames to a (T, H, W, 3) uint8 array."""
    import decord

    if not data:
        raise DecodeError("empty_file", "the video file has zero bytes")
    try:
        reader = decord.VideoReader(io.BytesIO(data), ctx=decord.cpu(0), num_threads=1)
        indices = sample_frame_indices(len(reader), reader.get_avg_fps(), fps, max_frames)
        if not indices:
            raise DecodeError("empty_video", "the video has no frames")
        frames = reader.get_batch(indices).asnumpy()
    except DecodeError:
        raise
    except (RuntimeError, decord.DECORDError, ValueError) as exc:
        raise DecodeError("corrupt_video", str(exc).splitlines()[0][:300]) from exc
    if max_side and max(frames.shape[1:3]) > max_side:
        frames = np.stack([np.asarray(_fit(Image.fromarray(f), max_side)) for f in frames])
    return frames


def decode_sample(sample, max_side: int, video_fps: float, max_frames: int):
    """Decode every media item of a sample into `sample.decoded`, in this process; the first
    failure is an error. For tools that decode as the pipeline does (the pipeline itself decodes
    in killable worker processes, `decode_ahead.py`). Returns the sample, or an ErrorRecord
    naming the media path and why it did not decode.
    """
    from transforms.core.record import IMAGE, ErrorRecord

    decoded = []
    for ref in sample.media:
        try:
            if ref.kind == IMAGE:
                decoded.append(decode_image(ref.data, max_side))
            else:
                decoded.append(decode_video(ref.data, video_fps, max_frames, max_side))
        except DecodeError as exc:
            detail = f"{ref.kind} {ref.path!r}: {exc.detail}"
            return ErrorRecord.for_sample(sample, "decode", exc.reason, detail)
    return sample.replace(decoded=decoded)
