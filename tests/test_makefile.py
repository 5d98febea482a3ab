"""The Makefile's own contract: unknown variables are refused, no target deletes user data."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import install_stamp

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")


# What a caller's environment may set for the Makefile (.ci/run exports EXTRAS): these tests read
# the Makefile's own defaults.
CALLER_SETTINGS = ("EXTRAS", "TORCH_INDEX", "TORCH_SPEC", "TORCH_CUDA", "VENV")


def make(*args: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key not in CALLER_SETTINGS}
    return subprocess.run(
        ["make", "--no-print-directory", "-n", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
    )


def test_a_mistyped_variable_is_refused_naming_the_nearest():
    result = make("clean", "DATASET=sample", "THRESHHOLD=-5.0")
    assert result.returncode == 2
    assert "unknown variable THRESHHOLD (did you mean THRESHOLD?)" in result.stderr
    assert "known: DATASET THRESHOLD" in result.stderr


def test_known_variables_are_accepted():
    result = make("help", "DATASET=sample", "THRESHOLD=-5.0", "BEAM_ARGS=--direct_num_workers=2")
    assert result.returncode == 0, result.stderr


def test_distclean_never_touches_outputs_or_downloads():
    commands = make("distclean").stdout
    removed = [word for line in commands.splitlines() if "rm " in line for word in line.split()]
    assert "out" not in removed and "data" not in removed
    assert "data/sample" in commands and "labels.jsonl" in commands  # only a generated sample


def test_a_torch_index_on_an_existing_venv_reinstalls_torch_from_it():
    """Not "Nothing to be done" with the CPU torch left in place."""
    index = "--index-url=https://example.invalid/whl/cu128"
    result = make("install", f"TORCH_INDEX={index}")
    assert result.returncode == 0, result.stderr
    assert "Nothing to be done" not in result.stdout
    assert "pip uninstall --quiet --yes torch torchvision" in result.stdout
    assert f'pip install --quiet {index} "torch==2.13.0" torchvision' in result.stdout


def test_install_adds_the_ixc_extra_with_torch_held_at_its_installed_version():
    """torchvision must be the build for the torch already there, not pull a newer torch."""
    commands = make("--always-make", "install").stdout
    assert "pip install --quiet -e '.[dev,ixc]'" in commands
    assert '"torch==$(.venv/bin/python -c' in commands
    assert "EXTRAS ?= dev,ixc" in (REPO / "Makefile").read_text()


def test_install_gpu_installs_cuda_torch_the_ixc_extra_and_flash_attn_then_reports():
    result = make("install-gpu", "TORCH_CUDA=cu126")
    assert result.returncode == 0, result.stderr
    commands = result.stdout
    assert "--index-url=https://download.pytorch.org/whl/cu126" in commands
    assert "pip install --quiet -e '.[dev,ixc]'" in commands
    assert "deploy/flash_attn_wheel.py 2.8.3" in commands
    assert "rmclean doctor" in commands
    assert commands.index("whl/cu126") < commands.index(".[dev,ixc]")  # torch before the extra


def test_export_passes_its_variables_to_the_cli():
    result = make("export", "RUN=out/sample/r1", "LAYOUT=jsonl", "EXPORTED=out/x")
    command = " ".join(result.stdout.replace("\\\n", " ").split())
    assert "run='out/sample/r1'" in command
    assert '.venv/bin/rmclean export "$run" --output out/x --layout jsonl --part clean' in command


def test_make_test_says_how_long_it_took_on_which_machine():
    """Test times are measured by `make test` itself, with the cores and the load beside them."""
    result = subprocess.run(
        ["make", "--no-print-directory", "-o", install_stamp(REPO), "test-fast",
         "PYTEST_ARGS=tests/test_makefile.py -k mistyped -p no:cacheprovider"],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(
        r"^make test-fast: \d+ s on \d+ cores, load average \d+\.\d at the start$",
        result.stdout,
        re.M,
    ), result.stdout


def test_the_flash_attn_wheel_is_the_release_asset_for_this_torch():
    from deploy.flash_attn_wheel import main, wheel_url

    assert wheel_url("2.8.3", "2.7.1+cu128", "12.8", "3.11", True) == (
        "https://github.com/Dao-AILab/flash-attention/releases/download/v2.8.3/"
        "flash_attn-2.8.3+cu12torch2.7cxx11abiTRUE-cp311-cp311-linux_x86_64.whl"
    )
    import torch

    if torch.version.cuda is None:
        assert main(["2.8.3"]) == 1  # a CPU build: no wheel applies
