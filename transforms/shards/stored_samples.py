"""A run's own shards read back whole: each sample with everything the run wrote about it.

The pipeline's readers (`parquet_rows`, `read_webdataset`) treat shards as input, so they leave
out what only an output holds (score, turn scores, reason, detail, origin, a reviewer's
verdict, a repair). The report
and apply-review need those back, and each sample's position in its shard (the row number in a
Parquet file, the sample key in a tar), which is how the id -> shard index (`shard_index.py`)
points at a sample. Memory stays at a few samples: Parquet is read a small batch at a time and
tars as a stream.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow.parquet as pq

from transforms.core.record import ErrorRecord, Sample
from transforms.io.parquet_rows import row_to_sample
from transforms.io.webdataset_rows import metadata_to_sample, sample_metadata
from transforms.io.webdataset_shards import iter_tar_groups

BATCH_ROWS = 16  # full rows carry media bytes: keep a batch to a few MB


class StoredShardError(ValueError):
    """A shard of the run does not hold what the run wrote; the message names shard and sample."""


def _restored(sample: Sample, stored: dict[str, Any]) -> Sample:
    return sample.replace(
        score=stored.get("score"),
        turn_scores=stored.get("turn_scores"),
        reason=stored.get("reason"),
        detail=stored.get("detail"),
        origin=stored.get("origin") or sample.origin,
        review_decision=stored.get("review_decision"),
        review_note=stored.get("review_note"),
        repaired_from=stored.get("repaired_from"),
        repaired_prefix=stored.get("repaired_prefix"),
    )


def _parquet_samples(fs, path: str) -> Iterator[tuple[str, Sample]]:
    with fs.open(path, "rb") as handle:
        parquet = pq.ParquetFile(handle)
        if "images" not in parquet.schema_arrow.names:
            raise StoredShardError(
                f"{path} has no images column: it was not written by this version of rmclean "
                "(runs before 0.2 wrote a media column); clean the dataset again"
            )
        position = 0
        for batch in parquet.iter_batches(batch_size=BATCH_ROWS):
            for row in batch.to_pylist():
                try:
                    sample = row_to_sample(row, row.get("source") or "", f"{path}#{position}")
                except (KeyError, TypeError, ValueError) as exc:
                    detail = f"{path}: row {position} is unreadable: {exc!r}"
                    raise StoredShardError(detail) from exc
                if isinstance(sample, ErrorRecord):
                    detail = f"{path}: row {position} is unreadable: {sample.detail}"
                    raise StoredShardError(detail)
                yield str(position), _restored(sample, row)
                position += 1


def _tar_samples(fs, path: str) -> Iterator[tuple[str, Sample]]:
    with fs.open(path, "rb") as raw:
        for key, files in iter_tar_groups(raw):
            try:
                metadata = sample_metadata(files)
                sample = metadata_to_sample(metadata, files, "", f"{path}:{key}")
            except (KeyError, TypeError, ValueError) as exc:
                raise StoredShardError(f"{path}: sample {key!r} is unreadable: {exc!r}") from exc
            yield key, _restored(sample, metadata)


def iter_stored_samples(fs, path: str) -> Iterator[tuple[str, Sample]]:
    """(position, sample) for every sample of one of our shards, in shard order."""
    if path.endswith(".parquet"):
        return _parquet_samples(fs, path)
    return _tar_samples(fs, path)
