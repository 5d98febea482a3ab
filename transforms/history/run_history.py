"""The run history beside a dataset's runs: `<runs>/runs.jsonl`, one line per finished run.

A scheduled dataset is cleaned again and again into `<runs>/<timestamp>/`; the history says
which runs finished, on what input, with which model and cut, and what came out, so the next
run can be compared with the one before it (`run_compare.py`) and `rmclean runs` can list them.

Object stores cannot append, and two runs may finish at once, so no run edits runs.jsonl in
place. Each finished run first writes its own entry, `<runs>/.history/<finished>-<run id>.json`,
a name no other run writes, so no entry is ever lost. Then it rewrites runs.jsonl from every
entry there is, lists the entries again, and writes again while the listing has grown. The
last write of runs.jsonl is therefore made by a run whose second listing came after every other
run had written its entry: it holds every line. Writes go through a temporary file and a rename
(a single PUT on object stores), so a reader never sees half a file. This needs listings that
show what was just written: local disks, S3 and GCS all give that (s3fs's own listing cache is
dropped before each listing).

Runs are found through their entries, never by globbing the folder, so derived outputs
(`<run>-reviewed`, `<run>-export`) beside the runs are never mistaken for runs.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import fsspec

from transforms.core.json_lines import json_line

_log = logging.getLogger(__name__)

HISTORY_FILE = "runs.jsonl"
ENTRIES_DIR = ".history"
MAX_REWRITES = 50  # each extra round means another run finished meanwhile


def runs_folder(prefix: str) -> str:
    """The folder holding a run's prefix, where its dataset's history lives."""
    prefix = prefix.rstrip("/")
    if "/" not in prefix.split("://", 1)[-1]:
        return "."  # a bare relative prefix: its folder is the working directory
    return prefix.rsplit("/", 1)[0]


def history_entry(summary: dict[str, Any]) -> dict[str, Any]:
    """The history line of a finished run, from its summary.json."""
    counts = summary.get("counts") or {}
    cost = summary.get("cost") or {}
    return {
        "run_id": summary.get("run_id"),
        "dataset": summary.get("dataset"),
        "output": summary.get("output"),
        "started_at": summary.get("started_at"),
        "finished_at": summary.get("finished_at"),
        "input": summary.get("input"),
        "input_fingerprint": summary.get("input_fingerprint"),
        "model": summary.get("model"),
        "text_model": summary.get("text_model"),
        "model_fingerprint": summary.get("model_fingerprint"),
        "threshold": summary.get("threshold"),
        "percentile": summary.get("percentile"),
        "cuts": summary.get("cuts") or {},
        "counts": {"total": counts.get("total"), "per_source": counts.get("per_source")},
        "scoring": summary.get("scoring"),
        "cost": {
            key: cost.get(key)
            for key in ("samples_scored", "samples_per_s", "device_hours_per_million_samples")
        },
        "runner": summary.get("runner"),
        "format": summary.get("format"),
        "rmclean_version": summary.get("rmclean_version"),
    }


def record_finished_run(prefix: str, summary: dict[str, Any]) -> str:
    """Add the finished run at `prefix` to its folder's history; return the history file."""
    entry = history_entry(summary)
    folder = runs_folder(prefix)
    fs, root = fsspec.core.url_to_fs(folder)
    root = root.rstrip("/")
    stamp = str(entry["finished_at"] or "").replace("-", "").replace(":", "")
    name = f"{root}/{ENTRIES_DIR}/{stamp}-{entry['run_id']}.json"
    _write_atomically(fs, name, json.dumps(entry, ensure_ascii=False, indent=1) + "\n")
    for _ in range(MAX_REWRITES):
        listed = _entry_names(fs, root)
        lines = [json_line(e) for e in _read_entries(fs, listed)]
        _write_atomically(fs, f"{root}/{HISTORY_FILE}", "".join(f"{line}\n" for line in lines))
        if _entry_names(fs, root) == listed:
            break
    else:
        _log.warning(
            "%s/%s: runs kept finishing while it was rewritten; the next run's rewrite adds "
            "any line it lacks (every run's entry is in %s/)",
            folder,
            HISTORY_FILE,
            ENTRIES_DIR,
        )
    return f"{folder}/{HISTORY_FILE}"


def read_history(folder: str) -> list[dict[str, Any]]:
    """Every finished run recorded under `folder`, oldest first.

    Read from the runs' own entries, which are complete even while runs.jsonl is being
    rewritten.
    """
    fs, root = fsspec.core.url_to_fs(folder)
    root = root.rstrip("/")
    return _read_entries(fs, _entry_names(fs, root))


def previous_finished_run(prefix: str, summary: dict[str, Any]) -> dict[str, Any] | None:
    """The latest run of the same dataset recorded beside `prefix` that finished before this
    one and whose outputs are still there (`_SUCCESS`); None for a dataset's first run."""
    this = prefix.rstrip("/")
    for entry in reversed(read_history(runs_folder(prefix))):
        if (
            entry.get("dataset") != summary.get("dataset")
            or entry.get("run_id") == summary.get("run_id")
            or str(entry.get("output") or "").rstrip("/") == this
            or str(entry.get("finished_at") or "") > str(summary.get("finished_at") or "~")
        ):
            continue
        fs, path = fsspec.core.url_to_fs(str(entry["output"]))
        if fs.exists(f"{path.rstrip('/')}/_SUCCESS"):
            return entry
    return None


def _entry_names(fs, root: str) -> list[str]:
    entries = f"{root}/{ENTRIES_DIR}"
    fs.invalidate_cache(entries)  # s3fs and gcsfs would answer from a cached listing
    if not fs.exists(entries):
        return []
    names = fs.ls(entries, detail=False)
    return sorted(n for n in names if n.endswith(".json"))


def _read_entries(fs, names: list[str]) -> list[dict[str, Any]]:
    entries = []
    for name in names:
        try:
            with fs.open(name, "r", encoding="utf-8") as handle:
                entries.append(json.load(handle))
        except (OSError, ValueError) as exc:
            _log.warning("run history entry %s is unreadable (%s); left out", name, exc)
    return sorted(entries, key=lambda e: (str(e.get("finished_at")), str(e.get("run_id"))))


def _write_atomically(fs, path: str, text: str) -> None:
    temporary = f"{path}.tmp-{uuid.uuid4().hex}"
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    with fs.open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text)
    fs.mv(temporary, path)
