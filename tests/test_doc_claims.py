"""Claims README.md and ARCHITECTURE.md make about the code, read from the docs and checked
against the code, so that a change to either without the other fails here."""

from __future__ import annotations

import re
from pathlib import Path

from models.registry import BUILT_IN, spec_for

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
ARCHITECTURE = (REPO / "ARCHITECTURE.md").read_text(encoding="utf-8")


def test_the_backends_the_readme_says_take_dtype_are_the_ones_that_do():
    said = re.search(r"((?:`[\w-]+`(?:,| and)\s+)+`[\w-]+`) take `path`, `dtype`", README)
    assert said, "README, 'Reward backends': which backends take dtype"
    with_dtype = {name for name in BUILT_IN if "dtype" in spec_for(name).defaults}
    assert set(re.findall(r"`([\w-]+)`", said.group(1))) == with_dtype
    demo = re.search(
        r"the bundled `demo` takes ((?:`\w+`(?:,| and)?\s*)+)\(default `(\w+)`\)", README
    )
    assert demo, "README, 'Reward backends': what the demo model takes"
    assert set(re.findall(r"`(\w+)`", demo.group(1))) == set(spec_for("demo").defaults)
    assert spec_for("demo").defaults["device"] == demo.group(2)


def test_the_readme_diagram_scores_with_the_step_the_scoring_stage_uses():
    (step,) = re.findall(r"─▶ score \((\w+)\) ─▶", README)
    stage = (REPO / "pipelines" / "stages" / "score_samples.py").read_text(encoding="utf-8")
    assert re.search(rf"\b{step}\(", stage), f"ScoreSamples does not score with {step}"


def test_core_imports_no_beam_as_architecture_says():
    assert re.search(r"`core/` \([^)]*?; no Beam\)", ARCHITECTURE), "ARCHITECTURE: core and Beam"
    with_beam = {
        path.name
        for path in (REPO / "transforms" / "core").glob("*.py")
        if re.search(r"^\s*(?:import|from) apache_beam\b", path.read_text(), re.M)
    }
    assert with_beam == set()
