"""One video at a time through a decode pool of one process, for callers that wait anyway.

The report page decodes a few flagged videos for keyframe strips; it needs the pool's
protection (a hung decord is killed at the deadline, a crash is restarted) but no parallelism.
The pipeline itself decodes through `decode_ahead.DecodeAhead`, a pool of many.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np

from transforms.core.record import VIDEO
from transforms.media.decode import DecodeError, decode_video
from transforms.media.decode_pool import DecodeJob, DecodePool


def decoder_spec(decode: Callable[..., np.ndarray]) -> str | None:
    """`module:qualname` of a replacement video decoder (None for decord, the default)."""
    if decode is decode_video:
        return None
    return f"{decode.__module__}:{decode.__qualname__}"


class KillableVideoDecoder:
    """`decoder(data, fps, max_frames, max_side)` -> frames, raising DecodeError on failure.

    Picklable: the decoder process starts on first use in whichever process calls it.
    """

    def __init__(self, timeout_s: float, decode: Callable[..., np.ndarray] = decode_video):
        self.timeout_s = timeout_s
        self._decode = decode
        self._pool: DecodePool | None = None
        self._ids = itertools.count()

    def __getstate__(self):
        return {"timeout_s": self.timeout_s, "_decode": self._decode}

    def __setstate__(self, state):
        self.__init__(state["timeout_s"], state["_decode"])

    def __call__(self, data: bytes, fps: float, max_frames: int, max_side: int | None):
        if self._pool is None:
            self._pool = DecodePool(1, decoder_spec(self._decode))
        job_id = next(self._ids)
        media = ((VIDEO, "video", data),)
        self._pool.submit(DecodeJob(job_id, media, fps, max_frames, max_side, self.timeout_s))
        (result,) = self._pool.results(block=True)
        if result.failure is not None:
            _, reason, detail = result.failure
            raise DecodeError(reason, detail)
        return result.frames[0]

    @property
    def processes(self) -> int:
        """Decoder processes alive now (0 after a timeout killed one; the next call starts one)."""
        return self._pool.processes if self._pool else 0

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
