"""`rmclean runs [DIR | --config F]`: the finished runs recorded beside a dataset's runs."""

from __future__ import annotations

import argparse
import json

from pipelines.commands.usage import EXIT_OK, usage

NAME = "runs"


def add_parser(commands) -> argparse.ArgumentParser:
    runs = commands.add_parser(
        NAME, help="list the finished runs of a dataset (its run history)", allow_abbrev=False
    )
    where = runs.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "folder", nargs="?", help="the folder holding the runs (e.g. out/sample), local or URL"
    )
    where.add_argument("--config", help="a dataset config: its output folder")
    runs.add_argument("--json", action="store_true", help="one JSON line per run, as recorded")
    return runs


def run(args: argparse.Namespace) -> int:
    import fsspec

    from pipelines.config import ConfigError, load_config
    from transforms.history.run_history import HISTORY_FILE, read_history

    if args.config:
        try:
            folder = load_config(args.config).output
        except ConfigError as exc:
            return usage(f"bad configuration: {exc}")
    else:
        folder = args.folder
    fs, path = fsspec.core.url_to_fs(folder)
    if not fs.isdir(path):
        return usage(f"{folder} is not a folder of runs")
    entries = read_history(folder)
    if args.json:
        for entry in entries:
            print(json.dumps(entry))
        return EXIT_OK
    if not entries:
        print(f"no finished runs recorded in {folder.rstrip('/')}/{HISTORY_FILE}")
        return EXIT_OK
    print(
        f"{'finished':<21} {'run id':<12} {'input':>7} {'clean':>7} {'review':>7} "
        f"{'errors':>6} {'scored':>7} {'cached':>7} {'model':<12} {'cut':<10} output"
    )
    for entry in entries:
        total = (entry.get("counts") or {}).get("total") or {}
        scoring = entry.get("scoring") or {}
        print(
            f"{str(entry.get('finished_at')):<21} {str(entry.get('run_id'))[:12]:<12} "
            f"{total.get('input', 0):>7} {total.get('clean', 0):>7} {total.get('review', 0):>7} "
            f"{total.get('errors', 0):>6} {scoring.get('scored', 0):>7} "
            f"{scoring.get('from_cache', 0):>7} {str(entry.get('model')):<12} "
            f"{_cut(entry):<10} {entry.get('output')}"
        )
    return EXIT_OK


def _cut(entry: dict) -> str:
    if entry.get("percentile") is not None:
        return f"p{entry['percentile']:g}"
    if entry.get("threshold") is not None:
        return f"<{entry['threshold']:g}"
    return "-"
