"""The shuffle through sorted files gives what Beam's GroupByKey gives, in bounded memory."""

from __future__ import annotations

import pickle
import random

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to

from pipelines.runners import shuffles_in_memory
from transforms.shuffle.sorted_runs import (
    GroupInRunner,
    GroupOnDisk,
    Run,
    WriteRuns,
    merge_partition,
)


def _pairs(count: int, keys: int, seed: int) -> list[tuple[tuple[str, str], str]]:
    rng = random.Random(seed)
    return [((f"k{rng.randrange(keys)}", "x"), f"value-{seed}-{i}") for i in range(count)]


def _grouped(pairs) -> list[tuple[tuple[str, str], list[str]]]:
    groups: dict = {}
    for key, value in pairs:
        groups.setdefault(key, []).append(value)
    return [(key, sorted(values)) for key, values in groups.items()]


@pytest.mark.parametrize("group", ["disk", "runner"])
def test_both_shuffles_group_every_value_of_several_inputs_under_its_key(tmp_path, group):
    first, second = _pairs(3000, 400, seed=1), _pairs(1000, 600, seed=2)
    # Tiny runs: many run files per input, every partition in several of them.
    shuffle = GroupOnDisk(str(tmp_path / "runs"), run_mb=0.01) if group == "disk" else None
    with beam.Pipeline() as p:
        inputs = (
            p | "A" >> beam.Create(first, reshuffle=False),
            p | "B" >> beam.Create(second, reshuffle=False),
        )
        grouped = (
            inputs
            | (shuffle or GroupInRunner())
            | beam.MapTuple(lambda key, values: (key, sorted(values)))
        )
        assert_that(grouped, equal_to(_grouped(first + second)))
    if group == "disk":
        assert len(list((tmp_path / "runs").iterdir())) > 10


def test_the_merge_holds_one_record_per_run_and_one_key(tmp_path, monkeypatch):
    """Merging reads each run lazily: after the first key of a partition, no run has been read
    past the records of that key (plus the one record each run shows the heap)."""
    writer = WriteRuns(str(tmp_path), partitions=1, run_mb=1000)
    runs: list[Run] = []
    for seed in range(5):
        writer.start_bundle()
        for pair in _pairs(2000, 2000, seed):
            list(writer.process(pair))
        runs += [windowed.value for windowed in writer.finish_bundle()]
    loaded = []
    real_loads = pickle.loads

    def counting_loads(data):
        loaded.append(1)
        return real_loads(data)

    monkeypatch.setattr(pickle, "loads", counting_loads)
    _, values = next(merge_partition(0, runs))
    # The heap shows one record of each run; telling the key ended reads one more.
    assert len(loaded) <= len(runs) + len(values) + 1
    monkeypatch.undo()
    rest = list(merge_partition(0, runs))
    assert sum(len(v) for _, v in rest) == 5 * 2000
    assert [k for k, _ in rest] == sorted({k for k, _ in rest})


@pytest.mark.parametrize(
    ("options", "in_memory"),
    [
        ({}, True),
        ({"runner": "FnApiRunner", "direct_running_mode": "multi_processing"}, True),
        ({"runner": "PortableRunner", "job_endpoint": "embed"}, True),
        ({"runner": "PortableRunner", "job_endpoint": "localhost:8099"}, False),
        ({"runner": "DataflowRunner"}, False),
        ({"runner": "FlinkRunner"}, False),
    ],
)
def test_which_runners_get_the_shuffle_on_disk(options, in_memory):
    assert shuffles_in_memory(options) is in_memory
