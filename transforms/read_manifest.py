"""LLaVA-style manifests (a JSON array or JSON Lines) to `Sample`s, streamed record by record.

ALLaVA's manifests are single JSON arrays of up to ~500k records; loading one with `json.load`
costs gigabytes, so arrays are decoded incrementally from a bounded text buffer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import fsspec

from transforms.record import IMAGE, VIDEO, ErrorRecord, MediaRef, Sample

_CHUNK_CHARS = 1 << 20
_WHITESPACE = " \t\r\n"
ID_KEYS = ("id", "idx")
CONVERSATION_KEYS = ("conversations",)


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

    def error(reason: str, detail: str, sample_id: str | None = None) -> ErrorRecord:
        kept = record if isinstance(record, dict) else {"value": repr(record)[:1000]}
        return ErrorRecord(source, "read", reason, detail, origin, sample_id, kept)

    if not isinstance(record, dict):
        return error("not_an_object", f"expected a JSON object, got {type(record).__name__}")
    try:
        # Files are read with surrogateescape so one bad byte costs one record, not the file.
        json.dumps(record, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        # Keep the record for the person fixing it, the bad bytes shown as "?".
        text = json.dumps(record, ensure_ascii=False)
        shown = json.loads(text.encode("utf-8", "replace").decode("utf-8"))
        bad = {k: v for k, v in shown.items() if k in ID_KEYS}
        return ErrorRecord(
            source,
            "read",
            "not_utf8",
            f"the record contains bytes that are not valid UTF-8 ({bad or 'no id'})",
            origin,
            None,
            shown,
        )
    id_key = next((k for k in ID_KEYS if k in record), None)
    if id_key is None or not isinstance(record[id_key], (str, int)) or record[id_key] == "":
        return error("missing_id", "the record has no 'id' (or 'idx') string")
    sample_id = str(record[id_key])
    conversations = record.get("conversations")
    if not isinstance(conversations, list) or not conversations:
        return error("missing_conversations", "'conversations' is absent or empty", sample_id)
    for turn_number, turn in enumerate(conversations):
        if not isinstance(turn, dict) or not isinstance(turn.get("from"), str):
            return error("bad_conversation", f"turn {turn_number} has no string 'from'", sample_id)
        if not isinstance(turn.get("value"), str):
            return error("bad_conversation", f"turn {turn_number} has no string 'value'", sample_id)
    media: list[MediaRef] = []
    for kind in (IMAGE, VIDEO):
        value = record.get(kind)
        paths = value if isinstance(value, list) else ([] if value in (None, "") else [value])
        for path in paths:
            if not isinstance(path, str) or not path:
                return error("bad_media_path", f"'{kind}' must be a path string", sample_id)
            media.append(MediaRef(kind, path))
    fields = {k: v for k, v in record.items() if k not in (id_key, "conversations", IMAGE, VIDEO)}
    if id_key != "id":
        fields["_id_field"] = id_key  # so a writer can restore the original key name
    turns = [{"from": t["from"], "value": t["value"]} for t in conversations]
    return Sample(sample_id, source, turns, media, fields, origin)


def read_manifest(path: str, source: str) -> Iterator[Sample | ErrorRecord]:
    """Stream one manifest file (.json array or .jsonl) as samples and error records."""
    try:
        with fsspec.open(path, "rt", encoding="utf-8", errors="surrogateescape") as stream:
            if path.endswith(".jsonl"):
                yield from _read_jsonl(stream, path, source)
            else:
                yield from _read_array(stream, path, source)
    except FileNotFoundError:
        yield ErrorRecord(source, "read", "manifest_missing", f"{path} does not exist", path)


def _read_jsonl(stream, path: str, source: str) -> Iterator[Sample | ErrorRecord]:
    for line_number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        origin = f"{path}:{line_number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            detail = f"line {line_number} is not valid JSON ({exc.msg})"
            yield ErrorRecord(
                source, "read", "malformed_json", detail, origin, None, {"line": line[:1000]}
            )
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
