"""The product promise on generated data, through the real pipeline on three seeds: the demo
model plus rules catch every planted defect class (recall >= 0.95 per class) and flag at most 3%
of the faithful samples of EVERY source, the small text-only one included (with ~38 faithful
text samples per seed that is at most one). On the multi-turn source, with `repair: truncate`:
the first turn below the cut is the planted wrong answer in >= 95% of defective conversations,
and the repair keeps every good prefix whole and never the planted turn."""

from __future__ import annotations

import math

import pytest

from bench.sample_quality import quality, turn_quality
from pipelines.config import load_config
from pipelines.jobs.clean import run
from synth.dataset import write_sample_dataset
from tests.test_config import SAMPLE

SOURCES = {
    "allava_laion_caption",
    "allava_laion_instruct",
    "allava_vflan_instruct",
    "allava_text",
    "llava_video_caption",
    "llava_video_open_ended",
    "llava_video_multiple_choice",
    "llava_instruct_multiturn",
}
DEFECTS = {
    "empty_answer",
    "mismatched",
    "off_topic",
    "wrong_colour",
    "wrong_count",
    "wrong_motion",
    "wrong_object",
}
MAX_FAITHFUL_FLAGGED = 0.03
MIN_RECALL = 0.95


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_planted_defects_are_found_on_three_seeds(tmp_path, seed):
    data = tmp_path / "data"
    write_sample_dataset(data, seed=seed)
    config = load_config(SAMPLE).with_overrides(
        root=str(data), output=str(tmp_path / "out"), repair="truncate"
    )
    summary = run(config)
    assert summary["counts"]["total"]["errors"] == 0
    measured = quality(str(data / "labels.jsonl"), str(tmp_path / "out"))
    assert set(measured["recall"]) == DEFECTS
    for defect, recall in measured["recall"].items():
        assert recall >= MIN_RECALL, (defect, measured["recall"])
    assert set(measured["sources"]) == SOURCES
    for source, figures in measured["sources"].items():
        allowed = math.floor(MAX_FAITHFUL_FLAGGED * figures["clean_total"])
        assert figures["clean_flagged"] <= allowed, (source, figures)
    turns = turn_quality(str(data / "labels.jsonl"), str(tmp_path / "out"))
    assert set(turns) == {"llava_instruct_multiturn"}
    multi = turns["llava_instruct_multiturn"]
    assert multi["defective"] >= 10 and multi["with_good_prefix"] >= 3
    assert multi["first_low_turn_is_planted_share"] >= MIN_RECALL, multi
    assert multi["good_prefix_kept_whole"] == multi["with_good_prefix"], multi
    assert multi["planted_turn_in_a_repair"] == 0 and multi["faithful_cut_short"] == 0, multi
    assert summary["repair"]["repaired"] == multi["with_good_prefix"]
