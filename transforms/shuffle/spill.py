"""Scored samples waiting on disk for the percentile cut.

A per-source percentile is known only once every sample of the source is scored. Holding the
scored samples until then would hold the whole dataset (media included) in memory on a local
runner, so they are streamed into temporary Parquet shards instead, and read back one shard at
a time once the cut is known. The spill keeps what the output shards drop (stage timings,
whether the score came from the cache) so routing and the summary see the same samples they
would have seen in memory.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pyarrow as pa

from transforms.core.record import ErrorRecord, Sample
from transforms.io.parquet_rows import SCHEMA, iter_rows, row_to_sample, sample_to_row
from transforms.shards.shard_formats import ParquetShard

SPILL_SCHEMA = SCHEMA.append(pa.field("timings", pa.string())).append(
    pa.field("cached", pa.bool_())
)
SPILL_SHARD_MB = 64


class SpillShard(ParquetShard):
    SCHEMA = SPILL_SCHEMA

    def metadata(self, first: Sample | None) -> dict[bytes, str]:
        return {}  # a temporary file of the run's own, read only by read_spilled

    @staticmethod
    def to_row(sample: Sample) -> dict:
        return {
            **sample_to_row(sample),  # origin included
            "timings": json.dumps(sample.timings),
            "cached": sample.cached,
        }


def read_spilled(path: str) -> Iterator[Sample | ErrorRecord]:
    """Every sample of one spill shard, exactly as it was spilled."""
    for row in iter_rows(path):
        sample = row_to_sample(row, row["source"], row["origin"])
        if isinstance(sample, ErrorRecord):
            yield sample  # cannot happen to a sample that was valid when spilled, but if so
            continue
        yield sample.replace(
            score=row["score"],
            turn_scores=row["turn_scores"],
            timings=json.loads(row["timings"]),
            cached=row["cached"],
        )
