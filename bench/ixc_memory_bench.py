"""Peak memory of `rmclean clean` with IXC-2.5-Reward at its real width, on the CPU.

Builds, once under --work (nothing is downloaded), a checkpoint laid out as the real one
(`tests/tiny_models.build_tiny_ixc`: its code stand-in, transformers 4.33 tensor names, config
as shipped, bf16 shards, a separate CLIP folder, a font) at the real widths: hidden size 4096,
GQA 32/8 heads, MLP 14336, vocabulary 92544, the CLIP tower 1024 wide; one decoder layer and
one CLIP layer (layers run one after another, so depth adds weights, not activations: a full
32-layer model adds ~13 GB of bf16 weights on a GPU). Then runs `configs/sample.yaml` switched
to `ixc25` with its own batch settings (batch_size 16, no token budget) through the CLI, in
each dtype, and records the peak RSS of the whole process tree (Beam, decoders included).

Those settings make a batch's cost 16 x its longest sample, so by default the input is the
heaviest batch the sample can form: its 16 samples with the most tokens (LLaVA-Video clips),
in the sample's layout, in one manifest so that they are scored as one batch. `--whole` runs
the whole sample instead (438 samples: hours on two CPU cores).

    python -m bench.ixc_memory_bench [--work DIR] [--dtypes fp32,bf16] [--whole]

Results: bench/results/ixc_memory_cpu.json. The target (issue 20): within 16 GiB.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import yaml

from bench.pipeline_bench import REPO, peak_rss

REAL_WIDTH = {
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 1,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
}
REAL_CLIP_WIDTH = {
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 1,
    "num_attention_heads": 16,
}
TARGET_MIB = 16 * 1024


def build(work: Path) -> dict[str, str]:
    """The checkpoint, CLIP folder and font (built once), as model_options paths."""
    import torch

    from tests.tiny_models import build_tiny_clip, build_tiny_ixc, write_test_font

    folders = {
        "path": work / "internlm-xcomposer2d5-7b-reward",
        "clip_path": work / "internlm-xcomposer2d5-clip",
        "font_path": work / "fonts" / "SimHei.ttf",
    }
    if not (folders["path"] / "config.json").exists():
        write_test_font(folders["font_path"])
        build_tiny_clip(folders["clip_path"], shape=REAL_CLIP_WIDTH)
        build_tiny_ixc(
            folders["path"],
            folders["clip_path"],
            folders["font_path"],
            shape=REAL_WIDTH,
            dtype=torch.bfloat16,
        )
    return {key: str(value) for key, value in folders.items()}


def sample_dataset(work: Path) -> Path:
    root = work / "sample"
    if not (root / "labels.jsonl").exists():
        from synth.dataset import write_sample_dataset

        write_sample_dataset(root)
    return root


def _video_tokens(data: bytes) -> int | None:
    """Tokens the model spends on a video (None if it does not decode)."""
    import io

    import decord

    from models.tokens import ixc_video_frames, ixc_video_tokens

    try:
        reader = decord.VideoReader(io.BytesIO(data), num_threads=1)
        height, width = reader[0].shape[:2]
        frames = ixc_video_frames(len(reader), reader.get_avg_fps())
    except Exception:  # noqa: BLE001 - a corrupt clip of the sample: not a candidate
        return None
    return ixc_video_tokens(frames, height, width)


def heaviest_batch(sample: Path, target: Path, size: int = 16) -> list[dict]:
    """The sample with every manifest emptied but one, which holds the `size` video records
    that cost the most tokens (and pass the rules); returns their ids and token counts."""
    import shutil

    from pipelines.config import load_config
    from pipelines.stages.read_sources import discover_inputs
    from transforms.core.record import Sample
    from transforms.io.llava_manifests import read_manifest
    from transforms.io.video_archives import iter_archive_videos
    from transforms.samples.rules import check_rules

    config = load_config(REPO / "configs" / "sample.yaml").with_overrides(root=str(sample))
    inputs = discover_inputs(config)
    videos = {}
    for archive in sorted({a for files in inputs.values() for a in files.archives}):
        videos.update(iter_archive_videos(archive))
    candidates = []
    for source in config.sources:
        for manifest in inputs[source.name].manifests:
            records = json.loads(Path(manifest).read_text())
            for record, item in zip(records, read_manifest(manifest, source.name), strict=True):
                if not isinstance(item, Sample) or check_rules(item):
                    continue
                if [ref.kind for ref in item.media] != ["video"]:
                    continue
                tokens = _video_tokens(videos.get(item.media[0].path) or b"")
                if tokens is not None:
                    candidates.append((tokens, item.id, record))
    chosen = sorted(candidates, key=lambda c: (-c[0], c[1]))[:size]
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(sample, target)
    manifests = sorted(m for files in inputs.values() for m in files.manifests)
    holder = next(m for m in manifests if m.endswith("_cap_processed.json"))
    for manifest in manifests:
        records = [c[2] for c in chosen] if manifest == holder else []
        (target / Path(manifest).relative_to(sample.resolve())).write_text(json.dumps(records))
    return [{"id": c[1], "tokens": c[0]} for c in chosen]


def run(work: Path, root: Path, model: dict, dtype: str, engine: str) -> dict:
    config = yaml.safe_load((REPO / "configs" / "sample.yaml").read_text())
    config.update(
        root=str(root),
        model="ixc25",
        model_options={**model, "device": "cpu", "dtype": dtype, "engine": engine},
        trust_remote_code=True,
    )
    config_file = work / f"sample-ixc25-{dtype}.yaml"
    config_file.write_text(yaml.safe_dump(config))
    out = work / f"out-{dtype}"
    command = [
        sys.executable, "-m", "pipelines.cli", "clean",
        "--config", str(config_file), "--output", str(out), "--overwrite",
        "--no-score-cache",  # every run scores: a cached score would skip the model
    ]  # fmt: skip
    wall, peak = peak_rss(command, REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    summary = json.loads((out / "report" / "summary.json").read_text())
    return {
        "peak_rss_mib": round(peak, 1),
        "within_target": peak <= TARGET_MIB,
        "wall_s": round(wall, 1),
        "counts": summary["counts"]["total"],
        "scored": summary["scoring"]["scored"],
        "batches": summary["batches"],  # how Beam batched them: one batch of 16 by default
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", default=str(REPO / "data" / "bench-ixc-real-width"))
    parser.add_argument("--dtypes", default="fp32,bf16")
    parser.add_argument("--engine", default="batched", choices=("batched", "upstream"))
    parser.add_argument("--whole", action="store_true", help="the whole sample (hours)")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "ixc_memory_cpu.json"))
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    model = build(work)
    root = sample_dataset(work)
    heaviest = None
    if not args.whole:
        heaviest = heaviest_batch(root, work / "heaviest-batch")
        root = work / "heaviest-batch"
    results = {
        "machine": {"cpus": os.cpu_count()},
        "command": " ".join(["python -m bench.ixc_memory_bench", *sys.argv[1:]]),
        "checkpoint": {"lm": REAL_WIDTH, "clip": REAL_CLIP_WIDTH, "vocab_size": 92544},
        "engine": args.engine,
        "input": "the whole sample" if args.whole else "the sample's heaviest batch of 16",
        "batch": heaviest,
        "build_s": round(time.perf_counter() - started, 1),
        "target_peak_rss_mib": TARGET_MIB,
        "runs": {},
    }
    for dtype in args.dtypes.split(","):
        results["runs"][dtype] = run(work, root, model, dtype, args.engine)
        print(dtype, json.dumps(results["runs"][dtype]), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
