"""Media handling of the IXC-2.5-Reward stand-in: the upstream geometry, PIL instead of
torchvision (which does not import beside the CPU torch these tests run on).

- The font that labels video frames is downloaded with a plain `urlopen` from the hub,
  outside the Hugging Face cache, when the model is built: offline, that raises.
- Images: the long side is laid horizontally and scaled to `scale` crops of 560 px, the
  largest `scale` whose grid fits `hd_num` (no more than the image needs); the short side
  follows, rounded down, and is padded with white to whole crops.
- Videos: one frame per second (at most 32), each scaled to 1120 px on its long side,
  stacked with a labelled strip above each, then scaled to 560 px across and padded.
"""

import math
from urllib.request import urlopen

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT_URL = "https://huggingface.co/internlm/internlm-xcomposer2d5-7b/resolve/main/SimHei.ttf"
CROP = 560


def get_font():
    handle = urlopen(FONT_URL)
    return ImageFont.truetype(handle, size=40)


def _pad_height(img, multiple=CROP):
    width, height = img.size
    target = int(math.ceil(height / multiple) * multiple)
    canvas = Image.new("RGB", (width, target), "white")
    canvas.paste(img, (0, 0))
    return canvas


def image_transform(img, hd_num=25):
    img = img.convert("RGB")
    width, height = img.size
    transposed = width < height
    if transposed:
        img = img.transpose(Image.Transpose.TRANSPOSE)
        width, height = img.size
    ratio = width / height
    scale = 1
    while scale * math.ceil(scale / ratio) <= hd_num:
        scale += 1
    scale = min(math.ceil(width / CROP), scale - 1)
    new_w = int(scale * CROP)
    new_h = int(new_w / ratio)
    img = _pad_height(img.resize((new_w, new_h), Image.Resampling.BILINEAR))
    if transposed:
        img = img.transpose(Image.Transpose.TRANSPOSE)
    return img


def video_transform(img):
    width, height = img.size
    transposed = width < height
    if transposed:
        img = img.transpose(Image.Transpose.TRANSPOSE)
        width, height = img.size
    ratio = width / height
    new_h, new_w = CROP, int(CROP * ratio)
    img = img.resize((new_w, new_h), Image.Resampling.BILINEAR)
    img = _pad_height(img.transpose(Image.Transpose.TRANSPOSE))
    if not transposed:
        img = img.transpose(Image.Transpose.TRANSPOSE)
    return img


def load_video(path, max_frames=32):
    from decord import VideoReader

    reader = VideoReader(path, num_threads=1)
    stride = max(1, int(round(float(reader.get_avg_fps()))))
    frames = [reader[i].asnumpy() for i in range(0, len(reader), stride)]
    if len(frames) > max_frames:
        step = len(frames) / (max_frames + 1)
        frames = [frames[int(i * step)] for i in range(max_frames)]
    return [Image.fromarray(frame) for frame in frames]


def frames_to_image(frames, font):
    width, height = frames[0].size
    landscape = width > height
    if landscape:
        size = (1120, int(1120 / (width / height)))
    else:
        size = (int(1120 * (width / height)), 1120)
    frames = [frame.resize(size, Image.Resampling.BILINEAR) for frame in frames]
    fw, fh = size
    if landscape:
        canvas = Image.new("RGB", (fw, len(frames) * (fh + 50)), "white")
        offsets = [(0, i * (fh + 50)) for i in range(len(frames))]
    else:
        canvas = Image.new("RGB", (len(frames) * (fw + 10), fh + 40), "white")
        offsets = [(i * (fw + 10), 0) for i in range(len(frames))]
    draw = ImageDraw.Draw(canvas)
    for index, (frame, (x, y)) in enumerate(zip(frames, offsets, strict=True)):
        canvas.paste(frame, (x, y + 40))
        draw.text((x, y), f"<IMAGE {index}>", font=font, fill="black")
    return canvas


def to_tensor(img):
    """ToTensor + CLIP's Normalize, as (1, 3, H, W) float32."""
    import torch

    mean = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
    std = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)
    pixels = (np.asarray(img, dtype=np.float32) / 255.0 - mean) / std
    return torch.from_numpy(pixels.transpose(2, 0, 1).copy()).unsqueeze(0)
