"""Batch and cost figures: combined from per-batch records, shown in summary.json and the page."""

from __future__ import annotations

import pytest

from models.work import ModelWork
from transforms.counts.run_cost import CombineBatchStats
from transforms.report.cost import cost_html
from transforms.scoring.score_ahead import BatchStat


def _combine(*groups):
    combine = CombineBatchStats()
    accumulators = []
    for stats in groups:
        accumulator = combine.create_accumulator()
        for stat in stats:
            accumulator = combine.add_input(accumulator, stat)
        accumulators.append(accumulator)
    return combine.extract_output(combine.merge_accumulators(accumulators))


def _stat(device, start, busy, samples=4, tokens=400, host="h", process=1, model="m", work=None):
    return BatchStat(model, device, host, process, samples, tokens, start, busy, work)


def test_busy_fraction_is_time_in_score_over_the_scoring_span():
    # cuda:0 busy 100..104 and 105..109, cuda:1 busy 101..109: the span is 100..109.
    figures = _combine(
        [_stat("cuda:0", 100.0, 4.0), _stat("cuda:1", 101.0, 8.0)],
        [_stat("cuda:0", 105.0, 4.0, samples=2, tokens=100)],
    )
    batches = figures["batches"]
    assert (batches["count"], batches["mean_samples"], batches["mean_tokens"]) == (3, 3.33, 300.0)
    # No backend here says what its forward passes computed.
    assert batches["batches_reporting_work"] == 0 and batches["work_by_model"] == {}
    assert batches["real_tokens"] is None and batches["padding_fraction"] is None
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
    batches = figures["batches"]
    assert (batches["count"], batches["mean_samples"], batches["mean_tokens"]) == (0, 0, 0)
    assert figures["cost"]["devices"] == {} and figures["cost"]["samples_per_s"] is None


def test_a_rerun_from_the_cache_says_so_on_the_page():
    rerun = {"dataset": "x", **_combine([]), "scoring": {"scored": 0, "from_cache": 364}}
    html = cost_html(rerun)
    assert "nothing was scored by a model: all 364 scores came from the score cache" in html
    partly = {"dataset": "x", **_combine([_stat("cpu", 0.0, 1.0)])}
    partly["scoring"] = {"scored": 4, "from_cache": 12, "not_scored": 1}
    assert '<p class="from-cache">12 scores came from the score cache' in cost_html(partly)
    assert "score cache" not in cost_html({"dataset": "x", **_combine([]), "scoring": {}})


def test_the_work_each_model_reports_is_summed_per_model_and_in_all():
    vision = ModelWork(
        2, real_tokens=900, computed_tokens=1000, vision_seconds=1.5, language_seconds=2.0
    )
    text = ModelWork(1, real_tokens=300, computed_tokens=300, language_seconds=0.5)
    figures = _combine(
        [_stat("cuda:0", 0.0, 1.0, model="vlm", work=vision)],
        [
            _stat("cuda:0", 1.0, 1.0, model="vlm", work=vision),
            _stat("cuda:0", 2.0, 1.0, model="text", work=text),
            _stat("cuda:0", 3.0, 1.0, model="plugin"),  # reports nothing
        ],
    )["batches"]
    assert figures["batches_reporting_work"] == 3
    assert figures["work_by_model"]["vlm"] == {
        "forward_passes": 4,
        "real_tokens": 1800,
        "computed_tokens": 2000,
        "padding_fraction": 0.1,
        "vision_seconds": 3.0,
        "language_seconds": 4.0,
    }
    assert figures["work_by_model"]["text"]["vision_seconds"] is None
    assert "plugin" not in figures["work_by_model"]
    assert (figures["real_tokens"], figures["computed_tokens"]) == (2100, 2300)
    assert figures["padding_fraction"] == pytest.approx(200 / 2300, abs=1e-4)
    assert (figures["vision_seconds"], figures["language_seconds"]) == (3.0, 4.5)
    page = cost_html({"cost": {"devices": {}}, "batches": figures})
    assert page.count('class="model-work"') == 2 and "10%" in page
    assert "No model reported" in cost_html({"cost": {"devices": {}}, "batches": {}})


@pytest.mark.slow
def test_the_page_shows_each_device_and_the_price(tiny_dataset, tmp_path):
    from pipelines.jobs.clean import run
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
