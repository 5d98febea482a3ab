"""`rmclean export`: write a run's samples back in their dataset's own layout."""

from __future__ import annotations

import argparse
import sys

from pipelines.commands.usage import EXIT_FAILED, EXIT_OK, usage

NAME = "export"


def add_parser(commands) -> argparse.ArgumentParser:
    export = commands.add_parser(
        NAME,
        help="write a run's clean (or review) samples back in their dataset's layout",
        allow_abbrev=False,
    )
    export.add_argument("run", metavar="RUN", help="the finished run's output prefix")
    export.add_argument(
        "--output", help="a new or empty folder (or URL); default: export-<run> beside the run"
    )
    export.add_argument(
        "--layout",
        choices=("llava", "jsonl"),
        default="llava",
        help="llava: each manifest as it was read (JSON array); jsonl: as JSON Lines (llava)",
    )
    export.add_argument(
        "--part",
        choices=("clean", "review", "dropped"),
        default="clean",
        help="which samples: clean (default), review, or dropped (after apply-review)",
    )
    return export


def run(args: argparse.Namespace) -> int:
    from pipelines.jobs.export import ExportError, export_run
    from pipelines.run_folders.run_paths import EXPORT, derived_prefix, normalise_prefix
    from transforms.report.scan import ReportInputError
    from transforms.shards.stored_samples import StoredShardError

    run = normalise_prefix(args.run)
    try:
        output = normalise_prefix(args.output) if args.output else derived_prefix(run, EXPORT)
    except ValueError as exc:
        return usage(str(exc))
    try:
        report = export_run(run, output, args.layout, args.part)
    except (ExportError, ReportInputError) as exc:
        return usage(f"{exc}\nrmclean: nothing was written")
    except StoredShardError as exc:
        print(f"rmclean: export failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(
        f"rmclean: {report.samples} {args.part} samples -> {len(report.manifests)} manifests, "
        f"{report.media_written} media files ({report.media_shared} shared by several samples)"
    )
    for reason, count in sorted(report.media_skipped.items()):
        print(f"rmclean: {count} media not written: {reason}", file=sys.stderr)
    for name, count in sorted(report.manifests.items()):
        print(f"  {output}/{name} ({count})")
    return EXIT_OK
