"""Which run a report page, and so a reviewer's decisions file, belongs to.

Decisions name samples by id and origin, which repeat across runs of the same dataset: applying
one run's decisions to another run would route the wrong samples. So every run gets an id in
summary.json, the page stores decisions under it and writes it into each decision line, and
apply-review refuses lines that carry another.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any


def new_run_id() -> str:
    return uuid.uuid4().hex


def run_id(summary: dict[str, Any]) -> str:
    """The run's id; runs written before run ids get one derived from where and when they ended."""
    if summary.get("run_id"):
        return str(summary["run_id"])
    stand_in = f"{summary.get('output', '')}|{summary.get('finished_at', '')}"
    return "legacy-" + hashlib.sha1(stand_in.encode("utf-8")).hexdigest()[:16]
