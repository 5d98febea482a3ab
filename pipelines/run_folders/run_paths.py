"""How run prefixes are written and what is derived from a run is named.

A run is a folder named by its UTC start time (`out/sample/20250101-120000`). What a command
derives from a run goes beside it, named `<what>-<run>` (`out/sample/reviewed-20250101-120000`,
`out/sample/export-20250101-120000`): a name that starts with the kind, so a glob or `ls` for
runs (`out/sample/2*`) never picks up a derived folder, however many are written.

Every command normalises the prefixes it is given first: `out/sample/run/` and `out/sample/run`
are one run, so a trailing slash cannot put a derived folder inside the run.
"""

from __future__ import annotations

import os
import re

REVIEWED = "reviewed"
EXPORT = "export"


def normalise_prefix(path: str) -> str:
    """`path` without trailing or doubled slashes (and `.`/`..` resolved for local paths)."""
    if "://" in path:
        scheme, rest = path.split("://", 1)
        return f"{scheme}://{re.sub('/+', '/', rest).rstrip('/')}"
    return os.path.normpath(path)


def derived_prefix(run: str, kind: str) -> str:
    """Where `kind` (reviewed, export) of the run at `run` goes by default: beside the run."""
    run = normalise_prefix(run)
    parent, _, name = run.rpartition("/")
    if not name or parent.endswith(":/"):
        raise ValueError(f"cannot name a folder beside {run}; give --output")
    return f"{parent}/{kind}-{name}" if parent or run.startswith("/") else f"{kind}-{name}"
