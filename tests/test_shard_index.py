"""The id -> shard index written beside the shards: complete, exact, and safe under retries."""

from __future__ import annotations

import apache_beam as beam
import fsspec
import pyarrow.parquet as pq
import pytest

from tests.helpers import conversation
from transforms.core.content_hash import content_hash
from transforms.core.record import IMAGE, MediaRef, Sample
from transforms.shards.rolling_shards import RollingShards, finalize_shards
from transforms.shards.shard_formats import SHARD_TYPES
from transforms.shards.shard_index import INDEX_SCHEMA, iter_index
from transforms.shards.stored_samples import iter_stored_samples
from transforms.shards.write_shards import WriteSamples


def _samples(prefix: str, count: int) -> list[Sample]:
    return [
        Sample(
            f"{prefix}-{i % 7}",  # ids repeat, as LLaVA-Video's do; origins do not
            "src",
            conversation(f"question {i}", f"answer {i}"),
            [MediaRef(IMAGE, f"images/{prefix}-{i}.jpg", bytes([i % 251]) * (30 << 10))],
            origin=f"data/{prefix}.json[{i}]",
            score=float(i) - 10,
            reason="low_score" if i % 2 else None,
        )
        for i in range(count)
    ]


def _read_back(prefix, row) -> Sample:
    fs, root = fsspec.core.url_to_fs(f"{prefix}/{row['shard']}")
    return dict(iter_stored_samples(fs, root))[row["position"]]


@pytest.mark.parametrize("file_format", ["parquet", "webdataset"])
def test_the_index_finds_every_sample_of_the_shards(tmp_path, file_format):
    samples = _samples("a", 40) + _samples("b", 13)
    index_file = str(tmp_path / "index" / "clean.parquet")
    with beam.Pipeline() as p:
        branches = (
            p | "A" >> beam.Create(samples[:40], reshuffle=False),
            p | "B" >> beam.Create(samples[40:], reshuffle=False),
        )
        branches | WriteSamples(str(tmp_path / "clean"), file_format, 0.25, index_file)
    rows = list(iter_index(index_file))
    shards = {row["shard"] for row in rows}
    assert len(shards) >= 4 and all(s.startswith("clean/part-") for s in shards)
    assert {(tmp_path / s).exists() for s in shards} == {True}
    assert sorted(row["origin"] for row in rows) == sorted(s.origin for s in samples)
    by_origin = {s.origin: s for s in samples}
    for row in rows:
        stored = _read_back(tmp_path, row)
        expected = by_origin[row["origin"]]
        assert (stored.id, stored.origin, stored.score) == (row["id"], row["origin"], row["score"])
        assert (stored.id, stored.score, stored.reason) == (
            expected.id,
            expected.score,
            expected.reason,
        )
        assert stored.media[0].data == expected.media[0].data
        # What `rmclean compare` tells changed samples by, the score cache's key too.
        assert row["content_hash"] == content_hash(expected) == content_hash(stored)
    assert not list((tmp_path / "clean").glob(".temp-*"))


def test_only_reported_shards_are_indexed_and_a_retry_writes_the_same_index(tmp_path):
    """A retried bundle leaves a shard and sidecar nobody reported: the index never sees them."""
    temp = tmp_path / "review" / ".temp-x"
    reported = []
    for name, count in (("a", 3), ("b", 2), ("dead", 4)):
        shards = RollingShards(str(temp), SHARD_TYPES["webdataset"], 64, indexed=True)
        for sample in _samples(name, count):
            shards.write(sample)
        path = shards.close()
        if name != "dead":
            reported.append(path)
    index_file = str(tmp_path / "index" / "review.parquet")

    def finalize():
        return list(
            finalize_shards(
                None, str(tmp_path / "review"), str(temp), "webdataset", reported, index_file
            )
        )

    final = finalize()
    first = list(iter_index(index_file))
    assert sorted(row["origin"] for row in first) == sorted(
        s.origin for s in _samples("a", 3) + _samples("b", 2)
    )
    assert {row["shard"] for row in first} == {f"review/{p.rsplit('/', 1)[1]}" for p in final}
    for row in first:
        assert _read_back(tmp_path, row).origin == row["origin"]
    assert finalize() == final and list(iter_index(index_file)) == first


def test_no_samples_gives_an_empty_index_with_the_schema(tmp_path):
    index_file = tmp_path / "index" / "clean.parquet"
    with beam.Pipeline() as p:
        p | beam.Create([]) | WriteSamples(str(tmp_path / "clean"), "parquet", 1, str(index_file))
    table = pq.read_table(index_file)
    assert table.num_rows == 0 and table.schema.equals(INDEX_SCHEMA)
