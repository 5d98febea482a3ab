"""The stand-in's media handling (upstream's ixc_utils.py), with torchvision as upstream.

- `get_font` downloads the frame-label font with a plain `urlopen` from the hub, outside the
  Hugging Face cache (offline, that raises), every time the model is built.
- Images: laid horizontally, the long side scaled to `scale` 560 px crops, the largest scale
  whose grid fits `hd_num` but no more than the width needs; the short side follows (rounded
  down) and is padded with white at the bottom to whole crops; then turned back.
- Videos: one frame per second (stride round(fps)), at most 32 evenly thinned; each frame
  scaled to 1120 px on its long side and stacked with a label strip (landscape frames one
  under another, others side by side); the strip is scaled to 560 px across and padded.
"""

from urllib.request import urlopen

import numpy as np
import torchvision  # noqa: F401 - upstream imports it here; a missing torchvision fails here
import torchvision.transforms as transforms
from decord import VideoReader
from PIL import Image, ImageDraw, ImageFont
from torchvision.transforms.functional import InterpolationMode  # noqa: F401

FONT_URL = (
    "https://huggingface.co/internlm/internlm-xcomposer2d5-7b/resolve/main/SimHei.ttf?download=true"
)


def get_font():
    return ImageFont.truetype(urlopen(FONT_URL), size=40)


def padding_336(b, pad=336):
    width, height = b.size
    target = int(np.ceil(height / pad) * pad)
    bottom = target - height
    return transforms.functional.pad(b, [0, 0, 0, bottom], fill=[255, 255, 255])


def Image_transform(img, hd_num=25):
    width, height = img.size
    transposed = width < height
    if transposed:
        img = img.transpose(Image.TRANSPOSE)
        width, height = img.size
    ratio = width / height
    scale = 1
    while scale * np.ceil(scale / ratio) <= hd_num:
        scale += 1
    scale = min(np.ceil(width / 560), scale - 1)
    new_w = int(scale * 560)
    new_h = int(new_w / ratio)
    img = transforms.functional.resize(img, [new_h, new_w])
    img = padding_336(img, 560)
    if transposed:
        img = img.transpose(Image.TRANSPOSE)
    return img


def Video_transform(img, hd_num=25):
    width, height = img.size
    transposed = width < height
    if transposed:
        img = img.transpose(Image.TRANSPOSE)
        width, height = img.size
    new_h = 560
    new_w = int(new_h * (width / height))
    img = transforms.functional.resize(img, [new_h, new_w])
    img = padding_336(img.transpose(Image.TRANSPOSE), 560)
    if not transposed:
        img = img.transpose(Image.TRANSPOSE)
    return img


def frame2img(imgs, font):
    resized = []
    for img in imgs:
        w, h = img.size
        aspect = w / h
        if w > h:
            size = [int(1120 / aspect), 1120]
        else:
            size = [1120, int(1120 * aspect)]
        resized.append(transforms.functional.resize(img, size))
    label_px, gap = 40, 10
    # As upstream, the layout follows the last frame's original orientation.
    if w > h:
        width = max(im.size[0] for im in resized)
        height = sum(im.size[1] + gap + label_px for im in resized)
        canvas = Image.new("RGB", (width, height), "white")
        draw = ImageDraw.Draw(canvas)
        top = 0
        for index, im in enumerate(resized):
            canvas.paste(im, (0, label_px + top))
            draw.text((0, top), f"<IMAGE {index}>", font=font, fill="black")
            if index + 1 < len(resized):
                rule = label_px + top + im.size[1] + 5
                draw.line([(0, rule), (width, rule)], fill="black", width=2)
            top += im.size[1] + gap + label_px
    else:
        width = sum(im.size[0] + gap for im in resized)
        height = max(im.size[1] for im in resized) + label_px
        canvas = Image.new("RGB", (width, height), "white")
        draw = ImageDraw.Draw(canvas)
        left = 0
        for index, im in enumerate(resized):
            canvas.paste(im, (left, label_px))
            draw.text((left, 0), f"<IMAGE {index}>", font=font, fill="black")
            if index + 1 < len(resized):
                rule = left + im.size[0] + 5
                draw.line([(rule, 0), (rule, height)], fill="black", width=2)
            left += im.size[0] + gap
    return canvas


def load_video(video_path, num_frm=32, start=None, end=None):
    reader = VideoReader(video_path, num_threads=1)
    stride = int(round(float(reader.get_avg_fps())))
    first = 0 if start is None else start
    last = len(reader) if end is None else end
    frames = [reader[i].asnumpy() for i in range(first, last, stride)]
    if len(frames) > num_frm:
        step = len(frames) / (num_frm + 1)
        frames = [frames[int(i * step)] for i in range(num_frm)]
    return [Image.fromarray(frame) for frame in frames]
