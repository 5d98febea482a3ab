"""The vlm-value-head and text-rm backends, loaded from tiny random checkpoints on disk
through their factories (IXC-2.5-Reward's remote code: test_ixc25.py)."""

from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from models.base import SampleTooLong, reward_values, score_of
from models.handler import RewardModelHandler
from models.loading import ModelConfigError
from models.registry import loader_for, token_estimator_for
from models.tokens import qwen_media_tokens
from models.value_head.checkpoint import HEAD_NAMES, load_value_head
from tests.tiny_models import build_tiny_qwen_vl, build_tiny_text_rm
from transforms.core.record import MediaRef, Sample

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
    """Scores do not depend on batch size or batch-mates, and each stays with its sample."""
    singles = [model.score([s])[0] for s in samples]
    for size in (2, 7):
        chunks = [samples[i : i + size] for i in range(0, len(samples), size)]
        batched = [score for chunk in chunks for score in model.score(chunk)]
        assert reward_values(batched) == pytest.approx(reward_values(singles), abs=ATOL)
    order = list(range(len(samples)))
    random.Random(1).shuffle(order)
    permuted = model.score([samples[i] for i in order])
    expected = reward_values([singles[i] for i in order])
    assert reward_values(permuted) == pytest.approx(expected, abs=ATOL)
    # Scores are paired with their samples: distinct samples get distinct scores.
    assert len({round(score_of(s), 6) for s in singles}) == len(singles)


# -- vlm-value-head ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory) -> Path:
    return build_tiny_qwen_vl(tmp_path_factory.mktemp("qwen2vl"))


LAYOUTS = {
    "packed": {},
    "padded_right": {"packing": False},
    "padded_left": {"packing": False, "padding_side": "left"},
}


@pytest.mark.slow
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_vlm_value_head_batched_equals_single(qwen_dir, layout):
    model = loader_for("vlm-value-head", {"path": str(qwen_dir), **LAYOUTS[layout]})()
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
    expected = reward_values(model.score(samples))
    assert reward_values(budgeted.score(samples)) == pytest.approx(expected, abs=ATOL)


def test_qwen_token_estimate_matches_the_placeholders_the_model_sees(qwen_dir):
    model = loader_for("vlm-value-head", {"path": str(qwen_dir)})()
    inputs = model.inputs
    image_id, video_id = inputs.image_token_id, inputs.video_token_id
    for sample in make_samples():
        ids = model.build_inputs([sample])["input_ids"][0]
        assert torch.equal(inputs.packed([sample]).row.input_ids[0], ids)
        expected_image = sum(
            qwen_media_tokens(1, *d.shape[:2], inputs.min_pixels, inputs.max_pixels) - 2
            for r, d in zip(sample.media, sample.decoded or [], strict=False)
            if r.kind == "image"
        )
        expected_video = sum(
            qwen_media_tokens(len(d), *d.shape[1:3], inputs.min_pixels, inputs.video_max_pixels) - 2
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
    model = loader_for("vlm-value-head", {"path": str(path), **LAYOUTS["padded_left"]})()
    samples = [s for s in make_samples() if s.id in ("img0", "vid", "txt")]
    assert_batch_independent(model, samples)


@pytest.mark.parametrize("in_shards", [False, True], ids=["value_head_file", "in_shards"])
@pytest.mark.parametrize("head_name", HEAD_NAMES)
def test_value_head_is_found_under_each_layout(tmp_path, head_name, in_shards):
    from safetensors.torch import load_file

    path = build_tiny_qwen_vl(tmp_path / "q", head_name=head_name, head_in_shards=in_shards)
    saved_in = path / ("model.safetensors" if in_shards else "value_head.safetensors")
    saved = load_file(saved_in)
    head = load_value_head(str(path), 32)
    assert torch.equal(head.weight, saved[f"{head_name}.weight"].reshape(1, 32))
    assert torch.equal(head.bias, saved[f"{head_name}.bias"].reshape(1))
    model = loader_for("vlm-value-head", {"path": str(path)})()
    assert torch.equal(model.value_head.weight, head.weight)
    assert len(model.score(make_samples()[:3])) == 3


def test_skywork_layout_is_trl_v_head_summary_in_its_own_file(qwen_dir):
    from safetensors import safe_open

    with safe_open(str(qwen_dir / "value_head.safetensors"), "pt") as handle:
        assert sorted(handle.keys()) == ["v_head.summary.bias", "v_head.summary.weight"]


def test_missing_value_head_is_a_clear_error_listing_the_keys_seen(tmp_path):
    from safetensors.torch import save_file

    path = build_tiny_qwen_vl(tmp_path / "q", head_name=None)
    save_file({"reward.linear.weight": torch.zeros(1, 32)}, str(path / "value_head.safetensors"))
    with pytest.raises(ModelConfigError) as error:
        loader_for("vlm-value-head", {"path": str(path)})()
    message = str(error.value)
    assert "\n" not in message
    assert "v_head.summary.weight" in message and "reward.linear.weight" in message
    assert "model.safetensors" in message  # the shard was searched too, and its keys counted


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


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_text_rm_batched_equals_single_with_pad_equal_to_eos(text_dir, layout):
    model = loader_for("text-rm", {"path": str(text_dir), **LAYOUTS[layout]})()
    assert model.tokenizer.pad_token_id == model.tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert_batch_independent(model, text_samples())


def test_text_rm_left_and_right_padding_agree_and_media_is_refused(text_dir):
    right = loader_for("text-rm", {"path": str(text_dir), **LAYOUTS["padded_right"]})()
    left = loader_for("text-rm", {"path": str(text_dir), **LAYOUTS["padded_left"]})()
    expected = reward_values(right.score(text_samples()))
    assert reward_values(left.score(text_samples())) == pytest.approx(expected, abs=ATOL)
    with pytest.raises(ValueError, match="text-only"):
        right.score([make_samples()[0]])


def test_text_rm_refuses_too_long_samples_instead_of_cutting_them(text_dir):
    model = loader_for("text-rm", {"path": str(text_dir), "max_length": 60})()
    long_answer = text_sample("long", "say hi", " ".join(["hello there friend"] * 12))
    samples = [*text_samples()[:3], long_answer, text_samples()[3]]
    counts = [model.sample_tokens(s) for s in samples]
    assert counts[3] > 60 and max(counts[:3] + counts[4:]) <= 60
    with pytest.raises(SampleTooLong, match="long: .* tokens"):
        model.score([long_answer])
    handler = RewardModelHandler(lambda device: model, "text-rm", devices=["cpu"])
    outcomes = [r.inference for r in handler.score_batch(samples, handler.load_model())[0]]
    assert outcomes[3].score is None and outcomes[3].reason == "too_long"
    singles = [score_of(model.score([s])[0]) for i, s in enumerate(samples) if i != 3]
    assert [o.score for i, o in enumerate(outcomes) if i != 3] == pytest.approx(singles, abs=ATOL)


def test_text_rm_counts_tokens_exactly(text_dir):
    model = loader_for("text-rm", {"path": str(text_dir)})()
    for sample in text_samples()[:4]:
        text = model.tokenizer.apply_chat_template(
            [
                {"role": "user", "content": sample.conversations[0]["value"]},
                {"role": "assistant", "content": sample.conversations[1]["value"]},
            ],
            tokenize=False,
        )
        ids = model.tokenizer(text, add_special_tokens=False)["input_ids"]
        assert model.sample_tokens(sample) == len(ids)
    # The model reads 512 positions (its config); that is the default limit.
    assert model.max_length == 512


def test_gemma2_reward_model_loads_with_the_attention_transformers_picks(tmp_path):
    """transformers 5.24 refuses sdpa for Gemma-2 (the old forced default failed to load);
    padded and unset, the backend gets whatever transformers itself picks for the model."""
    from transformers import AutoModelForSequenceClassification

    path = build_tiny_text_rm(tmp_path / "gemma2", architecture="gemma2")
    own_pick = AutoModelForSequenceClassification.from_pretrained(path).config
    model = loader_for("text-rm", {"path": str(path), "packing": False})()
    assert model.model.config._attn_implementation == own_pick._attn_implementation
    assert_batch_independent(model, text_samples()[:4])
    chosen = loader_for("text-rm", {"path": str(path), "attn_implementation": "eager"})()
    assert chosen.model.config._attn_implementation == "eager"
    with pytest.raises(ValueError, match="scaled_dot_product_attention"):
        loader_for("text-rm", {"path": str(path), "attn_implementation": "sdpa"})()
