"""Beam writers: samples to size-capped Parquet or WebDataset shards, lines to one file.

Each bundle streams its samples into temporary shard files, starting a new one whenever the
current one reaches `shard_mb`; one finishing step then renames every temporary file to
`part-SSSSS-of-NNNNN.<ext>` (`rolling_shards.py`). Beam's own sinks either group every row by
shard (a fixed `num_shards` sends all media bytes through a GroupByKey, which local runners
hold in memory) or write one unbounded file per bundle; this keeps memory at one row group and
shards at a size readers like. Error records and report lines use the same writer as JSON Lines.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import apache_beam as beam
from apache_beam.pvalue import TaggedOutput

from transforms.beam.bundle_outputs import in_global_window
from transforms.core.record import ErrorRecord, Sample
from transforms.core.run_info import RunInfo
from transforms.shards.rolling_shards import (
    RollingShards,
    concatenate_shards,
    finalize_shards,
    temp_dir_under,
)
from transforms.shards.shard_formats import SHARD_TYPES, JsonLinesShard, UnwritableSample

# Line files (errors, flagged rows) are small; temp files roll over at this size.
LINE_SHARD_MB = 64
WRITE_ERRORS = "write_errors"
OUTCOMES = "outcomes"


class WriteTempShards(beam.DoFn):
    """Stream samples into temp shards under `temp_dir`; output each finished shard's path.

    With `describe`, every sample written also yields `describe(sample)` on the `outcomes`
    output, so a sample counts as routed only once it is in a shard; a sample the format
    cannot hold becomes an error record on `write_errors`.
    """

    def __init__(
        self,
        temp_dir: str,
        shard_type: type,
        shard_mb: float,
        indexed: bool = False,
        describe: Callable[[Sample], Any] | None = None,
        run_info: RunInfo | None = None,
    ):
        self._temp_dir = temp_dir
        self._shard_type = shard_type
        self._shard_mb = shard_mb
        self._indexed = indexed
        self._describe = describe
        self._run_info = run_info

    def start_bundle(self):
        self._shards = RollingShards(
            self._temp_dir, self._shard_type, self._shard_mb, self._indexed, self._run_info
        )

    def process(self, sample):
        try:
            closed = self._shards.write(sample)
        except UnwritableSample as exc:
            detail = f"{exc} ({type(exc.__cause__).__name__})"[:1000]
            error = ErrorRecord.for_sample(sample, "write", "unwritable", detail)
            yield TaggedOutput(WRITE_ERRORS, error)
            return
        if self._describe is not None:
            yield TaggedOutput(OUTCOMES, self._describe(sample))
        if closed:
            yield closed

    def finish_bundle(self):
        closed = self._shards.close()
        if closed:
            yield in_global_window(closed)


class WriteSamples(beam.PTransform):
    """Write one or more PCollections of samples as one set of shards under `directory`.

    Taking several inputs lets callers skip a Flatten: the local runners materialize every
    multi-input Flatten in memory, and these inputs carry media bytes. Returns a dict: `files`
    (final shard paths, once all are renamed), and a tuple of branches, one per input, of
    `outcomes` (one `describe(sample)` per sample written) and of `write_errors` (samples the
    format cannot hold).
    """

    def __init__(
        self,
        directory: str,
        file_format: str,
        shard_mb: float,
        index_file: str | None = None,
        describe: Callable[[Sample], Any] | None = None,
        name: str = "part",
        run_info: RunInfo | None = None,
    ):
        super().__init__()
        self._directory = directory.rstrip("/")
        self._format = file_format
        self._shard_mb = shard_mb
        self._index_file = index_file
        self._describe = describe
        self._name = name
        self._run_info = run_info

    def expand(self, inputs):
        branches = inputs if isinstance(inputs, (tuple, list)) else (inputs,)
        temp_dir = temp_dir_under(self._directory)
        writer = WriteTempShards(
            temp_dir,
            SHARD_TYPES[self._format],
            self._shard_mb,
            indexed=bool(self._index_file),
            describe=self._describe,
            run_info=self._run_info,
        )
        written = [
            branch
            | f"WriteTempShards{i}"
            >> beam.ParDo(writer).with_outputs(OUTCOMES, WRITE_ERRORS, main="paths")
            for i, branch in enumerate(branches)
        ]
        temp_paths = tuple(w.paths for w in written) | "AllPaths" >> beam.Flatten()
        files = (
            branches[0].pipeline
            | "Finalize" >> beam.Create([None])
            | "RenameShards"
            >> beam.FlatMap(
                finalize_shards,
                self._directory,
                temp_dir,
                self._format,
                beam.pvalue.AsList(temp_paths),
                self._index_file,
                self._name,
                self._run_info,
            )
        )
        return {
            "files": files,
            OUTCOMES: tuple(w[OUTCOMES] for w in written),
            WRITE_ERRORS: tuple(w[WRITE_ERRORS] for w in written),
        }


class WriteLines(beam.PTransform):
    """Write lines (strings, or error records as JSON) from one or more PCollections as the
    single file `path`.

    Every worker streams its lines into temp files; the finishing step joins them. Unlike
    Beam's WriteToText with one shard, no line goes through a GroupByKey, and no input still
    gives the file (object stores reject the empty multipart upload Beam's sink makes then).
    """

    def __init__(self, path: str, header: str | None = None):
        super().__init__()
        self._path = path
        self._header = header

    def expand(self, inputs):
        branches = inputs if isinstance(inputs, (tuple, list)) else (inputs,)
        temp_dir = temp_dir_under(self._path.rsplit("/", 1)[0])
        writer = WriteTempShards(temp_dir, JsonLinesShard, LINE_SHARD_MB)
        temp_paths = (
            tuple(
                lines | f"WriteTempLines{i}" >> beam.ParDo(writer)
                for i, lines in enumerate(branches)
            )
            | "AllPaths" >> beam.Flatten()
        )
        return (
            branches[0].pipeline
            | "Finalize" >> beam.Create([None])
            | "JoinLines"
            >> beam.FlatMap(
                concatenate_shards,
                self._path,
                temp_dir,
                beam.pvalue.AsList(temp_paths),
                self._header,
            )
        )
