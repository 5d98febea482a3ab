"""Media bytes written out as files under a dataset root, each path once, a few at a time.

Samples share media (ALLaVA's caption and instruct subsets share every image, LLaVA-Video
asks many questions about one video), so a path already written is skipped: the output folder
starts empty, so a file that exists was written by this export. Writes run on a small thread
pool, since object stores answer each PUT slowly but many at once; at most `in_flight` files
(their bytes included) wait at any time.
"""

from __future__ import annotations

import posixpath
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

import fsspec


class MediaFiles:
    def __init__(self, root: str, in_flight: int = 16):
        self._fs, self._root = fsspec.core.url_to_fs(root)
        self._pool = ThreadPoolExecutor(max_workers=in_flight)
        self._in_flight = in_flight
        self._pending: dict[str, Future] = {}
        self._lock = threading.Lock()
        self._failure: BaseException | None = None
        self.written = 0
        self.already_there = 0

    def write(self, relative: str, data: bytes) -> None:
        """Write `data` to `root/relative` unless this export already wrote that path."""
        path = posixpath.join(self._root, relative)
        self._raise_failure()
        with self._lock:
            if path in self._pending:
                self.already_there += 1
                return
        while len(self._pending) >= self._in_flight:
            self._wait_for_one()
        future = self._pool.submit(self._write_once, path, data)
        with self._lock:
            self._pending[path] = future
        future.add_done_callback(lambda done, path=path: self._done(path, done))

    def _write_once(self, path: str, data: bytes) -> bool:
        if self._fs.exists(path):
            return False
        self._fs.makedirs(posixpath.dirname(path), exist_ok=True)
        with self._fs.open(path, "wb") as handle:
            handle.write(data)
        return True

    def _done(self, path: str, future: Future) -> None:
        with self._lock:
            self._pending.pop(path, None)
            if future.exception() is not None:
                self._failure = self._failure or future.exception()
            elif future.result():
                self.written += 1
            else:
                self.already_there += 1

    def _wait_for_one(self) -> None:
        with self._lock:
            futures = list(self._pending.values())
        wait(futures, return_when=FIRST_COMPLETED)
        self._raise_failure()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def close(self) -> None:
        """Wait for every write; raise the first that failed."""
        self._pool.shutdown(wait=True)
        self._raise_failure()
