"""What `per_turn: true` costs the ixc25 backend, on the sample's seed 0.

IXC-2.5-Reward reads one reward token at the end of the conversation, so a score per assistant
turn means scoring the conversation cut after each of its answers as well. This scores the
sample's multi-turn source and its single-turn samples with the batched engine on the tiny
stand-in of the model's code (`tests/tiny_models.build_tiny_ixc`: the real tokenizer layout,
hd_num and media token counts, one small layer), without and with per_turn, in batches of 16,
and reports what the model's work meter counted: forward passes, real tokens and computed
tokens (padding included). Token counts do not depend on the model's width, so the ratio is
the GPU cost ratio of the language model; each cut also encodes its media again (vision
passes are counted too). CPU seconds of the tiny model are printed for completeness only.

python -m bench.ixc_turn_cost   (writes bench/results/ixc_turn_cost.json)
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from bench.demo_model.evaluate import load_samples
from bench.pipeline_bench import REPO
from models.registry import loader_for
from synth.dataset import MULTITURN_SOURCE, write_sample_dataset

BATCH = 16
RESULTS = REPO / "bench" / "results" / "ixc_turn_cost.json"


def _model(parts: dict[str, Path], per_turn: bool):
    options = {
        "path": str(parts["path"]),
        "trust_remote_code": True,
        "font_path": str(parts["font"]),
        "clip_path": str(parts["clip"]),
        "per_turn": per_turn,
    }
    return loader_for("ixc25", options)()


def _measure(model, samples) -> dict:
    vision_inputs = []
    original = model.model.vit.forward

    def counting(images, *args):
        vision_inputs.append(len(images))
        return original(images, *args)

    model.model.vit.forward = counting
    model.work.take()
    started = time.perf_counter()
    for i in range(0, len(samples), BATCH):
        model.score(samples[i : i + BATCH])
    seconds = time.perf_counter() - started
    model.model.vit.forward = original
    work = model.work.take()
    return {
        "forward_passes": work.forward_passes,
        "real_tokens": work.real_tokens,
        "computed_tokens": work.computed_tokens,
        "media_encoded": sum(vision_inputs),
        "cpu_seconds_tiny_model": round(seconds, 2),
    }


def main() -> None:
    from tests.tiny_models import build_tiny_clip, build_tiny_ixc, write_test_font

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        font = write_test_font(root / "fonts" / "SimHei.ttf")
        clip = build_tiny_clip(root / "clip")
        parts = {"font": font, "clip": clip, "path": build_tiny_ixc(root / "reward", clip, font)}
        write_sample_dataset(root / "sample", seed=0)
        samples = [sample for sample, _ in load_samples(root / "sample")[0]]
        groups = {
            "multi-turn": [s for s in samples if s.source == MULTITURN_SOURCE],
            "single-turn": [s for s in samples if s.source != MULTITURN_SOURCE],
        }
        results = {}
        for name, group in groups.items():
            turns = sum(len(s.assistant_turns()) for s in group) / len(group)
            off = _measure(_model(parts, False), group)
            on = _measure(_model(parts, True), group)
            results[name] = {
                "samples": len(group),
                "assistant_turns_per_sample": round(turns, 2),
                "per_turn_false": off,
                "per_turn_true": on,
                "computed_tokens_ratio": round(on["computed_tokens"] / off["computed_tokens"], 2),
                "media_encoded_ratio": round(on["media_encoded"] / max(1, off["media_encoded"]), 2),
            }
            print(
                f"{name}: {len(group)} samples, {turns:.2f} answers each; per_turn computes "
                f"{results[name]['computed_tokens_ratio']}x the tokens and encodes "
                f"{results[name]['media_encoded_ratio']}x the media "
                f"({off['forward_passes']} -> {on['forward_passes']} forward passes)"
            )
    RESULTS.write_text(json.dumps({"batch": BATCH, "seed": 0, "groups": results}, indent=2) + "\n")


if __name__ == "__main__":
    from pipelines.logs import configure_logging

    configure_logging()
    main()
