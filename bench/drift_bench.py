"""The compare targets on real cleaning runs of the generated sample (demo model):

1. the same data and model twice: PSI, route changes, added/removed samples;
2. a sample generated with another seed and twice the defect rate in one source: that source's
   PSI and flagged share against every other source's PSI.

A source's PSI from sampling alone is about 9 * (1/n_before + 1/n_after), so the sample is
generated `--scale` times its usual size (438 samples at 1), every source alike.

    python -m bench.drift_bench --scale 20 --out bench/results/drift.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _clean(root: Path, output: Path, cache: Path) -> dict:
    from pipelines.config import load_config
    from pipelines.jobs.clean import run

    config = load_config(REPO / "configs" / "sample.yaml").with_overrides(
        root=str(root), output=str(output), score_cache=str(cache)
    )
    return run(config, ["--runner=FnApiRunner"])


def _brief(comparison: dict) -> dict:
    return {
        "setting_changes": comparison["setting_changes"],
        "route_changes": comparison["route_changes"]["count"],
        "per_source": {
            source: {
                "input": stats["input"],
                "samples": stats["samples"],
                "flagged_share": stats["flagged_share"],
                "psi_all": stats["scores"]["all"]["psi"],
                "psi_common": stats["scores"]["common"]["psi"],
                "ks_all": stats["scores"]["all"]["ks"],
            }
            for source, stats in comparison["per_source"].items()
        },
    }


def main() -> None:
    from synth.dataset import write_sample_dataset

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=int, default=20)
    parser.add_argument("--source", default="allava_text", help="the source that drifts")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "drift.json"))
    args = parser.parse_args()
    sizes = {
        "images": 240 * args.scale,
        "videos": 90 * args.scale,
        "texts": 48 * args.scale,
        "multiturn": 60 * args.scale,
    }
    with tempfile.TemporaryDirectory(prefix="rmclean-drift-bench-") as work:
        work = Path(work)
        write_sample_dataset(work / "seed0", seed=0, **sizes)
        write_sample_dataset(work / "seed1", seed=1, defect_rates={args.source: 0.4}, **sizes)
        runs, cache = work / "runs", work / "runs" / "score-cache"
        first = _clean(work / "seed0", runs / "1-seed0", cache)
        same = _clean(work / "seed0", runs / "2-seed0-again", cache)
        drifted = _clean(work / "seed1", runs / "3-seed1-drifted", cache)
    same_cmp, drift_cmp = same["since_last_run"], drifted["since_last_run"]
    others = {
        s: v["scores"]["all"]["psi"] for s, v in drift_cmp["per_source"].items() if s != args.source
    }
    results = {
        "command": " ".join(sys.argv),
        "samples_per_run": first["counts"]["total"]["input"],
        "same_data_twice": {
            "max_psi": same_cmp["max_psi"],
            "route_changes": same_cmp["route_changes"]["count"],
            "added": sum(v["samples"]["added"] for v in same_cmp["per_source"].values()),
            "removed": sum(v["samples"]["removed"] for v in same_cmp["per_source"].values()),
        },
        "drifted": {
            "source": args.source,
            "psi_all": drift_cmp["per_source"][args.source]["scores"]["all"]["psi"],
            "flagged_share": drift_cmp["per_source"][args.source]["flagged_share"],
            "largest_other_psi": max(others.values()),
            "other_psi": others,
        },
        "comparisons": {"same_data_twice": _brief(same_cmp), "drifted": _brief(drift_cmp)},
    }
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: results[k] for k in ("same_data_twice", "drifted")}, indent=1))


if __name__ == "__main__":
    main()
