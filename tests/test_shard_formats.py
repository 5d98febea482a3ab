"""Write-then-read for every output format, and our outputs (and OneVision Parquet) as inputs."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import webdataset as wds

from pipelines.config import SourceConfig
from pipelines.jobs.clean import run
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


def _turn_samples() -> list:
    from transforms.core.record import IMAGE, MediaRef, Sample

    turns = [
        {"from": "human", "value": "<image>\nWhat colour?"},
        {"from": "gpt", "value": "Red."},
        {"from": "human", "value": "How many?"},
        {"from": "gpt", "value": "Seven."},
    ]
    media = [MediaRef(IMAGE, "a.jpg", jpeg_bytes())]
    original = Sample(
        "conv-1", "multi", turns, media, origin="m.json[0]", score=1.5, turn_scores=[2.0, -4.0],
        reason="low_score_turn", detail="assistant turn 2 of 2", repaired_prefix={"messages": 2,
        "turns": 1},
    )  # fmt: skip
    repaired = original.replace(
        conversations=turns[:2],
        score=2.0,
        turn_scores=[2.0],
        reason=None,
        detail=None,
        repaired_prefix=None,
        repaired_from={"messages": 4, "turns": 2, "score": 1.5, "dropped_turn_scores": [-4.0]},
    )
    plain = Sample("plain", "single", conversation("Q?", "A."), origin="s.json[0]", score=0.3)
    return [original, repaired, plain]


@pytest.mark.parametrize("file_format", ["parquet", "webdataset"])
def test_turn_scores_and_repairs_read_back_from_both_formats(tmp_path, file_format):
    """What per-turn scoring and repair add to a sample is stored and read back as written:
    by rmclean (the report, apply-review, export) and by the formats' own readers."""
    import fsspec

    from transforms.shards.shard_formats import SHARD_TYPES, SUFFIXES
    from transforms.shards.stored_samples import iter_stored_samples

    written = _turn_samples()
    path = tmp_path / f"part{SUFFIXES[file_format]}"
    with open(path, "wb") as handle:
        shard = SHARD_TYPES[file_format](handle)
        for sample in written:
            shard.write(sample)
        shard.close()
    fs = fsspec.filesystem("file")
    read = [sample for _, sample in iter_stored_samples(fs, str(path))]
    fields = ("conversations", "score", "turn_scores", "repaired_from", "repaired_prefix")
    for before, after in zip(written, read, strict=True):
        for name in fields:
            assert getattr(after, name) == getattr(before, name), name
    if file_format == "parquet":
        rows = pq.read_table(path).to_pylist()
        assert rows[0]["turn_scores"] == [2.0, -4.0] and rows[2]["turn_scores"] is None
        assert rows[1]["repaired_from"]["dropped_turn_scores"] == [-4.0]
    else:
        members = list(wds.WebDataset(str(path), shardshuffle=False, empty_check=False))
        metadata = [json.loads(m["json"]) for m in members]
        assert metadata[0]["repaired_prefix"] == {"messages": 2, "turns": 1}
        assert metadata[1]["turn_scores"] == [2.0] and metadata[2]["repaired_from"] is None


def test_spilled_samples_keep_their_turn_scores(tmp_path):
    from transforms.shuffle.spill import SpillShard, read_spilled

    written = _turn_samples()
    path = tmp_path / "spill.parquet"
    with open(path, "wb") as handle:
        shard = SpillShard(handle)
        for sample in written:
            shard.write(sample)
        shard.close()
    read = list(read_spilled(str(path)))
    assert [s.turn_scores for s in read] == [s.turn_scores for s in written]
    assert [s.score for s in read] == [s.score for s in written]
