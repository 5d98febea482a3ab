"""The ixc25 backend against a stand-in of IXC-2.5-Reward's remote code (tests/ixc_standin),
laid out as the real checkpoint (transformers 4.33 tensor names, config as shipped, a separate
CLIP folder, a font) and loaded offline through transformers' dynamic-module utilities."""

from __future__ import annotations

import io
import json
import logging
import os
import random
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from models.base import SampleTooLong
from models.handler import RewardModelHandler
from models.ixc25.backend import RemoteCodeNotAllowed
from models.ixc25.inputs import IMAGE_HERE, ixc_chat
from models.ixc25.model import normalise_scores
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
    """The default engine (batched)."""
    return loader_for("ixc25", options(parts))()


@pytest.fixture(scope="module")
def upstream(parts):
    """The checkpoint's own get_scores (engine: upstream)."""
    return loader_for("ixc25", options(parts, engine="upstream"))()


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


def saved_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    saved = {}
    for shard in sorted(path.glob("model-*.safetensors")):
        saved.update(load_file(shard))
    return saved


def as_transformers_5(name: str) -> str:
    return name.replace("vit.vision_tower.vision_model.", "vit.vision_tower.", 1)


# -- the stand-in is laid out and behaves as the real checkpoint ------------------------------
def test_checkpoint_and_clip_folder_carry_the_names_transformers_4_saved(parts):
    from safetensors import safe_open

    index = json.loads((parts["path"] / "model.safetensors.index.json").read_text())
    tower = [name for name in index["weight_map"] if name.startswith("vit.")]
    assert len(tower) == 23  # one CLIP layer: the count the real-code run reported
    assert all(name.startswith("vit.vision_tower.vision_model.") for name in tower)
    with safe_open(str(parts["clip"] / "model.safetensors"), "pt") as clip:
        assert all(name.startswith("vision_model.") for name in clip.keys())
    shipped = json.loads((parts["path"] / "config.json").read_text())
    assert shipped["attn_implementation"] == "flash_attention_2"
    assert shipped["max_length"] == 16384 and shipped["transformers_version"] == "4.33.2"
    assert shipped["rope_scaling"] == {"factor": 2.0, "type": "dynamic"}
    tokenizer = json.loads((parts["path"] / "tokenizer_config.json").read_text())
    assert tokenizer["auto_map"]["AutoTokenizer"][0] == "tokenization_internlm2.InternLM2Tokenizer"


def test_standin_fails_to_load_the_way_upstream_does_under_transformers_5(parts, offline, model):
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
    # Its shards copied in as saved: every tensor of the vision tower is unexpected.
    result = model.model.load_state_dict(saved_tensors(parts["path"]), strict=False)
    assert len(result.unexpected_keys) == 23
    assert all(k.startswith("vit.vision_tower.vision_model.") for k in result.unexpected_keys)
    assert sorted(result.missing_keys) == sorted(map(as_transformers_5, result.unexpected_keys))


def test_standin_get_scores_quirks(upstream, parts):
    raw = upstream.model
    one = [[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]]
    assert isinstance(raw.get_scores(one, [[]]), float)  # squeezed: a bare float for one chat
    with pytest.raises(NotImplementedError, match="role"):
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
    with caplog.at_level(logging.WARNING, logger="models.ixc25.loading"):
        model = loader_for("ixc25", options(parts))()
    assert "attention sdpa" in caplog.text and "flash_attention_2" in caplog.text
    raw = model.model
    assert raw.config.attn_implementation == "sdpa"
    assert {type(layer.attention).__name__ for layer in raw.model.layers} == {
        "InternLM2SdpaAttention"
    }
    assert raw.max_length == 16384  # filled from config.json
    # The checkpoint's own slow sentencepiece tokenizer: BOS first, turn markers one id each.
    assert type(model.tokenizer).__name__ == "InternLM2Tokenizer"
    ids = model.tokenizer("[UNUSED_TOKEN_146]user\nhi</s>[UNUSED_TOKEN_130]").input_ids
    assert ids[0] == model.tokenizer.bos_token_id and ids[-2] == model.tokenizer.eos_token_id
    assert ids[1] == model.tokenizer.convert_tokens_to_ids("[UNUSED_TOKEN_146]")
    assert raw.config.use_cache is False  # scoring keeps no key/value cache
    saved = {as_transformers_5(k): v for k, v in saved_tensors(parts["path"]).items()}
    loaded = raw.state_dict()
    assert set(loaded) == set(saved)
    assert all(torch.equal(loaded[k], saved[k]) for k in saved)
    # The tower's weights are the checkpoint's, not the clip folder's it was built from.
    from safetensors.torch import load_file

    clip = load_file(parts["clip"] / "model.safetensors")
    name = "vision_model.encoder.layers.0.mlp.fc1.weight"
    assert not torch.equal(clip[name], loaded["vit.vision_tower.encoder.layers.0.mlp.fc1.weight"])


def test_a_checkpoint_saved_with_transformers_5_names_loads_too(parts, model, tmp_path):
    from safetensors.torch import save_file

    copy = tmp_path / "renamed"
    shutil.copytree(parts["path"], copy)
    index_file = copy / "model.safetensors.index.json"
    index = json.loads(index_file.read_text())
    for shard in sorted(copy.glob("model-*.safetensors")):
        renamed = {as_transformers_5(k): v for k, v in saved_tensors_of(shard).items()}
        save_file(renamed, str(shard), metadata={"format": "pt"})
    index["weight_map"] = {as_transformers_5(k): v for k, v in index["weight_map"].items()}
    index_file.write_text(json.dumps(index))
    chosen = options(parts, path=str(copy))
    preflight("ixc25", chosen)
    assert loader_for("ixc25", chosen)().score(samples()[:2]) == pytest.approx(
        model.score(samples()[:2]), abs=1e-6
    )


def saved_tensors_of(shard: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(shard)


@pytest.fixture(scope="module")
def misnamed(parts, tmp_path_factory) -> Path:
    """The checkpoint with its vision tower under a prefix neither transformers knows."""
    from safetensors.torch import save_file

    copy = tmp_path_factory.mktemp("misnamed") / "reward"
    shutil.copytree(parts["path"], copy)
    index_file = copy / "model.safetensors.index.json"
    index = json.loads(index_file.read_text())

    def rename(name: str) -> str:
        return name.replace(".vision_model.", ".visual_model.")

    for shard in sorted(copy.glob("model-*.safetensors")):
        tensors = {rename(k): v for k, v in saved_tensors_of(shard).items()}
        save_file(tensors, str(shard), metadata={"format": "pt"})
    index["weight_map"] = {rename(k): v for k, v in index["weight_map"].items()}
    index_file.write_text(json.dumps(index))
    return copy


def test_names_that_still_differ_are_refused_naming_the_prefix(parts, misnamed):
    chosen = options(parts, path=str(misnamed))
    expected = (
        "'vit.vision_tower.visual_model.' in the checkpoint is 'vit.vision_tower.' in the model "
        "(23 tensors)"
    )
    for attempt in (lambda: preflight("ixc25", chosen), loader_for("ixc25", chosen)):
        with pytest.raises(ModelConfigError) as error:
            attempt()
        assert expected in str(error.value) and "\n" not in str(error.value)


def test_misnamed_weights_stop_clean_before_beam_and_doctor_never_says_ready(
    parts, misnamed, tiny_dataset, tmp_path, capsys
):
    import yaml

    from pipelines.cli import main

    config = tmp_path / "run.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": "tiny",
                "root": str(tiny_dataset),
                "output": str(tmp_path / "unused"),
                "model": "ixc25",
                "model_options": {
                    k: v
                    for k, v in options(parts, path=str(misnamed)).items()
                    if k != "trust_remote_code"
                },
                "trust_remote_code": True,
                "threshold": -2.0,
                "sources": [{"name": "images", "manifests": "images.json"}],
            }
        )
    )
    code = main(["clean", "--config", str(config), "--output", str(tmp_path / "out")])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and not (tmp_path / "out").exists()
    assert len(err) == 1 and "visual_model" in err[0], err
    assert main(["doctor", "--config", str(config)]) == 1
    printed = capsys.readouterr().out
    assert f"{config} (ixc25): cannot run here" in printed and "visual_model" in printed
    assert "ready" not in printed.split(f"{config} (ixc25):")[1].splitlines()[0]


def test_a_package_the_code_imports_that_does_not_import_is_refused(parts, monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # import torchvision -> ImportError
    with pytest.raises(ModelConfigError) as error:
        preflight("ixc25", options(parts))
    message = str(error.value)
    assert re.search(r"torchvision \((ModuleNotFound|Import)Error", message), message
    assert "make install" in message
    assert "einops" not in message and "\n" not in message


@pytest.mark.parametrize("engine", ["batched", "upstream"])
def test_bf16_on_the_cpu_scores_as_fp32_does(parts, model, engine):
    bf16 = loader_for("ixc25", options(parts, dtype="bf16", device="cpu", engine=engine))()
    assert {p.dtype for p in bf16.model.parameters()} == {torch.bfloat16}
    batch = samples()[:4]
    assert bf16.score(batch) == pytest.approx(model.score(batch), abs=0.05)


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


def test_engine_and_attention_options_are_checked(parts):
    for key, value in (("engine", "fast"), ("attention", "flash")):
        with pytest.raises(ModelConfigError, match=f"{key} must be one of"):
            preflight("ixc25", options(parts, **{key: value}))


# -- attention --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def eager(parts):
    return loader_for("ixc25", options(parts, attention="eager", engine="upstream"))()


def test_sdpa_scores_equal_the_checkpoints_eager_attention(upstream, eager):
    assert eager.model.config.attn_implementation == "eager"
    batch = samples()  # one padded forward: every length from text-only to the video
    assert upstream.score(batch) == pytest.approx(eager.score(batch), abs=ATOL)


def test_sdpa_equals_eager_under_any_padding_and_keeps_no_square_mask(upstream, eager):
    """Left padding and holes take the dense-mask path; right padding plain causal."""
    language = upstream.model.model
    torch.manual_seed(0)
    embeds = torch.randn(3, 12, language.config.hidden_size)
    masks = {
        "right": torch.tensor([[1] * 12, [1] * 7 + [0] * 5, [1] * 3 + [0] * 9]),
        "left": torch.tensor([[1] * 12, [0] * 5 + [1] * 7, [0] * 9 + [1] * 3]),
        "holes": torch.tensor([[1] * 12, [1, 0] * 6, [0, 1, 1] * 4]),
    }
    im_mask = torch.zeros(3, 12, dtype=torch.bool)
    im_mask[:, 2:6] = True
    for name, mask in masks.items():
        with torch.no_grad():
            got = language(inputs_embeds=embeds, attention_mask=mask, im_mask=im_mask)[0]
            want = eager.model.model(inputs_embeds=embeds, attention_mask=mask, im_mask=im_mask)[0]
        real = mask.bool()
        assert torch.allclose(got[real], want[real], atol=ATOL), name
        # The 2-D padding mask reaches the attention: no batch x L x L mask is built for sdpa.
        prepared = language._prepare_decoder_attention_mask(mask, (3, 12), embeds, 0)
        assert prepared is mask


def test_right_padded_batches_run_plain_causal_attention(model, monkeypatch):
    calls = []
    original = torch.nn.functional.scaled_dot_product_attention

    def recording(*args, **kwargs):
        calls.append((kwargs.get("attn_mask"), kwargs.get("is_causal")))
        return original(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", recording)
    model.score(samples()[4:6])
    language_calls = calls[-model.model.config.num_hidden_layers :]
    assert language_calls and all(mask is None and causal for mask, causal in language_calls)


# -- the batched engine -----------------------------------------------------------------------
CASES = {
    "one image": ["wide", "tall", "system"],
    "several images": ["two", "three"],
    "a video": ["video"],
    "text only": ["text"],
}


@pytest.fixture(scope="module")
def batched_scores(model) -> dict[str, float]:
    """Every sample scored in one batch of the batched engine (its micro-batches as
    forward_tokens cuts them)."""
    batch = samples()
    return dict(zip([s.id for s in batch], model.score(batch), strict=True))


@pytest.mark.parametrize("case", list(CASES))
def test_batched_engine_equals_get_scores_per_sample(batched_scores, upstream, case):
    by_id = {s.id: s for s in samples()}
    for sample_id in CASES[case]:
        alone = upstream.score([by_id[sample_id]])[0]
        assert batched_scores[sample_id] == pytest.approx(alone, abs=ATOL), sample_id


def test_batched_engine_is_the_default_and_encodes_every_medium_in_one_vision_pass(
    model, monkeypatch
):
    assert type(model).__name__ == "Ixc25BatchedModel"
    calls = []
    original = model.model.vit.forward

    def recording(images, glb, sub):
        calls.append(len(images))
        return original(images, glb, sub)

    forwards = []
    original_forward = model._forward

    def counting(batch):
        forwards.append(len(batch.sequences))
        return original_forward(batch)

    monkeypatch.setattr(model.model.vit, "forward", recording)
    monkeypatch.setattr(model, "_forward", counting)
    model.score(samples())  # 1 + 1 + 1 + 2 + 3 + 0 + 1 media
    assert sum(calls) == 9 and sum(forwards) == 7
    # One vision pass per micro-batch (each of these holds an image or a video).
    assert len(calls) == len(forwards)


@pytest.mark.parametrize("engine", ["batched", "upstream"])
def test_forward_tokens_bound_every_forward_pass(parts, model, engine):
    bounded = loader_for("ixc25", options(parts, forward_tokens=3000, engine=engine))()
    sizes = []
    original = bounded.model.forward

    def recording(*args, **kwargs):
        embeds = kwargs["inputs_embeds"]
        sizes.append((embeds.shape[0], embeds.shape[0] * embeds.shape[1]))
        return original(*args, **kwargs)

    bounded.model.forward = recording
    batch = samples()
    assert bounded.score(batch) == pytest.approx(model.score(batch), abs=ATOL)
    assert len(sizes) > 1
    assert all(tokens <= 3000 or rows == 1 for rows, tokens in sizes), sizes
    # The run's own budget wins where it is smaller.
    run_budget = loader_for("ixc25", options(parts, max_batch_tokens=2000))()
    assert run_budget.max_batch_tokens == 2000 and model.max_batch_tokens == 16384


def decode_as_the_pipeline_does(data: bytes) -> np.ndarray:
    from transforms.media.decode import decode_image

    return decode_image(data, max_side=1024)


def test_decoded_pixels_stand_in_for_the_file_only_where_they_are_what_the_model_reads():
    from models.ixc25.inputs import image_as_read

    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 255, (30, 40, 3), np.uint8)

    def read(data: bytes, decoded: np.ndarray | None) -> np.ndarray:
        media = [MediaRef("image", "a", data)]
        sample = Sample("s", "s", chat("x", "y"), media, decoded=[decoded])
        return np.asarray(image_as_read(sample, 0))

    plain = image_bytes(pixels)
    # Same size, plain RGB: the decoded array is used (a marked copy shows it was).
    marked = pixels ^ 1
    assert np.array_equal(read(plain, marked), marked)
    # Shrunk to max_side: the file, at full size.
    assert read(plain, pixels[::2, ::2]).shape == (30, 40, 3)
    # An EXIF rotation the decode step applied and the model's reader does not: the file.
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", exif=exif)
    rotated = decode_as_the_pipeline_does(buffer.getvalue())
    assert rotated.shape == (40, 30, 3)
    assert read(buffer.getvalue(), rotated).shape == (30, 40, 3)
    # Transparency the decode step composited on white: the file, alpha dropped as the model does.
    rgba = np.dstack([pixels, np.full((30, 40), 0, np.uint8)])
    buffer = io.BytesIO()
    Image.fromarray(rgba).save(buffer, format="PNG")
    assert np.array_equal(
        read(buffer.getvalue(), decode_as_the_pipeline_does(buffer.getvalue())), pixels
    )
    # No bytes left: the decoded pixels are all there is (and what get_scores is given).
    assert np.array_equal(read(b"", marked), marked)


def test_batched_engine_with_decoded_media_equals_get_scores(model, upstream):
    """As the pipeline hands them over: decoded arrays beside the bytes, some of which the
    decode step changed (EXIF turn, transparency) and some not."""
    rng = np.random.default_rng(2)
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (50, 90, 3), np.uint8)).save(buffer, "JPEG", exif=exif)
    turned = buffer.getvalue()
    transparent = image_bytes(rng.integers(0, 255, (70, 40, 4), np.uint8))
    batch = []
    for name, data in (("turned", turned), ("transparent", transparent)):
        ref = MediaRef("image", f"{name}.png", data)
        batch.append(
            Sample(
                name, "s", chat("what?", name), [ref], decoded=[decode_as_the_pipeline_does(data)]
            )
        )
    plain = samples()[1]
    batch.append(plain.replace(decoded=[decode_as_the_pipeline_does(plain.media[0].data)]))
    got = model.score(batch)
    for sample, score in zip(batch, got, strict=True):
        assert score == pytest.approx(upstream.score([sample])[0], abs=ATOL), sample.id


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


@pytest.fixture()
def encoded(upstream, monkeypatch) -> list:
    """What each apply_chat_template call of the upstream engine saw: (its media, its
    length before any cut, the conversation)."""
    seen = []
    raw = upstream.model
    original = raw.apply_chat_template

    def recording(conversation, image, *args, **kwargs):
        embeds, im_mask, length = original(conversation, image, *args, **kwargs)
        seen.append((list(image), length, conversation))
        return embeds, im_mask, length

    monkeypatch.setattr(raw, "apply_chat_template", recording)
    return seen


def test_each_medium_gets_a_marker_and_every_one_is_encoded(model, upstream, encoded):
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
    upstream.score([three])
    assert len(encoded[-1][0]) == 3


def test_marker_count_is_checked_against_the_media(model):
    odd = Sample(
        "odd", "s", chat(f"{IMAGE_HERE} and <image>\n<image>\nhm", "x"), samples()[3].media
    )
    with pytest.raises(ValueError, match="3 <ImageHere> markers in the text for 2 media"):
        model.score([odd])
    text_only = Sample("t", "s", chat(f"what is {IMAGE_HERE}", "x"))
    with pytest.raises(ValueError, match="1 <ImageHere> markers in the text for 0 media"):
        ixc_chat(text_only)


def test_system_turns_are_real_system_turns(upstream, monkeypatch):
    seen = {}
    original = upstream.model.get_scores

    def recording(chats, paths, **kwargs):
        seen["chats"] = chats
        return original(chats, paths, **kwargs)

    monkeypatch.setattr(upstream.model, "get_scores", recording)
    upstream.score([samples()[6]])
    assert seen["chats"][0][0] == {"role": "system", "content": "Be brief."}
    assert seen["chats"][0][1] == {"role": "user", "content": "what?"}


def test_token_count_is_exactly_what_the_model_reads(upstream, encoded):
    batch = samples()
    upstream.score(batch)  # in length-sorted micro-batches: match each call to its sample
    length_of = {json.dumps(chat): length for _, length, chat in encoded}
    read = [length_of[json.dumps(ixc_chat(s))] for s in batch]
    assert [upstream.sample_tokens(s) for s in batch] == read
    # The estimate that sizes Beam's batches (no tokenizer, no file reads) is close to it.
    estimate = token_estimator_for("ixc25", {})
    for sample, exact in zip(batch, read, strict=True):
        assert abs(estimate(sample) - exact) <= 0.25 * exact + 20


def test_over_length_samples_are_refused_not_cut(parts):
    short_limit = loader_for("ixc25", options(parts, max_length=1300, engine="upstream"))()
    batch = samples()
    counts = [short_limit.sample_tokens(s) for s in batch]
    too_long = [i for i, c in enumerate(counts) if c > 1300]
    assert too_long and len(too_long) < len(batch)
    with pytest.raises(SampleTooLong):
        short_limit.score([batch[too_long[0]]])
    handler = RewardModelHandler(lambda device: short_limit, "ixc25", devices=["cpu"])
    reached = []
    original = short_limit.model.apply_chat_template

    def recording(conversation, image, *args, **kwargs):
        reached.append(list(image))
        return original(conversation, image, *args, **kwargs)

    short_limit.model.apply_chat_template = recording
    outcomes = [r.inference for r in handler.score_batch(batch, handler.load_model())[0]]
    # The refused samples never reached the model, and each other sample was scored once.
    assert len(reached) == len(batch) - len(too_long)
    del short_limit.model.apply_chat_template
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
    # The batched engine refuses them the same way, before preparing anything.
    batched = loader_for("ixc25", options(parts, max_length=1300))()
    with pytest.raises(SampleTooLong):
        batched.score([batch[too_long[0]]])


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
    model = loader_for("ixc25", options(parts, tmp_dir=str(work), engine="upstream"))()
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


def test_the_readme_names_every_ixc25_option_and_the_measured_memory():
    from models.ixc25.backend import DEFAULTS

    repo = Path(__file__).resolve().parent.parent
    section = (repo / "README.md").read_text().split("### `ixc25`")[1].split("\n### ")[0]
    run_level = {"path", "dtype", "device", "trust_remote_code", "remote_code_allowlist"}
    for option in set(DEFAULTS) - run_level - {"max_batch_tokens", "max_batch_size"}:
        assert f"`{option}`" in section, option
    results = json.loads((repo / "bench" / "results" / "ixc_memory_cpu.json").read_text())
    for dtype in ("fp32", "bf16"):
        peak = results["runs"][dtype]["peak_rss_mib"] / 1024
        assert f"{peak:.1f} GiB in {dtype}" in section, dtype


# -- per-turn scores (per_turn: true) ----------------------------------------------------------
def multi_turn_samples() -> list[Sample]:
    """Three answers ending with one; two answers then a question; two images each placed by
    its own turn's placeholder; one answer."""
    rng = np.random.default_rng(5)

    def image(name):
        return MediaRef("image", name, image_bytes(rng.integers(0, 255, (48, 64, 3), np.uint8)))

    def turns(*values):
        roles = ("human", "gpt")
        return [{"from": roles[i % 2], "value": v} for i, v in enumerate(values)]

    return [
        Sample(
            "three",
            "s",
            turns("<image>\nwhat is it", "a cat", "what colour", "grey", "how many legs", "five"),
            [image("a.png")],
        ),
        Sample("open", "s", turns("say hi", "hello", "say bye", "goodbye", "and again?")),
        Sample(
            "placed",
            "s",
            turns("<image>\nfirst picture?", "a dog", "<image>\nand this one?", "a tree"),
            [image("b.png"), image("c.png")],
        ),
        Sample("one", "s", turns("<image>\nwhat is shown", "a square"), [image("d.png")]),
    ]


def cut_by_hand(sample: Sample, end: int, media: int | None = None) -> Sample:
    kept = sample.media if media is None else sample.media[:media]
    return sample.replace(conversations=sample.conversations[:end], media=kept)


def test_per_turn_scores_each_cut_as_if_it_were_scored_alone(parts, model):
    per_turn = loader_for("ixc25", options(parts, per_turn=True))()
    batch = multi_turn_samples()
    rewards = dict(zip([s.id for s in batch], per_turn.score(batch), strict=True))
    by_id = {s.id: s for s in batch}

    def alone(sample: Sample) -> float:
        return model.score([sample])[0]

    three, opened, placed, one = (by_id[k] for k in ("three", "open", "placed", "one"))
    expected = {
        "three": [alone(cut_by_hand(three, 2)), alone(cut_by_hand(three, 4)), alone(three)],
        "open": [alone(cut_by_hand(opened, 2)), alone(cut_by_hand(opened, 4))],
        # The first cut holds only the image its own turn places.
        "placed": [alone(cut_by_hand(placed, 2, media=1)), alone(placed)],
        "one": [alone(one)],
    }
    for sample_id, turn_scores in expected.items():
        reward = rewards[sample_id]
        assert list(reward.turn_scores) == pytest.approx(turn_scores, abs=ATOL), sample_id
        # The sample's score stays what it is without per_turn: the whole conversation's.
        assert reward.score == pytest.approx(alone(by_id[sample_id]), abs=ATOL), sample_id
    # The conversation that ends with a question: its score is not one of its turns'.
    assert rewards["open"].score != pytest.approx(rewards["open"].turn_scores[-1], abs=ATOL)


@pytest.mark.parametrize("engine", ["batched", "upstream"])
def test_per_turn_work_is_counted_in_the_runs_cost(parts, engine):
    """Every cut's tokens are in the model's work (the run's cost figures), and all cuts of a
    batch share its forward passes."""
    plain = loader_for("ixc25", options(parts, engine=engine))()
    per_turn = loader_for("ixc25", options(parts, engine=engine, per_turn=True))()
    batch = multi_turn_samples()
    plain.score(batch)
    per_turn.score(batch)
    alone, with_turns = plain.work.take(), per_turn.work.take()
    cuts = [
        *(cut_by_hand(batch[0], end) for end in (2, 4)),
        *(cut_by_hand(batch[1], end) for end in (2, 4)),
        cut_by_hand(batch[2], 2, media=1),
    ]
    assert alone.real_tokens == sum(plain.sample_tokens(s) for s in batch)
    assert with_turns.real_tokens == alone.real_tokens + sum(plain.sample_tokens(c) for c in cuts)
    assert with_turns.forward_passes == alone.forward_passes == 1  # 9 samples, one budget


def test_per_turn_must_be_a_boolean(parts):
    with pytest.raises(ModelConfigError, match="per_turn must be true or false"):
        preflight("ixc25", options(parts, per_turn="yes"))
