"""Model options are checked before the pipeline starts: one line on stderr, exit 2, no
traceback, no weights loaded (and no output written)."""

from __future__ import annotations

import pytest
import torch
import yaml

from models.loading import CPU_REFUSAL_BYTES, ModelConfigError
from models.registry import preflight
from pipelines.cli import main
from pipelines.runners import beam_args_for, runs_locally
from tests.helpers import TEST_MODEL
from tests.tiny_models import build_tiny_text_rm, write_test_font

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only refusal")


def write_config(tmp_path, root, **model) -> str:
    path = tmp_path / "run.yaml"
    settings = {
        "name": "tiny",
        "root": str(root),
        "output": str(tmp_path / "unused"),
        "model": TEST_MODEL,
        "threshold": -2.0,
        "sources": [{"name": "images", "manifests": "images.json"}],
        **model,
    }
    path.write_text(yaml.safe_dump(settings))
    return str(path)


def run_cli(tmp_path, tiny_dataset, capsys, **model) -> tuple[int, str]:
    config = write_config(tmp_path, tiny_dataset, **model)
    code = main(["clean", "--config", config, "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    return code, err


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("rmclean: bad configuration: ")
    return lines[0]


def test_unknown_model_option_exits_2_with_the_known_ones(tiny_dataset, tmp_path, capsys):
    code, err = run_cli(
        tmp_path, tiny_dataset, capsys, model="text-rm", model_options={"path": "x", "maxlen": 5}
    )
    line = one_line(err)
    assert code == 2 and "unknown model option(s) ['maxlen']" in line and "max_length" in line


def test_text_model_options_are_checked_too(tiny_dataset, tmp_path, capsys):
    code, err = run_cli(
        tmp_path,
        tiny_dataset,
        capsys,
        text_model="text-rm",
        text_model_options={"path": str(tmp_path / "nowhere")},
    )
    assert code == 2 and "text-rm: checkpoint folder" in one_line(err)


def test_missing_remote_code_opt_in_exits_2(tiny_dataset, tmp_path, capsys):
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "config.json").write_text("{}")
    code, err = run_cli(
        tmp_path,
        tiny_dataset,
        capsys,
        model="ixc25",
        model_options={"path": str(tmp_path / "ckpt")},
    )
    assert code == 2 and "--trust-remote-code" in one_line(err)


def test_offline_without_font_or_clip_exits_2_naming_the_downloads(
    tiny_dataset, tmp_path, capsys, offline
):
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "config.json").write_text("{}")
    code, err = run_cli(
        tmp_path,
        tiny_dataset,
        capsys,
        model="ixc25",
        model_options={"path": str(tmp_path / "ckpt")},
        trust_remote_code=True,
    )
    line = one_line(err)
    assert code == 2 and "offline" in line
    assert "hf download internlm/internlm-xcomposer2d5-7b SimHei.ttf" in line
    assert "hf download internlm/internlm-xcomposer2d5-clip" in line
    assert "font_path:" in line and "clip_path:" in line


def test_font_and_clip_paths_must_be_what_they_say(tmp_path, offline):
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "config.json").write_text("{}")
    (tmp_path / "clip").mkdir()
    (tmp_path / "clip" / "config.json").write_text("{}")
    (tmp_path / "notes.ttf").write_text("not a font")
    base = {"path": str(tmp_path / "ckpt"), "trust_remote_code": True}
    with pytest.raises(ModelConfigError, match="not a TrueType font"):
        preflight("ixc25", {**base, "font_path": str(tmp_path / "notes.ttf")})
    with pytest.raises(ModelConfigError, match="font_path .* is not a file"):
        preflight("ixc25", {**base, "font_path": str(tmp_path / "none.ttf")})
    font = str(write_test_font(tmp_path / "SimHei.ttf"))
    with pytest.raises(ModelConfigError, match="holds no config.json"):
        preflight("ixc25", {**base, "font_path": font, "clip_path": str(tmp_path)})
    # Font and tower pass; the folder is a checkpoint in name only.
    with pytest.raises(ModelConfigError, match="no weights in"):
        preflight("ixc25", {**base, "font_path": font, "clip_path": str(tmp_path / "clip")})


def test_missing_checkpoints_name_the_download(tmp_path, offline):
    with pytest.raises(ModelConfigError, match="hf download Skywork/Skywork-VL"):
        preflight("vlm-value-head", {"path": str(tmp_path / "skywork")})
    with pytest.raises(ModelConfigError, match="internlm-xcomposer2d5-7b-reward --local-dir"):
        preflight("ixc25", {"path": str(tmp_path / "ixc"), "trust_remote_code": True})
    with pytest.raises(ModelConfigError, match="cannot load reward model factory"):
        preflight("nowhere.module:factory", {})
    with pytest.raises(ModelConfigError, match="unknown reward model"):
        preflight("ixc26", {})


@no_cuda
def test_big_checkpoint_refuses_the_cpu_unless_asked_for(tmp_path):
    path = build_tiny_text_rm(tmp_path / "rm")
    preflight("text-rm", {"path": str(path)})  # small: the CPU is fine
    with open(path / "model-00002-of-00002.safetensors", "wb") as handle:
        handle.truncate(CPU_REFUSAL_BYTES + 1)  # sparse: no disk used
    with pytest.raises(ModelConfigError) as error:
        preflight("text-rm", {"path": str(path)})
    message = str(error.value)
    assert "no CUDA GPU" in message and "1.0 GB" in message and "\n" not in message
    assert "--index-url https://download.pytorch.org/whl/cu" in message
    assert "device: cpu" in message
    preflight("text-rm", {"path": str(path), "device": "cpu"})
    # Workers elsewhere (Dataflow, Spark) check their own files and device when they load.
    preflight("text-rm", {"path": str(path)}, workers_here=False)
    preflight("text-rm", {"path": "/only/on/the/workers"}, workers_here=False)
    with pytest.raises(ModelConfigError, match="unknown model option"):
        preflight("text-rm", {"path": str(path), "colour": 1}, workers_here=False)
    assert not runs_locally(beam_args_for("dataflow", [], {}))
    assert runs_locally(beam_args_for(None, [])) and runs_locally(beam_args_for("local", []))


@no_cuda
def test_explicit_cuda_without_a_gpu_is_refused_before_loading(tmp_path):
    path = build_tiny_text_rm(tmp_path / "rm")
    with pytest.raises(ModelConfigError, match="no CUDA GPU"):
        preflight("text-rm", {"path": str(path), "device": "cuda"})


@pytest.mark.parametrize("name", ["sample", "allava", "llava_video_178k"])
def test_bundled_configs_use_only_known_model_options(name):
    from models.registry import preflight_models
    from pipelines.config import load_config

    config = load_config(f"configs/{name}.yaml").with_overrides(trust_remote_code=True)
    preflight_models(config, workers_here=False)
    if config.model == "ixc25":
        assert config.model_options["font_path"].endswith("SimHei.ttf")
        assert config.model_options["clip_path"].endswith("internlm-xcomposer2d5-clip")
