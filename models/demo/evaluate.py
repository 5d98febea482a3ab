"""Score generated sample datasets with the demo model and check the cleaning targets.

`python -m models.demo.evaluate [--seeds 0 1 2] [--model models/demo]` writes each sample
dataset to a temporary folder, scores every sample the way the pipeline would (media decoded at
max_side=1024), and prints, at the -2.0 cut, the recall per planted defect and the share of clean
samples flagged. `empty_answer` is reported but left to the rules step.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import defaultdict
from pathlib import Path

from transforms.decode_media import decode_image, decode_video
from transforms.record import IMAGE, VIDEO, MediaRef, Sample
from transforms.video_archives import iter_archive_videos

from .model import DEFAULT_DIR, DemoRewardModel

THRESHOLD = -2.0


def load_samples(root: Path) -> list[tuple[Sample, str | None]]:
    """(sample with decoded media, planted defect) for every labelled record under `root`."""
    labels = {}
    for line in (root / "labels.jsonl").read_text().splitlines():
        row = json.loads(line)
        labels[row["id"]] = row
    videos: dict[str, bytes] = {}
    for archive in root.rglob("*.tar.gz"):
        videos.update(iter_archive_videos(str(archive)))
    out = []
    for manifest in sorted(root.rglob("*.json")):
        for record in json.loads(manifest.read_text()):
            key = record.get("id", record.get("idx"))
            media = []
            decoded = []
            if "image" in record:
                data = (manifest.parent.parent / record["image"]).read_bytes()
                media.append(MediaRef(IMAGE, record["image"], data))
                decoded.append(decode_image(data, max_side=1024))
            if "video" in record:
                data = videos[record["video"]]
                media.append(MediaRef(VIDEO, record["video"], data))
                decoded.append(decode_video(data, max_side=1024))
            label = labels[key]
            sample = Sample(
                id=key,
                source=label["source"],
                conversations=record["conversations"],
                media=media,
                decoded=decoded or None,
            )
            out.append((sample, label["defect"]))
    return out


def evaluate(model: DemoRewardModel, samples: list[tuple[Sample, str | None]]) -> dict:
    scores = []
    for i in range(0, len(samples), 64):
        scores += model.score([s for s, _ in samples[i : i + 64]])
    flagged = defaultdict(list)
    for (_, defect), score in zip(samples, scores, strict=True):
        flagged[defect or "clean"].append(score < THRESHOLD)
    result = {k: (sum(v), len(v)) for k, v in sorted(flagged.items())}
    misses = [
        (s.source, d, round(v, 2))
        for (s, d), v in zip(samples, scores, strict=True)
        if (d is None) == (v < THRESHOLD)
    ]
    return {"flagged": result, "errors": misses}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--model", type=Path, default=DEFAULT_DIR)
    args = parser.parse_args(argv)
    from synth.dataset import write_sample_dataset

    model = DemoRewardModel.from_pretrained(args.model)
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            write_sample_dataset(Path(tmp), seed=seed)
            result = evaluate(model, load_samples(Path(tmp)))
        print(f"seed {seed}: flagged/total at {THRESHOLD}")
        for name, (hit, total) in result["flagged"].items():
            print(f"  {name:16s} {hit:4d}/{total:<4d} = {hit / total:.3f}")
        print("  misclassified:", result["errors"])


if __name__ == "__main__":
    main()
