"""What scoring every assistant turn costs the demo model, on the sample's seed 0.

Times `DemoRewardModel.score` (every turn: the media encoded once per sample, then one
(question, answer) pair per assistant turn) against the same network reading only the last
pair (what the sample's score needs), in batches of 16, best of 7, for the multi-turn source
and for single-turn samples.

python -m bench.turn_cost
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from models.demo.evaluate import load_samples
from models.demo.features import sample_features
from models.demo.model import DemoRewardModel, to_tensors
from synth.dataset import MULTITURN_SOURCE, write_sample_dataset

BATCH = 16
REPEATS = 7


def _seconds(score, samples) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        started = time.perf_counter()
        for i in range(0, len(samples), BATCH):
            score(samples[i : i + BATCH])
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    model = DemoRewardModel.from_pretrained()

    def last_pair_only(batch):
        with torch.inference_mode():
            return model.net(to_tensors([sample_features(s, model.buckets) for s in batch]))

    with tempfile.TemporaryDirectory() as tmp:
        write_sample_dataset(Path(tmp), seed=0)
        samples = [sample for sample, _ in load_samples(Path(tmp))[0]]
    groups = {
        "multi-turn": [s for s in samples if s.source == MULTITURN_SOURCE],
        "single-turn": [s for s in samples if s.source != MULTITURN_SOURCE][:120],
    }
    for name, group in groups.items():
        turns = sum(len(s.assistant_turns()) for s in group) / len(group)
        last, every = _seconds(last_pair_only, group), _seconds(model.score, group)
        print(
            f"{name}: {len(group)} samples, {turns:.2f} assistant turns each; last pair only "
            f"{len(group) / last:.1f} samples/s, every turn {len(group) / every:.1f} samples/s "
            f"({every / last:.2f}x the time)"
        )


if __name__ == "__main__":
    from pipelines.logs import configure_logging

    configure_logging()
    main()
