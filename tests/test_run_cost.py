"""Batch and cost figures: combined from per-batch records, shown in summary.json and the page."""

from __future__ import annotations

import pytest

from models.score_ahead import BatchStat
from transforms.report.cost import cost_html
from transforms.report.run_cost import CombineBatchStats


def _combine(*groups):
    combine = CombineBatchStats()
    accumulators = []
    for stats in groups:
        accumulator = combine.create_accumulator()
        for stat in stats:
            accumulator = combine.add_input(accumulator, stat)
        accumulators.append(accumulator)
    return combine.extract_output(combine.merge_accumulators(accumulators))


def _stat(device, start, busy, samples=4, tokens=400, host="h", process=1):
    return BatchStat("m", device, host, process, samples, tokens, start, busy)


def test_busy_fraction_is_time_in_score_over_the_scoring_span():
    # cuda:0 busy 100..104 and 105..109, cuda:1 busy 101..109: the span is 100..109.
    figures = _combine(
        [_stat("cuda:0", 100.0, 4.0), _stat("cuda:1", 101.0, 8.0)],
        [_stat("cuda:0", 105.0, 4.0, samples=2, tokens=100)],
    )
    assert figures["batches"] == {"count": 3, "mean_samples": 3.33, "mean_tokens": 300.0}
    cost = figures["cost"]
    assert cost["scoring_span_seconds"] == 9.0 and cost["samples_scored"] == 10
    assert cost["devices"]["cuda:0"]["busy_fraction"] == pytest.approx(8 / 9, abs=1e-3)
    assert cost["devices"]["cuda:1"]["busy_fraction"] == pytest.approx(8 / 9, abs=1e-3)
    assert cost["devices"]["cuda:0"]["samples_per_s"] == pytest.approx(6 / 9, abs=1e-3)
    # Two devices held for 9 s for 10 samples.
    assert cost["device_hours_per_million_samples"] == pytest.approx(
        2 * 9 / 3600 / 10 * 1e6, abs=1e-3
    )


def test_copies_on_one_device_and_machines_are_told_apart():
    cost = _combine(
        [_stat("cuda:0", 0.0, 1.0, process=1), _stat("cuda:0", 0.0, 1.0, process=2)],
        [_stat("cuda:0", 0.0, 1.0, host="other")],
    )["cost"]
    assert sorted(cost["devices"]) == ["h/cuda:0 #1", "h/cuda:0 #2", "other/cuda:0"]
    # Priced by physical device: two on host h, one on host other.
    assert cost["device_hours_per_million_samples"] == pytest.approx(2 / 3600 / 12 * 1e6, abs=1e-3)


def test_nothing_scored_gives_empty_figures():
    figures = _combine([])
    assert figures["batches"] == {"count": 0, "mean_samples": 0, "mean_tokens": 0}
    assert figures["cost"]["devices"] == {} and figures["cost"]["samples_per_s"] is None


def test_a_rerun_from_the_cache_says_so_on_the_page():
    rerun = {"dataset": "x", **_combine([]), "scoring": {"scored": 0, "from_cache": 364}}
    html = cost_html(rerun)
    assert "nothing was scored by a model: all 364 scores came from the score cache" in html
    partly = {"dataset": "x", **_combine([_stat("cpu", 0.0, 1.0)])}
    partly["scoring"] = {"scored": 4, "from_cache": 12, "not_scored": 1}
    assert '<p class="from-cache">12 scores came from the score cache' in cost_html(partly)
    assert "score cache" not in cost_html({"dataset": "x", **_combine([]), "scoring": {}})


@pytest.mark.slow
def test_the_page_shows_each_device_and_the_price(tiny_dataset, tmp_path):
    from pipelines.clean import run
    from tests.helpers import tiny_config

    summary = {"dataset": "x", **_combine([_stat("cuda:0", 0.0, 2.0), _stat("<b>", 0.0, 1.0)])}
    html = cost_html(summary)
    assert html.count('class="device-cost"') == 2 and "&lt;b&gt;" in html
    assert "100%" in html and "50%" in html and "device-hours per million samples" in html
    assert "did not record" in cost_html({"dataset": "old run"})
    # A real run's page carries its own cost section.
    run(tiny_config(tiny_dataset, tmp_path / "out"))
    page = (tmp_path / "out" / "report" / "index.html").read_text()
    assert "<h2>Scoring cost</h2>" in page and 'class="device-hours"' in page
