"""WriteOutputs: clean, review and error records -> shards, and one outcome per record.

A sample counts as clean or review only once it is in a shard: the writers emit the outcomes
the summary counts (and an error record for a sample the format cannot hold). Clean and
review shards get their id -> shard index and the run's information; report/flagged.jsonl
and .csv list every review sample.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import apache_beam as beam

from pipelines.config import RunConfig
from pipelines.progress import CountProgress
from transforms.beam.branches import Branches
from transforms.core.routes import CLEAN, ERRORS, REVIEW
from transforms.core.run_info import RunInfo
from transforms.counts.run_counts import written_outcome
from transforms.report import summary
from transforms.shards.shard_index import index_path
from transforms.shards.write_shards import OUTCOMES, WRITE_ERRORS, WriteLines, WriteSamples

# Error records are small; their JSON Lines files roll over at this size.
ERRORS_SHARD_MB = 64


class ToWrite(NamedTuple):
    """What WriteOutputs writes: the routes, and every stage's error records."""

    clean: Branches
    review: Branches
    errors: Branches


class OutputsWritten(NamedTuple):
    """What WriteOutputs gives `Finish`."""

    outcomes: Branches  # one outcome per record written
    files: beam.PCollection  # every file written, once it is in place


class WriteOutputs(beam.PTransform):
    """`ToWrite` -> `OutputsWritten`."""

    def __init__(self, config: RunConfig, prefix: str, run_info: RunInfo):
        super().__init__()
        self._config = config
        self._prefix = prefix
        self._run_info = run_info

    def expand(self, routed: ToWrite):
        config, prefix = self._config, self._prefix
        cut = self._run_info.cut_for
        clean = routed.clean.each("CountClean", beam.ParDo(CountProgress(CLEAN)))
        review = routed.review.each("CountReview", beam.ParDo(CountProgress(REVIEW)))
        writes = {
            route: branches
            | f"Write{route.title()}"
            >> WriteSamples(
                f"{prefix}/{route}",
                config.format,
                config.shard_mb,
                index_path(prefix, route),
                functools.partial(written_outcome, route=route),
                run_info=self._run_info,
            )
            for route, branches in ((CLEAN, clean), (REVIEW, review))
        }
        errors = (routed.errors + writes[CLEAN][WRITE_ERRORS] + writes[REVIEW][WRITE_ERRORS]).each(
            "CountErrors", beam.ParDo(CountProgress(ERRORS))
        )
        written_errors = errors | "WriteErrors" >> WriteSamples(
            f"{prefix}/errors",
            "jsonl",
            ERRORS_SHARD_MB,
            describe=functools.partial(written_outcome, route=ERRORS),
            name="errors",
        )
        files = Branches(
            (
                writes[CLEAN]["files"],
                writes[REVIEW]["files"],
                written_errors["files"],
                review.each(
                    "FlaggedJson",
                    beam.Map(functools.partial(summary.flagged_json_line, cut_for=cut)),
                )
                | "WriteFlaggedJsonl" >> WriteLines(f"{prefix}/report/flagged.jsonl"),
                review.each(
                    "FlaggedCsv", beam.Map(functools.partial(summary.flagged_csv_line, cut_for=cut))
                )
                | "WriteFlaggedCsv"
                >> WriteLines(f"{prefix}/report/flagged.csv", header=summary.FLAGGED_CSV_HEADER),
            )
        )
        return OutputsWritten(
            outcomes=Branches(
                (*writes[CLEAN][OUTCOMES], *writes[REVIEW][OUTCOMES], *written_errors[OUTCOMES])
            ),
            # One element per file written: few, so they may be flattened.
            files=files.flatten("AllWrittenFiles"),
        )
