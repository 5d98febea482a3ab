"""`rmclean compare [OLD] NEW`: what changed from one finished run of a dataset to another.

With one run, OLD is the previous finished run recorded in the history beside NEW (the
comparison NEW's finishing step already made is reused); a dataset's first run has none, which
is said and is no error (`--json` prints null). The comparison goes into NEW's
summary.json (`since_last_run`), `report/route_changes.jsonl` and report page, and is printed,
setting changes first. `--fail-on-drift PSI` exits 3 when any source's scores moved more than
that, so a scheduler can hold back what would train on this run.
"""

from __future__ import annotations

import argparse
import json
import sys

from pipelines.commands.usage import EXIT_OK, usage
from transforms.core.run_identity import run_id

NAME = "compare"
EXIT_DRIFT = 3


def add_parser(commands) -> argparse.ArgumentParser:
    compare = commands.add_parser(
        NAME,
        help="what changed from one finished run of a dataset to another",
        allow_abbrev=False,
    )
    compare.add_argument(
        "runs",
        nargs="+",
        metavar="RUN",
        help="OLD NEW output prefixes; NEW alone compares it with the run before it",
    )
    compare.add_argument(
        "--fail-on-drift",
        type=float,
        metavar="PSI",
        help=f"exit {EXIT_DRIFT} when any source's score PSI (all samples or those in both "
        "runs) is above this, e.g. 0.2",
    )
    compare.add_argument(
        "--json", action="store_true", help="print the comparison as one line of JSON"
    )
    return compare


def run(args: argparse.Namespace) -> int:
    from transforms.history.run_compare import (
        CompareError,
        compare_runs,
        finished_summary,
        max_drift,
    )
    from transforms.history.run_history import previous_finished_run
    from transforms.report.compare_output import describe, write_comparison

    if len(args.runs) > 2:
        return usage(f"compare takes OLD NEW or NEW alone, not {len(args.runs)} runs")
    new = args.runs[-1]
    try:
        new_summary = finished_summary(new)
        previous = previous_finished_run(new, new_summary)
        if len(args.runs) == 2:
            old_summary = finished_summary(args.runs[0])
        elif previous is None:
            # A dataset's first scheduled run: nothing to compare, and nothing wrong.
            print(
                "null"
                if args.json
                else f"rmclean: {new} is the first finished run of "
                f"{new_summary.get('dataset')!r} recorded beside it: nothing to compare"
            )
            return EXIT_OK
        else:
            old_summary = finished_summary(previous["output"])
        old = args.runs[0] if len(args.runs) == 2 else previous["output"]
        comparison = _made_at_finish(new_summary, old_summary)
        if comparison is None:
            comparison = compare_runs(old, new)
            comparison["last_run"] = previous is not None and previous["run_id"] == run_id(
                old_summary
            )
            write_comparison(new, new_summary, comparison)
    except CompareError as exc:
        return usage(str(exc))
    print(json.dumps(comparison) if args.json else describe(comparison, new))
    drift = max_drift(comparison)
    if args.fail_on_drift is not None and drift > args.fail_on_drift:
        worst = comparison["max_psi"]
        print(
            f"rmclean: drift: score PSI {drift:.3f} of {worst['source']} ({worst['on']} "
            f"samples) is above --fail-on-drift {args.fail_on_drift:g}",
            file=sys.stderr,
        )
        return EXIT_DRIFT
    return EXIT_OK


def _made_at_finish(summary: dict, old_summary: dict) -> dict | None:
    """The comparison NEW's finishing step made, if it was with the run asked for."""
    made = summary.get("since_last_run") or {}
    if "error" in made or not made.get("previous_run"):
        return None
    return made if made["previous_run"].get("run_id") == run_id(old_summary) else None
