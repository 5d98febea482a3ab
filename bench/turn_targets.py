"""The multi-turn targets, measured through the real pipeline with `repair: truncate`.

For each seed: the sample dataset, `rmclean clean` (configs/sample.yaml, the demo model, the
-2.0 threshold, no score cache) with `repair: truncate`, then `bench/sample_quality.py`'s
figures for the multi-turn source. Targets: the first low turn is the planted one in >= 95% of
defective conversations; faithful conversations flagged <= 3%; repair keeps every good prefix
whole and no planted turn. `--seeds` are the ones the work was tuned on, `--hidden` others.

python -m bench.turn_targets [--seeds 0 1 2] [--hidden 3 ... 19 99 4242] [--output FILE]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

from bench.sample_quality import quality, turn_quality

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "configs" / "sample.yaml"
SOURCE = "llava_instruct_multiturn"
SUMMED = (
    "defective",
    "first_low_turn_is_planted",
    "faithful",
    "faithful_flagged",
    "with_good_prefix",
    "good_prefix_kept_whole",
    "planted_turn_in_a_repair",
    "planted_turn_in_clean",
)


def measure(seed: int) -> dict:
    from pipelines.config import load_config
    from pipelines.jobs.clean import run
    from synth.dataset import write_sample_dataset

    with tempfile.TemporaryDirectory(prefix=f"rmclean-turns-{seed}-") as tmp:
        data, out = Path(tmp) / "data", Path(tmp) / "out"
        write_sample_dataset(data, seed=seed)
        config = load_config(CONFIG).with_overrides(
            root=str(data), output=str(out), repair="truncate", score_cache=None
        )
        summary = run(config)
        labels = str(data / "labels.jsonl")
        turns = turn_quality(labels, str(out))[SOURCE]
        card = quality(labels, str(out))["sources"][SOURCE]
    return {
        "seed": seed,
        **turns,
        "recall": card["recall"],
        "repaired": summary["counts"]["per_source"][SOURCE]["repaired"],
        "errors": summary["counts"]["total"]["errors"],
    }


def pooled(rows: list[dict]) -> dict:
    total = {key: sum(row.get(key, 0) for row in rows) for key in SUMMED}
    return {
        **total,
        "first_low_turn_is_planted_share": _share(total, "first_low_turn_is_planted", "defective"),
        "faithful_flagged_share": _share(total, "faithful_flagged", "faithful"),
        "good_prefix_kept_whole_share": _share(total, "good_prefix_kept_whole", "with_good_prefix"),
    }


def _share(total: dict, part: str, whole: str) -> float:
    return round(total[part] / max(total[whole], 1), 4)


def line(label: str, row: dict) -> str:
    return (
        f"{label:>10}: planted turn found first {row['first_low_turn_is_planted']}"
        f"/{row['defective']} ({row['first_low_turn_is_planted_share']:.1%}), faithful flagged "
        f"{row['faithful_flagged']}/{row['faithful']} ({row['faithful_flagged_share']:.1%}), "
        f"good prefix kept whole {row['good_prefix_kept_whole']}/{row['with_good_prefix']}, "
        f"planted turn in a repair {row['planted_turn_in_a_repair']} (in clean at all: "
        f"{row['planted_turn_in_clean']})"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--hidden", type=int, nargs="*", default=[*range(3, 20), 99, 4242])
    parser.add_argument("--output", type=Path, default=REPO / "bench/results/turn_targets.json")
    args = parser.parse_args(argv)
    started = time.time()
    results: dict = {"tuned": [], "hidden": []}
    for group, seeds in (("tuned", args.seeds), ("hidden", args.hidden)):
        for seed in seeds:
            row = measure(seed)
            results[group].append(row)
            print(line(f"seed {seed}", row), flush=True)
    for group in ("tuned", "hidden"):
        if results[group]:
            results[f"{group}_pooled"] = pooled(results[group])
            print(line(group, results[f"{group}_pooled"]))
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    results["measured"] = {
        "command": "python -m bench.turn_targets",
        "commit": commit,
        "seconds": round(time.time() - started, 1),
        "config": "configs/sample.yaml, model demo, threshold -2.0, repair truncate",
    }
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {args.output}")


if __name__ == "__main__":
    from pipelines.logs import configure_logging

    configure_logging()
    main()
