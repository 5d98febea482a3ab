"""Score generated sample datasets with the demo model and check the cleaning targets.

`python -m models.demo.evaluate [--seeds 0 1 2] [--model models/demo]` writes each sample
dataset to a temporary folder, scores every sample the way the pipeline would (media decoded at
max_side=1024), and prints, at the -2.0 cut, a table per seed and one for all seeds together:
faithful samples flagged per source, and caught/total per planted defect class per source.
`empty_answer` is reported too, though in the pipeline the rules step catches it first.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from synth.scorecard import Scorecard
from transforms.core.record import IMAGE, VIDEO, MediaRef, Sample
from transforms.io.video_archives import iter_archive_videos
from transforms.media.decode import decode_image, decode_video

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


def evaluate(
    model: DemoRewardModel, samples: list[tuple[Sample, str | None]], threshold: float = THRESHOLD
) -> tuple[Scorecard, list[tuple[str, str, str | None, float]]]:
    """The scorecard at ``threshold`` and every misjudged sample: (id, source, defect, score) of
    faithful samples flagged and defective samples kept."""
    scores = []
    for i in range(0, len(samples), 64):
        scores += model.score([s for s, _ in samples[i : i + 64]])
    card = Scorecard()
    misses = []
    for (sample, defect), score in zip(samples, scores, strict=True):
        card.add(sample.source, defect, score < threshold)
        if (defect is None) == (score < threshold):
            misses.append((sample.id, sample.source, defect, round(score, 2)))
    return card, misses


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--model", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--threshold", type=float, default=THRESHOLD)
    args = parser.parse_args(argv)
    from synth.dataset import write_sample_dataset

    model = DemoRewardModel.from_pretrained(args.model)
    total = Scorecard()
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            write_sample_dataset(Path(tmp), seed=seed)
            card, misses = evaluate(model, load_samples(Path(tmp)), args.threshold)
        total.merge(card)
        print(f"seed {seed} at {args.threshold}: faithful flagged, caught/total per defect")
        print(card.table())
        print("  misjudged:", misses or "none")
        print()
    if len(args.seeds) > 1:
        print(f"seeds {' '.join(map(str, args.seeds))} together:")
        print(total.table())


if __name__ == "__main__":
    main()
