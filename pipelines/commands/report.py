"""`rmclean report`: rebuild a finished run's report/index.html."""

from __future__ import annotations

import argparse

from pipelines.commands.usage import EXIT_OK, usage

NAME = "report"


def add_parser(commands) -> argparse.ArgumentParser:
    report = commands.add_parser(
        NAME, help="rebuild report/index.html for a finished run", allow_abbrev=False
    )
    report.add_argument("output", help="the run's output prefix (local path or URL)")
    report.add_argument(
        "--max-rows",
        type=int,
        default=500,
        help=(
            "rows per review page (every flagged sample is on a page) and errors listed per "
            "source (default 500)"
        ),
    )
    return report


def run(args: argparse.Namespace) -> int:
    from pipelines.run_folders.run_paths import normalise_prefix
    from transforms.report.html import write_html_report
    from transforms.report.scan import ReportInputError

    try:
        index = write_html_report(normalise_prefix(args.output), max_rows_per_source=args.max_rows)
    except ReportInputError as exc:
        return usage(str(exc))
    print(index)
    return EXIT_OK
