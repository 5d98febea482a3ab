"""The GPU reward benchmark's --tiny mode runs on the CPU, so the script keeps working."""

import json

import pytest

from bench.gpu_reward_bench import main


@pytest.mark.slow
def test_tiny_benchmark_writes_every_measurement(tmp_path):
    out = tmp_path / "bench.json"
    main(["--tiny", "--samples", "12", "--out", str(out)])
    result = json.loads(out.read_text())
    for mode in ("a_one_at_a_time", "b_arrival_batches", "c_sorted_batches"):
        assert result[mode]["samples"] == 12 and result[mode]["samples_per_s"] > 0
    assert (
        result["c_sorted_batches"]["padding_fraction"]
        <= result["b_arrival_batches"]["padding_fraction"]
    )
    for mode, ahead in (("d_pipeline_token_budget", True), ("e_pipeline_prepared_inline", False)):
        assert result[mode]["samples_per_s"] > 0 and result[mode]["prepare_ahead"] is ahead
    split = result["vision_vs_language_16_largest"]
    assert 0 < split["vision_share"] < 1 and split["samples"] == 12
