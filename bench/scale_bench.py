"""Scale benchmark: the whole pipeline at growing sizes, first run and rerun from the cache.

At each size N a dataset is generated (`bench/scale_data.py`: the sample's layout, repeated
small media) and cleaned with a stand-in model that costs nothing (`bench/free_model.py`),
so the figures are the pipeline's own; then the same dataset with 1% new records is cleaned
again from the first run's score cache (N entries). For both runs: wall time, samples/s, and
the peak RSS of the whole process tree (the CLI, Beam's workers and the decoder processes),
polled every 0.1 s, and its peak PSS (shared pages split among the processes sharing them:
RSS counts a decoder just forked, not yet exec'd, as a second copy of the CLI). The sizes run
one after another, unattended:

    python -m bench.scale_bench --sizes 10000,100000,500000

writes bench/results/scale.json with the machine and its load average before and after.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

from bench.pipeline_bench import peak_memory
from bench.scale_data import write_scale_dataset

REPO = Path(__file__).resolve().parent.parent
NEW_FRACTION = 0.01


def write_config(path: Path) -> Path:
    """The sample config's sources, the free model, and decode prefetch pinned (its default
    is a share of the memory free at start, which would make RSS figures machine-dependent)."""
    config = yaml.safe_load((REPO / "configs" / "sample.yaml").read_text())
    config.update(
        name="scale",
        model="free_model:FreeRewardModel",  # from this folder, whichever tree runs
        shard_mb=64,
        decode={"prefetch_mb": 256},
    )
    path.write_text(yaml.safe_dump(config))
    return path


def clean(
    tree: Path, config: Path, data: Path, out: Path, cache: Path, beam_args: list[str]
) -> dict:
    """One `rmclean clean` run of `tree`'s pipeline: its summary's figures, wall seconds and
    peak tree memory."""
    command = [sys.executable, "-m", "pipelines.cli", "clean", "--config", str(config)]
    command += ["--input", str(data), "--output", str(out), "--score-cache", str(cache)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), str(REPO / "bench")])}
    wall, rss, pss = peak_memory([*command, *beam_args], tree, env)
    summary = json.loads((out / "report" / "summary.json").read_text())
    samples = summary["counts"]["total"]["input"]
    shutil.rmtree(out)  # the next run's disk
    return {
        "samples": samples,
        "wall_seconds": round(wall, 1),
        "samples_per_s": round(samples / wall, 1),
        "ms_per_sample": round(wall / samples * 1000, 3),
        "peak_rss_mib": round(rss, 1),
        "peak_pss_mib": round(pss, 1),
        "counts": summary["counts"]["total"],
        "scoring": summary["scoring"],
    }


def one_size(tree: Path, work: Path, total: int, config: Path, beam_args: list[str]) -> dict:
    data, cache = work / f"data-{total}", work / f"cache-{total}"
    started = time.perf_counter()
    write_scale_dataset(data, total)
    generated = time.perf_counter() - started
    first = clean(tree, config, data, work / "out", cache, beam_args)
    # Said at once: a long size's first run is worth having even if its rerun is cut short.
    print(json.dumps({total: {"first_run": first}}), flush=True)
    new = round(total * NEW_FRACTION)
    write_scale_dataset(data, total, new=new)
    rerun = clean(tree, config, data, work / "out", cache, beam_args)
    shutil.rmtree(data)
    shutil.rmtree(cache)
    return {
        "generate_seconds": round(generated, 1),
        "first_run": first,
        "rerun": {**rerun, "new_records": new},
        "rerun_wall_fraction": round(rerun["wall_seconds"] / first["wall_seconds"], 3),
    }


def machine() -> dict:
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def compare(sizes: dict[int, dict]) -> dict:
    """Growth from the smallest size to each larger one: peak RSS and time per sample."""
    smallest = sizes[min(sizes)]
    growth = {}
    for total, result in sorted(sizes.items()):
        if total == min(sizes):
            continue
        growth[str(total)] = {
            run: {
                "peak_rss": round(
                    result[run]["peak_rss_mib"] / smallest[run]["peak_rss_mib"] - 1, 3
                ),
                "peak_pss": round(
                    result[run]["peak_pss_mib"] / smallest[run]["peak_pss_mib"] - 1, 3
                ),
                "ms_per_sample": round(
                    result[run]["ms_per_sample"] / smallest[run]["ms_per_sample"] - 1, 3
                ),
            }
            for run in ("first_run", "rerun")
        }
    return {
        f"growth_from_{min(sizes)}": growth,
        "targets": {
            "peak_rss_growth_below": 0.10,
            "ms_per_sample_growth_below": 0.15,
            "rerun_wall_fraction_below": 0.20,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,500000")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "scale.json"))
    parser.add_argument("--work", default=None, help="scratch folder (default: a temp folder)")
    parser.add_argument(
        "--tree", default=str(REPO), help="the checkout whose pipeline runs (e.g. an older one)"
    )
    parser.add_argument(
        "beam_args", nargs="*", help="after --: flags for rmclean clean, e.g. --runner local"
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results: dict = {
        "command": " ".join(["python -m bench.scale_bench", *sys.argv[1:]]),
        "date": datetime.date.today().isoformat(),
        "machine": machine(),
        "tree": args.tree,
        "runner": " ".join(args.beam_args) or "default (in-process FnApiRunner)",
        "sizes": {},
    }
    with tempfile.TemporaryDirectory(prefix="rmclean-scale-", dir=args.work) as tmp:
        work = Path(tmp)
        config = write_config(work / "scale.yaml")
        for total in sizes:
            results["sizes"][str(total)] = one_size(
                Path(args.tree), work, total, config, args.beam_args
            )
            print(json.dumps({total: results["sizes"][str(total)]}), flush=True)
    results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results.update(compare({int(k): v for k, v in results["sizes"].items()}))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
