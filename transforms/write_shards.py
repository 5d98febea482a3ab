"""Clean and review samples to sharded Parquet (Beam's WriteToParquet) or WebDataset tars.

Both return the PCollection of finalized file names, which the finishing step waits on before
writing `_SUCCESS`.
"""

from __future__ import annotations

import io
import tarfile
import time

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.parquetio import WriteToParquet

from transforms.parquet_rows import SCHEMA, sample_to_row
from transforms.record import Sample
from transforms.webdataset_rows import sample_key, sample_to_files


class WebDatasetSink(fileio.FileSink):
    """Streams samples into one tar per shard (Beam has no WebDataset IO of its own)."""

    def open(self, fh) -> None:
        self._tar = tarfile.open(fileobj=fh, mode="w|", format=tarfile.PAX_FORMAT)
        self._mtime = time.time()

    def write(self, sample: Sample) -> None:
        key = sample_key(sample)
        for suffix, data in sample_to_files(sample).items():
            info = tarfile.TarInfo(f"{key}.{suffix}")
            info.size = len(data)
            info.mtime = self._mtime
            info.mode = 0o644
            self._tar.addfile(info, io.BytesIO(data))

    def flush(self) -> None:
        # Beam calls flush once, right before closing the file: end the archive here. Closing
        # the TarFile leaves `fh` open because it was passed in, as FileSink requires.
        self._tar.close()


class WriteSamples(beam.PTransform):
    """Write samples under `directory` as `part-SSSSS-of-NNNNN.parquet` or `.tar` shards."""

    def __init__(self, directory: str, file_format: str, num_shards: int = 0):
        super().__init__()
        self._directory = directory.rstrip("/")
        self._format = file_format
        self._num_shards = num_shards

    def expand(self, samples):
        if self._format == "parquet":
            return (
                samples
                | "ToRows" >> beam.Map(sample_to_row)
                | "WriteParquet"
                >> WriteToParquet(
                    f"{self._directory}/part",
                    SCHEMA,
                    file_name_suffix=".parquet",
                    num_shards=self._num_shards,
                    # Rows carry media bytes: flush row groups by size, not by a row count.
                    record_batch_size=64,
                )
            )
        written = samples | "WriteTars" >> fileio.WriteToFiles(
            self._directory,
            file_naming=fileio.default_file_naming("part", ".tar"),
            sink=WebDatasetSink,
            shards=self._num_shards or None,
        )
        return written | "FileNames" >> beam.Map(lambda result: result.file_name)
