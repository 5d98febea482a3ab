"""The Makefile's own contract: unknown variables are refused, no target deletes user data."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")


def make(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "--no-print-directory", "-n", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
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
