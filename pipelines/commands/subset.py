"""`rmclean subset`: copy a small slice of a downloaded dataset to try a config on."""

from __future__ import annotations

import argparse
import sys

from pipelines.commands.usage import EXIT_OK, usage
from pipelines.config import ConfigError, load_config

NAME = "subset"


def add_parser(commands) -> argparse.ArgumentParser:
    subset = commands.add_parser(
        NAME,
        help="copy a small slice of a downloaded dataset (records whose media are here)",
        allow_abbrev=False,
    )
    subset.add_argument("--config", required=True, help="the dataset's config")
    subset.add_argument("--input", help="dataset root (overrides the config's root)")
    subset.add_argument(
        "--fraction", type=float, required=True, help="share of each manifest to keep, e.g. 0.01"
    )
    subset.add_argument("--output", required=True, help="a new or empty folder: the subset's root")
    return subset


def run(args: argparse.Namespace) -> int:
    from pipelines.jobs.subset import SubsetError, make_subset
    from pipelines.run_folders.run_paths import normalise_prefix

    args.output = normalise_prefix(args.output)
    try:
        config = load_config(args.config).with_overrides(root=args.input)
        report = make_subset(config, args.fraction, args.output)
    except (ConfigError, SubsetError) as exc:
        return usage(str(exc))
    kept = sum(c.kept for c in report.manifests.values())
    total = sum(c.records for c in report.manifests.values())
    print(
        f"rmclean: subset of {config.root} -> {args.output}: {kept} of {total} records, "
        f"{report.media_files} media files, {sum(report.archives.values())} videos in "
        f"{len(report.archives)} archives"
    )
    for name, counts in sorted(report.manifests.items()):
        print(
            f"  {name}: kept {counts.kept} of {counts.records} "
            f"({counts.media_here} with every medium here)"
        )
    if report.unreadable:
        print(f"rmclean: {report.unreadable} JSON Lines lines were not JSON", file=sys.stderr)
    return EXIT_OK
