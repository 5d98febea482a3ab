"""devices: one backend copy per device, each told its device, batches to the free copy."""

from __future__ import annotations

import math
import threading

import pytest
import yaml

from models.device_pool import DevicePool, check_devices, resolve_devices
from models.registry import CopyLoader, loader_for
from pipelines.config import ConfigError, load_config
from tests.helpers import conversation
from transforms.core.record import Sample

SLOW_MODEL = "tests.helpers:SlowLoggedModel"


def _samples(n):
    return [Sample(f"s{i}", "src", conversation("Q?", "Some answer.", "")) for i in range(n)]


@pytest.mark.parametrize(
    "available, count, expected",
    [
        (True, 2, ["cuda:0", "cuda:1"]),
        (True, 1, ["cuda:0"]),
        (False, 0, ["cpu"]),
        # A driver that counts devices CUDA cannot use: the CPU, not a device that fails later.
        (False, 2, ["cpu"]),
    ],
)
def test_auto_is_every_visible_gpu_else_the_cpu(monkeypatch, available, count, expected):
    # The machines here have no GPU (or one): torch's own answers stand in for the others.
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    assert resolve_devices("auto") == expected


@pytest.mark.parametrize(
    "spec, message",
    [([], "auto"), (["gpu0"], "not device names"), (["cuda:0", "cuda:0"], "twice")],
)
def test_bad_device_lists_are_refused_with_the_reason(spec, message):
    with pytest.raises(ValueError, match=message):
        check_devices(spec)


def test_a_gpu_the_machine_does_not_have_is_named():
    import torch

    missing = f"cuda:{torch.cuda.device_count() + 3}"
    with pytest.raises(ValueError, match=f"{missing} is not visible"):
        resolve_devices([missing])


def test_each_copy_is_built_with_its_device():
    pool = DevicePool.load(CopyLoader(SLOW_MODEL, {"seconds": 0}), ["cpu:0", "cpu:1"])
    assert pool.devices() == ["cpu:0", "cpu:1"] and pool.device_count() == 2
    assert pool.copy_on("cpu:0").device == "cpu:0"
    assert pool.copy_on("cpu:1").device == "cpu:1"
    assert pool.copy_on("cpu:0") is not pool.copy_on("cpu:1")


def test_a_batch_goes_to_the_copy_that_is_free():
    pool = DevicePool.load(CopyLoader(SLOW_MODEL, {"seconds": 0.5}), ["cpu:0", "cpu:1"])
    scored = []
    threads = [
        threading.Thread(target=lambda: scored.append(pool.score_batch(_samples(2))))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(batch.device for batch in scored) == ["cpu:0", "cpu:1"]
    assert all(o.score is not None for batch in scored for o in batch.outcomes)
    assert all(batch.busy_seconds > 0 for batch in scored)


def test_a_factory_without_options_cannot_be_placed_on_several_devices():
    with pytest.raises(ValueError, match="takes no options"):
        DevicePool.load(CopyLoader("tests.helpers:AnswerLengthModel", {}), ["cpu:0", "cpu:1"])
    pool = DevicePool.load(CopyLoader("tests.helpers:AnswerLengthModel", {}), ["cpu"])
    assert pool.score(_samples(1)) == [pytest.approx(math.log(2) - 1)]  # "Some answer."


def test_the_demo_model_takes_a_device():
    assert loader_for("demo", {"device": "cpu"})().device.type == "cpu"


def _config_file(tmp_path, **extra):
    raw = {"name": "x", "root": "r", "output": "o", "sources": [{"name": "s", "manifests": "m"}]}
    raw.update(extra)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_devices_and_decode_keys_load_from_yaml(tmp_path):
    config = load_config(
        _config_file(tmp_path, devices=["cuda:0", "cuda:1"], decode={"prefetch_mb": 512})
    )
    assert config.devices == ("cuda:0", "cuda:1") and config.decode.prefetch_mb == 512
    assert load_config(_config_file(tmp_path)).devices == "auto"


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"devices": ["gpu zero"]}, "device names"),
        ({"decode": {"prefetch_mb": 0}}, "prefetch_mb"),
        ({"decode": {"workers": 0}}, "decode.workers"),
        (
            {"decode": {"prefetch": 5}},
            "decode: unknown key\\(s\\) .prefetch. \\(did you mean .prefetch_mb.\\?\\)",
        ),
        ({"devices": ["cuda:0"], "model_options": {"device": "cuda:1"}}, "keep devices"),
    ],
)
def test_bad_device_and_decode_settings_fail_before_the_run(tmp_path, extra, message):
    with pytest.raises(ConfigError, match=message):
        load_config(_config_file(tmp_path, **extra))
