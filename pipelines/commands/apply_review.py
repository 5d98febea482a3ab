"""`rmclean apply-review`: apply reviewers' decisions to a run, writing a new prefix."""

from __future__ import annotations

import argparse
import sys

from pipelines.commands.usage import EXIT_FAILED, EXIT_OK, usage

NAME = "apply-review"


def add_parser(commands) -> argparse.ArgumentParser:
    apply = commands.add_parser(
        NAME,
        help="apply decisions downloaded from a run's report page: write a new prefix",
        allow_abbrev=False,
    )
    apply.add_argument("run", metavar="OUTPUT", help="the finished run's output prefix")
    apply.add_argument(
        "--decisions",
        action="append",
        required=True,
        metavar="FILE",
        help="decisions.jsonl from the run's report page (repeat for several reviewers)",
    )
    apply.add_argument(
        "--output",
        help="prefix to write the reviewed dataset to; default: reviewed-<run> beside the run",
    )
    apply.add_argument(
        "--undecided",
        choices=("review", "keep", "drop"),
        default="review",
        help="where flagged samples nobody decided go (default: review/)",
    )
    apply.add_argument(
        "--overwrite", action="store_true", help="replace a finished prefix at --output"
    )
    return apply


def run(args: argparse.Namespace) -> int:
    from pipelines.jobs.apply_review import ApplyReviewError, apply_review
    from pipelines.run_folders.output_prefix import OutputExistsError
    from pipelines.run_folders.run_paths import REVIEWED, derived_prefix, normalise_prefix
    from transforms.report.scan import ReportInputError
    from transforms.review.decisions import DecisionError
    from transforms.review.matching import MissingIndexError
    from transforms.review.reroute import ReviewNotConservedError
    from transforms.shards.stored_samples import StoredShardError

    run = normalise_prefix(args.run)
    try:
        output = normalise_prefix(args.output) if args.output else derived_prefix(run, REVIEWED)
    except ValueError as exc:
        return usage(str(exc))
    try:
        summary = apply_review(run, args.decisions, output, args.undecided, args.overwrite)
    except (
        ApplyReviewError,
        DecisionError,
        MissingIndexError,
        ReportInputError,
        OutputExistsError,
    ) as exc:
        return usage(f"{exc}\nrmclean: nothing was written")
    except (ReviewNotConservedError, StoredShardError) as exc:
        print(f"rmclean: apply-review failed (no _SUCCESS written): {exc}", file=sys.stderr)
        return EXIT_FAILED
    total, review = summary["counts"]["total"], summary["review"]
    print(
        f"rmclean: {review['decisions']['keep']} kept, {review['decisions']['drop']} dropped "
        f"-> {total['clean']} clean, {total['review']} review, {total['dropped']} dropped, "
        f"{total['errors']} errors"
    )
    for name in ("clean/", "review/", "dropped/", "errors/", "report/index.html"):
        print(f"  {summary['output']}/{name}")
    return EXIT_OK
