"""What a run was, written into every output shard: which run, model and cut made it.

A shard copied away from its run folder still says where it came from: Parquet files carry it
in their schema metadata (key `rmclean`, JSON), every WebDataset sample in its `.json` (key
`run`). A percentile run's per-source cuts exist only once every score is in, so routing hands
them to the writers on the samples themselves (`Sample.run_cuts`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from importlib import metadata
from typing import Any

from transforms.core.record import Sample

PARQUET_KEY = b"rmclean"


def rmclean_version() -> str:
    try:
        return metadata.version("rmclean")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    model: str
    text_model: str | None = None
    threshold: float | None = None
    percentile: float | None = None
    # Per-source cuts when they are known up front (apply-review copies the run's).
    cuts: dict[str, float] | None = None
    rmclean_version: str = field(default_factory=rmclean_version)

    def cut_for(self, sample: Sample) -> float | None:
        """The score this sample's route was decided against; None for a sample no score
        routed (rule-flagged, unscored)."""
        if sample.score is None:
            return None
        if self.threshold is not None:
            return self.threshold
        return (sample.run_cuts or self.cuts or {}).get(sample.source)

    def for_sample(self, sample: Sample) -> dict[str, Any]:
        """The `run` entry of one WebDataset sample's JSON."""
        info = {k: v for k, v in asdict(self).items() if k != "cuts"}
        return {**info, "cut": self.cut_for(sample)}

    def for_parquet(self, first: Sample | None) -> str:
        """The `rmclean` schema metadata of a Parquet file whose first sample is `first`.

        `cuts` is null for a threshold run (`threshold` cuts every source); a percentile run's
        per-source cuts come with its routed samples (null in a file of rule-flagged samples
        only, which no cut routed).
        """
        info = asdict(self)
        if self.threshold is None:
            info["cuts"] = (first.run_cuts if first is not None else None) or self.cuts
        else:
            info["cuts"] = None
        return json.dumps(info, sort_keys=True)
