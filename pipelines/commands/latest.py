"""`rmclean latest`: print the prefix of a dataset's latest finished run (its LATEST pointer)."""

from __future__ import annotations

import argparse

from pipelines.commands.usage import EXIT_OK, usage
from pipelines.config import ConfigError, load_config

NAME = "latest"


def add_parser(commands) -> argparse.ArgumentParser:
    latest = commands.add_parser(
        NAME,
        help="print the latest finished run of a dataset (for scripts: RUN=$(rmclean latest ...))",
        allow_abbrev=False,
    )
    where = latest.add_mutually_exclusive_group(required=True)
    where.add_argument("--config", help="the dataset's config: its output folder holds the runs")
    where.add_argument("runs", nargs="?", metavar="FOLDER", help="a folder of runs: out/sample")
    return latest


def run(args: argparse.Namespace) -> int:
    from pipelines.run_folders.latest_run import NoFinishedRunError, latest_run

    try:
        folder = load_config(args.config).output if args.config else args.runs
        print(latest_run(folder))
    except (ConfigError, NoFinishedRunError) as exc:
        return usage(str(exc))
    return EXIT_OK
