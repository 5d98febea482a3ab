"""Write-then-read for every output format, and our outputs (and OneVision Parquet) as inputs."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import webdataset as wds

from pipelines.clean import run
from pipelines.config import SourceConfig
from tests.helpers import conversation, jpeg_bytes, read_parquet_dir, tiny_config


@pytest.mark.slow
def test_webdataset_output_reads_back_with_webdataset(tiny_dataset, tmp_path):
    out = tmp_path / "out"
    run(tiny_config(tiny_dataset, out, format="webdataset"))
    shards = sorted(str(p) for p in (out / "clean").glob("*.tar"))
    assert shards
    samples = list(wds.WebDataset(shards, shardshuffle=False, empty_check=False))
    by_id = {json.loads(s["json"])["id"]: s for s in samples}
    assert sorted(by_id) == ["img-good", "txt-1", "vid-good"]
    image = by_id["img-good"]
    assert image["jpg"] == (tiny_dataset / "images" / "good.jpg").read_bytes()
    metadata = json.loads(image["json"])
    assert json.loads(metadata["fields"]) == {"url": "u1"} and metadata["score"] is not None
    assert by_id["vid-good"]["mp4"][:8] != b""
    review = list(
        wds.WebDataset(
            sorted(str(p) for p in (out / "review").glob("*.tar")),
            shardshuffle=False,
            empty_check=False,
        )
    )
    reasons = {json.loads(s["json"])["id"]: json.loads(s["json"])["reason"] for s in review}
    assert reasons == {"img-bad": "low_score", "img-empty": "empty_answer", "vid-bad": "low_score"}


def _reclean(first_out, second_out, source_format):
    suffix = "parquet" if source_format == "parquet" else "tar"
    config = tiny_config(first_out, second_out).with_overrides(
        sources=(SourceConfig("own", (f"clean/*.{suffix}",), format=source_format),)
    )
    return run(config)


@pytest.mark.slow
def test_cleaning_the_clean_parquet_output_moves_nothing(tiny_dataset, tmp_path):
    first = tmp_path / "first"
    run(tiny_config(tiny_dataset, first))
    summary = _reclean(first, tmp_path / "second", "parquet")
    assert summary["counts"]["total"] == {"input": 3, "clean": 3, "review": 0, "errors": 0}
    before = read_parquet_dir(first / "clean").sort_values("id").reset_index(drop=True)
    after = read_parquet_dir(tmp_path / "second" / "clean").sort_values("id")
    after = after.reset_index(drop=True)
    for column in ("id", "source", "fields", "score"):
        assert before[column].tolist() == after[column].tolist()
    for column in ("images", "videos"):
        assert [m[0]["bytes"] for m in before[column] if len(m)] == [
            m[0]["bytes"] for m in after[column] if len(m)
        ]


@pytest.mark.slow
def test_cleaning_the_clean_webdataset_output_moves_nothing(tiny_dataset, tmp_path):
    first = tmp_path / "first"
    run(tiny_config(tiny_dataset, first, format="webdataset"))
    summary = _reclean(first, tmp_path / "second", "webdataset")
    assert summary["counts"]["total"] == {"input": 3, "clean": 3, "review": 0, "errors": 0}
    assert set(summary["counts"]["per_source"]) == {"images", "videos", "text"}


@pytest.mark.slow
def test_onevision_style_parquet_is_read_with_embedded_images(tmp_path):
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    turn = pa.struct([("from", pa.string()), ("value", pa.string())])
    table = pa.table(
        {
            "id": ["ov-1", "ov-2"],
            "image": pa.array(
                [{"bytes": jpeg_bytes(), "path": "a.jpg"}, {"bytes": jpeg_bytes(), "path": None}],
                image_type,
            ),
            "conversations": pa.array(
                [conversation("What?", "A red square."), conversation("What?", "bad")],
                pa.list_(turn),
            ),
            "data_source": ["ov_subset", "ov_subset"],
        }
    )
    (tmp_path / "ov").mkdir()
    pq.write_table(table, tmp_path / "ov" / "part-0.parquet")
    config = tiny_config(tmp_path / "ov", tmp_path / "out").with_overrides(
        sources=(SourceConfig("onevision", ("*.parquet",), format="parquet"),)
    )
    summary = run(config)
    assert summary["counts"]["per_source"] == {
        "ov_subset": {"input": 2, "clean": 1, "review": 1, "errors": 0}
    }
    clean = read_parquet_dir(tmp_path / "out" / "clean")
    assert clean["images"][0][0]["path"] == "a.jpg"
    assert json.loads(clean["fields"][0]) == {"data_source": "ov_subset"}
