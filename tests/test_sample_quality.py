"""The product promise on generated data: the demo model plus rules catch every planted defect
class (recall >= 0.9) and flag at most 5% of clean samples, on three different seeds."""

from __future__ import annotations

import pytest

from bench.sample_quality import quality
from pipelines.clean import run
from pipelines.config import load_config
from synth.dataset import write_sample_dataset
from tests.test_config import SAMPLE


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_planted_defects_are_found_on_three_seeds(tmp_path, seed):
    data = tmp_path / "data"
    write_sample_dataset(data, seed=seed)
    config = load_config(SAMPLE).with_overrides(root=str(data), output=str(tmp_path / "out"))
    summary = run(config)
    assert summary["counts"]["total"]["errors"] == 0
    measured = quality(str(data / "labels.jsonl"), str(tmp_path / "out"))
    assert set(measured["recall"]) == {
        "empty_answer",
        "mismatched",
        "off_topic",
        "wrong_colour",
        "wrong_count",
        "wrong_motion",
        "wrong_object",
    }
    for defect, recall in measured["recall"].items():
        assert recall >= 0.9, (defect, measured)
    assert measured["clean_flagged_fraction"] <= 0.05, measured
