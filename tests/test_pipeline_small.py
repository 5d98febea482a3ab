"""End-to-end on a tiny hand-built dataset with a known-score model, on the runner `rmclean
clean` chooses when none is named."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from pipelines.jobs.clean import run
from pipelines.stages.read_sources import DataMissingError
from tests.helpers import read_parquet_dir, tiny_config


@pytest.mark.slow
def test_tiny_run_routes_every_sample_and_conserves_counts(tiny_dataset, tmp_path):
    out = tmp_path / "out"
    summary = run(tiny_config(tiny_dataset, out))
    # What `rmclean clean` runs on without --runner (runners.IN_PROCESS), not Beam's default.
    assert summary["runner"] == "FnApiRunner"

    clean = read_parquet_dir(out / "clean")
    review = read_parquet_dir(out / "review")
    errors = [
        json.loads(line)
        for f in sorted((out / "errors").glob("*.jsonl"))
        for line in f.read_text().splitlines()
    ]
    assert sorted(clean["id"]) == ["img-good", "txt-1", "vid-good"]
    assert dict(zip(review["id"], review["reason"], strict=True)) == {
        "img-bad": "low_score",
        "img-empty": "empty_answer",
        "vid-bad": "low_score",
    }
    assert {e["id"]: (e["stage"], e["reason"]) for e in errors} == {
        "img-missing": ("fetch", "media_missing"),
        "img-broken": ("decode", "corrupt_image"),
        "img-nan": ("score", "non_finite_score"),
    }
    # Media bytes are embedded and original fields kept.
    good = clean.set_index("id").loc["img-good"]
    assert good["images"][0]["bytes"] == (tiny_dataset / "images" / "good.jpg").read_bytes()
    assert json.loads(good["fields"]) == {"url": "u1"}
    video = clean.set_index("id").loc["vid-good"]
    assert video["videos"][0]["path"] == "vids/a.mp4" and len(video["videos"][0]["bytes"]) > 100
    assert json.loads(video["fields"]) == {"data_source": "x"}

    counts = summary["counts"]["per_source"]
    assert counts["images"] == {"input": 6, "clean": 1, "review": 2, "errors": 3}
    assert counts["videos"] == {"input": 2, "clean": 1, "review": 1, "errors": 0}
    assert counts["text"] == {"input": 1, "clean": 1, "review": 0, "errors": 0}
    assert (out / "_SUCCESS").exists()
    flagged = [json.loads(x) for x in (out / "report" / "flagged.jsonl").read_text().splitlines()]
    assert {f["id"] for f in flagged} == {"img-bad", "img-empty", "vid-bad"}
    csv = pd.read_csv(out / "report" / "flagged.csv")
    assert set(csv["id"]) == {"img-bad", "img-empty", "vid-bad"}


def test_missing_data_error_names_the_expected_path(tmp_path):
    config = tiny_config(tmp_path / "nowhere", tmp_path / "out")
    with pytest.raises(DataMissingError, match="nowhere/images.json"):
        run(config)
