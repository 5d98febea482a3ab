"""Reward backends loaded from tiny random checkpoints on disk, through their factories."""

from __future__ import annotations

import io
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from models.ixc25 import RemoteCodeNotAllowed
from models.registry import loader_for, token_estimator_for
from models.tokens import qwen_media_tokens
from tests.tiny_models import build_tiny_ixc, build_tiny_qwen_vl, build_tiny_text_rm
from transforms.record import MediaRef, Sample

ATOL = 1e-4  # fp32 on CPU; padding changes matmul shapes, not the maths


def png(pixels: np.ndarray, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def make_samples() -> list[Sample]:
    """Images of several sizes, a video, a two-image sample and a text-only one."""
    rng = np.random.default_rng(0)
    out = []
    questions = ["<image>\nwhat is shown", "describe the picture", "<image>\nis it red"]
    answers = ["a red square", "a cat sat on the mat", "yes it is red and small", "no"]
    for i, (h, w) in enumerate([(60, 90), (120, 60), (200, 200), (40, 40), (90, 150)]):
        pixels = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        conv = [
            {"from": "human", "value": questions[i % 3]},
            {"from": "gpt", "value": answers[i % 4]},
        ]
        ref = MediaRef("image", f"img/{i}.jpeg", png(pixels, "JPEG"))
        out.append(Sample(f"img{i}", "src", conv, [ref], decoded=[pixels]))
    frames = rng.integers(0, 255, (5, 56, 84, 3), dtype=np.uint8)
    out.append(
        Sample(
            "vid",
            "src",
            [
                {"from": "human", "value": "<video>\ndescribe the video"},
                {"from": "gpt", "value": "a blue bar moves right"},
            ],
            [MediaRef("video", "v/a.mp4", b"\x00\x00\x00\x18ftypmp42" + frames.tobytes()[:500])],
            decoded=[frames],
        )
    )
    two = [rng.integers(0, 255, (56, 56, 3), dtype=np.uint8) for _ in range(2)]
    out.append(
        Sample(
            "two",
            "src",
            [
                {"from": "human", "value": "<image>\n<image>\none and two"},
                {"from": "gpt", "value": "two"},
            ],
            [MediaRef("image", "a.png", png(two[0])), MediaRef("image", "b", png(two[1]))],
            decoded=two,
        )
    )
    out.append(text_sample("txt", "say hi", "hello there friend"))
    return out


def text_sample(sample_id: str, question: str, answer: str) -> Sample:
    conv = [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]
    return Sample(sample_id, "src", conv)


def assert_batch_independent(model, samples: list[Sample]) -> None:
    singles = [model.score([s])[0] for s in samples]
    assert model.score(samples) == pytest.approx(singles, abs=ATOL)
    order = list(range(len(samples)))
    random.Random(1).shuffle(order)
    permuted = model.score([samples[i] for i in order])
    assert permuted == pytest.approx([singles[i] for i in order], abs=ATOL)
    # Scores are paired with their samples: distinct samples get distinct scores.
    assert len({round(s, 6) for s in singles}) == len(singles)


# -- vlm-value-head ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory) -> Path:
    return build_tiny_qwen_vl(tmp_path_factory.mktemp("qwen2vl"))


@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_vlm_value_head_batched_equals_single(qwen_dir, padding_side):
    model = loader_for("vlm-value-head", {"path": str(qwen_dir), "padding_side": padding_side})()
    assert model.model.dtype == torch.float32 and model.device.type == "cpu"
    assert_batch_independent(model, make_samples())


def test_vlm_value_head_loads_saved_weights_and_budgeted_batches_keep_order(qwen_dir):
    from transformers import Qwen2VLForConditionalGeneration

    reference = Qwen2VLForConditionalGeneration.from_pretrained(qwen_dir).model.state_dict()
    model = loader_for("vlm-value-head", {"path": str(qwen_dir)})()
    loaded = model.model.state_dict()
    assert set(loaded) == set(reference)
    assert all(torch.equal(loaded[k], reference[k]) for k in reference)
    samples = make_samples()
    budgeted = loader_for("vlm-value-head", {"path": str(qwen_dir), "max_batch_tokens": 120})()
    assert budgeted.score(samples) == pytest.approx(model.score(samples), abs=ATOL)


def test_qwen_token_estimate_matches_the_placeholders_the_model_sees(qwen_dir):
    model = loader_for("vlm-value-head", {"path": str(qwen_dir)})()
    image_id, video_id = model.image_token_id, model.video_token_id
    for sample in make_samples():
        ids = model.build_inputs([sample])["input_ids"][0]
        expected_image = sum(
            qwen_media_tokens(1, *d.shape[:2], model.min_pixels, model.max_pixels) - 2
            for r, d in zip(sample.media, sample.decoded or [], strict=False)
            if r.kind == "image"
        )
        expected_video = sum(
            qwen_media_tokens(len(d), *d.shape[1:3], model.min_pixels, model.video_max_pixels) - 2
            for r, d in zip(sample.media, sample.decoded or [], strict=False)
            if r.kind == "video"
        )
        assert int((ids == image_id).sum()) == expected_image
        assert int((ids == video_id).sum()) == expected_video
        estimate = model.estimate_tokens(sample)
        assert abs(estimate - len(ids)) <= 0.5 * len(ids) + 20
    estimator = token_estimator_for("vlm-value-head", {"path": str(qwen_dir)})
    assert [estimator(s) for s in make_samples()] == [
        model.estimate_tokens(s) for s in make_samples()
    ]


def test_qwen25_vl_checkpoint_scores_images_and_video(tmp_path):
    path = build_tiny_qwen_vl(tmp_path / "q25", model_type="qwen2_5_vl")
    model = loader_for("vlm-value-head", {"path": str(path), "padding_side": "left"})()
    samples = [s for s in make_samples() if s.id in ("img0", "vid", "txt")]
    assert_batch_independent(model, samples)


def test_vlm_value_head_rejects_undecoded_media_and_unknown_options(qwen_dir):
    with pytest.raises(ValueError, match="unknown model option"):
        loader_for("vlm-value-head", {"path": str(qwen_dir), "max_pixel": 5})()
    model = loader_for("vlm-value-head", {"path": str(qwen_dir)})()
    sample = make_samples()[0].replace(decoded=None)
    with pytest.raises(ValueError, match="decoded"):
        model.score([sample])


# -- text-rm ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def text_dir(tmp_path_factory) -> Path:
    return build_tiny_text_rm(tmp_path_factory.mktemp("textrm"))


def text_samples() -> list[Sample]:
    return [
        text_sample("t0", "say hi", "hello there friend"),
        text_sample("t1", "what is a cat", "a small cat"),
        text_sample("t2", "describe the dog", "the dog sat on the mat and it is good"),
        text_sample("t3", "yes or no", "no"),
        text_sample("t4", "<image>\ncount", "one two three"),
    ]


@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_text_rm_batched_equals_single_with_pad_equal_to_eos(text_dir, padding_side):
    model = loader_for("text-rm", {"path": str(text_dir), "padding_side": padding_side})()
    assert model.tokenizer.pad_token_id == model.tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert_batch_independent(model, text_samples())


def test_text_rm_left_and_right_padding_agree_and_media_is_refused(text_dir):
    right = loader_for("text-rm", {"path": str(text_dir)})()
    left = loader_for("text-rm", {"path": str(text_dir), "padding_side": "left"})()
    assert left.score(text_samples()) == pytest.approx(right.score(text_samples()), abs=ATOL)
    with pytest.raises(ValueError, match="text-only"):
        right.score([make_samples()[0]])


# -- ixc25 (remote code) ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def ixc_dir(tmp_path_factory) -> Path:
    return build_tiny_ixc(tmp_path_factory.mktemp("ixc"))


def test_ixc25_refuses_remote_code_without_opt_in(ixc_dir):
    with pytest.raises(RemoteCodeNotAllowed) as error:
        loader_for("ixc25", {"path": str(ixc_dir)})()
    assert "--trust-remote-code" in str(error.value)
    assert "remote_code_allowlist" in str(error.value)
    other = loader_for("ixc25", {"path": str(ixc_dir), "remote_code_allowlist": ["/elsewhere"]})
    with pytest.raises(RemoteCodeNotAllowed):
        other()


def test_ixc25_allowlisted_checkpoint_scores_batch_independently(ixc_dir, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    options = {"path": str(ixc_dir), "remote_code_allowlist": [str(ixc_dir)], "tmp_dir": str(work)}
    model = loader_for("ixc25", options)()
    samples = make_samples()
    assert_batch_independent(model, samples)
    # The model opened real files with extensions it understands; all are gone afterwards.
    last_call = model.model.seen_paths[-1]
    flat = [p for paths in last_call for p in paths]
    assert len(flat) == sum(len(s.media) for s in samples)
    assert {os.path.splitext(p)[1] for p in flat} == {".jpeg", ".mp4", ".png"}
    assert not any(os.path.exists(p) for p in flat)
    assert os.listdir(work) == []


def test_ixc25_reads_the_media_strips_placeholders_and_cleans_up_on_failure(ixc_dir, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    model = loader_for(
        "ixc25", {"path": str(ixc_dir), "trust_remote_code": True, "tmp_dir": str(work)}
    )()
    base = make_samples()[0]
    dark = base.replace(media=[MediaRef("image", "x.jpg", png(np.zeros((40, 40, 3), np.uint8)))])
    light = base.replace(
        media=[MediaRef("image", "x.jpg", png(np.full((40, 40, 3), 255, np.uint8)))]
    )
    assert model.score([dark])[0] != pytest.approx(model.score([light])[0], abs=1e-6)

    seen = {}
    original = model.model.get_scores

    def failing(chats, path_lists, max_length, hd_num):
        seen["chats"] = chats
        original(chats, path_lists, max_length=max_length, hd_num=hd_num)
        raise RuntimeError("CUDA out of memory (simulated)")

    model.model.get_scores = failing
    with pytest.raises(RuntimeError, match="out of memory"):
        model.score([base])
    assert os.listdir(work) == []
    assert seen["chats"][0][0] == {"role": "user", "content": "what is shown"}
