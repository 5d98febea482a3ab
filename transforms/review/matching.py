"""Decisions matched to the run's samples through the id -> shard index, reading no media.

One pass over `index/clean.parquet` and `index/review.parquet` (a few light columns per sample)
finds the shard and position of every decided sample, while only the decisions and their
matches are held. A decision that names no sample of the run, names several (an id shared by
several samples, with no origin to tell them apart), or disagrees with another decision about the
same sample is refused, all of them in one message.

A repaired run (`repair: truncate`) holds a conversation twice under one id and origin: its
kept prefix in clean/ and its original in review/. Decisions name the original (the one on the
review pages); keeping it means keeping the whole conversation, so its prefix is matched too,
with the verdict SUPERSEDED, and left out of the reviewed dataset.
"""

from __future__ import annotations

from dataclasses import dataclass

import fsspec

from transforms.core.routes import CLEAN, REVIEW
from transforms.review.decisions import KEEP, Decision, DecisionError, problem_list
from transforms.samples.repair import ORIGINAL, REPAIRED
from transforms.shards.shard_index import iter_index

SUPERSEDED = "superseded"  # a repaired prefix whose original a reviewer kept whole


class MissingIndexError(FileNotFoundError):
    """The run has no id -> shard index (it was written before there was one)."""


@dataclass
class Match:
    """A decided sample: where it is, what the run said about it, what the reviewer said."""

    route: str  # where the run put it: clean or review
    shard: str  # relative to the prefix, e.g. review/part-00001-of-00004.parquet
    position: str
    source: str
    id: str
    origin: str
    score: float | None
    reason: str | None
    verdict: str
    note: str
    repair: str | None = None  # the index's repair role: REPAIRED, ORIGINAL or None


def _index_rows(index_files: dict[str, str]):
    for route in (CLEAN, REVIEW):
        path = index_files[route]
        fs, _, (local,) = fsspec.get_fs_token_paths(path)
        if not fs.exists(local):
            raise MissingIndexError(
                f"{path} does not exist: this run was written before runs kept an id -> shard "
                "index. Run `rmclean clean` again (the score cache makes a rerun cheap)."
            )
        for row in iter_index(path):
            yield route, row


def _merged(decisions: list[Decision], row: dict, route: str) -> Match | str:
    """One Match for all decisions on one sample, or the conflict as text."""
    verdicts = sorted({d.verdict for d in decisions})
    if len(verdicts) > 1:
        said = ", ".join(f"{d.verdict} at {d.where}" for d in decisions)
        return f"conflicting decisions for {row['source']} sample {row['id']!r} ({said})"
    notes = list(dict.fromkeys(d.note for d in decisions if d.note))
    return Match(
        route,
        row["shard"],
        row["position"],
        row["source"],
        row["id"],
        row["origin"] or "",
        row["score"],
        row["reason"],
        verdicts[0],
        " | ".join(notes),
        row.get("repair"),
    )


def match_decisions(
    decisions: list[Decision], index_files: dict[str, str]
) -> dict[tuple[str, str], Match]:
    """{(shard, position): Match} for every decided sample; raises DecisionError on a problem.

    `index_files` maps clean and review to their index files.
    """
    by_origin: dict[tuple[str, str], list[int]] = {}
    by_id: dict[tuple[str, str], list[int]] = {}
    for number, decision in enumerate(decisions):
        if decision.origin:
            by_origin.setdefault((decision.source, decision.origin), []).append(number)
        else:
            by_id.setdefault((decision.source, decision.id), []).append(number)
    # For each decision: how many samples it named, and the first one (route, row).
    named: list[int] = [0] * len(decisions)
    first: list[tuple[str, dict] | None] = [None] * len(decisions)
    prefixes: dict[tuple[str, str, str], dict] = {}  # repaired prefixes of decided originals
    for route, row in _index_rows(index_files):
        hits = by_origin.get((row["source"], row["origin"]), []) + by_id.get(
            (row["source"], row["id"]), []
        )
        if row.get("repair") == REPAIRED:
            # Decided through its original; found here in case that one is kept whole.
            if hits:
                prefixes[(row["source"], row["origin"] or "", row["id"])] = row
            continue
        for number in hits:
            named[number] += 1
            if first[number] is None:
                first[number] = (route, row)
    problems: list[str] = []
    on_sample: dict[tuple[str, str], tuple[str, dict, list[Decision]]] = {}
    for number, decision in enumerate(decisions):
        where = f"{decision.where}: {decision.source} sample {decision.id!r}"
        if named[number] == 0:
            at = f" at {decision.origin}" if decision.origin else ""
            problems.append(f"{where}{at} is not in this run's clean/ or review/ (unknown id)")
            continue
        route, row = first[number]
        if named[number] > 1 and decision.origin:
            problems.append(f"{where} at {decision.origin} names {named[number]} samples")
        elif named[number] > 1:
            problems.append(
                f"{where} names {named[number]} samples that share this id; name one by its "
                '"origin" (decisions downloaded from the page do)'
            )
        elif row["id"] != decision.id:
            problems.append(f"{where}: the sample at {decision.origin} has id {row['id']!r}")
        else:
            entry = on_sample.setdefault((row["shard"], row["position"]), (route, row, []))
            entry[2].append(decision)
    matches: dict[tuple[str, str], Match] = {}
    for key, (route, row, said) in on_sample.items():
        merged = _merged(said, row, route)
        if isinstance(merged, str):
            problems.append(merged)
            continue
        matches[key] = merged
        if merged.repair == ORIGINAL and merged.verdict == KEEP:
            prefix = prefixes.get((merged.source, merged.origin, merged.id))
            if prefix is None:
                problems.append(
                    f"{merged.source} sample {merged.id!r} was repaired, but the run's "
                    "index/clean.parquet has no repaired prefix for it"
                )
                continue
            matches[(prefix["shard"], prefix["position"])] = _superseded(prefix)
    if problems:
        raise DecisionError("the decisions cannot be applied:\n" + problem_list(problems))
    return matches


def _superseded(row: dict) -> Match:
    return Match(
        CLEAN,
        row["shard"],
        row["position"],
        row["source"],
        row["id"],
        row["origin"] or "",
        row["score"],
        row["reason"],
        SUPERSEDED,
        "",
        REPAIRED,
    )


def decided(matches) -> list[Match]:
    """The matches a reviewer decided (not the prefixes their decisions superseded)."""
    return [m for m in matches if m.verdict != SUPERSEDED]
