"""Inputs and outputs on s3:// through a real S3-compatible server on loopback, through the
same code paths users hit (fsspec for manifests, media, archives and reports; Beam's own S3
filesystem for the shard writes)."""

from __future__ import annotations

import json

import fsspec
import pandas as pd
import pytest

from pipelines.jobs.clean import run
from tests.helpers import tiny_config
from tests.s3_server import s3_server


@pytest.fixture()
def s3():
    import s3fs

    # Each test has its own server: instances cached by an earlier test point at a dead one.
    s3fs.S3FileSystem.clear_instance_cache()
    with s3_server() as endpoint:
        fs = fsspec.filesystem("s3", endpoint_url=endpoint, skip_instance_cache=True)
        fs.mkdir("rmclean-test")
        yield endpoint, fs


@pytest.mark.slow
def test_a_run_reads_and_writes_s3(tiny_dataset, s3):
    endpoint, fs = s3
    fs.put(str(tiny_dataset), "rmclean-test/data", recursive=True)
    config = tiny_config("s3://rmclean-test/data", "s3://rmclean-test/out")
    summary = run(config, [f"--s3_endpoint_url={endpoint}"])
    assert summary["counts"]["total"] == {"input": 9, "clean": 3, "review": 3, "errors": 3}
    assert fs.exists("rmclean-test/out/_SUCCESS")
    assert fs.exists("rmclean-test/out/report/index.html")
    clean_files = fs.glob("rmclean-test/out/clean/*.parquet")
    with fs.open(clean_files[0], "rb") as handle:
        ids = set(pd.read_parquet(handle)["id"])
    for path in clean_files[1:]:
        with fs.open(path, "rb") as handle:
            ids |= set(pd.read_parquet(handle)["id"])
    assert ids == {"img-good", "txt-1", "vid-good"}
    errors = [
        json.loads(line)
        for path in fs.glob("rmclean-test/out/errors/*.jsonl")
        for line in fs.cat(path).decode().splitlines()
    ]
    assert {e["id"] for e in errors} == {"img-missing", "img-broken", "img-nan"}


@pytest.mark.slow
def test_the_bundled_sample_with_no_errors_finishes_on_s3(s3, tmp_path):
    """Every writer meets its empty case here: errors/ has nothing to hold."""
    from pipelines.config import load_config
    from synth.dataset import write_sample_dataset
    from tests.test_config import SAMPLE

    endpoint, fs = s3
    write_sample_dataset(tmp_path / "sample")
    fs.put(str(tmp_path / "sample"), "rmclean-test/sample", recursive=True)
    config = load_config(SAMPLE).with_overrides(
        root="s3://rmclean-test/sample", output="s3://rmclean-test/run"
    )
    summary = run(config)
    total = summary["counts"]["total"]
    assert total["errors"] == 0 and total["input"] == total["clean"] + total["review"] > 300
    assert fs.exists("rmclean-test/run/_SUCCESS")
    (errors_file,) = fs.glob("rmclean-test/run/errors/*.jsonl")
    assert fs.cat(errors_file) == b""


@pytest.mark.slow
@pytest.mark.parametrize("where", ["local", "s3"])
def test_empty_outputs_are_written_and_readable(tmp_path, where, request):
    """A run whose samples all go one way: review/, errors/ and the flagged files are empty."""
    from pipelines.config import SourceConfig
    from tests.helpers import conversation, write_json

    data = tmp_path / "data"
    write_json(
        data / "t.json", [{"id": "a", "conversations": conversation("Q?", "A fine answer.", "")}]
    )
    config = tiny_config(data, tmp_path / "out").with_overrides(
        sources=(SourceConfig("text", ("t.json",)),)
    )
    if where == "s3":
        endpoint, fs = request.getfixturevalue("s3")
        fs.put(str(data), "rmclean-test/data", recursive=True)
        config = config.with_overrides(
            root="s3://rmclean-test/data", output="s3://rmclean-test/out"
        )
        prefix = "rmclean-test/out"
    else:
        fs, prefix = fsspec.filesystem("file"), str(tmp_path / "out")
    summary = run(config)
    assert summary["counts"]["total"] == {"input": 1, "clean": 1, "review": 0, "errors": 0}
    assert fs.exists(f"{prefix}/_SUCCESS")
    (review,) = fs.glob(f"{prefix}/review/*.parquet")
    with fs.open(review, "rb") as handle:
        assert len(pd.read_parquet(handle)) == 0
    (errors,) = fs.glob(f"{prefix}/errors/*.jsonl")
    assert fs.cat(errors) == b""
    assert fs.cat(f"{prefix}/report/flagged.jsonl") == b""
    assert fs.cat(f"{prefix}/report/flagged.csv").decode().strip() == (
        "id,source,score,reason,detail,media,question,answer,origin,turn_scores,low_score_turn,"
        "repaired_prefix_turns"
    )


@pytest.mark.slow
def test_a_run_on_s3_exports_to_s3(tiny_dataset, s3):
    from pipelines.jobs.export import export_run

    endpoint, fs = s3
    fs.put(str(tiny_dataset), "rmclean-test/data", recursive=True)
    run(tiny_config("s3://rmclean-test/data", "s3://rmclean-test/out"))
    report = export_run("s3://rmclean-test/out", "s3://rmclean-test/export")
    assert report.samples == 3 and report.media_written == 2
    images = json.loads(fs.cat("rmclean-test/export/images.json"))
    assert [r["id"] for r in images] == ["img-good"] and images[0]["url"] == "u1"
    assert (
        fs.cat("rmclean-test/export/images/good.jpg")
        == (tiny_dataset / "images" / "good.jpg").read_bytes()
    )
    assert json.loads(fs.cat("rmclean-test/export/text.json"))[0]["idx"] == "txt-1"
    assert fs.exists("rmclean-test/export/vids/a.mp4")
