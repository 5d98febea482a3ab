"""Small JPEG thumbnails of a flagged sample's media, for the HTML report.

A reviewer needs to see the picture next to the answer to judge a mismatch, but the page must
stay small and open from disk: every image becomes one JPEG of at most `THUMB_SIDE` px and every
video a strip of `VIDEO_FRAMES` evenly spaced frames, written next to index.html. Media that
does not decode becomes a `Thumb` with a message instead of a file, so one bad file never
breaks the page. Videos go through the caller's decoder, normally a `KillableVideoDecoder`:
rule-flagged samples never went through the pipeline's decode step, and decord can hang on a
bad file.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from transforms.core.record import IMAGE, VIDEO, MediaRef
from transforms.media.decode import DecodeError, decode_image, decode_video

THUMB_SIDE = 256  # px, longest side of an image thumbnail
FRAME_SIDE = 128  # px, longest side of one video frame in a strip
VIDEO_FRAMES = 4
MEDIA_PER_SAMPLE = 4  # a sample with more images shows the first few only
JPEG_QUALITY = 80
# decode_video samples at `fps` then thins evenly: a huge fps keeps every frame as a candidate,
# so the strip spans the whole clip however short it is.
EVERY_FRAME_FPS = 1e6


@dataclass
class Thumb:
    """One rendered picture (`jpeg` set) or why there is none (`problem` set)."""

    label: str
    jpeg: bytes | None = None
    problem: str | None = None


def _jpeg(pixels: np.ndarray, max_side: int) -> bytes:
    image = Image.fromarray(pixels)
    if max(image.size) > max_side:
        image.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


VideoDecoder = Callable[[bytes, float, int, int], np.ndarray]  # decode_video's signature


def media_thumbs(ref: MediaRef, decode: VideoDecoder = decode_video) -> list[Thumb]:
    """Thumbnails for one media item: one for an image, up to VIDEO_FRAMES for a video."""
    if not ref.data:
        return [Thumb(ref.path, problem="no media bytes in the shard")]
    try:
        if ref.kind == IMAGE:
            return [Thumb(ref.path, _jpeg(decode_image(ref.data, THUMB_SIDE), THUMB_SIDE))]
        if ref.kind == VIDEO:
            frames = decode(ref.data, EVERY_FRAME_FPS, VIDEO_FRAMES, FRAME_SIDE)
            return [
                Thumb(f"{ref.path} frame {i + 1}", _jpeg(f, FRAME_SIDE))
                for i, f in enumerate(frames)
            ]
    except DecodeError as exc:
        return [Thumb(ref.path, problem=f"could not decode: {exc.reason}")]
    except Exception as exc:  # decoders raise many types; the page must still render
        return [Thumb(ref.path, problem=f"could not decode: {type(exc).__name__}")]
    return [Thumb(ref.path, problem=f"unknown media kind {ref.kind!r}")]


def sample_thumbs(media: list[MediaRef], decode: VideoDecoder = decode_video) -> list[Thumb]:
    thumbs = [thumb for ref in media[:MEDIA_PER_SAMPLE] for thumb in media_thumbs(ref, decode)]
    if len(media) > MEDIA_PER_SAMPLE:
        thumbs.append(Thumb("", problem=f"+{len(media) - MEDIA_PER_SAMPLE} more media"))
    return thumbs


class ThumbWriter:
    """Writes every thumbnail of one report as `<report>/thumbs/NNNNNN.jpg`, numbered in order.

    A rebuilt page must not keep an older build's pictures, so the folder starts empty.
    """

    def __init__(self, fs, thumbs_dir: str, decode: VideoDecoder = decode_video):
        self._fs, self._dir, self._decode = fs, thumbs_dir, decode
        self._written = 0
        if fs.exists(thumbs_dir):
            fs.rm(thumbs_dir, recursive=True)
        fs.makedirs(thumbs_dir, exist_ok=True)

    def write(self, media: list[MediaRef]) -> list[tuple[str, Thumb]]:
        """(src relative to the report folder, or "" when there is no picture; thumb) per thumb."""
        shown = []
        for thumb in sample_thumbs(media, self._decode):
            src = ""
            if thumb.jpeg:
                self._written += 1
                src = f"thumbs/{self._written:06d}.jpg"
                with self._fs.open(f"{self._dir}/{self._written:06d}.jpg", "wb") as handle:
                    handle.write(thumb.jpeg)
            shown.append((src, thumb))
        return shown
