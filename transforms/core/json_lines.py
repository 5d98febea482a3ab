"""One JSON value per line, safe for every line splitter.

`json.dumps(..., ensure_ascii=False)` keeps text readable but leaves U+2028, U+2029 and U+0085
raw, and many readers (Python's `str.splitlines`, JavaScript, some log tools) break lines
there. They are escaped here, so a JSON Lines file we write always has one record per line.
"""

from __future__ import annotations

import json
from typing import Any

_LINE_BREAKS = {"\u2028": "\\u2028", "\u2029": "\\u2029", "\x85": "\\u0085"}


def json_line(value: Any) -> str:
    """`value` as one line of JSON (no trailing newline), non-ASCII text kept as text."""
    text = json.dumps(value, ensure_ascii=False)
    for raw, escaped in _LINE_BREAKS.items():
        text = text.replace(raw, escaped)
    return text
