"""`rmclean clean`: score and route a dataset.

Our own flags are parsed here; every other flag must be a real Beam pipeline option and is
handed to Beam untouched, so any runner option (`--runner`, `--direct_num_workers`,
`--project`, ...) works as Beam documents it. Every flag also takes Beam's spelling
(`--score_cache=DIR`, a bare `--trust_remote_code`), which is how schedulers such as Airflow's
Beam operator write them (`pipelines/clean_job.py`).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

from pipelines.commands.beam_flags import check_beam_args
from pipelines.commands.usage import EXIT_FAILED, EXIT_OK, UsageError, usage
from pipelines.config import FORMATS, ConfigError, load_config, with_absolute_paths
from transforms.samples.repair import REPAIRS

NAME = "clean"
# What a finished run prints under its one-line total.
OUTPUTS = (
    "clean/",
    "review/",
    "errors/",
    "report/index.html",
    "report/summary.json",
    "report/flagged.csv",
)


def add_parser(commands) -> argparse.ArgumentParser:
    clean = commands.add_parser(
        NAME,
        help="score and route a dataset",
        epilog="Other flags must be Beam pipeline options; they are passed to Beam.",
        allow_abbrev=False,
    )
    clean.add_argument("--config", required=True, help="YAML config, e.g. configs/sample.yaml")
    clean.add_argument("--input", help="dataset root (overrides the config's root)")
    clean.add_argument(
        "--output",
        help="output prefix for this run (default: <config output>/<UTC timestamp>)",
    )
    cut = clean.add_mutually_exclusive_group()
    cut.add_argument("--threshold", type=float, help="review samples scoring below this")
    cut.add_argument("--percentile", type=float, help="review the lowest P%% of each source")
    clean.add_argument(
        "--repair",
        choices=REPAIRS,
        help="truncate: keep the good prefix of a conversation whose later turns scored low "
        "(the original goes to review/)",
    )
    clean.add_argument("--model", help="reward backend name (default from the config)")
    clean.add_argument("--format", choices=FORMATS, help="output shard format")
    clean.add_argument(
        "--trust-remote-code",
        "--trust_remote_code",
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
        help="folder of cached scores: rescore only new or changed samples "
        "(default: <config output>/score-cache)",
    )
    clean.add_argument(
        "--no-score-cache",
        "--no_score_cache",
        action="store_true",
        help="score every sample, keep no scores",
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
    return clean


def run(args: argparse.Namespace, beam_args: list[str], ours: list[str]) -> int:
    """Check everything a run needs before Beam starts, then run it."""
    from models.registry import ModelConfigError, preflight_models
    from pipelines.runners import UnknownRunnerError, beam_args_for, check_runner, runs_locally
    from pipelines.stages.read_sources import DataMissingError, discover_inputs

    try:
        check_beam_args(beam_args, ours)
        config, runs_folder = config_for(args)
        runner_args = beam_args_for(args.runner, beam_args)
        check_runner(runner_args)
        if not runs_locally(runner_args):
            config = with_absolute_paths(config)
        # Model options, the remote-code opt-in, weight and font files: checked before Beam
        # and before the output prefix is touched, so the pipeline need not check again.
        preflight_models(config, runs_locally(runner_args))
        # Likewise the input files (the pipeline lists them again when it is built).
        discover_inputs(config)
    except (UsageError, UnknownRunnerError) as exc:
        return usage(str(exc))
    except (ConfigError, ModelConfigError) as exc:
        return usage(f"bad configuration: {exc}")
    except DataMissingError as exc:
        return usage(f"input data not found: {_missing_data(exc, args.input)}")
    try:
        return _run(config, args.overwrite, runner_args, runs_folder)
    except DataMissingError as exc:  # the files went away since they were listed
        return usage(f"input data not found: {exc}")


def _missing_data(exc: Exception, given_root: str | None) -> str:
    """What to tell the user: a root they named that is not there is the whole story (the
    config's own hint, e.g. how to generate the sample, is about the config's own root)."""
    import fsspec

    if given_root:
        fs, path = fsspec.core.url_to_fs(given_root)
        if not fs.isdir(path):
            return f"--input {given_root} is not a folder (INPUT= with make)"
    return str(exc)


def _scoring_line(scoring: dict, score_cache: str | None) -> str:
    """Where the scores came from: a rerun should say that the cache spared the model."""
    cache = f"from the score cache ({score_cache})" if score_cache else "from the score cache"
    parts = [
        f"{scoring.get('scored', 0)} scored by the model",
        f"{scoring.get('from_cache', 0)} {cache}",
    ]
    if scoring.get("not_scored"):
        parts.append(f"{scoring['not_scored']} not scored (flagged by a rule first)")
    return "scores: " + ", ".join(parts)


def config_for(args: argparse.Namespace):
    """The config file with this command line's overrides and the run defaults applied, and
    the config's own output folder (where each run's prefix and the LATEST pointer go)."""
    from pipelines.run_folders.run_paths import normalise_prefix

    config = load_config(args.config)
    if args.model and args.model != config.model:
        # The config's model_options belong to its own model, not to the one chosen here.
        config = config.with_overrides(model=args.model, model_options={})
    runs = normalise_prefix(config.output)
    # Defaults (the same for make and the CLI): each run its own timestamped prefix under the
    # config's output folder, and one score cache beside them that every run shares.
    output = args.output or f"{runs}/{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
    score_cache = args.score_cache or config.score_cache or f"{runs}/score-cache"
    if args.no_score_cache:
        config = dataclasses.replace(config, score_cache=None)
        score_cache = None
    config = config.with_overrides(
        root=args.input,
        output=normalise_prefix(output),
        score_cache=score_cache,
        threshold=args.threshold,
        percentile=args.percentile,
        repair=args.repair,
        format=args.format,
        max_error_fraction=args.max_error_fraction,
        trust_remote_code=True if args.trust_remote_code else None,
    )
    return config, runs


def _run(config, overwrite: bool, beam_args: list[str], runs_folder: str) -> int:
    from pipelines import interrupt, progress
    from pipelines.jobs.clean import run as run_pipeline
    from pipelines.run_folders.output_prefix import OutputExistsError, prepare_output
    from transforms.report.summary import CountsNotConservedError, TooManyErrorsError

    try:
        prepare_output(config.output, overwrite)
    except OutputExistsError as exc:
        return usage(str(exc))
    print(f"rmclean: cleaning {config.name} from {config.root} -> {config.output}", flush=True)
    try:
        with interrupt.interruptible(), progress.shown():
            summary = run_pipeline(config, beam_args, check_models=False, runs_folder=runs_folder)
    except (CountsNotConservedError, TooManyErrorsError) as exc:
        if interrupt.received() is None:
            print(f"rmclean: run failed: {exc}", file=sys.stderr)
            return EXIT_FAILED
        return interrupt.wind_down(config, interrupt.received())
    except BaseException:
        # Beam re-raises the interrupt as another exception type: the signal decides.
        if interrupt.received() is None:
            raise
        return interrupt.wind_down(config, interrupt.received())
    if interrupt.received() is not None:  # the signal came as the run was finishing
        return interrupt.wind_down(config, interrupt.received())
    _print_summary(summary, config.score_cache)
    return EXIT_OK


def _print_summary(summary: dict, score_cache: str | None) -> None:
    total = summary["counts"]["total"]
    repaired = f" ({total['repaired']} repaired)" if total.get("repaired") else ""
    print(
        f"rmclean: {total['input']} samples -> {total['clean']} clean{repaired}, "
        f"{total['review']} review, {total['errors']} errors in "
        f"{summary['durations']['wall_seconds']:.1f}s"
    )
    print(f"rmclean: {_scoring_line(summary.get('scoring') or {}, score_cache)}")
    for name in OUTPUTS:
        print(f"  {summary['output']}/{name}")
