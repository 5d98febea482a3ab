"""End-to-end through Beam's DirectRunner on a tiny hand-built dataset with a known-score model."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from pipelines.clean import DataMissingError, run
from pipelines.config import RunConfig, SourceConfig
from tests.helpers import (
    conversation,
    jpeg_bytes,
    mp4_bytes,
    register_test_model,
    write_json,
    write_tar_gz,
)


@pytest.fixture()
def tiny_dataset(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    (root / "images" / "good.jpg").write_bytes(jpeg_bytes())
    (root / "images" / "broken.jpg").write_bytes(jpeg_bytes()[:200])
    write_json(
        root / "images.json",
        [
            {
                "id": "img-good",
                "image": "images/good.jpg",
                "url": "u1",
                "conversations": conversation("What is shown?", "A red square on white."),
            },
            {
                "id": "img-bad",
                "image": "images/good.jpg",
                "conversations": conversation("What is shown?", "bad answer here"),
            },
            {
                "id": "img-empty",
                "image": "images/good.jpg",
                "conversations": conversation("What is shown?", "N/A"),
            },
            {
                "id": "img-missing",
                "image": "images/nowhere.jpg",
                "conversations": conversation("What is shown?", "Something."),
            },
            {
                "id": "img-broken",
                "image": "images/broken.jpg",
                "conversations": conversation("What is shown?", "Something red."),
            },
            {
                "id": "img-nan",
                "image": "images/good.jpg",
                "conversations": conversation("What is shown?", "nan nan"),
            },
        ],
    )
    video = mp4_bytes()
    write_tar_gz(root / "videos_1.tar.gz", {"vids/a.mp4": video, "vids/b.mp4": video})
    write_json(
        root / "videos.json",
        [
            {
                "id": "vid-good",
                "video": "vids/a.mp4",
                "data_source": "x",
                "conversations": conversation("Describe.", "A blue bar moves right.", "<video>\n"),
            },
            {
                "id": "vid-bad",
                "video": "vids/b.mp4",
                "conversations": conversation("Describe.", "bad bad", "<video>\n"),
            },
        ],
    )
    write_json(
        root / "text.json",
        [{"idx": "txt-1", "conversations": conversation("Say hi.", "Hello there friend.", "")}],
    )
    return root


def tiny_config(root: Path, output: Path, **overrides) -> RunConfig:
    config = RunConfig(
        name="tiny",
        root=str(root),
        output=str(output),
        model=register_test_model(),
        sources=(
            SourceConfig("images", ("images.json",)),
            SourceConfig("videos", ("videos.json",), video_archives=("videos_*.tar.gz",)),
            SourceConfig("text", ("text.json",)),
        ),
    )
    return config.with_overrides(**overrides)


def read_parquet_dir(directory: Path) -> pd.DataFrame:
    files = sorted(directory.glob("*.parquet"))
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def test_tiny_run_routes_every_sample_and_conserves_counts(tiny_dataset, tmp_path):
    out = tmp_path / "out"
    summary = run(tiny_config(tiny_dataset, out))

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
    assert good["media"][0]["bytes"] == (tiny_dataset / "images" / "good.jpg").read_bytes()
    assert json.loads(good["fields"]) == {"url": "u1"}
    video = clean.set_index("id").loc["vid-good"]
    assert video["media"][0]["path"] == "vids/a.mp4" and len(video["media"][0]["bytes"]) > 100
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
