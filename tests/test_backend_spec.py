"""Backends are described by specs: options checked before the run, one home for batching and
decode settings, token estimates from the backend's own spec (never a borrowed one)."""

from __future__ import annotations

import pytest

from models.demo.spec import DemoTokenEstimator
from models.loading import ModelConfigError
from models.registry import preflight_models, spec_for, token_estimator_for
from pipelines.config import ConfigError
from pipelines.jobs.clean import run
from tests.helpers import AnswerWords, conversation, tiny_config
from transforms.core.record import IMAGE, MediaRef, Sample


def test_batch_size_and_a_token_budget_together_are_refused(tiny_dataset, tmp_path):
    with pytest.raises(ConfigError, match="batch_size and max_batch_tokens both set"):
        tiny_config(tiny_dataset, tmp_path, batch_size=8, max_batch_tokens=4096)


@pytest.mark.parametrize(
    "model, options, home",
    [
        ("vlm-value-head", {"path": "/x", "video_fps": 2.0}, "decode.video_fps"),
        ("vlm-value-head", {"path": "/x", "video_max_frames": 8}, "decode.max_frames"),
        ("text-rm", {"path": "/x", "max_batch_tokens": 100}, "max_batch_tokens"),
        ("ixc25", {"path": "/x", "trust_remote_code": True}, "trust_remote_code"),
    ],
)
def test_run_settings_under_model_options_are_refused_naming_their_home(
    tiny_dataset, tmp_path, model, options, home
):
    config = tiny_config(tiny_dataset, tmp_path, model=model, model_options=options)
    with pytest.raises(ConfigError, match=f"-> {home}"):
        config.backend_options()


def test_decode_settings_reach_the_backend_from_the_decode_section(tiny_dataset, tmp_path):
    from pipelines.config import DecodeConfig

    config = tiny_config(
        tiny_dataset,
        tmp_path,
        model="vlm-value-head",
        model_options={"path": "/x"},
        decode=DecodeConfig(video_fps=2.0, max_frames=8),
        max_batch_tokens=5000,
    )
    options = config.backend_options()
    assert (options["video_fps"], options["video_max_frames"]) == (2.0, 8)
    assert options["max_batch_tokens"] == 5000 and options["max_batch_size"] is None


def test_the_demo_model_has_its_own_estimate_not_qwens():
    estimate = token_estimator_for("demo")
    assert isinstance(estimate, DemoTokenEstimator)
    text = Sample("t", "s", conversation("What is it?", "A red square.", ""))
    huge = Sample("i", "s", text.conversations, [MediaRef(IMAGE, "a.jpg", None)])
    # The demo network reads two small thumbnails whatever the picture: the image adds a
    # fixed cost, and the words are counted as the network reads them.
    assert estimate(text) == 6 and estimate(huge) == estimate(text) + 128


@pytest.mark.slow
def test_a_plugin_spec_checks_its_options_and_brings_its_estimator(tiny_dataset, tmp_path):
    name = "tests.helpers:ANSWER_LENGTH_SPEC"
    assert spec_for(name).name == "answer-length"
    assert isinstance(token_estimator_for(name), AnswerWords)
    with pytest.raises(ModelConfigError, match="unknown model option.*flavor"):
        preflight_models(
            tiny_config(tiny_dataset, tmp_path, model=name, model_options={"flavor": "x"})
        )
    summary = run(tiny_config(tiny_dataset, tmp_path / "out", model=name, max_batch_tokens=64))
    assert summary["batches"]["mean_tokens"] > 0  # estimated by the plug-in's own estimator


def test_a_plain_factory_cannot_batch_by_tokens(tiny_dataset, tmp_path):
    config = tiny_config(tiny_dataset, tmp_path, max_batch_tokens=64)  # model: a plain factory
    with pytest.raises(ModelConfigError, match="no token estimator"):
        preflight_models(config)  # before the pipeline starts
