"""Lines added in any order, read back sorted by key, in bounded memory (an external sort).

Shards hold samples in the order the pipeline finished them, not the order of their manifests;
putting a million records back in manifest order in memory would hold the whole manifest.
Instead records are buffered up to `buffer_bytes`, each full buffer is sorted and written to a
run file on local disk, and the runs are merged lazily: memory holds one buffer, then one line
per run.
"""

from __future__ import annotations

import heapq
import json
import os
import tempfile
from collections.abc import Iterator
from typing import Any

Key = tuple[Any, ...]


class SortedSpool:
    def __init__(self, directory: str | None = None, buffer_bytes: int = 64 << 20):
        self._directory = tempfile.mkdtemp(prefix="rmclean-spool-", dir=directory)
        self._buffer_bytes = buffer_bytes
        self._buffer: list[tuple[Key, str]] = []
        self._buffered = 0
        self._runs: list[str] = []

    def add(self, key: Key, text: str) -> None:
        """Keep `text` (one line, no newline) to be read back in order of `key` (JSON values)."""
        self._buffer.append((key, text))
        self._buffered += len(text) + 64
        if self._buffered >= self._buffer_bytes:
            self._spill()

    def _spill(self) -> None:
        if not self._buffer:
            return
        path = os.path.join(self._directory, f"run-{len(self._runs):05d}.jsonl")
        with open(path, "w", encoding="utf-8") as run:
            for key, text in sorted(self._buffer, key=lambda item: item[0]):
                run.write(json.dumps([list(key), text], ensure_ascii=False) + "\n")
        self._runs.append(path)
        self._buffer, self._buffered = [], 0

    def sorted_items(self) -> Iterator[tuple[Key, str]]:
        """Every (key, text) added, smallest key first; ties keep no particular order."""
        self._spill()
        handles = [open(path, encoding="utf-8") for path in self._runs]
        try:
            runs = [(_decoded(line) for line in handle) for handle in handles]
            yield from heapq.merge(*runs, key=lambda item: item[0])
        finally:
            for handle in handles:
                handle.close()

    def close(self) -> None:
        """Remove the run files."""
        for path in self._runs:
            os.remove(path)
        os.rmdir(self._directory)
        self._runs = []


def _decoded(line: str) -> tuple[Key, str]:
    key, text = json.loads(line)
    return tuple(key), text
