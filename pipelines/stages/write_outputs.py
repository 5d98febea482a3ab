"""WriteOutputs: clean, review and error records -> shards, and one outcome per record.

A sample counts as clean or review only once it is in a shard: the writers emit the outcomes
the summary counts (and an error record for a sample the format cannot hold). Clean and
review shards get their id -> shard index and the run's information; report/flagged.jsonl
and .csv list every review sample.
"""

from __future__ import annotations

import functools

import apache_beam as beam

from pipelines.config import RunConfig
from pipelines.progress import CountProgress
from transforms.core.routes import CLEAN, ERRORS, REVIEW
from transforms.core.run_info import RunInfo
from transforms.counts.run_counts import written_outcome
from transforms.report import summary
from transforms.shards.shard_index import index_path
from transforms.shards.write_shards import OUTCOMES, WRITE_ERRORS, WriteLines, WriteSamples

# Error records are small; their JSON Lines files roll over at this size.
ERRORS_SHARD_MB = 64


def _counted(branches, label: str, stage: str) -> tuple:
    # A tuple, not a list: Beam reads a list piped into a transform as elements to Create.
    return tuple(
        branch | f"{label}{i}" >> beam.ParDo(CountProgress(stage))
        for i, branch in enumerate(branches)
    )


def _lines(branches, label: str, to_line) -> tuple:
    return tuple(branch | f"{label}{i}" >> beam.Map(to_line) for i, branch in enumerate(branches))


class WriteOutputs(beam.PTransform):
    """{`clean`, `review`, `errors`: tuples of branches} -> {`outcomes`: a tuple of branches,
    `files`: every file written}."""

    def __init__(self, config: RunConfig, prefix: str, run_info: RunInfo):
        super().__init__()
        self._config = config
        self._prefix = prefix
        self._run_info = run_info

    def expand(self, routed):
        config, prefix = self._config, self._prefix
        cut = self._run_info.cut_for
        clean = _counted(routed["clean"], "CountClean", CLEAN)
        review = _counted(routed["review"], "CountReview", REVIEW)
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
        # Every input is a tuple of branches and stays one: a Flatten of per-record elements
        # would be held whole in memory by local runners.
        errors = _counted(
            (*routed["errors"], *writes[CLEAN][WRITE_ERRORS], *writes[REVIEW][WRITE_ERRORS]),
            "CountErrors",
            ERRORS,
        )
        written_errors = errors | "WriteErrors" >> WriteSamples(
            f"{prefix}/errors",
            "jsonl",
            ERRORS_SHARD_MB,
            describe=functools.partial(written_outcome, route=ERRORS),
            name="errors",
        )
        files = (
            writes[CLEAN]["files"],
            writes[REVIEW]["files"],
            written_errors["files"],
            _lines(review, "FlaggedJson", functools.partial(summary.flagged_json_line, cut_for=cut))
            | "WriteFlaggedJsonl" >> WriteLines(f"{prefix}/report/flagged.jsonl"),
            _lines(review, "FlaggedCsv", functools.partial(summary.flagged_csv_line, cut_for=cut))
            | "WriteFlaggedCsv"
            >> WriteLines(f"{prefix}/report/flagged.csv", header=summary.FLAGGED_CSV_HEADER),
        )
        return {
            "outcomes": (
                *writes[CLEAN][OUTCOMES],
                *writes[REVIEW][OUTCOMES],
                *written_errors[OUTCOMES],
            ),
            "files": files | "AllWrittenFiles" >> beam.Flatten(),
        }
