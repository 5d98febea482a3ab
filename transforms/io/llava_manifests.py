"""LLaVA-style manifests (a JSON array or JSON Lines) to `Sample`s, streamed record by record.

ALLaVA's manifests are single JSON arrays of up to ~500k records; loading one with `json.load`
costs gigabytes, so arrays are decoded incrementally from a bounded text buffer.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import fsspec

from transforms.core.record import ErrorRecord, Sample, json_safe
from transforms.io.read_guard import guarded_file, record_or_error
from transforms.io.validation import ID_KEYS, llava_record_to_sample

_CHUNK_CHARS = 1 << 20
_WHITESPACE = " \t\r\n"


class ManifestError(ValueError):
    """The manifest file itself cannot be parsed past this point."""


def iter_json_array(stream, chunk_chars: int = _CHUNK_CHARS) -> Iterator[Any]:
    """Yield the elements of a top-level JSON array from a text stream, one at a time."""
    decoder = json.JSONDecoder()
    buffer = ""
    position = 0
    eof = False

    def fill() -> bool:
        nonlocal buffer, position, eof
        chunk = stream.read(chunk_chars)
        if not chunk:
            eof = True
            return False
        buffer = buffer[position:] + chunk
        position = 0
        return True

    def skip_whitespace() -> str | None:
        nonlocal position
        while True:
            while position < len(buffer) and buffer[position] in _WHITESPACE:
                position += 1
            if position < len(buffer):
                return buffer[position]
            if eof or not fill():
                return None

    if skip_whitespace() != "[":
        raise ManifestError("expected a JSON array ('[') at the start of the file")
    position += 1
    if skip_whitespace() == "]":
        return
    while True:
        if skip_whitespace() is None:
            raise ManifestError("the JSON array is truncated (no closing ']')")
        while True:
            try:
                element, end = decoder.raw_decode(buffer, position)
                # A bare number cut at the buffer's end would parse short: read on and retry.
                if end < len(buffer) or eof or not fill():
                    break
            except json.JSONDecodeError as exc:
                # Either the element spans past the buffer (read more) or it is malformed.
                if eof or not fill():
                    raise ManifestError(f"malformed or truncated JSON ({exc.msg})") from exc
        position = end
        yield element
        separator = skip_whitespace()
        if separator == ",":
            position += 1
        elif separator == "]":
            return
        elif separator is None:
            raise ManifestError("the JSON array is truncated (no closing ']')")
        else:
            raise ManifestError(f"expected ',' or ']' between elements, found {separator!r}")


def record_to_sample(record: Any, source: str, origin: str) -> Sample | ErrorRecord:
    """Validate one manifest record and wrap it; anything malformed becomes an error record."""
    if isinstance(record, dict):
        try:
            # Files are read with surrogateescape so one bad byte costs one record, not the file.
            json.dumps(record, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            # Keep the record for the person fixing it, the bad bytes shown as "?".
            shown = json_safe(record)
            bad = {k: v for k, v in shown.items() if k in ID_KEYS}
            detail = f"the record contains bytes that are not valid UTF-8 ({bad or 'no id'})"
            return ErrorRecord(source, "read", "not_utf8", detail, origin, None, shown)
    return record_or_error(llava_record_to_sample, record, source, origin)


def read_manifest(path: str, source: str) -> Iterator[Sample | ErrorRecord]:
    """Stream one manifest file as samples and error records; never raises.

    A JSON array or JSON Lines (chosen by the first character, so a `.json` file that holds
    lines works too), optionally compressed (`.gz`, `.zst`, ... by suffix), with or without a
    byte-order mark.
    """
    yield from guarded_file(_read_manifest, path, source, reason="malformed_json")


def _read_manifest(path: str, source: str) -> Iterator[Sample | ErrorRecord]:
    with _opened(path) as (first, stream):
        if first == "[":
            yield from _read_array(stream, path, source)
        elif first == "{":
            yield from _read_jsonl(stream, path, source)


@contextlib.contextmanager
def _opened(path: str):
    """(first character, text stream from the start) of a manifest, JSON array or lines."""
    with fsspec.open(
        path, "rt", encoding="utf-8-sig", errors="surrogateescape", compression="infer"
    ) as stream:
        first = stream.read(1)
        while first and first in _WHITESPACE:
            first = stream.read(1)
        if first and first not in "[{":
            raise ManifestError(
                f"expected a JSON array or JSON Lines of objects, found {first!r} first"
            )
        yield first, _Prepended(first, stream)


MALFORMED_LINE = object()  # what `raw_records` yields for a JSON Lines line that is not JSON


def raw_records(path: str) -> Iterator[Any]:
    """A manifest's records as the JSON they are, unvalidated, in file order; raises
    ManifestError for a file that cannot be read on."""
    with _opened(path) as (first, stream):
        if first == "[":
            yield from iter_json_array(stream)
            return
        for line in stream:
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    yield MALFORMED_LINE


class _Prepended:
    """A text stream with the characters already read put back in front."""

    def __init__(self, head: str, stream):
        self._head, self._stream = head, stream

    def read(self, size: int = -1) -> str:
        head, self._head = self._head, ""
        if size is not None and 0 <= size <= len(head):
            self._head = head[size:]
            return head[:size]
        rest = self._stream.read(-1 if size is None or size < 0 else size - len(head))
        return head + rest

    def __iter__(self):
        first_line = self._head + self._stream.readline()
        self._head = ""
        yield first_line
        yield from self._stream


def _read_jsonl(stream, path: str, source: str) -> Iterator[Sample | ErrorRecord]:
    for line_number, line in enumerate(stream, start=1):
        if not line.strip():
            continue  # blank lines are layout, not records: neither read nor counted
        origin = f"{path}:{line_number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            detail = f"line {line_number} is not valid JSON ({exc.msg})"
            kept = {"line": json_safe(line[:1000])}
            yield ErrorRecord(source, "read", "malformed_json", detail, origin, None, kept)
            continue
        yield record_to_sample(record, source, origin)


def _read_array(stream, path: str, source: str) -> Iterator[Sample | ErrorRecord]:
    index = -1
    try:
        for index, record in enumerate(iter_json_array(stream)):
            yield record_to_sample(record, source, f"{path}[{index}]")
    except ManifestError as exc:
        detail = f"{path}: {exc} after {index + 1} records; the rest of the file is unreadable"
        yield ErrorRecord(source, "read", "malformed_json", detail, path)
