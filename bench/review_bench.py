"""Peak memory and time of the review loop's two batch steps at two run sizes.

`rmclean report` (every flagged sample on a review page, with thumbnails) and `rmclean
apply-review` (a fixed number of decisions) run in subprocesses over a finished run built here
directly with the pipeline's own shard writer and index (no model: the scores are drawn), so the
sizes can be large on a laptop. Both are meant to stream: peak RSS should barely move when the
run grows tenfold.

    python -m bench.review_bench --sizes 2000,20000 --out bench/results/review_memory.json
"""

from __future__ import annotations

import argparse
import io
import json
import random
import sys
import tempfile
from pathlib import Path

from PIL import Image

from bench.pipeline_bench import peak_rss

REPO = Path(__file__).resolve().parent.parent
FLAGGED_SHARE = 0.2
DECISIONS = 300
SHARD_MB = 8
COUNTS = ("input", "clean", "review", "errors")


def _jpeg(rng: random.Random) -> bytes:
    buffer = io.BytesIO()
    colour = tuple(rng.randrange(256) for _ in range(3))
    Image.new("RGB", (320, 240), colour).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def build_run(prefix: Path, total: int, seed: int = 0) -> dict:
    """A finished parquet run of `total` image samples, ~20% flagged, with its index."""
    from transforms.core.record import IMAGE, MediaRef, Sample
    from transforms.report import summary as report
    from transforms.shards.rolling_shards import RollingShards, finalize_shards
    from transforms.shards.shard_formats import SHARD_TYPES
    from transforms.shards.shard_index import index_path

    rng = random.Random(seed)
    per_source: dict[str, dict[str, int]] = {}
    writers = {
        route: RollingShards(
            str(prefix / route / ".temp-bench"), SHARD_TYPES["parquet"], SHARD_MB, indexed=True
        )
        for route in ("clean", "review")
    }
    paths: dict[str, list[str]] = {route: [] for route in writers}
    for i in range(total):
        flagged = rng.random() < FLAGGED_SHARE
        route = "review" if flagged else "clean"
        sample = Sample(
            f"s-{i}",
            f"source-{i % 3}",
            [
                {"from": "human", "value": f"<image>\nWhat is shown in picture {i}?"},
                {"from": "gpt", "value": f"A coloured rectangle, number {i}. " * 4},
            ],
            [MediaRef(IMAGE, f"images/{i}.jpg", _jpeg(rng))],
            {"url": f"https://example.invalid/{i}"},
            origin=f"data/manifest.json[{i}]",
            score=rng.uniform(-8, -2) if flagged else rng.uniform(-2, 6),
            reason="low_score" if flagged else None,
            detail="score below -2" if flagged else None,
        )
        closed = writers[route].write(sample)
        paths[route] += [closed] if closed else []
        counts = per_source.setdefault(sample.source, dict.fromkeys(COUNTS, 0))
        counts[route] += 1
        counts["input"] += 1
    for route, writer in writers.items():
        paths[route] += [p for p in [writer.close()] if p]
        temp, index_file = str(prefix / route / ".temp-bench"), index_path(str(prefix), route)
        list(finalize_shards(None, str(prefix / route), temp, "parquet", paths[route], index_file))
    totals = {key: sum(c[key] for c in per_source.values()) for key in COUNTS}
    summary = {
        "run_id": f"bench-{total}",
        "dataset": "bench",
        "output": str(prefix),
        "threshold": -2.0,
        "format": "parquet",
        "shard_mb": SHARD_MB,
        "cuts": {f"source-{k}": -2.0 for k in range(3)},
        "counts": {"total": totals, "per_source": per_source},
    }
    (prefix / "errors").mkdir(parents=True, exist_ok=True)
    report.write_json(str(prefix / "report" / "summary.json"), summary)
    (prefix / "report" / "flagged.jsonl").write_text("")
    (prefix / "report" / "flagged.csv").write_text(",".join(report.FLAGGED_COLUMNS) + "\n")
    report.write_success(str(prefix))
    return summary


def _decisions(prefix: Path, path: Path) -> None:
    import pandas as pd

    index = pd.read_parquet(prefix / "index" / "review.parquet").head(DECISIONS)
    run = json.loads((prefix / "report" / "summary.json").read_text())["run_id"]
    with path.open("w") as handle:
        for n, row in enumerate(index.itertuples()):
            line = {"run": run, "id": row.id, "source": row.source, "origin": row.origin}
            handle.write(json.dumps({**line, "decision": "keep" if n % 2 else "drop"}) + "\n")


def _measure(command: list[str]) -> dict:
    seconds, peak = peak_rss(command, REPO, poll_s=0.05)
    return {"peak_rss_mib": round(peak, 1), "seconds": round(seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="2000,20000")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "review_memory.json"))
    args = parser.parse_args()
    results: dict = {"command": " ".join(sys.argv), "decisions": DECISIONS, "runs": {}}
    cli = [sys.executable, "-m", "pipelines.cli"]
    for size in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory(prefix="rmclean-review-bench-") as work:
            run = Path(work) / "run"
            build_run(run, size)
            _decisions(run, Path(work) / "decisions.jsonl")
            flagged = json.loads((run / "report" / "summary.json").read_text())["counts"]
            results["runs"][size] = {
                "flagged": flagged["total"]["review"],
                "report": _measure([*cli, "report", str(run)]),
                "apply_review": _measure(
                    [
                        *cli,
                        "apply-review",
                        str(run),
                        "--decisions",
                        f"{work}/decisions.jsonl",
                        "--output",
                        f"{work}/reviewed",
                    ]
                ),  # fmt: skip
            }
        print(json.dumps({size: results["runs"][size]}), flush=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
