"""What a run says about itself: flagged-sample rows, summary.json and the `_SUCCESS` marker."""

from __future__ import annotations

import csv
import io
import json
import time
from typing import Any

import fsspec

from transforms.core.json_lines import json_line
from transforms.core.record import ASSISTANT_ROLES, HUMAN_ROLES, Sample
from transforms.core.routes import CLEAN, ERRORS, REVIEW, ROUTES
from transforms.counts.run_counts import RunCounts
from transforms.samples.turns import first_low_turn

EXCERPT_CHARS = 200
FLAGGED_COLUMNS = (
    "id",
    "source",
    "score",
    "reason",
    "detail",
    "media",
    "question",
    "answer",
    "origin",
    "turn_scores",
    "low_score_turn",
    "repaired_prefix_turns",
)
# summary.json's per-source counts of a run with `repair:` (see run_counts.py).
REPAIRED, REPAIRED_ORIGINALS = "repaired", "repaired_originals"


class CountsNotConservedError(RuntimeError):
    """input != clean + review + errors for some source: a sample was lost or duplicated."""


class TooManyErrorsError(RuntimeError):
    """More of the input failed than the run allows: likely a broken dataset or setup."""


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"


def flagged_row(sample: Sample, cut: float | None = None) -> dict[str, Any]:
    """One flagged sample for flagged.jsonl/.csv. With `cut`, a conversation flagged for a low
    turn shows that turn's question and answer (`low_score_turn`: its index in
    `turn_scores`, from 0); otherwise the first question and answer."""
    turn = first_low_turn(sample.turn_scores, cut)
    question, answer = _asked(sample, turn or 0)
    return {
        "id": sample.id,
        "source": sample.source,
        "score": sample.score,
        "reason": sample.reason,
        "detail": sample.detail,
        "media": ";".join(ref.path for ref in sample.media),
        "question": _excerpt(question),
        "answer": _excerpt(answer),
        "origin": sample.origin,
        "turn_scores": sample.turn_scores,
        "low_score_turn": turn,
        "repaired_prefix_turns": (sample.repaired_prefix or {}).get("turns"),
    }


def _asked(sample: Sample, turn: int) -> tuple[str, str]:
    """The answer of assistant turn `turn` and the human turn before it ("" for what the
    conversation lacks: a rule-flagged sample may have no answer at all)."""
    question, seen = "", -1
    for message in sample.conversations:
        if message.get("from") in ASSISTANT_ROLES:
            seen += 1
            if seen == turn:
                return question, str(message.get("value", ""))
        elif message.get("from") in HUMAN_ROLES:
            question = str(message.get("value", ""))
    first = sample.human_turns()
    return (first[0] if first else ""), ""


def flagged_json_line(sample: Sample, cut_for=None) -> str:
    """`cut_for(sample)`: the cut the sample was routed against (`RunInfo.cut_for`)."""
    return json_line(flagged_row(sample, cut_for(sample) if cut_for else None))


def flagged_csv_line(sample: Sample, cut_for=None) -> str:
    buffer = io.StringIO()
    row = flagged_row(sample, cut_for(sample) if cut_for else None)
    if row["turn_scores"] is not None:
        row["turn_scores"] = json.dumps(row["turn_scores"])
    csv.writer(buffer, lineterminator="").writerow(
        ["" if row[c] is None else row[c] for c in FLAGGED_COLUMNS]
    )
    return buffer.getvalue()


FLAGGED_CSV_HEADER = ",".join(FLAGGED_COLUMNS)


def build_summary(counts: RunCounts, settings: dict[str, Any], started_at: float) -> dict[str, Any]:
    """summary.json: the run's settings, its counts per source and route, errors by reason,
    durations."""
    sources = sorted(set(counts.inputs) | set(counts.routed) | set(counts.repairs))
    repairing = settings.get("repair") is not None
    keys = ("input", *ROUTES, *((REPAIRED, REPAIRED_ORIGINALS) if repairing else ()))
    per_source = {}
    for source in sources:
        routes = counts.routed.get(source, dict.fromkeys(ROUTES, 0))
        per_source[source] = {"input": counts.inputs.get(source, 0), **routes}
        if repairing:
            repaired, originals = counts.repairs.get(source, (0, 0))
            per_source[source].update({REPAIRED: repaired, REPAIRED_ORIGINALS: originals})
    totals = {key: sum(s[key] for s in per_source.values()) for key in keys}
    repair = (
        {
            "repair": {
                "mode": settings["repair"],
                "repaired": totals[REPAIRED],
                "turns_dropped": counts.dropped_turns,
            }
        }
        if repairing
        else {}
    )
    return {
        **settings,
        **repair,
        "counts": {"total": totals, "per_source": per_source},
        "scoring": counts.scoring,
        "errors_by_reason": dict(sorted(counts.reasons.items(), key=lambda kv: -kv[1])),
        "durations": {
            "wall_seconds": round(time.time() - started_at, 3),
            "stage_seconds": {k: round(v, 3) for k, v in sorted(counts.stage_seconds.items())},
        },
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started_at)),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def check_conservation(summary: dict[str, Any]) -> None:
    """input = clean + review + errors per source; with repairs, every kept prefix counted in
    clean has its original in review/ (counted apart), and no original is left without one."""
    broken = [
        f"{source}: input {c['input']} != clean {c[CLEAN]} + review {c[REVIEW]} "
        f"+ errors {c[ERRORS]}"
        for source, c in summary["counts"]["per_source"].items()
        if c["input"] != c[CLEAN] + c[REVIEW] + c[ERRORS]
    ]
    broken += [
        f"{source}: {c[REPAIRED]} repaired prefixes in clean/ but {c[REPAIRED_ORIGINALS]} "
        "originals in review/"
        for source, c in summary["counts"]["per_source"].items()
        if c.get(REPAIRED, 0) != c.get(REPAIRED_ORIGINALS, 0)
    ]
    if broken:
        raise CountsNotConservedError("sample counts do not add up: " + "; ".join(broken))


def check_error_fraction(summary: dict[str, Any], max_fraction: float) -> None:
    total = summary["counts"]["total"]
    if not total["input"] or total[ERRORS] / total["input"] <= max_fraction:
        return
    commonest = ", ".join(
        f"{reason} ({number})" for reason, number in list(summary["errors_by_reason"].items())[:3]
    )
    raise TooManyErrorsError(
        f"{total[ERRORS]} of {total['input']} samples ({total[ERRORS] / total['input']:.1%}) "
        f"failed, above --max-error-fraction {max_fraction:g}; commonest: {commonest}. "
        "See errors/ for each sample's stage and reason."
    )


def write_json(path: str, payload: dict[str, Any]) -> None:
    with fsspec.open(path, "w") as handle:
        json.dump(payload, handle, indent=2, sort_keys=False)
        handle.write("\n")


def write_success(prefix: str) -> None:
    with fsspec.open(f"{prefix}/_SUCCESS", "w") as handle:
        handle.write("")
