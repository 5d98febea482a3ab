"""`rmclean sample`: write the generated sample dataset."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pipelines.commands.usage import EXIT_OK

NAME = "sample"


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


def _defect_rate(text: str) -> tuple[str, float]:
    from synth.dataset import SOURCES

    source, _, rate = text.partition("=")
    if source not in SOURCES:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give SOURCE=RATE with a source of the sample ({', '.join(SOURCES)})"
        )
    try:
        share = float(rate)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: the rate must be a number") from None
    if not 0 <= share <= 1:
        raise argparse.ArgumentTypeError(f"{text!r}: the rate must be between 0 and 1")
    return source, share


def _scale(text: str) -> int:
    try:
        scale = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if scale < 1:
        raise argparse.ArgumentTypeError(f"{scale}: the scale must be at least 1")
    return scale


def add_parser(commands) -> argparse.ArgumentParser:
    sample = commands.add_parser(
        NAME, help="write the generated sample dataset", allow_abbrev=False
    )
    sample.add_argument("--output", required=True, help="directory to write the dataset into")
    sample.add_argument("--seed", type=_seed, default=0, help="generator seed, 0-9999 (0)")
    sample.add_argument(
        "--defect-rate",
        type=_defect_rate,
        action="append",
        default=[],
        metavar="SOURCE=RATE",
        help="another share of defective samples for one source (default 0.2 each), "
        "e.g. allava_text=0.4; repeatable",
    )
    sample.add_argument(
        "--scale",
        type=_scale,
        default=1,
        help="samples per source, as a multiple of the default (438 samples in all)",
    )
    sample.add_argument(
        "--verbose", action="store_true", help="print what was generated, per subset"
    )
    return sample


def run(args: argparse.Namespace) -> int:
    from synth.dataset import write_sample_dataset

    summary = write_sample_dataset(
        Path(args.output),
        seed=args.seed,
        images=240 * args.scale,
        videos=90 * args.scale,
        texts=48 * args.scale,
        multiturn=60 * args.scale,
        defect_rates=dict(args.defect_rate),
    )
    if args.verbose:
        print(json.dumps(summary, indent=2))
    print(f"rmclean: sample dataset written to {args.output}")
    return EXIT_OK
