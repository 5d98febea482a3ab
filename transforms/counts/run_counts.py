"""Every count summary.json holds, from one light `Outcome` per record, combined once.

Readers emit an `Outcome` per record read (route `input`); the writers emit one per sample
they wrote (clean or review) and per error record. `CountOutcomes` folds them into one
`RunCounts` (per source and route, errors by reason, time per stage, how samples were
scored, repairs), the single counts side input of the finishing step. Each branch of
outcomes is counted where it is made (`transforms/beam/combine_branches.py`), so only
per-bundle counts travel between steps.

A repaired conversation (`repair: truncate`) is written twice, its kept prefix to clean/ and
its original to review/, and counted once: as clean (also counted in `repaired`); the original
is counted apart (`repaired_originals`), in no route, so input = clean + review + errors
still holds exactly, and every prefix must have its original (`repaired` ==
`repaired_originals`, checked by the finishing step).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import apache_beam as beam

from transforms.core.record import ErrorRecord, Sample
from transforms.core.routes import ERRORS, ROUTES
from transforms.samples.repair import ORIGINAL, REPAIRED, repair_role

INPUT = "input"
SCORING = ("scored", "from_cache", "not_scored")


class Outcome(NamedTuple):
    """One record's fate, without its content."""

    source: str
    route: str  # INPUT for a record read, else clean, review or errors
    scoring: str | None = None  # how a written sample got its score (one of SCORING)
    reason: str | None = None  # "stage/reason" of an error record
    timings: dict[str, float] | None = None  # seconds per stage
    repair: str | None = None  # REPAIRED (a kept prefix) or ORIGINAL (its original)
    dropped_turns: int = 0  # assistant turns a kept prefix left out


def read_outcome(item: Sample | ErrorRecord) -> Outcome:
    return Outcome(item.source, INPUT)


def written_outcome(item: Sample | ErrorRecord, route: str) -> Outcome:
    """The outcome of a sample (or error record) written to `route`."""
    if isinstance(item, ErrorRecord):
        return Outcome(item.source, route, reason=f"{item.stage}/{item.reason}")
    if item.cached:
        scoring = "from_cache"
    else:
        scoring = "scored" if item.score is not None else "not_scored"
    role = repair_role(item)
    dropped = item.repaired_from["turns"] - len(item.turn_scores) if role == REPAIRED else 0
    return Outcome(item.source, route, scoring, None, item.timings, role, dropped)


@dataclass
class RunCounts:
    inputs: dict[str, int] = field(default_factory=dict)
    routed: dict[str, dict[str, int]] = field(default_factory=dict)  # source -> route -> n
    reasons: dict[str, int] = field(default_factory=dict)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    scoring: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SCORING, 0))
    # source -> [kept prefixes written to clean/, their originals written to review/]
    repairs: dict[str, list[int]] = field(default_factory=dict)
    dropped_turns: int = 0

    def add(self, outcome: Outcome) -> None:
        if outcome.route == INPUT:
            self.inputs[outcome.source] = self.inputs.get(outcome.source, 0) + 1
            return
        if outcome.repair is not None:
            counts = self.repairs.setdefault(outcome.source, [0, 0])
            counts[outcome.repair == ORIGINAL] += 1
            self.dropped_turns += outcome.dropped_turns
            if outcome.repair == ORIGINAL:
                return  # counted with its kept prefix, as clean
        routes = self.routed.setdefault(outcome.source, dict.fromkeys(ROUTES, 0))
        routes[outcome.route] += 1
        if outcome.reason:
            self.reasons[outcome.reason] = self.reasons.get(outcome.reason, 0) + 1
        if outcome.route != ERRORS:
            self.scoring[outcome.scoring] += 1
            for stage, seconds in (outcome.timings or {}).items():
                self.stage_seconds[stage] = self.stage_seconds.get(stage, 0.0) + seconds

    def merge(self, other: RunCounts) -> None:
        for source, number in other.inputs.items():
            self.inputs[source] = self.inputs.get(source, 0) + number
        for source, routes in other.routed.items():
            mine = self.routed.setdefault(source, dict.fromkeys(ROUTES, 0))
            for route, number in routes.items():
                mine[route] += number
        for reason, number in other.reasons.items():
            self.reasons[reason] = self.reasons.get(reason, 0) + number
        for stage, seconds in other.stage_seconds.items():
            self.stage_seconds[stage] = self.stage_seconds.get(stage, 0.0) + seconds
        for how, number in other.scoring.items():
            self.scoring[how] += number
        for source, (repaired, originals) in other.repairs.items():
            mine = self.repairs.setdefault(source, [0, 0])
            mine[0] += repaired
            mine[1] += originals
        self.dropped_turns += other.dropped_turns


class CountOutcomes(beam.CombineFn):
    def create_accumulator(self) -> RunCounts:
        return RunCounts()

    def add_input(self, counts: RunCounts, outcome: Outcome) -> RunCounts:
        counts.add(outcome)
        return counts

    def merge_accumulators(self, accumulators) -> RunCounts:
        merged = RunCounts()
        for counts in accumulators:
            merged.merge(counts)
        return merged

    def extract_output(self, counts: RunCounts) -> RunCounts:
        return counts
