"""An image's size from its header alone: what token estimates and decode budgets need before
(or without) decoding it. Here, not in media/, because the models' token estimates read it too.
"""

from __future__ import annotations

import io

from PIL import Image


def header_size(data: bytes | None) -> tuple[int, int] | None:
    """(height, width) from an image's header (Pillow reads no pixel data for `.size`)."""
    if not data:
        return None
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except Exception:  # noqa: BLE001 - an unreadable header: the caller picks a default
        return None
    return height, width
