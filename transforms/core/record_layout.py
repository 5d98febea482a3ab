"""How a sample's original record was written, so it can be written back exactly.

Readers normalise a LLaVA-style record into a `Sample`: the id becomes a string whatever key
held it (`id`, or `idx` in ALLaVA's text subset), `image` / `video` become a list of media, and
every other key goes to `fields`. `RecordLayout` keeps what that loses: which key held the id
and whether it was an integer, the order of the record's keys, and which media keys held a list
rather than one path. It travels with the sample through every output format (the
`record_layout` column or `.json` key) and `original_record` rebuilds the record from it, so
`rmclean export` gives back what the dataset had.

Conversations are the exception: they are kept as `{from, value}` turns with lower-case roles
(the form LLaVA's training code reads), whatever form they were read in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MEDIA_KEYS = ("image", "video")


@dataclass(frozen=True)
class RecordLayout:
    id_key: str = "id"
    id_is_integer: bool = False
    # The record's top-level keys in their original order; empty when unknown.
    keys: tuple[str, ...] = ()
    # Media keys whose value was a list, even of one path (`"image": ["a.jpg"]`).
    list_media: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id_key": self.id_key,
            "id_is_integer": self.id_is_integer,
            "keys": list(self.keys),
            "list_media": list(self.list_media),
        }

    @classmethod
    def from_dict(cls, value: Any) -> RecordLayout:
        """The layout stored with a sample; a missing or malformed one is the default layout."""
        if not isinstance(value, dict):
            return cls()
        id_key = value.get("id_key")
        keys, lists = (
            v if isinstance(v, list) else () for v in (value.get("keys"), value.get("list_media"))
        )
        return cls(
            id_key=id_key if isinstance(id_key, str) and id_key else "id",
            id_is_integer=value.get("id_is_integer") is True,
            keys=tuple(k for k in keys if isinstance(k, str)),
            list_media=tuple(k for k in lists if isinstance(k, str)),
        )


def layout_of(record: dict[str, Any], id_key: str) -> RecordLayout:
    return RecordLayout(
        id_key=id_key,
        id_is_integer=isinstance(record[id_key], int) and not isinstance(record[id_key], bool),
        keys=tuple(record),
        list_media=tuple(k for k in MEDIA_KEYS if isinstance(record.get(k), list)),
    )


def _restored_id(sample_id: str, was_integer: bool) -> str | int:
    # A layout from a damaged shard may say integer of an id that is not one: keep the text.
    if was_integer and sample_id.lstrip("-").isdigit():
        return int(sample_id)
    return sample_id


def original_record(
    layout: RecordLayout,
    sample_id: str,
    conversations: list[dict[str, Any]],
    media: list[tuple[str, str]],
    fields: dict[str, Any],
) -> dict[str, Any]:
    """The record as the dataset wrote it; `media` is (kind, path) in the sample's order."""
    values: dict[str, Any] = {layout.id_key: _restored_id(sample_id, layout.id_is_integer)}
    for kind in MEDIA_KEYS:
        paths = [path for media_kind, path in media if media_kind == kind]
        if paths:
            single = len(paths) == 1 and kind not in layout.list_media
            values[kind] = paths[0] if single else paths
    values["conversations"] = conversations
    for name, value in fields.items():
        values.setdefault(name, value)
    ordered = {key: values.pop(key) for key in layout.keys if key in values}
    ordered.update(values)
    return ordered
