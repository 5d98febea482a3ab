"""What a run says about itself: flagged-sample rows, summary.json and the `_SUCCESS` marker."""

from __future__ import annotations

import csv
import io
import json
import time
from typing import Any

import fsspec

from transforms.core.json_lines import json_line
from transforms.core.record import Sample
from transforms.report.run_counts import RunCounts
from transforms.samples.route import CLEAN, ERRORS, REVIEW, ROUTES

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
)


class CountsNotConservedError(RuntimeError):
    """input != clean + review + errors for some source: a sample was lost or duplicated."""


class TooManyErrorsError(RuntimeError):
    """More of the input failed than the run allows: likely a broken dataset or setup."""


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"


def flagged_row(sample: Sample) -> dict[str, Any]:
    questions, answers = sample.human_turns(), sample.assistant_turns()
    return {
        "id": sample.id,
        "source": sample.source,
        "score": sample.score,
        "reason": sample.reason,
        "detail": sample.detail,
        "media": ";".join(ref.path for ref in sample.media),
        "question": _excerpt(questions[0] if questions else ""),
        "answer": _excerpt(answers[0] if answers else ""),
        "origin": sample.origin,
    }


def flagged_json_line(sample: Sample) -> str:
    return json_line(flagged_row(sample))


def flagged_csv_line(sample: Sample) -> str:
    buffer = io.StringIO()
    row = flagged_row(sample)
    csv.writer(buffer, lineterminator="").writerow(
        ["" if row[c] is None else row[c] for c in FLAGGED_COLUMNS]
    )
    return buffer.getvalue()


FLAGGED_CSV_HEADER = ",".join(FLAGGED_COLUMNS)


def build_summary(counts: RunCounts, settings: dict[str, Any], started_at: float) -> dict[str, Any]:
    """summary.json: the run's settings, its counts per source and route, errors by reason,
    durations."""
    sources = sorted(set(counts.inputs) | set(counts.routed))
    per_source = {}
    for source in sources:
        routes = counts.routed.get(source, dict.fromkeys(ROUTES, 0))
        per_source[source] = {"input": counts.inputs.get(source, 0), **routes}
    totals = {key: sum(s[key] for s in per_source.values()) for key in ("input", *ROUTES)}
    return {
        **settings,
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
    broken = [
        f"{source}: input {c['input']} != clean {c[CLEAN]} + review {c[REVIEW]} "
        f"+ errors {c[ERRORS]}"
        for source, c in summary["counts"]["per_source"].items()
        if c["input"] != c[CLEAN] + c[REVIEW] + c[ERRORS]
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
