"""A reviewer's decisions files (`decisions.jsonl` from the report page), read and checked.

One JSON object per line, as the page writes them:
`{"run", "id", "source", "origin", "route", "decision": "keep"|"drop", "note", "score", "reason"}`.
A sample is named by (source, origin) when the line has an origin (ids repeat: LLaVA-Video-178K
gives every question about a video the video's id), else by (source, id). Every line must carry
the id of the run whose page wrote it: a file from another run of the same dataset would name
the same ids and route the wrong samples. Problems are collected over all files and reported
together, so one pass fixes them all; nothing here writes anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import fsspec

KEEP = "keep"
DROP = "drop"
VERDICTS = (KEEP, DROP)
PROBLEMS_SHOWN = 20


class DecisionError(ValueError):
    """The decisions cannot be applied; the message names each file, line and reason."""


@dataclass(frozen=True)
class Decision:
    source: str
    id: str
    origin: str  # "" when the line names its sample by id alone
    verdict: str
    note: str
    where: str  # "<file>:<line>", for messages


def problem_list(problems: list[str]) -> str:
    shown = "\n".join(f"  - {p}" for p in problems[:PROBLEMS_SHOWN])
    more = len(problems) - PROBLEMS_SHOWN
    return shown + (f"\n  ... and {more} more" if more > 0 else "")


def _parse(line: str, where: str, run: str, foreign: dict[str, int]) -> Decision | str:
    """A decision, or a problem as text; a line from another run is counted in `foreign`."""
    try:
        entry = json.loads(line)
    except json.JSONDecodeError as exc:
        return f"{where}: not valid JSON ({exc.msg})"
    if not isinstance(entry, dict):
        return f"{where}: expected a JSON object, got {type(entry).__name__}"
    if not entry.get("run"):
        return (
            f'{where}: the line does not say which run it belongs to (no "run"); download '
            "the decisions again from the run's report page"
        )
    if str(entry["run"]) != run:
        foreign[str(entry["run"])] = foreign.get(str(entry["run"]), 0) + 1
        return ""
    for key in ("id", "source"):
        if not isinstance(entry.get(key), str) or not entry[key]:
            return f"{where}: {key!r} must be a non-empty string"
    if entry.get("decision") not in VERDICTS:
        return f'{where}: "decision" must be "keep" or "drop", not {entry.get("decision")!r}'
    note, origin = entry.get("note") or "", entry.get("origin") or ""
    if not isinstance(note, str) or not isinstance(origin, str):
        return f'{where}: "note" and "origin" must be strings'
    return Decision(entry["source"], entry["id"], origin, entry["decision"], note, where)


def read_decisions(paths: list[str], run: str) -> list[Decision]:
    """Every decision in `paths`, all belonging to `run`; raises DecisionError otherwise."""
    decisions: list[Decision] = []
    problems: list[str] = []
    for path in paths:
        foreign: dict[str, int] = {}
        try:
            with fsspec.open(path, "rt", encoding="utf-8") as handle:
                for number, line in enumerate(handle, start=1):
                    if not line.strip():
                        continue
                    parsed = _parse(line, f"{path}:{number}", run, foreign)
                    if isinstance(parsed, Decision):
                        decisions.append(parsed)
                    elif parsed:
                        problems.append(parsed)
        except FileNotFoundError:
            problems.append(f"{path}: no such decisions file")
        except UnicodeDecodeError as exc:
            problems.append(f"{path}: not UTF-8 text ({exc.reason})")
        for other, lines in foreign.items():
            problems.append(
                f"{path}: {lines} decision(s) belong to run {other}, not to this run ({run}): "
                "a decisions file applies only to the run whose report page wrote it"
            )
    if problems:
        raise DecisionError("the decisions cannot be applied:\n" + problem_list(problems))
    if not decisions:
        raise DecisionError(f"no decisions in {', '.join(paths)}")
    return decisions
