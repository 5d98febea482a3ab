"""Score generated sample datasets with the demo model and check the cleaning targets.

`python -m bench.demo_model.evaluate [--seeds 0 1 2] [--model models/demo]` writes each sample
dataset to a temporary folder, reads, loads and decodes it with the pipeline's own steps and
configs/sample.yaml's settings, scores every sample, and prints, at the -2.0 cut, a table per
seed and one for all seeds together: faithful samples flagged per source, and caught/total
per planted defect class per source.
`empty_answer` is reported too, though in the pipeline the rules step catches it first.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import defaultdict
from pathlib import Path

from models.demo.model import DEFAULT_DIR, DemoRewardModel
from pipelines.config import load_config
from pipelines.logs import configure_logging
from synth.scorecard import Scorecard
from transforms.core.record import ErrorRecord, Sample
from transforms.io.llava_manifests import read_manifest
from transforms.io.video_archives import list_archive_videos
from transforms.media.decode import decode_sample
from transforms.media.fetch import fetch_media
from transforms.media.groups import group_key, open_group

THRESHOLD = -2.0
SAMPLE_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "sample.yaml"


def _read_and_attach(config) -> list[Sample | ErrorRecord]:
    """Every record read and given its media bytes by the pipeline's own steps, in-process:
    ReadSources' manifest reader and archive listing, LoadMedia's grouping and fetch."""
    # Imported here: they import Beam, whose import-time warnings configure_logging drops.
    from pipelines.stages.read_sources import discover_inputs

    inputs = discover_inputs(config)
    archive_of: dict[str, str] = {}
    for archive in sorted({a for files in inputs.values() for a in files.archives}):
        for item in list_archive_videos(archive, ""):
            if not isinstance(item, ErrorRecord):
                archive_of.setdefault(*item)
    groups: dict[tuple, list[Sample]] = defaultdict(list)
    loaded: list[Sample | ErrorRecord] = []
    for source in config.sources:
        for manifest in inputs[source.name].manifests:
            for item in read_manifest(manifest, source.name):
                if isinstance(item, ErrorRecord):
                    loaded.append(item)
                else:
                    key, sample = group_key(item, archive_of)
                    groups[key].append(sample)
    roots = config.media_roots()
    for group in groups.items():
        for item in open_group(group):
            loaded.append(item if isinstance(item, ErrorRecord) else fetch_media(item, roots))
    return loaded


def load_samples(
    root: Path, config_path: Path = SAMPLE_CONFIG
) -> tuple[list[tuple[Sample, str | None]], list[ErrorRecord]]:
    """(sample with decoded media, planted defect) for every labelled record under `root` that
    the pipeline would score, decoded with the config's decode settings; and the error records
    of those it would send to errors/ instead."""
    labels = {}
    for line in (root / "labels.jsonl").read_text().splitlines():
        row = json.loads(line)
        labels[row["id"]] = row
    config = load_config(str(config_path)).with_overrides(root=str(root))
    decode = config.decode
    samples, errors = [], []
    for item in _read_and_attach(config):
        if not isinstance(item, ErrorRecord):
            item = decode_sample(item, decode.max_side, decode.video_fps, decode.max_frames)
        if isinstance(item, ErrorRecord):
            errors.append(item)
            continue
        label = labels[item.id]
        samples.append((item.replace(source=label["source"]), label["defect"]))
    return samples, errors


def evaluate(
    model: DemoRewardModel, samples: list[tuple[Sample, str | None]], threshold: float = THRESHOLD
) -> tuple[Scorecard, list[tuple[str, str, str | None, float]]]:
    """The scorecard at ``threshold`` and every misjudged sample: (id, source, defect, score) of
    faithful samples flagged and defective samples kept. A sample is flagged as the pipeline
    flags it: when its score or one of its turn scores is below the cut."""
    scores = []
    for i in range(0, len(samples), 64):
        rewards = model.score([s for s, _ in samples[i : i + 64]])
        scores += [min((r.score, *r.turn_scores)) for r in rewards]
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
    configure_logging()
    from synth.dataset import write_sample_dataset

    model = DemoRewardModel.from_pretrained(args.model)
    total = Scorecard()
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            write_sample_dataset(Path(tmp), seed=seed)
            samples, errors = load_samples(Path(tmp))
            card, misses = evaluate(model, samples, args.threshold)
        total.merge(card)
        print(f"seed {seed} at {args.threshold}: faithful flagged, caught/total per defect")
        print(card.table())
        if errors:
            reasons = sorted({f"{e.stage}/{e.reason}" for e in errors})
            print(f"  not scored ({len(errors)} would go to errors/):", ", ".join(reasons))
        print("  misjudged:", misses or "none")
        print()
    if len(args.seeds) > 1:
        print(f"seeds {' '.join(map(str, args.seeds))} together:")
        print(total.table())


if __name__ == "__main__":
    main()
