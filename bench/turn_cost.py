"""What scoring every assistant turn costs, on the CPU.

The demo model, on the sample's seed 0: times `DemoRewardModel.score` (every turn: the media
encoded once per sample, then one (question, answer) pair per assistant turn) against the same
network reading only the last pair (what the sample's score needs), in batches of 16, best of
7, for the multi-turn source and for single-turn samples.

The value-head backends (`--value-heads`): their turn scores cost no forward pass, so what is
timed is the CPU work that finds the turn ends, on the helper thread that prepares the next
micro-batch (each cut rendered by the chat template and tokenized to check it is the start of
the whole; for vlm-value-head also mapping them past the media placeholders), alone, on inputs
built beforehand, in micro-batches of 16, best of 7, on the tiny backends with the test
tokenizer (a real tokenizer and template cost more or less: only their own run says). Then the
whole of `score` (inputs and the one forward pass of the tiny model, which also reads the turn
values) with and without turn ends, interleaved, best of 7 each. On a real model the forward
pass is far larger while the values read stay a few per sample: the GPU side is not measured.

python -m bench.turn_cost
python -m bench.turn_cost --value-heads
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from bench.demo_model.evaluate import load_samples
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


def _best(run, batches) -> float:
    """Best of REPEATS: seconds `run` takes over every batch."""
    best = float("inf")
    for _ in range(REPEATS):
        started = time.perf_counter()
        for batch in batches:
            run(batch)
        best = min(best, time.perf_counter() - started)
    return best


def value_heads() -> None:
    from bench.random_text_rm import build_text_backend, make_text_samples
    from bench.random_value_head import build_backend, make_mixed_samples, with_turns

    cpu = torch.device("cpu")
    text = build_text_backend("llama", True, cpu, torch.float32, None)
    vlm = build_backend(True, cpu, torch.float32, None, model_type="qwen2_vl")

    def text_turn_ends(samples):
        """What text-rm does for turn ends beside tokenizing the micro-batch."""
        ids = text._token_ids([text._text(s) for s in samples])
        return lambda: text.turn_ends.of(samples, ids)

    def vlm_turn_ends(samples):
        """What vlm-value-head does for turn ends beside building the micro-batch's inputs."""
        inputs = vlm.inputs
        media = inputs.media(samples)
        rendered = [inputs.render(s) for s in samples]
        ids = inputs.token_ids(inputs.expand(rendered, media))
        return lambda: inputs.sample_turn_ends(samples, rendered, media, ids)

    cases = {
        "text-rm": (text, text.turn_ends, text_turn_ends, make_text_samples(64, 0, 0.02), 1),
        "vlm-value-head": (
            vlm,
            vlm.inputs.turn_ends,
            vlm_turn_ends,
            make_mixed_samples(64, 0, 0.05),
            5,
        ),
    }
    for name, (backend, turn_ends, find_ends, samples, max_answers) in cases.items():
        samples = with_turns(samples, seed=0, max_answers=max_answers)
        batches = [samples[i : i + BATCH] for i in range(0, len(samples), BATCH)]
        answers = sum(len(s.assistant_turns()) for s in samples) / len(samples)
        finding = [find_ends(batch) for batch in batches]  # inputs built once, not timed
        ends_seconds = _best(lambda find: find(), finding)
        # score() with and without turn ends, interleaved, best of each: the cores are
        # shared, so load that comes and goes hits both sides alike.
        scored = {None: float("inf"), "timed without turn ends": float("inf")}
        for _ in range(REPEATS):
            for unavailable in scored:
                turn_ends.unavailable = unavailable
                started = time.perf_counter()
                for batch in batches:
                    backend.score(batch)
                took = time.perf_counter() - started
                scored[unavailable] = min(scored[unavailable], took)
        turn_ends.unavailable = None
        score_with, score_without = scored.values()
        per_sample = 1e3 / len(samples)
        print(
            f"{name}: {len(samples)} samples, {answers:.2f} answers each; finding turn ends "
            f"{per_sample * ends_seconds:.2f} ms a sample; score() (inputs + the one forward "
            f"pass) {per_sample * score_without:.2f} ms a sample without turn ends, "
            f"{per_sample * score_with:.2f} ms with ({score_with / score_without:.2f}x)"
        )


if __name__ == "__main__":
    import sys

    from pipelines.logs import configure_logging

    configure_logging()
    value_heads() if "--value-heads" in sys.argv[1:] else main()
