"""The latest finished run of a dataset: a small pointer file beside its runs.

`rmclean clean` writes each run under the config's output folder (`out/<dataset>/<timestamp>`).
The run's finishing step writes `<output folder>/LATEST` as its very last act, after
`_SUCCESS`, holding the run's prefix, so whoever reads it finds a finished run, on local disk
and object storage alike (one small object written whole; no listing, no timestamps to sort).
A run inside the folder is named relative to it, so the folder can be moved or synced
elsewhere; a run written elsewhere (`--output`) is named by its full path or URL.
"""

from __future__ import annotations

import os
import uuid

import fsspec
from fsspec.implementations.local import LocalFileSystem

from pipelines.run_folders.run_paths import normalise_prefix
from transforms.core.storage import absolute_url

POINTER = "LATEST"


class NoFinishedRunError(FileNotFoundError):
    """No finished run to point at; the message says what to do."""


def pointer_path(runs_folder: str) -> str:
    return f"{normalise_prefix(runs_folder)}/{POINTER}"


def mark_latest(runs_folder: str, run_prefix: str) -> None:
    """Point `runs_folder`'s LATEST at the finished run at `run_prefix`."""
    folder, run = normalise_prefix(runs_folder), normalise_prefix(run_prefix)
    folder_url, run_url = absolute_url(folder), absolute_url(run)
    inside = run_url.startswith(folder_url.rstrip("/") + "/")
    text = (run_url[len(folder_url.rstrip("/")) + 1 :] if inside else run_url) + "\n"
    fs, path = fsspec.core.url_to_fs(pointer_path(folder))
    if isinstance(fs, LocalFileSystem):
        # Written aside and renamed, so a reader never sees half a line.
        partial = f"{path}.{uuid.uuid4().hex[:8]}.partial"
        fs.makedirs(os.path.dirname(path), exist_ok=True)
        fs.pipe_file(partial, text.encode())
        os.replace(partial, path)
    else:
        fs.pipe_file(path, text.encode())  # one PUT: readers see the old object or the new


def latest_run(runs_folder: str) -> str:
    """The prefix of the latest finished run under `runs_folder` (as a path or URL)."""
    folder = normalise_prefix(runs_folder)
    fs, path = fsspec.core.url_to_fs(pointer_path(folder))
    if not fs.exists(path):
        raise NoFinishedRunError(
            f"no finished run in {folder} yet ({pointer_path(folder)} is written when a run "
            "finishes); run `rmclean clean` first, or name the run"
        )
    named = fs.cat_file(path).decode().strip()
    run = named if "://" in named or os.path.isabs(named) else f"{folder}/{named}"
    run_fs, run_path = fsspec.core.url_to_fs(run)
    if not run_fs.exists(f"{run_path}/_SUCCESS"):
        raise NoFinishedRunError(
            f"{pointer_path(folder)} names {run}, which holds no finished run any more "
            "(removed?); name the run instead"
        )
    return run
