"""`rmclean doctor`: what this machine has, and for each config whether it can run here, with
every problem found in one go; the exit code follows the configs the user asked about."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
import yaml

from pipelines.cli import main
from pipelines.jobs import doctor

REPO = Path(__file__).resolve().parent.parent


def test_doctor_reports_torch_gpus_packages_and_a_ready_config(capsys):
    assert main(["doctor", "--config", "configs/sample.yaml"]) == 0
    printed = capsys.readouterr().out
    assert f"torch {torch.__version__}" in printed
    assert "transformers " in printed and "flash-attn" in printed
    if not torch.cuda.is_available():
        assert "GPUs: none visible to torch" in printed
    assert "configs/sample.yaml (demo): " in printed
    for backend in ("demo", "ixc25", "vlm-value-head", "text-rm"):
        assert f"  {backend}" in printed


def _configs_here(tmp_path: Path, monkeypatch) -> Path:
    """A checkout's configs/: the sample with its data in place, and an ixc25 config that
    lacks its checkpoint, its packages and its data, all at once."""
    from synth.dataset import write_sample_dataset

    (tmp_path / "configs").mkdir()
    sample = yaml.safe_load((REPO / "configs" / "sample.yaml").read_text())
    sample["root"] = str(tmp_path / "data" / "sample")
    write_sample_dataset(tmp_path / "data" / "sample")
    (tmp_path / "configs" / "sample.yaml").write_text(yaml.safe_dump(sample))
    real = {
        "name": "real",
        "root": str(tmp_path / "no-data"),
        "output": str(tmp_path / "out"),
        "model": "ixc25",
        "model_options": {
            "path": str(tmp_path / "no-checkpoint"),
            "font_path": str(tmp_path / "no-font.ttf"),
            "clip_path": str(tmp_path / "no-clip"),
        },
        "sources": [{"name": "s", "manifests": "*.json"}],
        "layout_help": "Download: make download-real",
    }
    (tmp_path / "configs" / "real.yaml").write_text(yaml.safe_dump(real))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(doctor.BACKEND_PACKAGES, "ixc25", ("rmclean_no_such_package",))
    return tmp_path / "configs" / "real.yaml"


def test_every_problem_of_every_config_at_once_and_exit_0_while_one_can_run(
    tmp_path, monkeypatch, capsys
):
    real = _configs_here(tmp_path, monkeypatch)
    assert main(["doctor"]) == 0  # the sample can run: `make doctor` does not fail
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    head = lines.index("  configs/real.yaml (ixc25): cannot run here")
    problems = lines[head + 1 : head + 6]
    assert problems[0] == (
        "    - ixc25 needs rmclean_no_such_package: pip install rmclean_no_such_package"
    )
    # The model's own check stops at the checkpoint; the font and vision tower are still named.
    assert (
        problems[1].startswith("    - ixc25: checkpoint folder") and "no-checkpoint" in problems[1]
    )
    assert "hf download internlm/" in problems[1]
    assert set(problems[2:4]) == {
        f"    - ixc25: font_path '{tmp_path / 'no-font.ttf'}' is not there (make download-ixc25)",
        f"    - ixc25: clip_path '{tmp_path / 'no-clip'}' is not there (make download-ixc25)",
    }
    assert problems[4].startswith("    - data: source 's': no input matches")
    assert "no-data" in problems[4]
    assert "      Download: make download-real" in lines
    assert "  configs/sample.yaml (demo): ready: can run here" in lines
    assert "1 of 2 configs can run here: configs/sample.yaml" in lines
    assert main(["doctor", "--config", str(real)]) == 1  # asked about, and it cannot run
    assert main(["doctor", "--config", "configs/sample.yaml"]) == 0


def test_nothing_that_can_run_fails_and_missing_data_alone_does_not(tmp_path, monkeypatch, capsys):
    _configs_here(tmp_path, monkeypatch)
    (tmp_path / "configs" / "sample.yaml").unlink()
    assert main(["doctor"]) == 1  # no config can run here
    shutil.copy(REPO / "configs" / "sample.yaml", tmp_path / "configs" / "sample.yaml")
    shutil.rmtree(tmp_path / "data")
    capsys.readouterr()
    assert main(["doctor"]) == 0  # the sample's data/sample is not here, but it can run once it is
    assert "configs/sample.yaml (demo): can run here once its data is in place" in (
        capsys.readouterr().out
    )


def test_a_package_a_backend_needs_is_listed_for_the_configs_that_use_it(monkeypatch):
    monkeypatch.setitem(doctor.BACKEND_PACKAGES, "demo", ("rmclean_no_such_package",))
    findings = doctor.diagnose(["configs/sample.yaml"])
    assert not findings.ok
    (check,) = findings.configs
    assert check.problems == [
        "demo needs rmclean_no_such_package: pip install rmclean_no_such_package"
    ]
    assert "  configs/sample.yaml (demo): cannot run here" in findings.lines
