"""Peak memory and time of `rmclean compare OLD NEW` at two run sizes.

Both runs are built directly as what compare reads (bench/indexed_runs.py: the id -> shard
index, errors, summary, `_SUCCESS`; no shards), so the benchmark measures comparing, not
cleaning. Between OLD and NEW: 5% of the samples removed, as many new ones added, a tenth of
the rest with new content, one source's scores shifted by -1 (so routes change). Compare is
meant to stream: the peak should stay within 20% of the smaller size's at ten times the
samples.

    python -m bench.compare_bench --sizes 10000,100000 --out bench/results/compare_memory.json
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path

from bench.indexed_runs import FakeRun, FakeSample, generated_samples, write_run
from bench.pipeline_bench import peak_rss

REPO = Path(__file__).resolve().parent.parent
SOURCES = ("allava_laion_caption", "allava_text", "llava_video_caption", "llava_video_mc")


def _runs(work: Path, size: int) -> tuple[Path, Path]:
    per_source = dict.fromkeys(SOURCES, size // len(SOURCES))
    old = generated_samples(per_source, seed=1)
    rng = random.Random(size)
    new: list[FakeSample] = []
    for sample in generated_samples(per_source, seed=2, shift={"allava_text": -1.0}):
        if rng.random() < 0.05:
            continue  # removed since
        content = "1" if rng.random() > 0.1 else "2"  # a tenth re-exported with new content
        new.append(FakeSample(sample.source, sample.id, sample.score, sample.route, content))
    for n in range(size - len(new)):
        new.append(FakeSample(SOURCES[n % len(SOURCES)], f"added-{n}", 1.0, "clean", "1"))
    return (
        write_run(work / "runs" / "old", FakeRun(samples=old), "old", "2025-01-06T00:00:00Z"),
        write_run(work / "runs" / "new", FakeRun(samples=new), "new", "2025-01-13T00:00:00Z"),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "compare_memory.json"))
    args = parser.parse_args()
    results: dict = {"command": " ".join(sys.argv), "runs": {}}
    for size in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory(prefix="rmclean-compare-bench-") as work:
            old, new = _runs(Path(work), size)
            command = [sys.executable, "-m", "pipelines.cli", "compare", str(old), str(new)]
            seconds, peak = peak_rss(command, REPO, poll_s=0.05)
            summary = json.loads((new / "report" / "summary.json").read_text())
            results["runs"][size] = {
                "peak_rss_mib": round(peak, 1),
                "seconds": round(seconds, 1),
                "route_changes": summary["since_last_run"]["route_changes"]["count"],
            }
        print(json.dumps({size: results["runs"][size]}), flush=True)
    sizes = sorted(results["runs"])
    results["peak_ratio"] = round(
        results["runs"][sizes[-1]]["peak_rss_mib"] / results["runs"][sizes[0]]["peak_rss_mib"], 3
    )
    print(f"peak RSS {sizes[-1]} vs {sizes[0]}: {results['peak_ratio']:.3f}x")
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
