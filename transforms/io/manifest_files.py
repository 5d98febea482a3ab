"""LLaVA-style manifests written a record at a time: a JSON array or JSON Lines.

The file's suffix picks the form (`.jsonl` is JSON Lines, anything else a JSON array) and any
compression suffix (`.gz`, ...) is honoured, so a manifest is written back in the form it was
read. Records are streamed: nothing but the current record is held.
"""

from __future__ import annotations

import posixpath
from typing import Any

import fsspec

from transforms.core.json_lines import json_line

COMPRESSION_SUFFIXES = (".gz", ".bz2", ".xz", ".zst", ".lz4")


def _without_compression(name: str) -> tuple[str, str]:
    for suffix in COMPRESSION_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)], suffix
    return name, ""


def is_json_lines(name: str) -> bool:
    return _without_compression(name)[0].endswith(".jsonl")


def as_json_lines_name(name: str) -> str:
    """`x.json` -> `x.jsonl` (compression suffix kept); other names get `.jsonl` added."""
    stem, compression = _without_compression(name)
    if stem.endswith(".jsonl"):
        return name
    stem = stem[: -len(".json")] if stem.endswith(".json") else stem
    return f"{stem}.jsonl{compression}"


def as_json_name(name: str) -> str:
    """A data file's name as a manifest: `part-0.parquet` -> `part-0.json`."""
    stem, _ = _without_compression(name)
    for suffix in (".parquet", ".tar", ".tgz"):
        if stem.endswith(suffix):
            return stem[: -len(suffix)] + ".json"
    return name


class ManifestWriter:
    """One manifest file at `url`, written record by record; `close()` finishes it."""

    def __init__(self, url: str):
        self.url = url
        self.count = 0
        self._lines = is_json_lines(posixpath.basename(url))
        fs, path = fsspec.core.url_to_fs(url)
        fs.makedirs(posixpath.dirname(path), exist_ok=True)
        self._text = fsspec.open(url, "wt", encoding="utf-8", compression="infer").open()
        if not self._lines:
            self._text.write("[")

    def write(self, record: Any) -> None:
        self.write_encoded(json_line(record))

    def write_encoded(self, text: str) -> None:
        """One record already encoded as one line of JSON (`json_lines.json_line`)."""
        if self._lines:
            self._text.write(text + "\n")
        else:
            self._text.write((",\n" if self.count else "\n") + text)
        self.count += 1

    def close(self) -> None:
        if not self._lines:
            self._text.write("\n]\n" if self.count else "]\n")
        self._text.close()
