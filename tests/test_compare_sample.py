"""Each run of the bundled sample compared with the one before it, end to end (demo model):
the same data twice shows nothing; a sample generated with another seed and twice the defect
rate in one source shows that source's shift, and the route-change list is exactly what the two
runs' shards say."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from pipelines.config import load_config
from pipelines.jobs.clean import run
from synth.dataset import write_sample_dataset
from transforms.history.run_history import read_history

REPO = Path(__file__).resolve().parents[1]
DRIFTING = "allava_text"


def _clean(root: Path, output: Path) -> dict:
    config = load_config(REPO / "configs" / "sample.yaml").with_overrides(
        root=str(root), output=str(output), score_cache=str(output.parent / "score-cache")
    )
    return run(config)


def _routes(prefix: Path) -> dict[tuple[str, str], tuple[str, float | None]]:
    """(source, id) -> (route, score), read back from the run's shards and errors."""
    routes = {}
    for route in ("clean", "review"):
        for shard in sorted((prefix / route).glob("part-*.parquet")):
            frame = pd.read_parquet(shard, columns=["source", "id", "score"])
            for row in frame.itertuples():
                score = None if pd.isna(row.score) else float(row.score)
                routes[(row.source, row.id)] = (route, score)
    for path in (prefix / "errors").glob("*.jsonl"):
        for line in path.read_text().splitlines():
            error = json.loads(line)
            routes[(error["source"], error["id"])] = ("errors", None)
    return routes


@pytest.mark.slow
def test_reruns_report_what_changed_since_the_last_run(tmp_path):
    write_sample_dataset(tmp_path / "seed0", seed=0)
    write_sample_dataset(tmp_path / "seed1", seed=1, defect_rates={DRIFTING: 0.4})
    runs = tmp_path / "out"
    first = _clean(tmp_path / "seed0", runs / "1")
    assert first["since_last_run"] is None  # the dataset's first run

    again = _clean(tmp_path / "seed0", runs / "2")["since_last_run"]
    assert again["previous_run"]["run_id"] == first["run_id"]
    assert again["setting_changes"] == [] and again["route_changes"]["count"] == 0
    assert again["max_psi"]["value"] < 0.01
    for stats in again["per_source"].values():
        assert stats["samples"]["added"] == stats["samples"]["removed"] == 0
        assert stats["samples"]["changed"] == 0

    drifted_summary = _clean(tmp_path / "seed1", runs / "3")
    drifted = drifted_summary["since_last_run"]
    assert [c["setting"] for c in drifted["setting_changes"]] == ["input root"]
    text = drifted["per_source"][DRIFTING]
    assert text["flagged_share"]["after"] > 1.5 * text["flagged_share"]["before"]
    assert text["scores"]["all"]["psi"] > 0.25 and text["scores"]["common"]["psi"] is not None

    before, after = _routes(runs / "2"), _routes(runs / "3")
    expected = {
        key: (before[key], after[key])
        for key in before.keys() & after.keys()
        if before[key][0] != after[key][0]
    }
    listed = [
        json.loads(line)
        for line in (runs / "3" / "report" / "route_changes.jsonl").read_text().splitlines()
    ]
    assert len(listed) == drifted["route_changes"]["count"] == len(expected) > 0
    assert {
        (c["source"], c["id"]): (
            (c["before"]["route"], c["before"]["score"]),
            (c["after"]["route"], c["after"]["score"]),
        )
        for c in listed
    } == expected

    page = (runs / "3" / "report" / "index.html").read_text()
    assert "Since the last run" in page and "route_changes.jsonl" in page
    history = read_history(str(runs))
    assert [e["output"] for e in history] == [str(runs / n) for n in ("1", "2", "3")]
    assert history[0]["input_fingerprint"] == history[1]["input_fingerprint"]
    assert history[2]["input_fingerprint"] != history[1]["input_fingerprint"]
    assert len({e["model_fingerprint"] for e in history}) == 1


@pytest.mark.slow
def test_a_repaired_conversation_is_one_sample_to_compare(tmp_path):
    """With `repair: truncate` a conversation has two rows in the index (the kept prefix in
    clean/, the original in review/): compare counts it once, as the run's counts do, so the
    same data twice shows nothing, and a run without repair lists exactly the repaired ones."""
    write_sample_dataset(tmp_path / "data", seed=0)
    runs = tmp_path / "out"

    def clean(name: str, repair: str | None) -> dict:
        config = load_config(REPO / "configs" / "sample.yaml").with_overrides(
            root=str(tmp_path / "data"),
            output=str(runs / name),
            score_cache=str(runs / "score-cache"),
            repair=repair,
        )
        return run(config)

    first = clean("1", "truncate")
    repaired = first["repair"]["repaired"]
    assert repaired > 0
    again = clean("2", "truncate")["since_last_run"]
    assert again["route_changes"]["count"] == 0 and again["max_psi"]["value"] < 0.01
    for stats in again["per_source"].values():
        assert stats["samples"]["added"] == stats["samples"]["removed"] == 0
        assert stats["samples"]["changed"] == 0
        assert stats["input"]["change"] == 0

    unrepaired = clean("3", None)["since_last_run"]
    listed = [
        json.loads(line)
        for line in (runs / "3" / "report" / "route_changes.jsonl").read_text().splitlines()
    ]
    assert unrepaired["route_changes"]["count"] == len(listed) == repaired
    assert {(c["before"]["route"], c["after"]["route"]) for c in listed} == {("clean", "review")}
    assert all(c["before"]["reason"] == "repaired" for c in listed)
    for stats in unrepaired["per_source"].values():
        assert stats["samples"]["changed"] == stats["samples"]["added"] == 0
