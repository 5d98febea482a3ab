"""Video decoding in a child process that can be killed.

decord can spin forever at 100% CPU while holding the GIL (e.g. on a container that
over-reports its frame count); no thread-based timeout can stop that, only killing the process.
Each pipeline worker therefore decodes videos through one long-lived child process, restarted
after a timeout or a crash, so a bad video costs one error record and a few seconds.
"""

from __future__ import annotations

import multiprocessing
import signal
import weakref
from collections.abc import Callable

import numpy as np

from transforms.decode_media import DecodeError, decode_video


def _serve(connection, decode: Callable[..., np.ndarray]) -> None:
    # Ctrl-C reaches the whole process group: the parent decides when this child stops (and
    # kills it), so the child neither dies half way nor prints a traceback of its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            request = connection.recv()
        except EOFError:
            return
        try:
            connection.send(("ok", decode(*request)))
        except DecodeError as exc:
            connection.send(("error", exc.reason, exc.detail))
        except Exception as exc:  # noqa: BLE001 - reported to the parent as a decode failure
            connection.send(("error", "corrupt_video", f"{type(exc).__name__}: {exc}"))


class KillableVideoDecoder:
    """`decoder(data, fps, max_frames, max_side)` -> frames, raising DecodeError on failure.

    Picklable: the child process starts on first use in whichever process calls it.
    """

    def __init__(self, timeout_s: float, decode: Callable[..., np.ndarray] = decode_video):
        self.timeout_s = timeout_s
        self._decode = decode
        self._process = None
        self._connection = None

    def __getstate__(self):
        return {"timeout_s": self.timeout_s, "_decode": self._decode}

    def __setstate__(self, state):
        self.__init__(state["timeout_s"], state["_decode"])

    def _start(self) -> None:
        _LIVE.add(self)
        # spawn, not fork: forking a process that runs Beam's threads can deadlock the child.
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        self._process = context.Process(
            target=_serve, args=(child, self._decode), daemon=True, name="rmclean-video-decode"
        )
        self._process.start()
        child.close()
        self._connection = parent

    def _kill(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.join(timeout=5)
        if self._connection is not None:
            self._connection.close()
        self._process = self._connection = None

    def __call__(self, data: bytes, fps: float, max_frames: int, max_side: int | None):
        if self._process is None or not self._process.is_alive():
            self._start()
        try:
            self._connection.send((data, fps, max_frames, max_side))
            ready = self._connection.poll(self.timeout_s)
            reply = self._connection.recv() if ready else None
        except (EOFError, BrokenPipeError, ConnectionResetError) as exc:
            self._kill()
            raise DecodeError(
                "decoder_crashed", f"the video decoder process died ({exc!r})"
            ) from exc
        if reply is None:
            self._kill()
            raise DecodeError(
                "decode_timeout",
                f"decoding took longer than {self.timeout_s:g}s; the decoder was killed",
            )
        if reply[0] == "error":
            raise DecodeError(reply[1], reply[2])
        return reply[1]

    def close(self) -> None:
        self._kill()
        _LIVE.discard(self)


# Every decoder of this process with a child running, so an interrupted run can stop them all.
_LIVE: weakref.WeakSet[KillableVideoDecoder] = weakref.WeakSet()


def close_all() -> None:
    for decoder in list(_LIVE):
        decoder.close()
