"""What IXC-2.5-Reward's own code reads: media as files it tells apart by extension (or, for the
batched path, the same pixels in memory), and a chat rendered in its turn format with one
`<ImageHere>` marker per medium (see `ixc25/backend.py`).
"""

from __future__ import annotations

import contextlib
import io
import os

from models.chat import placeholder_count, to_chat
from models.tokens import ixc_video_frames, media_geometry
from transforms.core.record import IMAGE, VIDEO, Sample

# The extensions the model's own code recognises.
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "gif", "bmp", "webp")
VIDEO_EXTENSIONS = ("mp4", "avi", "mkv", "mov", "wmv")
PIL_FORMAT_EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "GIF": "gif", "BMP": "bmp", "WEBP": "webp"}
IMAGE_HERE = "<ImageHere>"

# The code's chat format: InternLM2's turn markers, then end-of-text and the reward token.
TURN_START, TURN_END = "[UNUSED_TOKEN_146]", "[UNUSED_TOKEN_145]"
REWARD_SUFFIX = "</s>[UNUSED_TOKEN_130]"


def media_extension(kind: str, name_extension: str, data: bytes | None) -> str:
    """An extension the model maps to the right modality: the file's own if it is one it knows,
    else the image format sniffed from the bytes (images) or mp4 (videos)."""
    known = IMAGE_EXTENSIONS if kind == IMAGE else VIDEO_EXTENSIONS
    if name_extension in known:
        return name_extension
    if kind == VIDEO:
        return "mp4"
    from PIL import Image

    with contextlib.suppress(Exception), Image.open(io.BytesIO(data or b"")) as image:
        return PIL_FORMAT_EXTENSIONS.get(image.format or "", "png")
    return "png"


def write_media(sample: Sample, index: int, directory: str) -> str:
    """One media item as a file the model can open; decoded pixels if the bytes are gone."""
    ref = sample.media[index]
    if ref.kind not in (IMAGE, VIDEO):
        raise ValueError(f"sample {sample.id}: unsupported media kind {ref.kind!r}")
    data = ref.data
    if data is None and ref.kind == IMAGE and sample.decoded and sample.decoded[index] is not None:
        from PIL import Image

        buffer = io.BytesIO()
        Image.fromarray(sample.decoded[index]).save(buffer, format="PNG")
        data = buffer.getvalue()
        extension = "png"
    elif data is None:
        raise ValueError(f"sample {sample.id}: media {ref.path!r} has no bytes to score")
    else:
        extension = media_extension(ref.kind, ref.extension, data)
    file_path = os.path.join(directory, f"{index:03d}.{extension}")
    with open(file_path, "wb") as handle:
        handle.write(data)
    return file_path


# Pillow modes whose decoded pixels (`transforms/media/decode.py`) equal `convert("RGB")` of
# the file, which is how the model's own code reads an image: no alpha to composite, no
# 16-bit range to rescale.
AS_READ_MODES = frozenset({"RGB", "L", "1", "CMYK", "YCbCr"})
EXIF_ORIENTATION = 0x0112


def _decoded_as_read(image, decoded) -> bool:
    """Whether the decode step's array is what `Image.open(file).convert("RGB")` gives: full
    size (not shrunk to max_side), not turned by an EXIF orientation, no alpha or 16 bits."""
    shape = getattr(decoded, "shape", ())
    if len(shape) != 3 or tuple(shape[:2]) != (image.height, image.width):
        return False
    if image.getexif().get(EXIF_ORIENTATION, 1) != 1:
        return False
    plain_palette = image.mode == "P" and "transparency" not in image.info
    return image.mode in AS_READ_MODES or plain_palette


def image_as_read(sample: Sample, index: int):
    """One image as the model's code reads it from its file (a PIL RGB image): the decoded
    pixels where they are exactly that, else the file's bytes opened the way the code opens
    them (in memory, no temporary file)."""
    from PIL import Image

    ref = sample.media[index]
    decoded = sample.decoded[index] if sample.decoded and index < len(sample.decoded) else None
    if not ref.data:
        if decoded is None:
            raise ValueError(f"sample {sample.id}: media {ref.path!r} has no bytes to score")
        return Image.fromarray(decoded)
    with Image.open(io.BytesIO(ref.data)) as image:
        if decoded is not None and _decoded_as_read(image, decoded):
            return Image.fromarray(decoded)
        return image.convert("RGB")


def ixc_chat(sample: Sample) -> list[dict[str, str]]:
    """The conversation as the model's get_scores takes it, media markers placed (see top)."""
    media = len(sample.media)
    if media <= 1:
        chat = to_chat(sample)
    elif placeholder_count(sample) == media:
        chat = to_chat(sample, media_marker=IMAGE_HERE)
    else:
        chat = to_chat(sample)
        first_user = next((m for m in chat if m["role"] == "user"), None)
        if first_user is None:
            raise ValueError(f"sample {sample.id}: {media} media but no user turn to hold them")
        first_user["content"] = "\n".join([IMAGE_HERE] * media + [first_user["content"]])
    markers = sum(m["content"].count(IMAGE_HERE) for m in chat)
    if markers != media and not (media == 1 and markers == 0):
        raise ValueError(
            f"sample {sample.id}: {markers} {IMAGE_HERE} markers in the text for {media} "
            "media; the model places media only at these markers"
        )
    return chat


def render_prompt(chat: list[dict[str, str]], media: int) -> str:
    """The text the model reads, media markers included (one medium goes first)."""
    prompt = "".join(f"{TURN_START}{m['role']}\n{m['content']}{TURN_END}\n" for m in chat)
    prompt += REWARD_SUFFIX
    if media == 1 and IMAGE_HERE not in prompt:
        prompt = IMAGE_HERE + prompt
    return prompt


def video_geometry(sample: Sample, index: int) -> tuple[int, int, int] | None:
    """(frames the model keeps, height, width), read from the file as the model reads it."""
    data = sample.media[index].data
    if data:
        with contextlib.suppress(Exception):
            import decord

            reader = decord.VideoReader(io.BytesIO(data), num_threads=1)
            height, width = reader[0].shape[:2]
            return ixc_video_frames(len(reader), reader.get_avg_fps()), height, width
    return media_geometry(sample, index)
