"""Every broken or unusual input through every reader it applies to: the run completes, the
sample lands where it should with a reason, every other sample is unaffected, nothing is lost."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.config import SourceConfig
from pipelines.jobs.clean import run
from tests.bad_inputs import write_llava_corpus, write_shard_corpus
from tests.helpers import read_parquet_dir, tiny_config


def outcomes(out: Path) -> dict[str, tuple]:
    """{id (or origin file marker for id-less errors): (route, stage, reason)}."""
    found: dict[str, tuple] = {}
    for route in ("clean", "review"):
        for row in read_parquet_dir(out / route).itertuples():
            key = row.id if row.id not in found else f"{row.id}#{len(found)}"
            found[key] = (route, None, row.reason if isinstance(row.reason, str) else None)
    for path in sorted((out / "errors").glob("*.jsonl")):
        for line in path.read_text().splitlines():
            error = json.loads(line)
            origin = error["origin"].rsplit("/", 1)[-1]
            key = error["id"] or origin
            if error["reason"] == "duplicate_sample":
                key = f"{error['id']}-repeat"
            found[key] = ("errors", error["stage"], error["reason"])
            assert error["detail"], error  # a person can read why
    return found


def run_corpus(root: Path, out: Path, sources) -> dict:
    config = tiny_config(root, out).with_overrides(sources=sources, max_error_fraction=1.0)
    summary = run(config)
    counts = summary["counts"]["total"]
    assert counts["input"] == counts["clean"] + counts["review"] + counts["errors"]
    assert (out / "_SUCCESS").exists()
    return summary


@pytest.mark.slow
def test_llava_manifests_meet_every_bad_input(tmp_path):
    expected = write_llava_corpus(tmp_path / "data")
    sources = (
        SourceConfig("main", ("main.json",), video_archives=("videos_*.tar.gz",)),
        SourceConfig("lines", ("lines.jsonl",)),
        SourceConfig("truncated", ("truncated.json",)),
    )
    summary = run_corpus(tmp_path / "data", tmp_path / "out", sources)
    found = outcomes(tmp_path / "out")
    # The same-id-other-question record is kept beside the first: both are clean.
    same_id = [k for k in found if k.startswith("duplicate#")]
    assert len(same_id) == 1 and found.pop(same_id[0]) == ("clean", None, None)
    expected.pop("same-id-other-question")
    assert found == expected
    assert summary["counts"]["total"]["input"] == len(expected) + 1


@pytest.mark.slow
@pytest.mark.parametrize("file_format", ["parquet", "webdataset"])
def test_shard_readers_meet_every_bad_media_file(tmp_path, file_format):
    expected = write_shard_corpus(tmp_path / "data", file_format)
    suffix = "parquet" if file_format == "parquet" else "tar"
    sources = (SourceConfig("shards", (f"*.{suffix}",), format=file_format),)
    run_corpus(tmp_path / "data", tmp_path / "out", sources)
    assert outcomes(tmp_path / "out") == expected
