import io

import numpy as np
import pytest
from PIL import Image

from tests.helpers import jpeg_bytes, mp4_bytes
from transforms.decode_media import (
    DecodeError,
    decode_image,
    decode_video,
    sample_frame_indices,
)


def encoded(image: Image.Image, fmt: str, **save) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save)
    return buffer.getvalue()


def test_jpeg_decodes_to_rgb_and_fits_max_side():
    pixels = decode_image(jpeg_bytes(size=(300, 100)), max_side=150)
    assert pixels.shape == (50, 150, 3) and pixels.dtype == np.uint8


def test_exif_orientation_is_applied():
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    assert decode_image(encoded(image, "JPEG", exif=exif)).shape == (40, 20, 3)


def test_palette_with_alpha_is_composited_on_white():
    image = Image.new("RGBA", (8, 8), (0, 0, 0, 0)).convert("P")
    pixels = decode_image(encoded(image, "PNG"))
    assert pixels.shape == (8, 8, 3)


@pytest.mark.parametrize("mode", ["CMYK", "I;16", "LA", "L"])
def test_other_modes_become_rgb(mode):
    image = Image.new(mode, (6, 4))
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    assert decode_image(encoded(image, fmt)).shape == (4, 6, 3)


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "empty_file"),
        (b"just some text, not an image", "not_an_image"),
        (jpeg_bytes()[:120], "corrupt_image"),
    ],
)
def test_bad_images_raise_with_a_reason(data, reason):
    with pytest.raises(DecodeError) as caught:
        decode_image(data)
    assert caught.value.reason == reason


def test_frame_sampling_is_one_per_second_capped():
    assert sample_frame_indices(40, 8.0, 1.0, 32) == [0, 8, 16, 24, 32]
    long = sample_frame_indices(30 * 600, 30.0, 1.0, 32)
    assert len(long) == 32 and long[0] == 0 and long == sorted(long)
    assert sample_frame_indices(3, 30.0, 1.0, 32) == [0]  # shorter than a second


def test_video_decodes_sampled_frames():
    frames = decode_video(mp4_bytes(frames=24, fps=8))
    assert frames.shape == (3, 48, 64, 3)


@pytest.mark.parametrize("data, reason", [(b"", "empty_file"), (b"\x00" * 500, "corrupt_video")])
def test_bad_videos_raise_with_a_reason(data, reason):
    with pytest.raises(DecodeError) as caught:
        decode_video(data)
    assert caught.value.reason == reason
