"""`rmclean compare`: matching by id and content, route changes, PSI and KS, bad usage.

Runs are built directly as their light files (bench/indexed_runs.py); the end-to-end checks on
two real cleaning runs are in test_compare_sample.py.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

from bench.indexed_runs import FakeRun, FakeSample, generated_samples, write_run
from pipelines.cli import main
from transforms.history import drift_stats
from transforms.history.run_compare import CompareError, compare_runs


def _runs(tmp_path: Path, old: FakeRun, new: FakeRun) -> tuple[str, str]:
    a = write_run(tmp_path / "runs" / "a", old, "run-a", "2025-01-06T00:00:00Z")
    b = write_run(tmp_path / "runs" / "b", new, "run-b", "2025-01-13T00:00:00Z")
    return str(a), str(b)


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_same_samples_twice_show_no_change(tmp_path):
    samples = generated_samples({"images": 300, "texts": 120})
    old, new = _runs(tmp_path, FakeRun(samples=samples), FakeRun(samples=list(samples)))
    result = compare_runs(old, new)
    assert result["setting_changes"] == [] and result["route_changes"]["count"] == 0
    for stats in result["per_source"].values():
        assert stats["samples"]["added"] == stats["samples"]["removed"] == 0
        assert stats["samples"]["changed"] == 0
        assert stats["scores"]["all"]["psi"] == 0 and stats["scores"]["all"]["ks"] == 0
        assert stats["histogram"]["before"] == stats["histogram"]["after"]
    assert _lines(Path(new) / "report" / "route_changes.jsonl") == []


def test_added_removed_changed_and_every_route_change_with_both_scores(tmp_path):
    before = [
        FakeSample("images", "a", 1.0, "clean", "x"),
        FakeSample("images", "b", -5.0, "review", "x", "low_score"),
        FakeSample("images", "c", 2.0, "clean", "x"),
        FakeSample("images", "gone", 3.0, "clean", "x"),
        FakeSample("images", "broken", None, "errors", reason="corrupt_image"),
    ]
    after = [
        FakeSample("images", "a", 1.0, "clean", "x"),  # unchanged
        FakeSample("images", "b", 4.0, "clean", "y"),  # changed content, review -> clean
        FakeSample("images", "c", -3.0, "review", "x", "low_score"),  # same content, new score
        FakeSample("images", "broken", 0.5, "clean", "fixed"),  # errors -> clean
        FakeSample("images", "new", 0.0, "clean", "x"),
    ]
    old, new = _runs(tmp_path, FakeRun(samples=before), FakeRun(samples=after))
    images = compare_runs(old, new)["per_source"]["images"]
    assert images["samples"] == {
        "added": 1,
        "removed": 1,
        "changed": 1,
        "unchanged": 2,
        "content_unknown": 1,  # the error line carries no content hash
    }
    assert images["route_changes"] == 3
    changes = _lines(Path(new) / "report" / "route_changes.jsonl")
    assert [(c["id"], c["before"]["route"], c["after"]["route"]) for c in changes] == [
        ("b", "review", "clean"),
        ("broken", "errors", "clean"),
        ("c", "clean", "review"),
    ]
    by_id = {c["id"]: c for c in changes}
    assert (by_id["b"]["before"]["score"], by_id["b"]["after"]["score"]) == (-5.0, 4.0)
    assert by_id["b"]["content_changed"] is True and by_id["c"]["content_changed"] is False
    assert by_id["broken"]["content_changed"] is None
    assert images["scores"]["common"]["samples"] == 3  # a, b, c scored in both
    assert images["flagged_share"] == {"before": 0.2, "after": 0.2}
    assert images["input"] == {"before": 5, "after": 5, "change": 0}


def test_a_repeated_id_is_matched_by_content_first(tmp_path):
    """LLaVA-Video repeats a video's id for every question about it."""
    before = [
        FakeSample("videos", "v1", 1.0, "clean", "q1"),
        FakeSample("videos", "v1", 2.0, "clean", "q2"),
        FakeSample("videos", "v1", 3.0, "clean", "q3"),
    ]
    after = [
        FakeSample("videos", "v1", 2.0, "clean", "q2"),
        FakeSample("videos", "v1", -4.0, "review", "q1", "low_score"),
    ]
    old, new = _runs(tmp_path, FakeRun(samples=before), FakeRun(samples=after))
    videos = compare_runs(old, new)["per_source"]["videos"]
    assert videos["samples"] == {
        "added": 0,
        "removed": 1,
        "changed": 0,
        "unchanged": 2,
        "content_unknown": 0,
    }
    (change,) = _lines(Path(new) / "report" / "route_changes.jsonl")
    assert (change["before"]["score"], change["after"]["score"]) == (1.0, -4.0)


def test_a_shifted_source_stands_out_and_settings_come_first(tmp_path):
    old_samples = generated_samples({"images": 2000, "texts": 2000}, seed=1)
    new_samples = generated_samples({"images": 2000, "texts": 2000}, seed=2, shift={"texts": -2})
    old, new = _runs(
        tmp_path,
        FakeRun(samples=old_samples),
        FakeRun(samples=new_samples, model="other", threshold=-1.0),
    )
    result = compare_runs(old, new)
    settings = [c["setting"] for c in result["setting_changes"]]
    assert settings[:3] == ["model", "model weights or options", "threshold"]
    texts, images = result["per_source"]["texts"], result["per_source"]["images"]
    assert texts["scores"]["all"]["psi"] > 0.25 and images["scores"]["all"]["psi"] < 0.1
    assert texts["scores"]["all"]["ks"] > 0.3 and images["scores"]["all"]["ks"] < 0.08
    assert texts["flagged_share"]["after"] > texts["flagged_share"]["before"]
    assert result["max_psi"]["source"] == "texts"
    assert texts["samples"]["changed"] == 2000  # same ids, other content (seed)


def test_ks_is_exact_and_psi_is_zero_for_the_same_scores():
    rng = random.Random(5)
    xs = sorted(round(rng.gauss(0, 1), 1) for _ in range(500))  # rounded: many ties
    ys = sorted(round(rng.gauss(0.3, 1.2), 1) for _ in range(300))
    brute = max(
        abs(sum(x <= v for x in xs) / len(xs) - sum(y <= v for y in ys) / len(ys)) for v in xs + ys
    )
    assert math.isclose(drift_stats.ks_statistic((500, xs), (300, ys)), brute)
    edges = drift_stats.quantile_edges(xs, len(xs))
    assert edges == sorted(set(edges)) and len(edges) <= 9
    assert drift_stats.psi(xs, xs, edges) == 0
    assert drift_stats.psi(xs, ys, edges) > 0
    assert drift_stats.ks_statistic((0, []), (3, [1, 2, 3])) is None


def test_bad_usage_is_one_line_and_exit_2(tmp_path, capsys):
    old, new = _runs(tmp_path, FakeRun(samples=generated_samples({"a": 5})), FakeRun())
    other = write_run(tmp_path / "other", FakeRun(dataset="else"), "run-o", "2025-02-01T00:00:00Z")
    unfinished = write_run(tmp_path / "runs" / "c", FakeRun(), "run-c", "2025-01-20T00:00:00Z")
    (unfinished / "_SUCCESS").unlink()
    for args, said in (
        ([old, str(other)], "compare two runs of the same dataset"),
        ([old, str(unfinished)], "unfinished run"),
        ([old, old], "are the same run"),
        ([old, str(tmp_path / "nowhere")], "not a run's output prefix"),
    ):
        assert main(["compare", *args]) == 2
        err = capsys.readouterr().err.strip()
        assert said in err and len(err.splitlines()) == 1, err
    with pytest.raises(CompareError):
        compare_runs(old, str(unfinished))


def test_fail_on_drift_exits_3_above_the_limit(tmp_path, capsys):
    old, new = _runs(
        tmp_path,
        FakeRun(samples=generated_samples({"texts": 1000}, seed=1)),
        FakeRun(samples=generated_samples({"texts": 1000}, seed=2, shift={"texts": -3})),
    )
    assert main(["compare", old, new, "--fail-on-drift", "100"]) == 0
    out = capsys.readouterr().out
    assert "largest score shift: PSI" in out and "texts" in out
    assert main(["compare", old, new, "--fail-on-drift", "0.25"]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "above --fail-on-drift 0.25" in err[0]
    summary = json.loads((Path(new) / "report" / "summary.json").read_text())
    assert summary["since_last_run"]["previous_run"]["run_id"] == "run-a"
    assert "Since " in (Path(new) / "report" / "index.html").read_text()
