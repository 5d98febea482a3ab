"""`rmclean`: clean a dataset, generate the sample dataset, or rebuild a run's report.

Our own flags are parsed here; everything else is handed to Beam untouched, so any runner
option (`--runner`, `--direct_num_workers`, `--project`, ...) works as Beam documents it.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from pipelines.config import ConfigError, load_config


def _clean(args: argparse.Namespace, beam_args: list[str]) -> int:
    from models.registry import ModelConfigError, preflight_models
    from pipelines.clean import DataMissingError, run
    from pipelines.output_prefix import OutputExistsError, prepare_output
    from pipelines.runners import beam_args_for, runs_locally
    from transforms.report import CountsNotConservedError, TooManyErrorsError

    try:
        config = load_config(args.config)
        if args.model and args.model != config.model:
            # The config's model_options belong to its own model, not to the one chosen here.
            config = config.with_overrides(model=args.model, model_options={})
        config = config.with_overrides(
            root=args.input,
            output=args.output,
            threshold=args.threshold,
            percentile=args.percentile,
            format=args.format,
            max_error_fraction=args.max_error_fraction,
            score_cache=args.score_cache,
            trust_remote_code=True if args.trust_remote_code else None,
        )
        preflight_models(config, runs_locally(beam_args_for(args.runner, beam_args)))
    except (ConfigError, ModelConfigError) as exc:
        print(f"rmclean: bad configuration: {exc}", file=sys.stderr)
        return 2
    print(f"rmclean: cleaning {config.name} from {config.root} -> {config.output}", flush=True)
    try:
        prepare_output(config.output, args.overwrite)
        summary = run(config, beam_args_for(args.runner, beam_args))
    except OutputExistsError as exc:
        print(f"rmclean: {exc}", file=sys.stderr)
        return 2
    except DataMissingError as exc:
        print(f"rmclean: input data not found: {exc}", file=sys.stderr)
        return 2
    except (CountsNotConservedError, TooManyErrorsError) as exc:
        print(f"rmclean: run failed: {exc}", file=sys.stderr)
        return 1
    _print_summary(summary)
    return 0


def _print_summary(summary: dict) -> None:
    total = summary["counts"]["total"]
    prefix = summary["output"]
    print(
        f"rmclean: {total['input']} samples -> {total['clean']} clean, {total['review']} review, "
        f"{total['errors']} errors in {summary['durations']['wall_seconds']:.1f}s"
    )
    for name in (
        "clean/",
        "review/",
        "errors/",
        "report/index.html",
        "report/summary.json",
        "report/flagged.csv",
    ):
        print(f"  {prefix}/{name}")


def _sample(args: argparse.Namespace) -> int:
    from synth.dataset import write_sample_dataset

    summary = write_sample_dataset(Path(args.output), seed=args.seed)
    print(json.dumps(summary, indent=2))
    print(f"rmclean: sample dataset written to {args.output}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from transforms.html_report import write_html_report
    from transforms.report_scan import ReportInputError

    try:
        index = write_html_report(args.output, max_rows_per_source=args.max_rows)
    except ReportInputError as exc:
        print(f"rmclean: {exc}", file=sys.stderr)
        return 2
    print(index)
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="rmclean", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)

    clean = commands.add_parser(
        "clean", help="score and route a dataset", epilog="Unknown flags are passed to Beam."
    )
    clean.add_argument("--config", required=True, help="YAML config, e.g. configs/sample.yaml")
    clean.add_argument("--input", help="dataset root (overrides the config's root)")
    clean.add_argument("--output", help="output prefix for this run (local path or URL)")
    cut = clean.add_mutually_exclusive_group()
    cut.add_argument("--threshold", type=float, help="review samples scoring below this")
    cut.add_argument("--percentile", type=float, help="review the lowest P%% of each source")
    clean.add_argument("--model", help="reward backend name (default from the config)")
    clean.add_argument("--format", choices=("parquet", "webdataset"), help="output shard format")
    clean.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="allow checkpoints that ship their own code (ixc25) to run it",
    )
    clean.add_argument(
        "--runner",
        help="local, portable, spark, flink, dataflow (presets), or any Beam runner class name",
    )
    clean.add_argument(
        "--score-cache",
        "--score_cache",
        help="folder of cached scores: rescore only new or changed samples",
    )
    clean.add_argument(
        "--max-error-fraction",
        "--max_error_fraction",
        type=float,
        help="fail the run (no _SUCCESS) when more than this share of samples errs (0.05)",
    )
    clean.add_argument(
        "--overwrite", action="store_true", help="replace a finished run at --output"
    )

    sample = commands.add_parser("sample", help="write the generated sample dataset")
    sample.add_argument("--output", required=True, help="directory to write the dataset into")
    sample.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")

    report = commands.add_parser("report", help="rebuild report/index.html for a finished run")
    report.add_argument("output", help="the run's output prefix (local path or URL)")
    report.add_argument(
        "--max-rows",
        type=int,
        default=500,
        help="flagged samples and errors shown per source (default 500)",
    )
    return root


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args, beam_args = parser().parse_known_args(argv)
    if args.command == "clean":
        return _clean(args, beam_args)
    if beam_args:
        print(f"rmclean: unknown arguments {beam_args}", file=sys.stderr)
        return 2
    if args.command == "report":
        return _report(args)
    return _sample(args)


if __name__ == "__main__":
    sys.exit(main())
