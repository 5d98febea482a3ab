"""Size-capped shards: rollover, naming, empty inputs, retried bundles' leftovers, two inputs."""

from __future__ import annotations

import json

import apache_beam as beam
import pyarrow.parquet as pq
import pytest
import webdataset as wds

from tests.helpers import conversation
from transforms.core.record import IMAGE, MediaRef, Sample
from transforms.shards.rolling_shards import finalize_shards
from transforms.shards.shard_formats import SHARD_TYPES, SUFFIXES
from transforms.shards.write_shards import WriteSamples


def _samples(prefix: str, count: int, media_kib: int = 40) -> list[Sample]:
    return [
        Sample(
            f"{prefix}-{i}",
            "src",
            conversation(f"question {i}", f"answer {i}"),
            [MediaRef(IMAGE, f"images/{prefix}-{i}.jpg", bytes([i % 251]) * (media_kib << 10))],
            {"n": i},
            score=float(i),
        )
        for i in range(count)
    ]


def _ids_in(directory, file_format: str) -> list[str]:
    files = sorted(str(p) for p in directory.glob(f"*{SUFFIXES[file_format]}"))
    if file_format == "parquet":
        return [i for f in files for i in pq.read_table(f).column("id").to_pylist()]
    samples = wds.WebDataset(files, shardshuffle=False, empty_check=False)
    return [json.loads(s["json"])["id"] for s in samples]


def _write(tmp_path, branches: list[list[Sample]], file_format: str, shard_mb: float):
    out = tmp_path / "clean"
    with beam.Pipeline() as p:
        inputs = tuple(
            p | f"Create{i}" >> beam.Create(branch, reshuffle=False)
            for i, branch in enumerate(branches)
        )
        inputs | WriteSamples(str(out), file_format, shard_mb)
    return out


@pytest.mark.parametrize("file_format", ["parquet", "webdataset"])
def test_shards_close_at_the_size_cap_and_keep_every_sample(tmp_path, file_format):
    samples = _samples("a", 60)  # 60 x 40 KiB = 2.3 MiB, capped at 0.5 MiB a shard
    out = _write(tmp_path, [samples], file_format, shard_mb=0.5)
    shards = sorted(p.name for p in out.iterdir())
    total = len(shards)
    assert total >= 5
    assert shards == [f"part-{i:05d}-of-{total:05d}{SUFFIXES[file_format]}" for i in range(total)]
    assert sorted(_ids_in(out, file_format)) == sorted(s.id for s in samples)
    # A shard closes on the first sample that reaches the cap: at most one sample over it.
    assert max(p.stat().st_size for p in out.iterdir()) < (0.5 * 1024 + 60) * 1024


def test_several_inputs_share_one_numbered_set(tmp_path):
    out = _write(tmp_path, [_samples("a", 10), _samples("b", 7)], "parquet", shard_mb=64)
    shards = sorted(p.name for p in out.iterdir())
    assert shards == ["part-00000-of-00002.parquet", "part-00001-of-00002.parquet"]
    assert sorted(_ids_in(out, "parquet")) == sorted(
        s.id for s in _samples("a", 10) + _samples("b", 7)
    )


@pytest.mark.parametrize("file_format", ["parquet", "webdataset"])
def test_no_samples_still_writes_one_readable_empty_shard(tmp_path, file_format):
    out = _write(tmp_path, [[]], file_format, shard_mb=1)
    assert [p.name for p in out.iterdir()] == [f"part-00000-of-00001{SUFFIXES[file_format]}"]
    assert _ids_in(out, file_format) == []
    if file_format == "parquet":
        assert "images" in pq.read_schema(next(out.iterdir())).names


def test_only_reported_temp_shards_are_kept(tmp_path):
    """A retried bundle leaves a temp shard nobody reported: it must not reach the output."""
    temp = tmp_path / "clean" / ".temp-x"
    temp.mkdir(parents=True)
    for name, samples in (("a", _samples("a", 2)), ("b", _samples("b", 3)), ("dead", [])):
        with open(temp / f"{name}.parquet", "wb") as handle:
            shard = SHARD_TYPES["parquet"](handle)
            for sample in samples:
                shard.write(sample)
            shard.close()
    reported = [str(temp / "b.parquet"), str(temp / "a.parquet")]
    final = list(finalize_shards(None, str(tmp_path / "clean"), str(temp), "parquet", reported))
    assert [p.rsplit("/", 1)[1] for p in final] == [
        "part-00000-of-00002.parquet",
        "part-00001-of-00002.parquet",
    ]
    assert not temp.exists()
    assert sorted(_ids_in(tmp_path / "clean", "parquet")) == ["a-0", "a-1", "b-0", "b-1", "b-2"]
    # Retrying the finishing step after it ran changes nothing.
    again = list(finalize_shards(None, str(tmp_path / "clean"), str(temp), "parquet", reported))
    assert again == final
    assert len(_ids_in(tmp_path / "clean", "parquet")) == 5
