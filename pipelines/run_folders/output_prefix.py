"""One output prefix per run: never mix a new run's files with an old run's.

Shard writers replace files of the same name but leave other shards behind, so a rerun that
writes a different number of shards would silently mix runs. We clear the
prefix's run folders first; a prefix holding a finished run (`_SUCCESS`) is only cleared
when the user says `--overwrite`. A prefix without `_SUCCESS` is a dead run's leftovers and
is always safe to clear. A prefix holding anything else (an unrelated folder, the input
dataset itself, a folder of runs) is refused whatever the flags: a run writes only into a
new or empty folder, or over a run of ours.
"""

from __future__ import annotations

import fsspec

from transforms.core.storage import remove_tree

# Scored samples waiting for a percentile cut (transforms/shuffle/spill.py) and the sorted runs of
# local runners' shuffles (transforms/shuffle/sorted_runs.py), removed when the run ends.
SPILL_DIR = ".spill"
SHUFFLE_DIR = ".shuffle"
RUN_ENTRIES = (
    "clean",
    "review",
    "dropped",
    "errors",
    "index",
    "report",
    SPILL_DIR,
    SHUFFLE_DIR,
    "_SUCCESS",
)


class OutputExistsError(FileExistsError):
    pass


def prepare_output(prefix: str, overwrite: bool) -> None:
    fs, _, (path,) = fsspec.get_fs_token_paths(prefix)
    path = path.rstrip("/")
    foreign = _foreign_entries(fs, path)
    if foreign:
        more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        shown = ", ".join(foreign[:3]) + more
        raise OutputExistsError(
            f"--output {prefix} already holds files that are not an rmclean run ({shown}); "
            "write the run to a new or empty folder (OUTPUT= with make)"
        )
    if fs.exists(f"{path}/_SUCCESS") and not overwrite:
        raise OutputExistsError(
            f"{prefix} already holds a finished run; pass --overwrite (OVERWRITE=1 with make) "
            "or choose another --output"
        )
    _remove_run_entries(prefix)


def _foreign_entries(fs, path: str) -> list[str]:
    """What `path` holds besides a run's own entries (all of it, if `path` is a file)."""
    if not fs.exists(path):
        return []
    if not fs.isdir(path):
        return [path.rsplit("/", 1)[-1]]
    names = sorted(entry.rstrip("/").rsplit("/", 1)[-1] for entry in fs.ls(path, detail=False))
    return [name for name in names if name not in RUN_ENTRIES]


def remove_unfinished(prefix: str) -> None:
    """Remove what an interrupted run wrote at `prefix` (nothing, if it had finished)."""
    fs, _, (path,) = fsspec.get_fs_token_paths(prefix)
    path = path.rstrip("/")
    if fs.exists(f"{path}/_SUCCESS"):
        return
    _remove_run_entries(prefix)
    if fs.isdir(path) and not fs.ls(path):
        fs.rmdir(path)


def _remove_run_entries(prefix: str) -> None:
    for entry in RUN_ENTRIES:
        remove_tree(f"{prefix.rstrip('/')}/{entry}")


def remove_temporaries(prefix: str) -> None:
    """The run's own temporary folders (spill, shuffle runs), once nothing reads them."""
    for entry in (SPILL_DIR, SHUFFLE_DIR):
        remove_tree(f"{prefix.rstrip('/')}/{entry}")
