import io

import numpy as np
import pytest
from PIL import Image

from tests.helpers import jpeg_bytes, mp4_bytes
from transforms.media.decode import (
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


def test_transparency_is_composited_on_white():
    # Palette with a transparent entry: fully transparent pixels become white, not black.
    palette = Image.new("RGBA", (8, 8), (0, 0, 0, 0)).convert("P")
    assert (decode_image(encoded(palette, "PNG")) == 255).all()
    # Half-transparent blue over white is a light blue, as a viewer shows it.
    rgba = Image.new("RGBA", (4, 4), (0, 0, 255, 128))
    pixel = decode_image(encoded(rgba, "PNG"))[0, 0].astype(int)
    assert abs(pixel[0] - 127) <= 2 and abs(pixel[1] - 127) <= 2 and pixel[2] == 255


def test_sixteen_bit_greyscale_is_scaled_not_clipped():
    ramp = np.tile(np.linspace(0, 60000, 8, dtype=np.uint16), (2, 1))
    pixels = decode_image(encoded(Image.fromarray(ramp), "PNG"))
    grey = pixels[0, :, 0].astype(int)
    assert grey[0] == 0 and grey[-1] == 255  # the brightest value maps to white
    assert list(grey) == sorted(grey) and len(set(grey)) == 8  # the ramp survives
    assert (pixels[..., 0] == pixels[..., 2]).all()  # grey stays grey


@pytest.mark.parametrize("mode", ["CMYK", "LA", "L"])
def test_other_modes_become_rgb(mode):
    colour = {"CMYK": (0, 255, 255, 0), "LA": (90, 255), "L": 90}[mode]
    image = Image.new(mode, (6, 4), colour)
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    pixels = decode_image(encoded(image, fmt))
    assert pixels.shape == (4, 6, 3)
    expected = (255, 0, 0) if mode == "CMYK" else (90, 90, 90)
    assert np.abs(pixels[2, 3].astype(int) - expected).max() <= 8


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
