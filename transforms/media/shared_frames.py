"""Decoded frames handed from a decoder process to the pipeline without copying them again.

The decoder writes a sample's arrays once into an anonymous memory file (`memfd_create`) and
passes its descriptor over the Unix socket it already talks on; the pipeline maps the file and
builds numpy views on it. No name exists in /dev/shm, so nothing can leak: the memory is freed
when the last array viewing it is garbage-collected, whoever died first. Where memfd is not
available (non-Linux), the arrays travel pickled through the socket instead (one more copy).
"""

from __future__ import annotations

import mmap
import os
from multiprocessing.connection import Connection
from multiprocessing.reduction import recv_handle, send_handle

import numpy as np

# (byte offset, shape, dtype string) of each array inside the memory file.
Layout = list[tuple[int, tuple[int, ...], str]]

ZERO_COPY = hasattr(os, "memfd_create")
_ALIGN = 64  # keep every array cache-line aligned inside the file


def _layout(arrays: list[np.ndarray]) -> tuple[Layout, int]:
    layout, offset = [], 0
    for array in arrays:
        layout.append((offset, tuple(array.shape), array.dtype.str))
        offset += -(-array.nbytes // _ALIGN) * _ALIGN
    return layout, offset


def send_arrays(connection: Connection, header: tuple, arrays: list[np.ndarray]) -> None:
    """Send `header + (payload,)`; the arrays follow as a memory file, or inline."""
    if not ZERO_COPY:
        connection.send((*header, ("inline", arrays)))
        return
    layout, size = _layout(arrays)
    fd = os.memfd_create("rmclean-frames", os.MFD_CLOEXEC)
    try:
        os.ftruncate(fd, max(size, 1))
        with mmap.mmap(fd, max(size, 1)) as memory:
            for (offset, shape, dtype), array in zip(layout, arrays, strict=True):
                view = np.ndarray(shape, dtype, buffer=memory, offset=offset)
                view[...] = array
                del view  # the mapping cannot close while a view is alive
        connection.send((*header, ("memfd", layout, size)))
        send_handle(connection, fd, 0)
    finally:
        os.close(fd)


def receive_arrays(connection: Connection, payload: tuple) -> list[np.ndarray]:
    """The arrays described by the payload of a message `send_arrays` sent."""
    if payload[0] == "inline":
        return payload[1]
    _, layout, size = payload
    fd = recv_handle(connection)
    try:
        memory = mmap.mmap(fd, max(size, 1))
    finally:
        os.close(fd)  # the mapping keeps the memory; the views keep the mapping
    return [
        np.ndarray(shape, dtype, buffer=memory, offset=offset) for offset, shape, dtype in layout
    ]
