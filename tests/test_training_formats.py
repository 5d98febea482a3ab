"""Outputs that training code reads as they are: Hugging Face `datasets` gets PIL images,
`fields` is the same JSON text in both formats, and every shard says which run made it."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
import webdataset as wds

from pipelines.jobs.clean import run
from tests.helpers import tiny_config


def _run_metadata(path) -> dict:
    return json.loads(pq.read_schema(path).metadata[b"rmclean"])


@pytest.mark.slow
def test_datasets_loads_clean_parquet_with_pil_images(tiny_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    datasets = pytest.importorskip("datasets")
    from PIL import Image

    out = tmp_path / "out"
    summary = run(tiny_config(tiny_dataset, out))
    clean = datasets.load_dataset(
        "parquet", data_dir=str(out / "clean"), split="train", cache_dir=str(tmp_path / "hf")
    )
    rows = {row["id"]: row for row in clean}
    assert sorted(rows) == ["img-good", "txt-1", "vid-good"]
    picture = rows["img-good"]["images"][0]
    assert isinstance(picture, Image.Image) and picture.size == (64, 48)
    assert rows["txt-1"]["images"] == [] and rows["img-good"]["videos"] == []
    video = rows["vid-good"]["videos"][0]
    assert video["path"] == "vids/a.mp4" and video["bytes"][4:8] == b"ftyp"
    assert json.loads(rows["img-good"]["fields"]) == {"url": "u1"}
    assert rows["txt-1"]["record_layout"]["id_key"] == "idx"
    assert clean.features["images"].feature.__class__.__name__ == "Image"
    # The run's information, as summary.json has it, in every shard's schema metadata.
    for shard in sorted((out / "clean").glob("*.parquet")):
        info = _run_metadata(shard)
        assert info["run_id"] == summary["run_id"] and info["model"] == summary["model"]
        assert info["threshold"] == -2.0 and info["percentile"] is None
        assert info["rmclean_version"] == summary["rmclean_version"] != "unknown"


@pytest.mark.slow
def test_a_percentile_runs_shards_carry_its_per_source_cuts(tiny_dataset, tmp_path):
    out = tmp_path / "out"
    summary = run(tiny_config(tiny_dataset, out, percentile=50.0))
    scored_shards = [
        shard
        for folder in ("clean", "review")
        for shard in sorted((out / folder).glob("*.parquet"))
        if pq.read_table(shard, columns=["score"]).column("score").null_count == 0
        and pq.read_metadata(shard).num_rows
    ]
    assert scored_shards
    for shard in scored_shards:
        info = _run_metadata(shard)
        assert info["percentile"] == 50.0 and info["threshold"] is None
        assert info["cuts"] == summary["cuts"]


@pytest.mark.slow
def test_every_webdataset_sample_says_which_run_and_cut_routed_it(tiny_dataset, tmp_path):
    out = tmp_path / "out"
    summary = run(tiny_config(tiny_dataset, out, format="webdataset", percentile=50.0))
    shards = sorted(str(p) for folder in ("clean", "review") for p in (out / folder).glob("*.tar"))
    samples = [json.loads(s["json"]) for s in wds.WebDataset(shards, shardshuffle=False)]
    assert len(samples) == 6
    for sample in samples:
        info = sample["run"]
        assert info["run_id"] == summary["run_id"] and info["model"] == summary["model"]
        assert isinstance(sample["fields"], str) and isinstance(json.loads(sample["fields"]), dict)
        if sample["score"] is None:  # rule-flagged: no cut routed it
            assert info["cut"] is None
        else:
            assert info["cut"] == summary["cuts"][sample["source"]]
