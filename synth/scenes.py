"""Scene content and rendering for the generated sample dataset.

A scene is the ground truth a conversation can be right or wrong about. The demo reward model is
trained on these pictures, so they are deliberately crisp: a plain light background (slightly
varied so the model cannot key on one exact value), one shape kind and one colour per image, and
shapes big enough to survive a downscale to 64x64 px. Rendering is a pure function of the scene
(``layout_seed`` drives placement), so the same scene always encodes to the same bytes.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass

import av
from PIL import Image, ImageDraw

# Hues far apart in RGB, each strongly saturated, so "dominant colour" is unambiguous even after
# JPEG/mpeg4 compression and on a light grey background.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 160, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 200, 30),
    "purple": (140, 50, 180),
}
SHAPES = ("circle", "square", "triangle")
COUNTS = (1, 2, 3, 4)
MOTIONS = ("left", "right", "up", "down")

VIDEO_FPS = 8


@dataclass(frozen=True)
class ImageScene:
    """Ground truth of one still image: ``count`` shapes of one kind and colour."""

    shape: str
    colour: str
    count: int
    width: int  # px
    height: int  # px
    layout_seed: int


@dataclass(frozen=True)
class VideoScene:
    """Ground truth of one clip: a single shape crossing the frame in ``motion`` direction."""

    shape: str
    colour: str
    motion: str
    seconds: int
    fps: int
    width: int  # px, multiple of 16 (mpeg4 macroblocks, yuv420p needs even sizes)
    height: int  # px, multiple of 16
    layout_seed: int


def random_image_scene(rng: random.Random) -> ImageScene:
    """Draw an image scene; sizes 256-640 px with aspect ratio at most 2:1."""
    width = rng.randint(256, 640)
    height = rng.randint(max(256, width // 2), min(640, width * 2))
    return ImageScene(
        shape=rng.choice(SHAPES),
        colour=rng.choice(sorted(COLOURS)),
        count=rng.choice(COUNTS),
        width=width,
        height=height,
        layout_seed=rng.getrandbits(32),
    )


def random_video_scene(rng: random.Random) -> VideoScene:
    """Draw a video scene: 3-6 s at 8 fps, 160-320 px wide, 128-240 px high."""
    width = 16 * rng.randint(10, 20)
    height = 16 * rng.randint(8, min(15, width // 16))
    return VideoScene(
        shape=rng.choice(SHAPES),
        colour=rng.choice(sorted(COLOURS)),
        motion=rng.choice(MOTIONS),
        seconds=rng.randint(3, 6),
        fps=VIDEO_FPS,
        width=width,
        height=height,
        layout_seed=rng.getrandbits(32),
    )


def differs_everywhere(a: ImageScene | VideoScene, b: ImageScene | VideoScene) -> bool:
    """True when every stated attribute differs, so any answer about ``b`` is wrong for ``a``.

    Used to pick donors for the "mismatched" defect: whichever attribute the donor's answer
    mentions (a count, a colour, a direction...), it contradicts the receiving sample's media.
    """
    if isinstance(a, ImageScene):
        keys = ("shape", "colour", "count")
    else:
        keys = ("shape", "colour", "motion")
    return all(getattr(a, k) != getattr(b, k) for k in keys)


def _background(rng: random.Random) -> tuple[int, int, int]:
    # Light, low-saturation grey with a small tint; shapes are all saturated, so a simple
    # saturation threshold separates them from any background this returns.
    base = rng.randint(230, 248)
    return tuple(min(255, base + rng.randint(-5, 5)) for _ in range(3))  # type: ignore[return-value]


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, box: tuple[float, ...], fill) -> None:
    x0, y0, x1, y1 = box
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    elif shape == "triangle":
        draw.polygon([((x0 + x1) / 2, y0), (x1, y1), (x0, y1)], fill=fill)
    else:
        raise ValueError(f"unknown shape {shape!r}")


def render_image(scene: ImageScene) -> Image.Image:
    """Render an RGB image of the scene.

    Shapes go into distinct cells of a 2x2 grid with a margin of 10% of the cell on each side,
    so neighbours never overlap and keep a gap of >= 20% of a cell even after a non-uniform
    resize to 64x64. Side length is 20-34% of the shorter image side (>= 1/7 as required).
    """
    rng = random.Random(scene.layout_seed)
    img = Image.new("RGB", (scene.width, scene.height), _background(rng))
    draw = ImageDraw.Draw(img)
    cw, ch = scene.width / 2, scene.height / 2
    size = rng.uniform(0.20, 0.34) * min(scene.width, scene.height)
    cells = rng.sample([(0, 0), (1, 0), (0, 1), (1, 1)], scene.count)
    for cx, cy in cells:
        x0 = cx * cw + 0.1 * cw + rng.uniform(0, 0.8 * cw - size)
        y0 = cy * ch + 0.1 * ch + rng.uniform(0, 0.8 * ch - size)
        _draw_shape(draw, scene.shape, (x0, y0, x0 + size, y0 + size), COLOURS[scene.colour])
    return img


def encode_image(scene: ImageScene, fmt: str = "JPEG") -> bytes:
    """Encode the rendered image (``fmt`` is a Pillow format name: JPEG or PNG)."""
    buf = io.BytesIO()
    img = render_image(scene)
    if fmt.upper() in ("JPEG", "JPG"):
        img.save(buf, format="JPEG", quality=90)
    else:
        img.save(buf, format=fmt)
    return buf.getvalue()


def render_frames(scene: VideoScene) -> list[Image.Image]:
    """Render every frame: the shape moves linearly from 5% to 95% of the frame along its axis."""
    rng = random.Random(scene.layout_seed)
    bg = _background(rng)
    w, h = scene.width, scene.height
    size = rng.uniform(0.25, 0.33) * min(w, h)
    horizontal = scene.motion in ("left", "right")
    cross_len = h if horizontal else w
    along_len = w if horizontal else h
    cross = rng.uniform(0.05 * cross_len, 0.95 * cross_len - size)
    start, end = 0.05 * along_len, 0.95 * along_len - size
    if scene.motion in ("left", "up"):
        start, end = end, start
    n = scene.seconds * scene.fps
    frames = []
    for i in range(n):
        along = start + (end - start) * i / (n - 1)
        x0, y0 = (along, cross) if horizontal else (cross, along)
        img = Image.new("RGB", (w, h), bg)
        _draw_shape(
            ImageDraw.Draw(img), scene.shape, (x0, y0, x0 + size, y0 + size), COLOURS[scene.colour]
        )
        frames.append(img)
    return frames


def encode_video(scene: VideoScene) -> bytes:
    """Encode the clip as mp4 (mpeg4 part 2, yuv420p) in memory; decord decodes it.

    mpeg4 rather than h264 because every FFmpeg build PyAV ships has the encoder. The bitexact
    flags keep the encoder/muxer from writing version strings, so output is byte-stable.
    """
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4", options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream("mpeg4", rate=scene.fps)
        stream.width, stream.height = scene.width, scene.height
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = 1_500_000  # bits/s; generous for <=320x240 so colours stay clean
        stream.options = {"flags": "+bitexact"}
        for img in render_frames(scene):
            frame = av.VideoFrame.from_image(img).reformat(format="yuv420p")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buf.getvalue()
