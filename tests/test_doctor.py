"""`rmclean doctor`: what this machine has, and whether each config's models can load here."""

from __future__ import annotations

import torch
import yaml

from pipelines import doctor
from pipelines.cli import main


def test_doctor_reports_torch_gpus_packages_and_a_ready_config(capsys):
    assert main(["doctor", "--config", "configs/sample.yaml"]) == 0
    printed = capsys.readouterr().out
    assert f"torch {torch.__version__}" in printed
    assert "transformers " in printed and "flash-attn" in printed
    if not torch.cuda.is_available():
        assert "GPUs: none visible to torch" in printed
    assert "configs/sample.yaml (demo): ready" in printed
    for backend in ("demo", "ixc25", "vlm-value-head", "text-rm"):
        assert f"  {backend}" in printed


def test_doctor_names_what_a_config_lacks_and_fails(tmp_path, capsys):
    config = tmp_path / "real.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": "real",
                "root": str(tmp_path),
                "output": str(tmp_path / "out"),
                "model": "ixc25",
                "model_options": {"path": str(tmp_path / "no-checkpoint")},
                "sources": [{"name": "s", "manifests": "*.json"}],
            }
        )
    )
    assert main(["doctor", "--config", str(config)]) == 1
    printed = capsys.readouterr().out
    assert f"{config} (ixc25): cannot load: ixc25: checkpoint folder" in printed
    assert "no-checkpoint" in printed and "hf download internlm/" in printed


def test_a_package_a_backend_needs_is_listed_as_missing(monkeypatch):
    monkeypatch.setitem(doctor.BACKEND_PACKAGES, "demo", ("rmclean_no_such_package",))
    findings = doctor.diagnose(["configs/sample.yaml"])
    assert not findings.ok
    assert any("rmclean_no_such_package for demo" in item for item in findings.missing)
    assert any(
        "configs/sample.yaml (demo): needs rmclean_no_such_package" in line
        for line in findings.lines
    )
