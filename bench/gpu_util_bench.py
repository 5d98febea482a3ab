"""How busy the pipeline keeps its devices, measured on a CPU (`make bench`).

A stand-in model (`bench/sleepy_model.py`) sleeps in `score()` for a time proportional to the
batch's estimated tokens, with the GIL released and one lock per simulated device, so it costs
what a GPU forward would while using no CPU. The benchmark writes real-size videos (PyAV, h264,
30 s, 640x360, 30 fps; about 0.25 s each to decode at 1 fps on one core), packs them into a
LLaVA-Video-178K archive, and runs `rmclean clean` through configs/llava_video_178k.yaml with
the stand-in model. From the stand-in's call log it reports, per simulated device, the busy
fraction (time inside `score()` over the span from the first call's start to the last call's
end) and the throughput, with one device and with two (at a model speed decoding keeps up
with), and the peak RSS of the bundled sample run (`make clean DATASET=sample`).

    python -m bench.gpu_util_bench                       # writes bench/results/gpu_util.json
    git archive main | tar -x -C /tmp/main-tree
    python -m bench.gpu_util_bench --compare-with /tmp/main-tree --repeats 3   # before/after

`--compare-with` runs an older checkout in the same session, interleaved, as `before`, without
the config keys it does not know (`devices`, `decode.workers`). Timings depend on the CPU being
otherwise idle: each run records the load average and the decode speed it actually saw.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml

from bench.pipeline_bench import peak_rss
from bench.video_dataset import (
    FPS,
    SECONDS,
    SIZE,
    cached_videos,
    decode_seconds,
    video_tokens,
    write_dataset,
)

REPO = Path(__file__).resolve().parent.parent


def write_config(repo: Path, path: Path, root: Path, log: Path, scenario: dict) -> Path:
    config = yaml.safe_load((repo / "configs" / "llava_video_178k.yaml").read_text())
    config.update(
        root=str(root),
        model="sleepy_model:SleepyRewardModel",
        model_options={"seconds_per_token": scenario["seconds_per_token"], "log": str(log)},
        large_model=scenario["large_model"],
    )
    if scenario.get("max_batch_tokens"):
        config["max_batch_tokens"] = scenario["max_batch_tokens"]
    config.pop("remote_code_allowlist", None)
    if not scenario["baseline"]:
        config["devices"] = [f"cpu:{i}" for i in range(scenario["devices"])]
        if scenario.get("decode_workers"):
            config["decode"]["workers"] = scenario["decode_workers"]
    path.write_text(yaml.safe_dump(config))
    return path


def run_cli(repo: Path, args: list[str]) -> tuple[float, float]:
    """(wall seconds, peak tree RSS in MiB) of one `rmclean` command run in `repo`."""
    command = [sys.executable, "-m", "pipelines.cli", *args]
    # The tree's own modules first (cwd); the stand-in model from this benchmark's folder, so
    # an older tree without it runs the same stand-in.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo), str(REPO / "bench")])}
    return peak_rss(command, repo, env)


def run_pipeline(
    repo: Path, config: Path, out: Path, runner: str | None
) -> tuple[dict, float, float]:
    """(summary.json, wall seconds, peak tree RSS in MiB) of one `rmclean clean` run."""
    args = ["clean", "--config", str(config), "--output", str(out), "--overwrite"]
    args += ["--threshold", "-2.0", *(["--runner", runner] if runner else [])]
    wall, peak = run_cli(repo, args)
    return json.loads((out / "report" / "summary.json").read_text()), wall, peak


def sample_peak_rss(repo: Path, sample: Path, out: Path) -> dict:
    """Peak RSS of the bundled sample (`make clean DATASET=sample`) through `repo`."""
    config = repo / "configs" / "sample.yaml"
    args = ["clean", "--config", str(config), "--input", str(sample), "--output", str(out)]
    wall, peak = run_cli(repo, [*args, "--overwrite", "--threshold", "-2.0"])
    return {"name": "sample_memory", "wall_seconds": round(wall, 2), "peak_rss_mib": round(peak, 1)}


def busy_figures(log: Path) -> dict:
    """Per device: busy fraction and samples/s over the span first call start..last call end."""
    calls = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    start = min(c["start"] for c in calls)
    end = max(c["end"] for c in calls)
    span = end - start
    devices = {}
    for device in sorted({c["device"] for c in calls}):
        mine = [c for c in calls if c["device"] == device]
        busy = sum(c["end"] - c["start"] for c in mine)
        samples = sum(c["samples"] for c in mine)
        devices[device] = {
            "calls": len(mine),
            "samples": samples,
            "busy_fraction": round(busy / span, 3),
            "samples_per_s": round(samples / span, 3),
        }
    samples = sum(c["samples"] for c in calls)
    return {
        "span_seconds": round(span, 3),
        "samples": samples,
        "samples_per_s": round(samples / span, 3),
        "mean_batch_samples": round(samples / len(calls), 2),
        "devices": devices,
    }


def run_scenario(repo: Path, work: Path, data: Path, scenario: dict) -> dict:
    name = scenario["name"]
    log = work / f"{name}.calls.jsonl"
    log.unlink(missing_ok=True)
    config = write_config(repo, work / f"{name}.yaml", data, log, scenario)
    summary, wall, peak = run_pipeline(repo, config, work / f"out-{name}", scenario["runner"])
    figures = busy_figures(log)
    result = {**scenario, "wall_seconds": round(wall, 2), "peak_rss_mib": round(peak, 1)}
    result.update(figures)
    result["counts"] = summary["counts"]["total"]
    # Decoding as it ran (CPU shared with everything else), not as measured alone.
    decode_total = summary["durations"]["stage_seconds"].get("decode", 0.0)
    per_video = decode_total / max(1, scenario["videos"])
    result["decode_seconds_per_video_in_run"] = round(per_video, 3)
    if per_video:
        workers = scenario["decode_workers"] or os.cpu_count() or 1
        demand = scenario["devices"] / scenario["model_seconds_per_sample"]
        result["decode_capacity_over_model_demand_in_run"] = round(
            (workers / per_video) / demand, 2
        )
    for key in ("batches", "cost"):
        if key in summary:
            result[f"summary_{key}"] = summary[key]
    return result


def _scenario_plan(args, tokens: int, scaling_seconds: float) -> list[tuple]:
    """(name, devices, model seconds per sample, videos, token budget or None) per scenario."""
    plan = []
    if args.only in (None, "one"):
        plan.append(("one_device", 1, args.model_seconds, args.videos, None))
    if args.only in (None, "two"):
        budget = tokens * args.scaling_batch_videos + tokens // 2
        plan += [
            ("one_device_slow_model", 1, scaling_seconds, args.scaling_videos, budget),
            ("two_devices", 2, scaling_seconds, args.scaling_videos, budget),
        ]
    return plan


def _median(results: list[dict], name: str, tree: str, figure) -> float | None:
    values = [figure(r) for r in results if r["name"] == name and r["tree"] == tree]
    return round(float(np.median(values)), 3) if values else None


def _figures(results: list[dict], tree: str) -> dict:
    one = _median(results, "one_device_slow_model", tree, lambda r: r["samples_per_s"])
    two = _median(results, "two_devices", tree, lambda r: r["samples_per_s"])
    return {
        "one_device_busy_fraction": _median(
            results,
            "one_device",
            tree,
            lambda r: min(d["busy_fraction"] for d in r["devices"].values()),
        ),
        "two_over_one_device_throughput": round(two / one, 3) if one and two else None,
        "sample_peak_rss_mib": _median(results, "sample_memory", tree, lambda r: r["peak_rss_mib"]),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "gpu_util.json"))
    parser.add_argument("--repo", default=str(REPO), help="the checkout whose pipeline runs")
    parser.add_argument("--baseline", action="store_true", help="--repo has no `devices:`")
    parser.add_argument(
        "--compare-with",
        default=None,
        help="an older checkout (e.g. `git archive` of main) measured in the same session, "
        "interleaved with --repo, as `before`",
    )
    parser.add_argument("--videos", type=int, default=24, help="one-device run (the issue's)")
    parser.add_argument("--model-seconds", type=float, default=0.3, help="per video sample")
    parser.add_argument(
        "--scaling-videos", type=int, default=48, help="the one-vs-two-device comparison"
    )
    parser.add_argument(
        "--scaling-model-seconds",
        type=float,
        default=None,
        help="per video sample in the one-vs-two-device comparison (default: slow enough that "
        "decoding at one core per decoder process has 3x the two devices' demand)",
    )
    parser.add_argument(
        "--scaling-batch-videos",
        type=int,
        default=4,
        help="videos per token-budget batch in the comparison (more batches, finer figures)",
    )
    parser.add_argument("--decode-workers", type=int, default=None)
    parser.add_argument("--runner", default=None, help="e.g. local (default: in-process)")
    parser.add_argument("--large-model", default="true", choices=("true", "false"))
    parser.add_argument("--only", choices=("one", "two", "memory"), default=None)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument(
        "--cache", default=str(Path(tempfile.gettempdir()) / "rmclean-bench-videos")
    )
    args = parser.parse_args(argv)

    trees = {"after": (Path(args.repo).resolve(), args.baseline)}
    if args.compare_with:
        trees["before"] = (Path(args.compare_with).resolve(), True)
    videos = cached_videos(Path(args.cache), max(args.videos, args.scaling_videos))
    decode_s = decode_seconds(videos[0])
    tokens = video_tokens(videos[0])
    workers = args.decode_workers or os.cpu_count() or 1
    scaling_seconds = args.scaling_model_seconds or max(
        args.model_seconds, 3 * 2 * decode_s / workers
    )
    results: dict = {
        "machine": {"cpus": os.cpu_count(), "loadavg_at_start": os.getloadavg()},
        "command": " ".join(
            [Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]
        ),
        "trees": {label: str(repo) for label, (repo, _) in trees.items()},
        "videos": {
            "seconds": SECONDS,
            "size": list(SIZE),
            "fps": FPS,
            "codec": "h264",
            "mean_mib": round(sum(map(len, videos)) / len(videos) / 2**20, 2),
            "decode_seconds_1fps_one_core": round(decode_s, 3),
            "tokens_per_video": tokens,
        },
        "scenarios": [],
    }
    plan = _scenario_plan(args, tokens, scaling_seconds)
    with tempfile.TemporaryDirectory(prefix="rmclean-gpu-util-") as tmp:
        work = Path(tmp)
        datasets: dict[int, Path] = {}
        sample = None
        if args.only in (None, "memory"):
            sample = work / "sample"
            run_cli(REPO, ["sample", "--output", str(sample)])
        for repeat in range(args.repeats):
            for label, (repo, baseline) in trees.items():
                for name, devices, model_seconds, count, budget in plan:
                    if count not in datasets:
                        datasets[count] = write_dataset(work / f"data-{count}", videos[:count])
                    scenario = {
                        "tree": label,
                        "name": name,
                        "repeat": repeat,
                        "videos": count,
                        "devices": devices,
                        "model_seconds_per_sample": round(model_seconds, 3),
                        "seconds_per_token": model_seconds / tokens,
                        "max_batch_tokens": budget,
                        "decode_workers": args.decode_workers,
                        "decode_capacity_over_model_demand_at_one_core_each": round(
                            (workers / decode_s) / (devices / model_seconds), 2
                        ),
                        "runner": args.runner,
                        "large_model": args.large_model == "true",
                        "baseline": baseline,
                    }
                    result = run_scenario(repo, work, datasets[count], scenario)
                    results["scenarios"].append(result)
                    print(json.dumps({k: result[k] for k in ("tree", "name", "devices")}))
                if sample is not None:
                    memory = sample_peak_rss(repo, sample, work / f"out-sample-{label}")
                    results["scenarios"].append({"tree": label, "repeat": repeat, **memory})
                    print(json.dumps({"tree": label, **memory}))
        for folder in datasets.values():
            shutil.rmtree(folder, ignore_errors=True)
    results["figures"] = {label: _figures(results["scenarios"], label) for label in trees}
    if "before" in trees:
        after, before = (results["figures"][t]["sample_peak_rss_mib"] for t in ("after", "before"))
        if after and before:
            results["figures"]["sample_peak_rss_after_over_before"] = round(after / before, 3)
    results["targets"] = {
        "one_device_busy_fraction": ">= 0.9",
        "two_over_one_device_throughput": ">= 1.8",
        "sample_peak_rss_after_over_before": "<= 1.2",
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k != "scenarios"}, indent=2))
    return results


if __name__ == "__main__":
    main()
