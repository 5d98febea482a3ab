"""A sample's `origin` read back: which input file it came from and where in it.

The readers write `manifest.json[index]` (JSON array), `manifest.jsonl:line` (JSON Lines),
`file.parquet#row` (Parquet) and `shard.tar:key` (WebDataset). Export puts samples back in
their files in this order, so the position sorts as the file had it: numbers numerically,
tar keys as text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ARRAY = re.compile(r"^(?P<file>.+)\[(?P<number>\d+)\]$")
_ROW = re.compile(r"^(?P<file>.+)#(?P<number>\d+)$")
_LINE = re.compile(r"^(?P<file>.+):(?P<number>\d+)$")
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")


class OriginError(ValueError):
    """An origin none of the readers writes."""


@dataclass(frozen=True)
class Origin:
    file: str
    number: int = 0  # array index, line number or row number
    key: str = ""  # the sample key in a tar

    @property
    def order(self) -> tuple[int, str]:
        return self.number, self.key


def parse_origin(origin: str) -> Origin:
    for pattern in (_ARRAY, _ROW):
        match = pattern.match(origin)
        if match:
            return Origin(match["file"], int(match["number"]))
    lowered = origin.lower()
    for suffix in TAR_SUFFIXES:
        end = lowered.find(suffix + ":")
        if end > 0:
            end += len(suffix)
            return Origin(origin[:end], key=origin[end + 1 :])
    match = _LINE.match(origin)
    if match:
        return Origin(match["file"], int(match["number"]))
    raise OriginError(f"origin {origin!r} names no position in a file")
