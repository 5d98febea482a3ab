"""Make a generated sample grow, as a weekly re-export does: new records in one manifest."""

from __future__ import annotations

import json
from pathlib import Path

TEXT_MANIFEST = "ALLaVA-4V/allava_text/Evol-Instruct-GPT4-Turbo-143K.json"
NEW_RECORDS = 6


def grow_text_source(root: Path, donor: Path) -> list[str]:
    """Append the first NEW_RECORDS text records of another generated sample (`donor`, another
    seed) to `root`'s text manifest under new ids; return those ids."""
    manifest = root / TEXT_MANIFEST
    records = json.loads(manifest.read_text())
    donated = json.loads((donor / TEXT_MANIFEST).read_text())[:NEW_RECORDS]
    new = [{**record, "idx": f"allava_text_new_{i}"} for i, record in enumerate(donated)]
    manifest.write_text(json.dumps(records + new))
    return [record["idx"] for record in new]
