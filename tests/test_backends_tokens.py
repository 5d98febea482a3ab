"""Token estimates, micro-batching, chat conversion and the registry's option handling."""

from __future__ import annotations

import io
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image, ImageFont

from models.chat import replace_placeholders, strip_placeholders, to_chat, to_multimodal_chat
from models.loading import ModelConfigError
from models.micro_batches import micro_batches, score_in_micro_batches
from models.registry import loader_for, token_estimator_for
from models.tokens import (
    IxcTokenEstimator,
    QwenTokenEstimator,
    TextTokenEstimator,
    ixc_crop_grid,
    ixc_image_tokens,
    ixc_video_frames,
    ixc_video_tokens,
    qwen_media_tokens,
)
from tests.helpers import conversation
from transforms.core.record import MediaRef, Sample


def jpeg_of_size(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "red").save(buffer, format="JPEG")
    return buffer.getvalue()


def sample(answer="a red square", media=(), decoded=None, question="<image>\nwhat?"):
    conv = [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]
    return Sample("s", "src", conv, list(media), decoded=decoded)


def test_ixc_crop_formula_anchors_and_hd_num_bound():
    assert ixc_image_tokens(300, 400) == 841  # one crop
    assert ixc_image_tokens(2000, 2000) == 4081  # the 3x3 maximum at hd_num=9
    assert ixc_crop_grid(560, 1120) == (1, 2)
    assert ixc_crop_grid(1120, 560) == (2, 1)  # tall images keep their long side as rows
    for height, width in [(100, 5000), (3000, 1000), (1024, 768), (4000, 4000), (50, 60)]:
        for hd_num in (1, 4, 6, 9, 16):
            rows, cols = ixc_crop_grid(height, width, hd_num)
            assert 1 <= rows * cols <= hd_num
            expected = (rows * cols + 1) * 400 + 1 + (rows + 1) * 20
            assert ixc_image_tokens(height, width, hd_num) == expected


SIZES = [(60, 900), (700, 90), (300, 400), (2000, 2000), (561, 1120), (1119, 560), (33, 34)]


@pytest.mark.parametrize(("height", "width"), SIZES)
def test_ixc_crop_grid_matches_the_model_transform(height, width):
    """Against the stand-in of the model's image transform (tests/ixc_standin)."""
    from tests.ixc_standin.ixc_utils import Image_transform

    for hd_num in (6, 9):
        out_w, out_h = Image_transform(Image.new("RGB", (width, height)), hd_num).size
        assert ixc_crop_grid(height, width, hd_num) == (out_h // 560, out_w // 560)


@pytest.mark.parametrize(
    ("frames", "height", "width"),
    [(1, 48, 64), (6, 240, 320), (32, 360, 640), (4, 320, 180), (3, 100, 100)],
)
def test_ixc_video_tokens_match_the_model_frame_strip(frames, height, width):
    from tests.ixc_standin.ixc_utils import Video_transform, frame2img

    font = ImageFont.load_default(size=40)
    strip = frame2img([Image.new("RGB", (width, height))] * frames, font)
    out_w, out_h = Video_transform(strip).size
    rows, cols = out_h // 560, out_w // 560
    assert ixc_video_tokens(frames, height, width) == (rows * cols + 1) * 400 + 1 + (rows + 1) * 20


def test_ixc_video_frames_are_one_per_second_up_to_32():
    assert ixc_video_frames(16, 8.0) == 2
    assert ixc_video_frames(17, 8.0) == 3
    assert ixc_video_frames(30 * 120, 29.97) == 32
    assert ixc_video_frames(5, 0.4) == 5  # under 1 fps: every frame


def test_ixc_estimate_reads_the_original_header_and_counts_video_and_text():
    big = MediaRef("image", "a.jpg", jpeg_of_size(2000, 2000))
    # The decoded copy was shrunk to 1024 px, but IXC reads the original file.
    small = np.zeros((1024, 1024, 3), np.uint8)
    estimate = IxcTokenEstimator(hd_num=9)
    text = math.ceil(len("what?a red square") / 4) + 3 + 2 * 5  # text, prompt, two turns
    assert estimate(sample(media=[big], decoded=[small])) == 4081 + text
    video = MediaRef("video", "v.mp4", b"x")
    assert estimate(sample(media=[video])) == 9000 + text  # not decoded: the option's guess
    frames = np.zeros((40, 360, 640, 3), np.uint8)
    assert (
        estimate(sample(media=[video], decoded=[frames])) == ixc_video_tokens(32, 360, 640) + text
    )
    assert IxcTokenEstimator(hd_num=1)(sample(media=[big])) == 841 + text
    # Two media: the model lowers hd_num to 6 (a 2x3 grid for this square image).
    two = estimate(sample(media=[big, big]))
    assert two == 2 * ixc_image_tokens(2000, 2000, 6) + text


def test_qwen_estimate_is_resized_pixels_over_28_squared():
    assert qwen_media_tokens(1, 280, 560, 56 * 56, 28 * 28 * 1280) == 10 * 20 + 2
    # Above max_pixels the image is scaled down to fit.
    assert qwen_media_tokens(1, 5000, 5000, 56 * 56, 28 * 28 * 100) <= 100 + 2
    # Video: one token grid per pair of frames.
    assert qwen_media_tokens(8, 280, 280, 56 * 56, 28 * 28 * 1280) == 4 * 100 + 2
    estimate = QwenTokenEstimator(template_tokens=0)
    pixels = np.zeros((280, 560, 3), np.uint8)
    image = MediaRef("image", "a.png", b"")
    assert estimate(sample(media=[image], decoded=[pixels])) == 202 + math.ceil(17 / 4)
    # No decoded pixels: the header gives the size.
    header_only = MediaRef("image", "a.jpg", jpeg_of_size(560, 280))
    assert estimate(sample(media=[header_only])) == 202 + math.ceil(17 / 4)


def test_text_estimate_is_chars_over_four():
    assert TextTokenEstimator(template_tokens=0)(sample(answer="x" * 40, question="")) == 10
    assert token_estimator_for("text-rm")(sample(answer="x" * 40, question="")) == 20


def test_micro_batches_sort_by_cost_fit_the_budget_and_cover_everything():
    costs = [500, 10, 300, 20, 5000, 40, 250, 30]
    groups = micro_batches(costs, max_tokens=1000, max_size=3)
    assert sorted(i for g in groups for i in g) == list(range(len(costs)))
    flat = [costs[i] for g in groups for i in g]
    assert flat == sorted(costs)
    for group in groups:
        assert len(group) <= 3
        assert len(group) == 1 or max(costs[i] for i in group) * len(group) <= 1000
    assert micro_batches(costs, None) == [list(range(len(costs)))]


def test_score_in_micro_batches_returns_scores_in_input_order():
    samples = [sample(answer="w " * n) for n in (9, 1, 5, 3)]
    calls = []

    def score_batch(batch):
        calls.append(len(batch))
        return [float(len(s.conversations[1]["value"])) for s in batch]

    costs = [TextTokenEstimator()(s) for s in samples]
    scores = score_in_micro_batches(samples, costs, list, score_batch, 20, None)
    assert scores == [18.0, 2.0, 10.0, 6.0]
    assert len(calls) > 1


def _answer_length(batch):
    return [float(len(s.conversations[1]["value"])) for s in batch]


def test_the_next_micro_batch_is_prepared_while_the_current_one_runs():
    samples = [sample(answer="w " * n) for n in (9, 1, 5, 3)]
    costs = [TextTokenEstimator()(s) for s in samples]
    prepared, threads = [], set()
    second_prepared = threading.Event()

    def prepare(batch):
        prepared.append(batch)
        threads.add(threading.current_thread().name)
        if len(prepared) == 2:
            second_prepared.set()
        return batch

    def forward(batch):
        if batch is prepared[0]:
            # Sequential preparation would only start the second group after this returns.
            assert second_prepared.wait(5), "the next group was not prepared meanwhile"
        return _answer_length(batch)

    with ThreadPoolExecutor(1, thread_name_prefix="ahead") as ahead:
        scores = score_in_micro_batches(samples, costs, prepare, forward, 20, None, ahead)
    assert scores == [18.0, 2.0, 10.0, 6.0]
    assert len(prepared) > 2 and all(name.startswith("ahead") for name in threads)


def test_a_failed_forward_waits_for_the_group_being_prepared():
    samples = [sample(answer="w " * n) for n in (9, 1, 5, 3)]
    costs = [TextTokenEstimator()(s) for s in samples]
    finished = []

    def prepare(batch):
        if finished:  # every group after the first takes a while to prepare
            time.sleep(0.3)
        finished.append(len(batch))
        return batch

    def forward(batch):
        raise RuntimeError("out of memory")

    with ThreadPoolExecutor(1) as ahead:
        with pytest.raises(RuntimeError, match="out of memory"):
            score_in_micro_batches(samples, costs, prepare, forward, 20, None, ahead)
        # Nothing still runs on the preparing thread once score() has given up.
        assert len(finished) == 2


def test_chat_conversion_strips_or_replaces_placeholders_and_maps_roles():
    assert strip_placeholders("<image>\n<video>\nWhat is it?") == "What is it?"
    assert replace_placeholders("<image>\n<image> and\nWhat?", "<M>") == "<M>\n<M>and\nWhat?"
    conv = [
        {"from": "system", "value": "Be brief."},
        {"from": "human", "value": "<image>\nWhat?"},
        {"from": "gpt", "value": "A cat."},
    ]
    s = Sample("s", "src", conv, [MediaRef("image", "a.jpg")])
    assert to_chat(s) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What?"},
        {"role": "assistant", "content": "A cat."},
    ]
    assert to_chat(s, media_marker="<M>")[1] == {"role": "user", "content": "<M>\nWhat?"}
    messages = to_multimodal_chat(s)
    assert messages[1]["content"] == [{"type": "image"}, {"type": "text", "text": "What?"}]
    with pytest.raises(ValueError, match="unknown conversation role"):
        to_chat(Sample("x", "src", [{"from": "robot", "value": "hi"}]))


def test_registry_binds_options_and_rejects_unknown_ones():
    with pytest.raises(ModelConfigError, match="known options"):
        loader_for("text-rm", {"path": "/x", "batchsize": 4})()
    with pytest.raises(ModelConfigError, match="takes no options"):
        loader_for("tests.helpers:AnswerLengthModel", {"path": "/x"})
    # The bundled model loads with no options and scores.
    demo = loader_for("demo")()
    (reward,) = demo.score([Sample("x", "src", conversation("Say hi.", "Hello there.", ""))])
    assert isinstance(reward.score, float) and math.isfinite(reward.score)
    assert reward.turn_scores == (reward.score,)  # one turn, read by the same pass
    import pickle

    pickle.dumps(loader_for("vlm-value-head", {"path": "/x"}))
    pickle.dumps(token_estimator_for("ixc25", {"hd_num": 4}))
    assert token_estimator_for("ixc25", {"hd_num": 4}).hd_num == 4
