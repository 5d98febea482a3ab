"""`rmclean`: clean a dataset, generate the sample dataset, or rebuild a run's report.

Our own flags are parsed here; every other flag must be a real Beam pipeline option and is
handed to Beam untouched, so any runner option (`--runner`, `--direct_num_workers`,
`--project`, ...) works as Beam documents it, while a typo such as `--treshold` stops the run
before it starts instead of being dropped with a log line. Bad usage ends with one line and
exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import os
import sys
import time
from pathlib import Path

from pipelines.config import ConfigError, load_config
from pipelines.interrupt import EXIT_CODES
from pipelines.logs import configure_logging

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
# On Ctrl-C, how long to let batches already on the model finish so their scores are kept.
UNPASSED_WAIT_S = 5.0


class UsageError(ValueError):
    """Bad usage found before any work starts: one line for the user, exit code 2."""


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports bad usage in one line (and exit 2) instead of a usage block."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _our_flags(parser: argparse.ArgumentParser) -> list[str]:
    return [flag for action in parser._actions for flag in action.option_strings]


def _beam_parser() -> argparse.ArgumentParser:
    """A parser that knows every Beam pipeline option, as Beam itself builds one."""
    from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser

    parser = _BeamArgumentParser(allow_abbrev=False)
    for options_class in {str(c): c for c in PipelineOptions.__subclasses__()}.values():
        options_class._add_argparse_args(parser)
    return parser


def check_beam_args(beam_args: list[str], ours: list[str]) -> None:
    """Refuse any argument that is neither ours nor a Beam pipeline option, with a suggestion."""
    beam = _beam_parser()
    _, unknown = beam.parse_known_args(beam_args)
    flags = [arg for arg in unknown if arg.startswith("-")]
    if not unknown:
        return
    if not flags:
        raise UsageError(f"unexpected argument {unknown[0]!r}")
    name = flags[0].split("=", 1)[0]
    candidates = ours + _our_flags(beam)
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]}?" if close else ""
    raise UsageError(
        f"unknown option {name}: neither an rmclean flag nor a Beam pipeline option{hint}"
    )


def _clean(args: argparse.Namespace, beam_args: list[str], ours: list[str]) -> int:
    from models.registry import ModelConfigError, preflight_models
    from pipelines.clean import DataMissingError
    from pipelines.runners import beam_args_for, runs_locally

    try:
        check_beam_args(beam_args, ours)
        config = _config(args)
        # Model options, the remote-code opt-in, weight and font files: checked before Beam.
        preflight_models(config, runs_locally(beam_args_for(args.runner, beam_args)))
    except UsageError as exc:
        return _usage(str(exc))
    except (ConfigError, ModelConfigError) as exc:
        return _usage(f"bad configuration: {exc}")
    print(f"rmclean: cleaning {config.name} from {config.root} -> {config.output}", flush=True)
    try:
        return _run(config, args.overwrite, beam_args_for(args.runner, beam_args))
    except DataMissingError as exc:
        return _usage(f"input data not found: {exc}")


def _config(args: argparse.Namespace):
    config = load_config(args.config)
    if args.model and args.model != config.model:
        # The config's model_options belong to its own model, not to the one chosen here.
        config = config.with_overrides(model=args.model, model_options={})
    runs = config.output.rstrip("/")
    # Defaults (the same for make and the CLI): each run its own timestamped prefix under the
    # config's output folder, and one score cache beside them that every run shares.
    output = args.output or f"{runs}/{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
    score_cache = args.score_cache or config.score_cache or f"{runs}/score-cache"
    if args.no_score_cache:
        config = dataclasses.replace(config, score_cache=None)
        score_cache = None
    return config.with_overrides(
        root=args.input,
        output=output,
        score_cache=score_cache,
        threshold=args.threshold,
        percentile=args.percentile,
        format=args.format,
        max_error_fraction=args.max_error_fraction,
        trust_remote_code=True if args.trust_remote_code else None,
    )


def _run(config, overwrite: bool, beam_args: list[str]) -> int:
    from pipelines import interrupt, progress
    from pipelines.clean import run
    from pipelines.output_prefix import OutputExistsError, prepare_output
    from transforms.report.summary import CountsNotConservedError, TooManyErrorsError

    try:
        prepare_output(config.output, overwrite)
    except OutputExistsError as exc:
        return _usage(str(exc))
    try:
        with interrupt.interruptible(), progress.shown():
            summary = run(config, beam_args)
    except (CountsNotConservedError, TooManyErrorsError) as exc:
        if interrupt.received() is None:
            print(f"rmclean: run failed: {exc}", file=sys.stderr)
            return EXIT_FAILED
        return _stopped(config, interrupt.received())
    except BaseException:
        # Beam re-raises the interrupt as another exception type: the signal decides.
        if interrupt.received() is None:
            raise
        return _stopped(config, interrupt.received())
    if interrupt.received() is not None:  # the signal came as the run was finishing
        return _stopped(config, interrupt.received())
    _print_summary(summary)
    return EXIT_OK


def _stopped(config, signum: int) -> int:
    """Keep every score, remove the unfinished outputs, say how to resume."""
    from models.score_ahead import unpassed_predictions
    from pipelines.clean import cache_dir_of
    from pipelines.output_prefix import remove_unfinished
    from transforms.media.decode_pool import close_all
    from transforms.samples.score_cache import count_cached, flush_all_pending, save_scored

    cache_dir = cache_dir_of(config)
    flush_all_pending()
    if cache_dir:
        # Batches the model finished (or finishes within seconds) but the pipeline had not
        # yet taken: scored on the GPU, so worth keeping.
        finished = unpassed_predictions(wait_s=UNPASSED_WAIT_S)
        save_scored(cache_dir, [p.example.replace(score=p.inference.score) for p in finished])
    close_all()
    remove_unfinished(config.output)
    if cache_dir:
        kept = f"{count_cached(cache_dir)} scores kept in the cache"
        resume = "rerun the same command to resume"
    else:
        kept = "no score cache set (--score-cache), so the scores were not kept"
        resume = "rerun the same command to start again"
    print(f"rmclean: interrupted; {kept}; {resume}", file=sys.stderr, flush=True)
    return EXIT_CODES[signum]


def _usage(message: str) -> int:
    print(f"rmclean: {message}", file=sys.stderr)
    return EXIT_USAGE


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
    if args.verbose:
        print(json.dumps(summary, indent=2))
    print(f"rmclean: sample dataset written to {args.output}")
    return EXIT_OK


def _report(args: argparse.Namespace) -> int:
    from transforms.report.html import write_html_report
    from transforms.report.scan import ReportInputError

    try:
        index = write_html_report(args.output, max_rows_per_source=args.max_rows)
    except ReportInputError as exc:
        return _usage(str(exc))
    print(index)
    return EXIT_OK


def _seed(text: str) -> int:
    from synth.dataset import TRAINING_SEED_MIN

    try:
        seed = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not 0 <= seed < TRAINING_SEED_MIN:
        # Larger seeds are the demo model's training data: a sample from them would be seen.
        raise argparse.ArgumentTypeError(
            f"{seed} is out of range: sample seeds are 0 to {TRAINING_SEED_MIN - 1}"
        )
    return seed


def _apply_review(args: argparse.Namespace) -> int:
    from pipelines.apply_review import ApplyReviewError, ReviewNotConservedError, apply_review
    from pipelines.output_prefix import OutputExistsError
    from transforms.io.stored_samples import StoredShardError
    from transforms.report.scan import ReportInputError
    from transforms.review.decisions import DecisionError
    from transforms.review.matching import MissingIndexError

    try:
        summary = apply_review(
            args.run, args.decisions, args.output, args.undecided, args.overwrite
        )
    except (
        ApplyReviewError,
        DecisionError,
        MissingIndexError,
        ReportInputError,
        OutputExistsError,
    ) as exc:
        print(f"rmclean: {exc}\nrmclean: nothing was written", file=sys.stderr)
        return 2
    except (ReviewNotConservedError, StoredShardError) as exc:
        print(f"rmclean: apply-review failed (no _SUCCESS written): {exc}", file=sys.stderr)
        return 1
    total, review = summary["counts"]["total"], summary["review"]
    print(
        f"rmclean: {review['decisions']['keep']} kept, {review['decisions']['drop']} dropped "
        f"-> {total['clean']} clean, {total['review']} review, {total['dropped']} dropped, "
        f"{total['errors']} errors"
    )
    for name in ("clean/", "review/", "dropped/", "errors/", "report/index.html"):
        print(f"  {summary['output']}/{name}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from pipelines.export import ExportError, export_run
    from transforms.io.stored_samples import StoredShardError
    from transforms.report.scan import ReportInputError

    try:
        report = export_run(args.run, args.output, args.layout, args.part)
    except (ExportError, ReportInputError) as exc:
        print(f"rmclean: {exc}\nrmclean: nothing was written", file=sys.stderr)
        return EXIT_USAGE
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
        print(f"  {args.output.rstrip('/')}/{name} ({count})")
    return EXIT_OK


def _subset(args: argparse.Namespace) -> int:
    from pipelines.subset import SubsetError, make_subset

    try:
        config = load_config(args.config).with_overrides(root=args.input)
        report = make_subset(config, args.fraction, args.output)
    except (ConfigError, SubsetError) as exc:
        print(f"rmclean: {exc}", file=sys.stderr)
        return EXIT_USAGE
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


def _doctor(args: argparse.Namespace) -> int:
    from pipelines.doctor import diagnose

    findings = diagnose(args.config)
    print("\n".join(findings.lines))
    return EXIT_OK if findings.ok else EXIT_FAILED


def parser() -> argparse.ArgumentParser:
    root = OneLineParser(prog="rmclean", description=__doc__, allow_abbrev=False)
    commands = root.add_subparsers(dest="command", required=True)

    clean = commands.add_parser(
        "clean",
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
        help="folder of cached scores: rescore only new or changed samples "
        "(default: <config output>/score-cache)",
    )
    clean.add_argument(
        "--no-score-cache", action="store_true", help="score every sample, keep no scores"
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

    root.clean_parser = clean  # its flags are the "ours" of check_beam_args

    sample = commands.add_parser(
        "sample", help="write the generated sample dataset", allow_abbrev=False
    )
    sample.add_argument("--output", required=True, help="directory to write the dataset into")
    sample.add_argument("--seed", type=_seed, default=0, help="generator seed, 0-9999 (0)")
    sample.add_argument(
        "--verbose", action="store_true", help="print what was generated, per subset"
    )

    report = commands.add_parser(
        "report", help="rebuild report/index.html for a finished run", allow_abbrev=False
    )
    report.add_argument("output", help="the run's output prefix (local path or URL)")
    report.add_argument(
        "--max-rows",
        type=int,
        default=500,
        help="flagged samples and errors shown per source (default 500)",
    )

    apply = commands.add_parser(
        "apply-review",
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
    apply.add_argument("--output", required=True, help="prefix to write the reviewed dataset to")
    apply.add_argument(
        "--undecided",
        choices=("review", "keep", "drop"),
        default="review",
        help="where flagged samples nobody decided go (default: review/)",
    )
    apply.add_argument(
        "--overwrite", action="store_true", help="replace a finished prefix at --output"
    )

    export = commands.add_parser(
        "export",
        help="write a run's clean (or review) samples back in their dataset's layout",
        allow_abbrev=False,
    )
    export.add_argument("run", metavar="RUN", help="the finished run's output prefix")
    export.add_argument("--output", required=True, help="a new or empty folder (or URL)")
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

    subset = commands.add_parser(
        "subset",
        help="copy a small slice of a downloaded dataset (records whose media are here)",
        allow_abbrev=False,
    )
    subset.add_argument("--config", required=True, help="the dataset's config")
    subset.add_argument("--input", help="dataset root (overrides the config's root)")
    subset.add_argument(
        "--fraction", type=float, required=True, help="share of each manifest to keep, e.g. 0.01"
    )
    subset.add_argument("--output", required=True, help="a new or empty folder: the subset's root")

    doctor = commands.add_parser(
        "doctor",
        help="torch, CUDA, GPUs, packages, and whether each config's models can load here",
        allow_abbrev=False,
    )
    doctor.add_argument(
        "--config",
        action="append",
        metavar="FILE",
        help="a config to check (repeatable; default: every configs/*.yaml)",
    )
    return root


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    cli = parser()
    args, extra = cli.parse_known_args(argv)
    if args.command == "clean":
        code = _clean(args, extra, _our_flags(cli.clean_parser))
        if code in EXIT_CODES.values():
            # Interrupted: what was worth keeping is kept. Scoring threads still inside a
            # forward pass, or a hung decoder, must not hold the exit back.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        return code
    if extra:
        return _usage(f"unknown arguments {' '.join(extra)} (see `rmclean {args.command} --help`)")
    if args.command == "report":
        return _report(args)
    if args.command == "apply-review":
        return _apply_review(args)
    if args.command == "export":
        return _export(args)
    if args.command == "doctor":
        return _doctor(args)
    if args.command == "subset":
        return _subset(args)
    return _sample(args)


if __name__ == "__main__":
    sys.exit(main())
