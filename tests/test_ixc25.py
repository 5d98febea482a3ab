"""The ixc25 backend against a stand-in of IXC-2.5-Reward's remote code (tests/ixc_standin),
loaded offline through transformers' dynamic-module utilities as the real checkpoint is."""

from __future__ import annotations

import io
import logging
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from models.base import RewardModelHandler, SampleTooLong
from models.ixc25 import RemoteCodeNotAllowed, normalise_scores
from models.ixc25_inputs import IMAGE_HERE, ixc_chat
from models.loading import ModelConfigError
from models.registry import loader_for, preflight, token_estimator_for
from tests.helpers import mp4_bytes
from tests.tiny_models import build_tiny_clip, build_tiny_ixc, write_test_font
from transforms.core.record import MediaRef, Sample

ATOL = 1e-4


@pytest.fixture(scope="module")
def parts(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ixc")
    font = write_test_font(root / "fonts" / "SimHei.ttf")
    clip = build_tiny_clip(root / "internlm-xcomposer2d5-clip")
    return {"font": font, "clip": clip, "path": build_tiny_ixc(root / "reward", clip, font)}


def options(parts, **extra) -> dict:
    return {
        "path": str(parts["path"]),
        "trust_remote_code": True,
        "font_path": str(parts["font"]),
        "clip_path": str(parts["clip"]),
        **extra,
    }


@pytest.fixture(scope="module")
def model(parts):
    return loader_for("ixc25", options(parts))()


def image_bytes(pixels: np.ndarray, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def chat(question: str, answer: str, system: str | None = None) -> list[dict]:
    turns = [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]
    return ([{"from": "system", "value": system}] if system else []) + turns


def samples() -> list[Sample]:
    """Seven samples: images of several shapes, a real mp4, two and three images, text only,
    a system turn; every one different, so every score is."""
    rng = np.random.default_rng(0)

    def image(h, w, name, fmt="PNG"):
        return MediaRef("image", name, image_bytes(rng.integers(0, 255, (h, w, 3), np.uint8), fmt))

    return [
        Sample(
            "wide",
            "s",
            chat("<image>\nwhat is shown", "a red square"),
            [image(60, 900, "a.jpg", "JPEG")],
        ),
        Sample("tall", "s", chat("<image>\nis it red", "yes it is"), [image(700, 90, "b.png")]),
        Sample(
            "video",
            "s",
            chat("<video>\ndescribe", "a blue bar moves right"),
            [MediaRef("video", "v/a.mp4", mp4_bytes())],
            # As the decode step leaves it: 16 frames at 8 fps, sampled at 1 fps.
            decoded=[np.zeros((2, 48, 64, 3), np.uint8)],
        ),
        Sample(
            "two",
            "s",
            chat("<image>\n<image>\ncompare them", "the second is darker"),
            [image(56, 56, "c.png"), image(80, 40, "d.png")],
        ),
        Sample(
            "three",
            "s",
            chat("which differs", "the third"),
            [image(40, 40, f"{i}.png") for i in range(3)],
        ),
        Sample("text", "s", chat("say hi", "hello there friend")),
        Sample(
            "system",
            "s",
            chat("<image>\nwhat?", "a cat", system="Be brief."),
            [image(64, 64, "e.png")],
        ),
    ]


# -- the stand-in reproduces upstream's behaviour ---------------------------------------------
def test_standin_fails_to_load_the_way_upstream_does_under_transformers_5(parts, offline):
    from transformers import AutoConfig, AutoModel
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    path = str(parts["path"])
    # Its __init__ downloads the font with urlopen: offline, that is the first thing to fail.
    with pytest.raises(OSError, match="network blocked|urlopen"):
        AutoModel.from_pretrained(path, trust_remote_code=True)
    config = AutoConfig.from_pretrained(path, trust_remote_code=True)
    cls = get_class_from_dynamic_module(config.auto_map["AutoModel"], path)
    utils = __import__(cls.__module__.rpartition(".")[0] + ".ixc_utils", fromlist=["x"])
    original = utils.urlopen
    utils.urlopen = lambda url: open(parts["font"], "rb")
    try:
        # transformers 5 drops max_length from the config; the code reads it.
        assert getattr(config, "max_length", None) is None
        with pytest.raises(AttributeError, match="max_length"):
            AutoModel.from_pretrained(path, trust_remote_code=True)
        # With max_length given, the CLIP tower's from_pretrained meets the meta device.
        config.max_length = 16384
        with pytest.raises(RuntimeError, match="meta device"):
            AutoModel.from_pretrained(path, config=config, trust_remote_code=True)
    finally:
        utils.urlopen = original
    assert config.attn_implementation == "flash_attention_2"


def test_standin_get_scores_quirks(model, parts):
    raw = model.model
    one = [[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]]
    assert isinstance(raw.get_scores(one, [[]]), float)  # squeezed: a bare float for one chat
    with pytest.raises(ValueError, match="role"):
        raw.get_scores([[{"role": "human", "content": "hi"}]], [[]])
    # Without our markers, only the first of two images is used: the second changes nothing.
    sample = samples()[3]
    paths = []
    for i, ref in enumerate(sample.media):
        paths.append(str(parts["path"].parent / f"quirk{i}.png"))
        Path(paths[-1]).write_bytes(ref.data)
    plain = [{"role": "user", "content": "compare them"}, {"role": "assistant", "content": "x"}]
    first = raw.get_scores([plain], [paths])
    Path(paths[1]).write_bytes(image_bytes(np.zeros((80, 40, 3), np.uint8)))
    assert raw.get_scores([plain], [paths]) == pytest.approx(first, abs=1e-7)


# -- loading ----------------------------------------------------------------------------------
def test_loads_offline_with_every_weight_from_the_checkpoint(parts, offline, caplog):
    from safetensors.torch import load_file

    with caplog.at_level(logging.WARNING, logger="models.ixc25_loading"):
        model = loader_for("ixc25", options(parts))()
    assert "attention eager" in caplog.text and "flash_attention_2" in caplog.text
    assert model.model.config.attn_implementation == "eager"
    assert model.model.max_length == 16384  # filled from config.json
    saved = {}
    for shard in sorted(parts["path"].glob("model-*.safetensors")):
        saved.update(load_file(shard))
    loaded = model.model.state_dict()
    assert set(loaded) == set(saved)
    assert all(torch.equal(loaded[k], saved[k]) for k in saved)
    assert any(k.startswith("vit.vision_tower.") for k in saved)


def test_loads_in_the_requested_dtype_vision_tower_included(parts):
    model = loader_for("ixc25", options(parts, dtype="bf16", device="cpu"))()
    assert {p.dtype for p in model.model.parameters()} == {torch.bfloat16}
    scores = model.score(samples()[:2])
    assert all(np.isfinite(scores))


def test_loads_with_font_and_tower_from_the_hugging_face_cache(
    parts, offline, tmp_path, monkeypatch
):
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    for repo, files in (
        ("internlm/internlm-xcomposer2d5-7b", {"SimHei.ttf": parts["font"]}),
        ("internlm/internlm-xcomposer2d5-clip", {p.name: p for p in parts["clip"].iterdir()}),
    ):
        folder = cache / ("models--" + repo.replace("/", "--"))
        (folder / "refs").mkdir(parents=True)
        (folder / "refs" / "main").write_text("abc")
        (folder / "snapshots" / "abc").mkdir(parents=True)
        for name, source in files.items():
            (folder / "snapshots" / "abc" / name).write_bytes(source.read_bytes())
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    bare = {"path": str(parts["path"]), "trust_remote_code": True}
    preflight("ixc25", bare)
    assert len(loader_for("ixc25", bare)().score(samples()[:2])) == 2


@pytest.mark.parametrize(
    ("missing", "named"),
    [("font_path", "SimHei.ttf"), ("clip_path", "internlm/internlm-xcomposer2d5-clip")],
)
def test_offline_without_a_local_copy_fails_before_loading_naming_the_download(
    parts, offline, missing, named
):
    chosen = options(parts)
    del chosen[missing]
    with pytest.raises(ModelConfigError) as error:
        preflight("ixc25", chosen)
    message = str(error.value)
    assert named in message and "hf download" in message and "\n" not in message


def test_remote_code_needs_the_opt_in(parts):
    chosen = options(parts)
    del chosen["trust_remote_code"]
    for attempt in (lambda: preflight("ixc25", chosen), loader_for("ixc25", chosen)):
        with pytest.raises(RemoteCodeNotAllowed) as error:
            attempt()
        assert "--trust-remote-code" in str(error.value)
        assert "remote_code_allowlist" in str(error.value)
    allowed = {**chosen, "remote_code_allowlist": [str(parts["path"])]}
    preflight("ixc25", allowed)
    with pytest.raises(RemoteCodeNotAllowed):
        preflight("ixc25", {**chosen, "remote_code_allowlist": ["/elsewhere"]})


# -- scoring ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_scores_at_batch_sizes_1_2_and_7_stay_with_their_samples(model):
    batch = samples()
    singles = [model.score([s])[0] for s in batch]
    for size in (2, 7):
        chunks = [batch[i : i + size] for i in range(0, len(batch), size)]
        assert [x for c in chunks for x in model.score(c)] == pytest.approx(singles, abs=ATOL)
    order = list(range(len(batch)))
    random.Random(3).shuffle(order)
    assert model.score([batch[i] for i in order]) == pytest.approx(
        [singles[i] for i in order], abs=ATOL
    )
    assert len({round(s, 5) for s in singles}) == len(singles)


@pytest.mark.slow
def test_token_budget_micro_batches_give_the_same_scores(model, parts):
    budgeted = loader_for("ixc25", options(parts, max_batch_tokens=2000))()
    assert budgeted.score(samples()) == pytest.approx(model.score(samples()), abs=ATOL)


def test_each_medium_gets_a_marker_and_every_one_is_encoded(model):
    two, three = samples()[3], samples()[4]
    assert [m["content"].count(IMAGE_HERE) for m in ixc_chat(two)] == [2, 0]
    assert ixc_chat(two)[0]["content"].startswith(f"{IMAGE_HERE}\n{IMAGE_HERE}\ncompare")
    # No placeholders in the text: the markers go first in the first user turn.
    assert ixc_chat(three)[0]["content"] == "\n".join([IMAGE_HERE] * 3 + ["which differs"])
    darker = two.replace(
        media=[
            two.media[0],
            MediaRef("image", "d.png", image_bytes(np.zeros((80, 40, 3), np.uint8))),
        ]
    )
    assert model.score([darker])[0] != pytest.approx(model.score([two])[0], abs=1e-6)
    model.score([three])
    assert len(model.model.seen[-1][0][1]) == 3


def test_marker_count_is_checked_against_the_media(model):
    odd = Sample(
        "odd", "s", chat(f"{IMAGE_HERE} and <image>\n<image>\nhm", "x"), samples()[3].media
    )
    with pytest.raises(ValueError, match="3 <ImageHere> markers in the text for 2 media"):
        model.score([odd])
    text_only = Sample("t", "s", chat(f"what is {IMAGE_HERE}", "x"))
    with pytest.raises(ValueError, match="1 <ImageHere> markers in the text for 0 media"):
        ixc_chat(text_only)


def test_system_turns_are_real_system_turns(model, monkeypatch):
    seen = {}
    original = model.model.get_scores

    def recording(chats, paths, **kwargs):
        seen["chats"] = chats
        return original(chats, paths, **kwargs)

    monkeypatch.setattr(model.model, "get_scores", recording)
    model.score([samples()[6]])
    assert seen["chats"][0][0] == {"role": "system", "content": "Be brief."}
    assert seen["chats"][0][1] == {"role": "user", "content": "what?"}


def test_token_count_is_exactly_what_the_model_reads(model):
    batch = samples()
    model.score(batch)
    read = [length for length, _ in model.model.seen[-1]]
    assert [model.sample_tokens(s) for s in batch] == read
    # The estimate that sizes Beam's batches (no tokenizer, no file reads) is close to it.
    estimate = token_estimator_for("ixc25", {})
    for sample, exact in zip(batch, read, strict=True):
        assert abs(estimate(sample) - exact) <= 0.25 * exact + 20


def test_over_length_samples_are_refused_not_cut(parts):
    short_limit = loader_for("ixc25", options(parts, max_length=1300))()
    batch = samples()
    counts = [short_limit.sample_tokens(s) for s in batch]
    too_long = [i for i, c in enumerate(counts) if c > 1300]
    assert too_long and len(too_long) < len(batch)
    with pytest.raises(SampleTooLong):
        short_limit.score([batch[too_long[0]]])
    handler = RewardModelHandler(lambda device: short_limit, "ixc25", devices=["cpu"])
    short_limit.model.seen.clear()
    outcomes = [r.inference for r in handler.run_inference(batch, handler.load_model())]
    # The refused samples never reached the model, and each other sample was scored once.
    reached = [paths for call in short_limit.model.seen for _, paths in call]
    assert len(reached) == len(batch) - len(too_long)
    for i, outcome in enumerate(outcomes):
        if i in too_long:
            assert outcome.score is None and outcome.reason == "too_long"
            assert f"{counts[i]} tokens" in outcome.error
        else:
            assert outcome.score == pytest.approx(short_limit.score([batch[i]])[0], abs=ATOL)
    # What the model itself would have done: cut the input and read a meaningless score.
    long_sample = batch[too_long[0]]
    cut = _raw_score(short_limit.model, long_sample, max_length=1300)
    whole = _raw_score(short_limit.model, long_sample, max_length=16384)
    assert cut != pytest.approx(whole, abs=1e-6)


def _raw_score(raw_model, sample: Sample, max_length: int) -> float:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for i, ref in enumerate(sample.media):
            paths.append(os.path.join(folder, f"{i}{os.path.splitext(ref.path)[1]}"))
            Path(paths[-1]).write_bytes(ref.data)
        return raw_model.get_scores([ixc_chat(sample)], [paths], max_length=max_length)


def test_scores_are_normalised_to_one_float_per_conversation():
    assert normalise_scores(1.5, 1) == [1.5]
    assert normalise_scores([1.5, -2.0], 2) == [1.5, -2.0]
    assert normalise_scores([[1.5], [-2.0]], 2) == [1.5, -2.0]
    assert normalise_scores(torch.tensor([[0.5]]), 1) == [0.5]
    with pytest.raises(RuntimeError, match="2 scores for 3"):
        normalise_scores([1.0, 2.0], 3)


def test_media_files_are_removed_after_each_call_even_on_failure(parts, tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    model = loader_for("ixc25", options(parts, tmp_dir=str(work)))()
    model.score(samples()[:3])
    assert os.listdir(work) == []
    original = model.model.get_scores

    def failing(chats, paths, **kwargs):
        assert all(os.path.exists(p) for ps in paths for p in ps)
        original(chats, paths, **kwargs)
        raise RuntimeError("CUDA out of memory (simulated)")

    monkeypatch.setattr(model.model, "get_scores", failing)
    with pytest.raises(RuntimeError, match="out of memory"):
        model.score(samples()[:2])
    assert os.listdir(work) == []
