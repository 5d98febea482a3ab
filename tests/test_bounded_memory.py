"""Media bytes stay inside fused stages, so memory does not grow with the dataset.

Elements are decoded only where they cross a stage boundary (a GroupByKey, a multi-input
Flatten, a side input), and the in-process FnApiRunner holds each of those whole in memory.
So a run in which no media bytes are ever unpickled is a run whose memory does not grow with
the media of the dataset. (Unpickled, not pickled: Beam also pickles sampled elements inside
a stage to estimate their size, and drops the result.) The peak-RSS figures are in bench/
(`make bench`); this test keeps the property from regressing.
"""

from __future__ import annotations

import pytest

from pipelines.config import SourceConfig
from pipelines.jobs.clean import run
from tests.helpers import tiny_config
from transforms.core.record import MediaRef
from transforms.shards.shard_formats import SUFFIXES


@pytest.fixture
def unpickled_media(monkeypatch):
    unpickled: list[str] = []

    def setstate(ref: MediaRef, state: dict):
        ref.__dict__.update(state)
        if ref.data is not None:
            unpickled.append(ref.path)

    monkeypatch.setattr(MediaRef, "__setstate__", setstate, raising=False)
    return unpickled


@pytest.mark.parametrize(
    ("cached", "percentile"),
    [(False, None), (True, None), (False, 60.0)],
    ids=["first-run", "rerun-from-cache", "percentile"],
)
@pytest.mark.slow
def test_no_media_bytes_cross_a_stage_boundary(
    tiny_dataset, tmp_path, unpickled_media, cached, percentile
):
    config = tiny_config(
        tiny_dataset, tmp_path / "out", score_cache=str(tmp_path / "cache"), percentile=percentile
    )
    if cached:
        run(config.with_overrides(output=str(tmp_path / "first")))
        unpickled_media.clear()
    summary = run(config)
    assert summary["counts"]["total"]["input"] == 9
    assert summary["counts"]["total"]["clean"] == 3
    assert summary["scoring"]["from_cache"] == (5 if cached else 0)
    assert unpickled_media == []
    assert not (tmp_path / "out" / ".spill").exists()  # percentile's waiting room is cleared


def test_the_probe_sees_media_that_does_cross_a_boundary(tiny_dataset, tmp_path, unpickled_media):
    """The check above can fail: a GroupByKey of fetched samples is caught."""
    import apache_beam as beam

    from transforms.media.fetch import fetch_media

    with beam.Pipeline() as p:
        (
            p
            | beam.Create([("images/good.jpg",)])
            | beam.Map(lambda _: fetch_media(_sample(), {"": str(tiny_dataset)}, False))
            | beam.Map(lambda sample: (sample.id, sample))
            | beam.GroupByKey()
        )
    assert unpickled_media == ["images/good.jpg"]


def _sample():
    from tests.helpers import conversation
    from transforms.core.record import IMAGE, Sample

    return Sample(
        "s", "images", conversation("Q?", "A red square."), [MediaRef(IMAGE, "images/good.jpg")]
    )


@pytest.mark.slow
@pytest.mark.parametrize("file_format", ["parquet", "webdataset"])
def test_shard_inputs_keep_their_media_out_of_the_shuffle(
    tiny_dataset, tmp_path, unpickled_media, file_format
):
    first = tmp_path / "first"
    run(tiny_config(tiny_dataset, first, format=file_format))
    unpickled_media.clear()
    suffix = SUFFIXES[file_format]
    config = tiny_config(first, tmp_path / "out").with_overrides(
        sources=(SourceConfig("own", (f"clean/*{suffix}",), format=file_format),)
    )
    summary = run(config)
    assert summary["counts"]["total"] == {"input": 3, "clean": 3, "review": 0, "errors": 0}
    assert unpickled_media == []


@pytest.fixture
def runner_buffers(monkeypatch):
    """Bytes the in-process runner keeps between stages (everything it holds in memory until
    the next stage has run: shuffles, multi-input Flattens, side inputs)."""
    from apache_beam.runners.portability.fn_api_runner import execution

    held = [0]
    for buffer in (execution.ListBuffer, execution.GroupingBuffer, execution.WindowGroupingBuffer):

        def append(self, data, _append=buffer.append):
            held[0] += len(data)
            return _append(self, data)

        monkeypatch.setattr(buffer, "append", append)
    return held


def _first_run_and_rerun(work, records: int, held: list[int]) -> int:
    from bench.scale_bench import write_config
    from bench.scale_data import write_scale_dataset
    from pipelines.config import load_config

    data = work / f"data-{records}"
    config = load_config(write_config(work / "scale.yaml")).with_overrides(
        root=str(data),
        model="bench.free_model:FreeRewardModel",
        score_cache=str(work / f"cache-{records}"),
        max_error_fraction=1.0,
    )
    held[0] = 0
    write_scale_dataset(data, records)
    first = run(config.with_overrides(output=str(work / f"first-{records}")))
    write_scale_dataset(data, records, new=records // 10)
    rerun = run(config.with_overrides(output=str(work / f"rerun-{records}")))
    assert first["counts"]["total"]["input"] == records
    assert rerun["scoring"]["from_cache"] == first["scoring"]["scored"]
    return held[0]


@pytest.mark.slow
def test_no_stage_boundary_carries_one_element_per_sample(tmp_path, runner_buffers):
    """Ten times the samples (images, archived videos, text; a first run and a rerun from the
    cache), about the same bytes held between stages: what crosses them is per bundle, per
    run file or per source, never per sample or per video. (Before the shuffles went through
    sorted files and the branches stopped being flattened, this grew with the samples: ~2.5 KB
    each; while the archives' listing was a side input, ~130 bytes a video in each of the nine
    steps reading it: 76 KB at 300 records, 301 KB at 3000.)"""
    small = _first_run_and_rerun(tmp_path, 300, runner_buffers)
    large = _first_run_and_rerun(tmp_path, 3000, runner_buffers)
    assert large < 2 * small, (small, large)
