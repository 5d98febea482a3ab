"""A GroupByKey through sorted files, for runners that would hold a shuffle in memory.

The in-process FnApiRunner (the default runner, `--runner local`, and `portable`'s embedded
job server) keeps every element of a GroupByKey in memory, as Python objects, until the step
reading it has run, so a shuffle of light samples grows with the dataset (with the other
stage boundaries that held one element per sample, peak memory grew ~6 KB per sample from 10k
to 50k samples). `GroupOnDisk` groups the same (key, value) pairs through files instead:

- every bundle buffers what it receives up to `run_mb`, sorts it by (partition, key), where
  the partition is a stable hash of the key, and writes it as one run file under `temp_dir`
  with each partition's records in one contiguous section (`Run`: path and section offsets);
- once every run is written (the runs are a side input of the next step), one task per
  partition merges that partition's section of every run (a heap over one buffered reader per
  run) and yields each key with all its values, one key at a time.

Memory is one run being filled per bundle while writing, then one read buffer per run (local
files: 8 KiB, object stores: READ_BLOCK_BYTES) and one key's values while merging. Runners
that shuffle on disk themselves (Dataflow, Flink, Spark) keep Beam's GroupByKey
(`GroupInRunner`): the two take and give the same elements, so the stages do not care which
one they got (`grouping`).
"""

from __future__ import annotations

import heapq
import itertools
import pickle
import struct
import uuid
import zlib
from collections.abc import Iterator
from typing import Any, NamedTuple

import apache_beam as beam
import fsspec

from transforms.beam.bundle_outputs import in_global_window
from transforms.core.storage import open_for_write

PARTITIONS = 16  # merge tasks: enough to keep a machine's worker processes busy
# Memory a bundle fills before it writes a run, records and their Python overhead counted.
# Merging reads every run at once, one READ_BLOCK_BYTES buffer each, so runs this size keep
# both small: ~40 MB of buffers at 1.5 M light samples.
RUN_MB = 4.0
READ_BLOCK_BYTES = 64 << 10
_ENTRY_OVERHEAD = 120  # bytes of Python objects around each buffered record
_LENGTH = struct.Struct(">I")


class Run(NamedTuple):
    """One sorted run file; partition p's records lie in bytes [offsets[p], offsets[p + 1])."""

    path: str
    offsets: tuple[int, ...]


def partition_of(key: Any, partitions: int) -> int:
    """A stable partition for `key` (strings or tuples of strings), the same in every process."""
    return zlib.crc32(repr(key).encode("utf-8", "surrogatepass")) % partitions


def sort_key(key: Any, partition: int) -> bytes:
    """Bytes that order records by partition and bring equal keys together, in every run
    alike (not the keys' own order: grouping needs only that equal keys sort side by side)."""
    return partition.to_bytes(2, "big") + repr(key).encode("utf-8", "surrogatepass")


class WriteRuns(beam.DoFn):
    """(key, value) pairs -> `Run`s: sorted files of at most about `run_mb` each."""

    def __init__(self, temp_dir: str, partitions: int = PARTITIONS, run_mb: float = RUN_MB):
        self._temp_dir = temp_dir.rstrip("/")
        self._partitions = partitions
        self._run_bytes = int(run_mb * (1 << 20))

    def start_bundle(self):
        self._buffer: list[tuple[bytes, bytes]] = []
        self._buffered = 0

    def process(self, pair: tuple[Any, Any]):
        ordered = sort_key(pair[0], partition_of(pair[0], self._partitions))
        record = pickle.dumps(pair, protocol=pickle.HIGHEST_PROTOCOL)
        self._buffer.append((ordered, record))
        self._buffered += len(ordered) + len(record) + _ENTRY_OVERHEAD
        if self._buffered >= self._run_bytes:
            yield self._write()

    def finish_bundle(self):
        if self._buffer:
            yield in_global_window(self._write())

    def _write(self) -> Run:
        # Stable: equal keys keep the order they came in.
        self._buffer.sort(key=lambda entry: entry[0])
        offsets = [0] * (self._partitions + 1)
        path = f"{self._temp_dir}/run-{uuid.uuid4().hex}.bin"
        position = 0
        with open_for_write(path) as handle:
            for ordered, record in self._buffer:
                for part in (ordered, record):
                    handle.write(_LENGTH.pack(len(part)))
                    handle.write(part)
                position += 2 * _LENGTH.size + len(ordered) + len(record)
                offsets[int.from_bytes(ordered[:2], "big") + 1] = position
        # A partition with no records ends where the one before it ends.
        for partition in range(1, self._partitions + 1):
            offsets[partition] = max(offsets[partition], offsets[partition - 1])
        self._buffer, self._buffered = [], 0
        return Run(path, tuple(offsets))


def _section(run: Run, partition: int) -> Iterator[tuple[bytes, bytes]]:
    """The (sort key, pickled pair) records of one run's section, in the run's order."""
    start, end = run.offsets[partition], run.offsets[partition + 1]
    if start == end:
        return
    fs, path = fsspec.core.url_to_fs(run.path)
    with fs.open(path, "rb", block_size=READ_BLOCK_BYTES) as handle:
        handle.seek(start)
        position = start
        while position < end:
            (length,) = _LENGTH.unpack(handle.read(_LENGTH.size))
            ordered = handle.read(length)
            (length,) = _LENGTH.unpack(handle.read(_LENGTH.size))
            yield ordered, handle.read(length)
            position += 2 * _LENGTH.size + len(ordered) + length


def merge_partition(partition: int, runs: list[Run]) -> Iterator[tuple[Any, list[Any]]]:
    """(key, values) for every key of `partition`, each key once, from every run's section."""
    sections = [_section(run, partition) for run in runs]
    merged = heapq.merge(*sections, key=lambda entry: entry[0])
    for _, entries in itertools.groupby(merged, key=lambda entry: entry[0]):
        pairs = [pickle.loads(record) for _, record in entries]
        yield pairs[0][0], [value for _, value in pairs]


def _branches(inputs) -> tuple:
    return tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)


class GroupOnDisk(beam.PTransform):
    """One or more PCollections of (key, value) -> (key, [values]), through sorted run files
    under `temp_dir` (see the module's docstring). Several inputs need no Flatten, which a
    local runner would hold in memory too."""

    def __init__(self, temp_dir: str, partitions: int = PARTITIONS, run_mb: float = RUN_MB):
        super().__init__()
        self._temp_dir = temp_dir
        self._partitions = partitions
        self._run_mb = run_mb

    def expand(self, inputs):
        branches = _branches(inputs)
        writer = WriteRuns(self._temp_dir, self._partitions, self._run_mb)
        runs = (
            tuple(
                branch | f"WriteRuns{i}" >> beam.ParDo(writer) for i, branch in enumerate(branches)
            )
            | "AllRuns" >> beam.Flatten()
        )
        return (
            branches[0].pipeline
            | "Partitions" >> beam.Create(range(self._partitions))
            | "MergeRuns" >> beam.FlatMap(merge_partition, beam.pvalue.AsList(runs))
        )


class GroupInRunner(beam.PTransform):
    """The same contract as `GroupOnDisk`, with Beam's GroupByKey: for runners whose shuffle
    spills to disk on its own."""

    def expand(self, inputs):
        branches = _branches(inputs)
        pairs = branches[0] if len(branches) == 1 else branches | "Together" >> beam.Flatten()
        return pairs | "GroupByKey" >> beam.GroupByKey()


def grouping(temp_dir: str | None) -> beam.PTransform:
    """`GroupOnDisk` under `temp_dir`, or Beam's own GroupByKey when `temp_dir` is None."""
    return GroupInRunner() if temp_dir is None else GroupOnDisk(temp_dir)
