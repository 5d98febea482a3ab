"""A cap on decoder processes per machine, shared by all of a run's worker processes.

With several pipeline processes on one machine (`--runner local`), the one that streams an
archive must still be able to decode its videos on every core, while together they start no
more decoders than the machine has cores. Each decoder holds one slot: an exclusive `flock`
on one of `count` files in a folder the run's processes share. The lock belongs to the decoder
process (its descriptor is handed over at start), so it is released whenever the decoder ends,
killed or crashed, and never leaks. Decoders end themselves after a few idle seconds
(`decode_worker`), so a process with nothing to decode does not sit on slots others need.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
from pathlib import Path

ROOT = Path(tempfile.gettempdir()) / "rmclean-decode-slots"
# A run's slot folder left behind (its last process was killed) is removed after this long.
STALE_AFTER_S = 24 * 3600


class DecodeSlots:
    def __init__(self, run_key: str, count: int):
        self.count = count
        self.folder = ROOT / run_key

    def take(self) -> int | None:
        """A descriptor holding a free slot (pass it to the decoder, then close it), or None."""
        if not self.folder.exists():
            self.folder.mkdir(parents=True, exist_ok=True)
            _sweep_stale(self.folder)
        for index in range(self.count):
            fd = os.open(self.folder / f"slot-{index}", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            return fd
        return None

    def remove_if_unused(self) -> None:
        """Delete the slot files once no decoder of the run holds any (best effort)."""
        held = []
        try:
            paths = sorted(self.folder.glob("slot-*"))
            for path in paths:
                fd = os.open(path, os.O_RDWR)
                held.append(fd)
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            for path in paths:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            with contextlib.suppress(OSError):
                self.folder.rmdir()
        except (BlockingIOError, FileNotFoundError):
            pass  # another process's decoder still holds a slot: it cleans up later
        finally:
            for fd in held:
                os.close(fd)


def _sweep_stale(current: Path) -> None:
    now = time.time()
    for folder in ROOT.iterdir():
        with contextlib.suppress(OSError):
            if folder != current and now - folder.stat().st_mtime > STALE_AFTER_S:
                DecodeSlots(folder.name, 0).remove_if_unused()
