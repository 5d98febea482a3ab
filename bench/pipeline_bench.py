"""CPU pipeline benchmarks on generated data (`make bench`), results in bench/results/.

1. throughput: the pipeline on one worker vs a bare loop doing the same work (read, decode
   with Pillow/decord, score with the same model in batches): samples/s and their ratio;
2. memory: peak RSS of the whole process tree at 1k vs 10k samples;
3. incremental: scoring time of a rerun with 5% new samples vs a full run (score cache).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "configs" / "sample.yaml"


def generate(directory: Path, total: int, seed: int = 0) -> Path:
    from synth.dataset import write_sample_dataset

    videos = max(30, total // 10 // 3 * 3)
    texts = max(15, total // 10)
    # No multi-turn conversations: the same mix as the figures in bench/results were taken on.
    write_sample_dataset(
        directory,
        seed=seed,
        images=total - videos - texts,
        videos=videos,
        texts=texts,
        multiturn=0,
    )
    return directory


def run_cli(data: Path, out: Path, *extra: str) -> tuple[dict, float]:
    """Run `rmclean clean` in a subprocess; return its summary and peak tree RSS in MiB."""
    command = [
        sys.executable,
        "-m",
        "pipelines.cli",
        "clean",
        "--config",
        str(CONFIG),
        "--input",
        str(data),
        "--output",
        str(out),
        "--overwrite",
        "--direct_num_workers=1",
        *extra,
    ]
    _, peak = peak_rss(command, REPO)
    return json.loads((out / "report" / "summary.json").read_text()), peak


def peak_rss(command: list[str], cwd: Path, env: dict | None = None, poll_s: float = 0.1):
    """Run `command` to the end; (wall seconds, peak RSS of its process tree in MiB).

    Raises if it fails, naming the command."""
    wall, rss, _ = peak_memory(command, cwd, env, poll_s)
    return wall, rss


def peak_memory(command: list[str], cwd: Path, env: dict | None = None, poll_s: float = 0.1):
    """Run `command` to the end; (wall seconds, peak RSS, peak PSS of its process tree in MiB).

    RSS counts a page once per process mapping it; PSS splits it among them, so a shared
    library, or a child just forked and not yet exec'd (which briefly shows its parent's whole
    RSS), is counted once. Raises if the command fails, naming it."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL)
    peak_rss = peak_pss = 0.0
    while process.poll() is None:
        rss, pss = _tree_memory_mib(process.pid)
        peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
        time.sleep(poll_s)
    wall = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {process.returncode}")
    return wall, peak_rss, peak_pss


def _tree_memory_mib(pid: int) -> tuple[float, float]:
    rss = pss = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            rss += _status_kib(f"/proc/{current}/status", "VmRSS:")
            pss += _status_kib(f"/proc/{current}/smaps_rollup", "Pss:")
            # Children of every thread: a decoder pool may be started from a worker thread.
            for children in Path(f"/proc/{current}/task").glob("*/children"):
                pending += [int(c) for c in children.read_text().split()]
        except (FileNotFoundError, StopIteration, ProcessLookupError):
            continue
    return rss / 1024, pss / 1024


def _status_kib(path: str, field: str) -> int:
    with open(path) as lines:
        return next(int(line.split()[1]) for line in lines if line.startswith(field))


def bare_loop(data: Path, model_name: str = "demo", batch_size: int = 16) -> dict:
    """The same work without Beam: read manifests, fetch, decode, score in batches."""
    from models.registry import loader_for
    from pipelines.config import load_config
    from pipelines.stages.read_sources import discover_inputs
    from transforms.core.record import Sample
    from transforms.io.llava_manifests import read_manifest
    from transforms.io.video_archives import iter_archive_videos
    from transforms.media.decode import decode_sample
    from transforms.media.fetch import fetch_media
    from transforms.samples.rules import check_rules

    config = load_config(CONFIG).with_overrides(root=str(data))
    inputs = discover_inputs(config)
    model = loader_for(model_name)()
    started = time.perf_counter()
    videos = {}
    for archive in sorted({a for s in inputs.values() for a in s.archives}):
        videos.update(iter_archive_videos(archive))
    roots, count, batch = config.media_roots(), 0, []
    for source in config.sources:
        for manifest in inputs[source.name].manifests:
            for item in read_manifest(manifest, source.name):
                count += 1
                if not isinstance(item, Sample) or check_rules(item):
                    continue
                for ref in item.media:
                    ref.data = videos.get(ref.path) if ref.kind == "video" else None
                fetched = fetch_media(item, roots)
                decoded = (
                    decode_sample(fetched, 1024, 1.0, 32)
                    if isinstance(fetched, Sample)
                    else fetched
                )
                if isinstance(decoded, Sample):
                    batch.append(decoded)
                if len(batch) == batch_size:
                    model.score(batch)
                    batch = []
    if batch:
        model.score(batch)
    seconds = time.perf_counter() - started
    return {
        "samples": count,
        "seconds": round(seconds, 2),
        "samples_per_s": round(count / seconds, 1),
    }


def throughput(work: Path, total: int) -> dict:
    data = generate(work / f"data-{total}", total)
    summary, _ = run_cli(data, work / "out-throughput")
    pipeline_seconds = summary["durations"]["wall_seconds"]
    samples = summary["counts"]["total"]["input"]
    bare = bare_loop(data)
    pipeline_rate = samples / pipeline_seconds
    return {
        "samples": samples,
        "pipeline": {
            "wall_seconds": pipeline_seconds,
            "samples_per_s": round(pipeline_rate, 1),
            "stage_seconds": summary["durations"]["stage_seconds"],
            "stage_samples_per_s": {
                stage: round(samples / s, 1)
                for stage, s in summary["durations"]["stage_seconds"].items()
                if s > 0
            },
        },
        "bare_loop": bare,
        "ratio_pipeline_to_bare": round(pipeline_rate / bare["samples_per_s"], 3),
        "target_ratio": 0.7,
    }


def memory(work: Path, sizes: tuple[int, int]) -> dict:
    """Peak RSS at both sizes, routing by threshold (the target) and by percentile (spilled)."""
    peaks: dict[str, dict[int, float]] = {"threshold": {}, "percentile": {}}
    for total in sizes:
        data = generate(work / f"data-{total}", total)
        out = work / f"out-memory-{total}"
        _, peaks["threshold"][total] = run_cli(data, out)
        _, peaks["percentile"][total] = run_cli(data, out, "--percentile", "20")
    small, large = sizes
    growth = {route: round(p[large] / p[small] - 1, 3) for route, p in peaks.items()}
    return {
        "peak_rss_mib": {str(k): round(v, 1) for k, v in peaks["threshold"].items()},
        "growth": growth["threshold"],
        "target_growth_below": 0.2,
        "percentile_routing": {
            "peak_rss_mib": {str(k): round(v, 1) for k, v in peaks["percentile"].items()},
            "growth": growth["percentile"],
        },
    }


def incremental(work: Path, total: int) -> dict:
    data = generate(work / "data-incremental", total)
    cache = work / "score-cache"
    full, _ = run_cli(data, work / "out-full", "--score-cache", str(cache))
    # 5% new samples: a second generated dataset's LAION caption records appended.
    extra = generate(work / "data-extra", total, seed=1)
    manifest = data / "ALLaVA-4V/allava_laion/ALLaVA-Caption-LAION-4V.json"
    records = json.loads(manifest.read_text())
    new = json.loads((extra / "ALLaVA-4V/allava_laion/ALLaVA-Caption-LAION-4V.json").read_text())
    new = new[: max(1, total * 5 // 100)]
    for record in new:
        record["id"] = "new_" + record["id"]
        source = extra / "ALLaVA-4V" / record["image"]
        record["image"] = record["image"].replace("images/", "images/new_")
        shutil.copy(source, data / "ALLaVA-4V" / record["image"])
    manifest.write_text(json.dumps(records + new))
    rerun, _ = run_cli(data, work / "out-rerun", "--score-cache", str(cache))
    full_score = full["durations"]["stage_seconds"].get("score", 0.0)
    rerun_score = rerun["durations"]["stage_seconds"].get("score", 0.0)
    return {
        "samples": full["counts"]["total"]["input"],
        "new_samples": len(new),
        "full": {"scoring": full["scoring"], "score_seconds": full_score},
        "rerun": {"scoring": rerun["scoring"], "score_seconds": rerun_score},
        "rerun_score_time_fraction": round(rerun_score / full_score, 3) if full_score else None,
        "target_fraction_below": 0.15,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "cpu_pipeline.json"))
    parser.add_argument("--samples", type=int, default=2000, help="throughput/incremental size")
    parser.add_argument("--memory-sizes", default="1000,10000")
    parser.add_argument("--only", choices=("throughput", "memory", "incremental"))
    args = parser.parse_args()
    sizes = tuple(int(s) for s in args.memory_sizes.split(","))
    results = {"machine": {"cpus": os.cpu_count()}, "command": " ".join(sys.argv)}
    with tempfile.TemporaryDirectory(prefix="rmclean-bench-") as tmp:
        work = Path(tmp)
        if args.only in (None, "throughput"):
            results["throughput"] = throughput(work, args.samples)
        if args.only in (None, "memory"):
            results["memory"] = memory(work, sizes)
        if args.only in (None, "incremental"):
            results["incremental"] = incremental(work, args.samples)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
