"""Real transformers backends inside the Beam pipeline: a mixed run sends media samples to a
Qwen2-VL value-head model and text-only samples to a text RM, batched by token budget; the
remote-code IXC backend runs only when opted in, and cleans data in the real ALLaVA and
LLaVA-Video-178K layouts offline, every sample scored, each score its own sample's."""

from __future__ import annotations

import json

import pytest

from models.ixc25.backend import RemoteCodeNotAllowed
from models.registry import loader_for
from pipelines.config import load_config
from pipelines.jobs.clean import run
from synth.dataset import write_sample_dataset
from tests.helpers import read_parquet_dir, tiny_config
from tests.tiny_models import (
    build_tiny_clip,
    build_tiny_ixc,
    build_tiny_qwen_vl,
    build_tiny_text_rm,
    write_test_font,
)
from transforms.core.record import MediaRef, Sample


@pytest.mark.slow
def test_mixed_run_uses_a_vlm_for_media_and_a_text_rm_for_text(tiny_dataset, tmp_path):
    qwen = build_tiny_qwen_vl(tmp_path / "qwen")
    text = build_tiny_text_rm(tmp_path / "text")
    config = tiny_config(tiny_dataset, tmp_path / "out").with_overrides(
        model="vlm-value-head",
        model_options={"path": str(qwen)},
        text_model="text-rm",
        text_model_options={"path": str(text)},
        max_batch_tokens=4096,
        percentile=50.0,
    )
    summary = run(config)
    counts = summary["counts"]["per_source"]
    # Random weights: which half is flagged is arbitrary, but every sample is scored and
    # routed, and the broken/missing media still land in errors.
    assert counts["images"]["input"] == 6 and counts["images"]["errors"] == 2
    assert counts["text"] == {"input": 1, "clean": 1, "review": 0, "errors": 0}
    # 3 images (the "N/A" answer is flagged by the rules, unscored), 2 videos, 1 text.
    assert summary["scoring"]["scored"] == 6
    assert (tmp_path / "out" / "_SUCCESS").exists()
    # Each model says what its packed forward passes computed: no padding, and the vision
    # tower's time apart for the multimodal one only.
    batches = summary["batches"]
    work = batches["work_by_model"]
    assert set(work) == {"vlm-value-head", "text-rm"}
    assert batches["batches_reporting_work"] == batches["count"]
    for model in work.values():
        assert model["real_tokens"] > 0 and model["computed_tokens"] == model["real_tokens"]
        assert model["padding_fraction"] == 0 and model["language_seconds"] > 0
    assert work["vlm-value-head"]["vision_seconds"] > 0
    assert work["text-rm"]["vision_seconds"] is None
    assert batches["real_tokens"] == sum(m["real_tokens"] for m in work.values())
    page = (tmp_path / "out" / "report" / "index.html").read_text()
    assert page.count('class="model-work"') == 2


def ixc_options(tmp_path) -> dict:
    font = write_test_font(tmp_path / "fonts" / "SimHei.ttf")
    clip = build_tiny_clip(tmp_path / "internlm-xcomposer2d5-clip")
    path = build_tiny_ixc(tmp_path / "internlm-xcomposer2d5-7b-reward", clip, font)
    return {"path": str(path), "font_path": str(font), "clip_path": str(clip)}


@pytest.mark.slow
def test_remote_code_backend_needs_the_opt_in(tiny_dataset, tmp_path, offline):
    config = tiny_config(tiny_dataset, tmp_path / "out").with_overrides(
        model="ixc25", model_options=ixc_options(tmp_path)
    )
    with pytest.raises(RemoteCodeNotAllowed, match="trust-remote-code"):
        run(config)
    assert not (tmp_path / "out").exists()  # refused before the pipeline started
    summary = run(config.with_overrides(trust_remote_code=True, output=str(tmp_path / "ok")))
    assert summary["counts"]["total"]["input"] == 9 and summary["scoring"]["scored"] == 6


@pytest.mark.slow
@pytest.mark.parametrize("batch_size", [1, 7])
def test_ixc25_cleans_the_real_dataset_layouts_offline(tmp_path, offline, batch_size):
    """ALLaVA (LAION, VFLAN, text), LLaVA-Video-178K (videos inside .tar.gz) and multi-turn
    LLaVA-Instruct, as downloaded, through the whole pipeline with the IXC stand-in, no
    network, font and CLIP local."""
    root = tmp_path / "data"
    write_sample_dataset(root, seed=1, images=16, videos=6, texts=4, multiturn=4)
    options = ixc_options(tmp_path)
    config = load_config("configs/sample.yaml").with_overrides(
        root=str(root),
        output=str(tmp_path / "out"),
        model="ixc25",
        model_options=options,
        trust_remote_code=True,
        batch_size=batch_size,
        max_error_fraction=0.0,
    )
    summary = run(config)
    total = summary["counts"]["total"]
    labels = (root / "labels.jsonl").read_text().splitlines()
    assert total["input"] == len(labels) and total["errors"] == 0
    review = read_parquet_dir(tmp_path / "out" / "review")
    rule_flagged = int(review["score"].isna().sum())
    assert summary["scoring"]["scored"] == total["input"] - rule_flagged
    sources = {row["source"] for row in summary_rows(tmp_path / "out")}
    assert {"allava_laion_caption", "allava_text", "llava_video_caption"} <= sources
    # Every written score is the score of that very sample, scored alone.
    backend = loader_for("ixc25", {**options, "trust_remote_code": True})()
    for row in summary_rows(tmp_path / "out"):
        if row["score"] is None or row["score"] != row["score"]:
            continue
        media = [MediaRef("image", m["path"], m["bytes"]) for m in row["images"]]
        media += [MediaRef("video", m["path"], m["bytes"]) for m in row["videos"]]
        sample = Sample(row["id"], row["source"], list(row["conversations"]), media)
        assert backend.score([sample])[0] == pytest.approx(row["score"], abs=1e-4), row["id"]


def summary_rows(out):
    for route in ("clean", "review"):
        frame = read_parquet_dir(out / route)
        for row in frame.to_dict("records"):
            row["conversations"] = [dict(t) for t in row["conversations"]]
            yield row


@pytest.mark.slow
def test_a_too_long_sample_lands_in_errors_as_score_too_long(tiny_dataset, tmp_path):
    text = build_tiny_text_rm(tmp_path / "text")
    config = tiny_config(tiny_dataset, tmp_path / "out").with_overrides(
        text_model="text-rm", text_model_options={"path": str(text), "max_length": 5}
    )
    summary = run(config)
    assert summary["counts"]["per_source"]["text"]["errors"] == 1
    errors = [
        json.loads(line)
        for path in (tmp_path / "out" / "errors").glob("*.jsonl")
        for line in path.read_text().splitlines()
    ]
    too_long = [e for e in errors if e["id"] == "txt-1"]
    assert [(e["stage"], e["reason"]) for e in too_long] == [("score", "too_long")]
    assert "max_length 5" in too_long[0]["detail"]
