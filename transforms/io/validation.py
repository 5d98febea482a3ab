"""One validation for every input format: a raw record either becomes a `Sample` or says why not.

LLaVA JSON/JSONL manifests, our own Parquet and WebDataset shards and LLaVA-OneVision Parquet
all end here, so a record gets the same checks whatever file it came from: ids are strings or
integers, conversations are a non-empty list of turns with string text, roles are ones a reward
model can render, and the fields carried along can be written back out. Anything else raises
`InvalidRecord` with a stable reason code; readers turn it into an error record for that row.
"""

from __future__ import annotations

import json
from typing import Any

from transforms.core.record import IMAGE, VIDEO, MediaRef, Sample
from transforms.core.record_layout import RecordLayout, layout_of

ID_KEYS = ("id", "idx")
MEDIA_KINDS = (IMAGE, VIDEO)
# Roles as datasets spell them (lower-cased) -> the name we store. LLaVA writes human/gpt,
# chat-format datasets user/assistant; both are kept as written, only the case is normalised.
ROLES = {name: name for name in ("human", "gpt", "user", "assistant", "system")}


class InvalidRecord(ValueError):
    def __init__(self, reason: str, detail: str, sample_id: str | None = None):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.sample_id = sample_id


def checked_id(value: Any) -> str:
    """A record id as a string: strings as they are, integers converted, anything else refused."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InvalidRecord("bad_id", f"the id must be a string or an integer, got {_kind(value)}")
    if isinstance(value, str) and not value.strip():
        raise InvalidRecord("missing_id", "the id is an empty string")
    return str(value)


def checked_turns(conversations: Any, sample_id: str) -> list[dict[str, str]]:
    """[{from, value}] from LLaVA turns ({from, value}) or chat turns ({role, content})."""
    if not isinstance(conversations, list) or not conversations:
        raise InvalidRecord(
            "missing_conversations", "'conversations' is absent, empty or not a list", sample_id
        )
    turns = []
    for number, turn in enumerate(conversations):
        if not isinstance(turn, dict):
            raise InvalidRecord(
                "bad_conversation", f"turn {number} is {_kind(turn)}, not an object", sample_id
            )
        role_key, text_key = ("from", "value") if "from" in turn else ("role", "content")
        role, text = turn.get(role_key), turn.get(text_key)
        if not isinstance(role, str):
            raise InvalidRecord(
                "bad_conversation", f"turn {number} has no string 'from' (or 'role')", sample_id
            )
        if role.lower() not in ROLES:
            raise InvalidRecord(
                "bad_conversation",
                f"turn {number} has the unknown role {role[:40]!r}; "
                f"known: {', '.join(sorted(ROLES))}",
                sample_id,
            )
        if not isinstance(text, str):
            raise InvalidRecord(
                "bad_conversation",
                f"turn {number} has no string '{text_key}' (got {_kind(text)})",
                sample_id,
            )
        turns.append({"from": ROLES[role.lower()], "value": text})
    return turns


def media_paths(kind: str, value: Any, sample_id: str) -> list[MediaRef]:
    """A manifest's `image` / `video` value (a path, a list of paths, or null) as MediaRefs."""
    if value is None or value == "":
        return []
    paths = value if isinstance(value, list) else [value]
    refs = []
    for path in paths:
        if not isinstance(path, str) or not path.strip():
            raise InvalidRecord(
                "bad_media_path",
                f"'{kind}' must be a path or a list of paths, got {_kind(path)}",
                sample_id,
            )
        refs.append(MediaRef(kind, path))
    return refs


def checked_media(items: Any, sample_id: str) -> list[MediaRef]:
    """Our own shards' media list: [{kind, path, bytes}] with bytes embedded (or null)."""
    if items is None:
        return []
    if not isinstance(items, list):
        raise InvalidRecord("bad_media", f"'media' must be a list, got {_kind(items)}", sample_id)
    refs = []
    for number, item in enumerate(items):
        kind = item.get("kind") if isinstance(item, dict) else None
        path = item.get("path") if isinstance(item, dict) else None
        data = item.get("bytes") if isinstance(item, dict) else None
        if kind not in MEDIA_KINDS or not isinstance(path, str) or not path:
            raise InvalidRecord(
                "bad_media",
                f"media item {number} needs kind image|video and a path, got {_short(item)}",
                sample_id,
            )
        if data is not None and not isinstance(data, (bytes, bytearray)):
            raise InvalidRecord(
                "bad_media", f"media item {number} holds {_kind(data)}, not bytes", sample_id
            )
        refs.append(MediaRef(kind, path, bytes(data) if data is not None else None))
    return refs


def checked_fields(fields: Any, sample_id: str) -> dict[str, Any]:
    """Extra fields, which every writer stores as JSON: they must be representable as JSON."""
    if not isinstance(fields, dict):
        raise InvalidRecord(
            "bad_fields", f"'fields' must be an object, got {_kind(fields)}", sample_id
        )
    for name, value in fields.items():
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except (TypeError, ValueError, UnicodeEncodeError) as exc:
            raise InvalidRecord(
                "unsupported_field",
                f"field {str(name)[:80]!r} holds {_kind(value)}, which cannot be written as "
                f"JSON ({exc})",
                sample_id,
            ) from None
    return fields


def build_sample(
    source: str,
    origin: str,
    raw_id: Any,
    conversations: Any,
    media: list[MediaRef],
    fields: dict[str, Any],
    layout: RecordLayout | None = None,
) -> Sample:
    """A validated Sample; raises InvalidRecord naming what is wrong."""
    sample_id = checked_id(raw_id)
    turns = checked_turns(conversations, sample_id)
    fields = checked_fields(fields, sample_id)
    return Sample(sample_id, source, turns, media, fields, origin, layout or RecordLayout())


def llava_record_to_sample(record: Any, source: str, origin: str) -> Sample:
    """A LLaVA/ShareGPT-style record: `id` or `idx`, `conversations`, `image`/`video` paths."""
    if not isinstance(record, dict):
        raise InvalidRecord("not_an_object", f"expected a JSON object, got {_kind(record)}")
    id_key = next((k for k in ID_KEYS if k in record), None)
    if id_key is None:
        raise InvalidRecord("missing_id", "the record has no 'id' (or 'idx')")
    sample_id = checked_id(record[id_key])
    media = [ref for kind in MEDIA_KINDS for ref in media_paths(kind, record.get(kind), sample_id)]
    # A media key that names nothing (`"image": null`) is kept as a field, so it is written
    # back as it was.
    named = {ref.kind for ref in media}
    fields = {k: v for k, v in record.items() if k not in (id_key, "conversations", *named)}
    layout = layout_of(record, id_key)
    conversations = record.get("conversations")
    return build_sample(source, origin, sample_id, conversations, media, fields, layout)


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
