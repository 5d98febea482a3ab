"""Finish: once every file has landed, summary.json, the checks, the report page, `_SUCCESS`.

The step takes every write's finished files as a side input, so it runs only after they all
landed. The counts come as one side input (`RunCounts`, from one light outcome per record);
then the run is compared with the previous finished run of its dataset, summary.json is written,
`input = clean + review + errors` per source and the error fraction are checked (either failing
leaves summary.json for diagnosis and no `_SUCCESS`), the HTML report is written from the
finished shards, `_SUCCESS`, the run's line in the run history, the score cache's small files
are merged, and last the runs folder's LATEST pointer names this run
(`pipelines/run_folders/latest_run.py`).
"""

from __future__ import annotations

import logging
from typing import Any

import apache_beam as beam

from pipelines.run_folders.latest_run import mark_latest
from pipelines.run_folders.output_prefix import remove_temporaries
from transforms.beam.combine_branches import CombineBranches
from transforms.counts.run_cost import CombineBatchStats
from transforms.counts.run_counts import CountOutcomes, RunCounts, read_outcome
from transforms.history.since_last_run import record_run, since_last_run
from transforms.report import summary as report
from transforms.report.html import write_html_report
from transforms.samples.score_cache import compact

_log = logging.getLogger(__name__)


class FinishRun(beam.DoFn):
    def __init__(
        self,
        prefix: str,
        cache_dir: str | None,
        max_error_fraction: float,
        settings: dict[str, Any],
        started_at: float,
        runs_folder: str | None = None,
    ):
        self._prefix = prefix
        self._cache_dir = cache_dir
        self._max_error_fraction = max_error_fraction
        self._settings = settings
        self._started_at = started_at
        # Where the LATEST pointer goes (the config's output folder); None writes none.
        self._runs_folder = runs_folder

    def process(self, _, counts: RunCounts, cuts: dict, files: int, cost: dict[str, Any]):
        prefix = self._prefix
        settings = {
            **self._settings,
            "cuts": dict(sorted(cuts.items())),
            "files_written": files,
            **cost,
        }
        summary = report.build_summary(counts, settings, self._started_at)
        remove_temporaries(prefix)
        summary["since_last_run"] = since_last_run(prefix, summary)
        report.write_json(f"{prefix}/report/summary.json", summary)
        report.check_conservation(summary)
        report.check_error_fraction(summary, self._max_error_fraction)
        # The shards are finalized (side inputs), so the page can read them back.
        write_html_report(prefix, summary)
        report.write_success(prefix)
        record_run(prefix, summary)
        if self._cache_dir:
            try:
                compact(self._cache_dir)
            except Exception as exc:  # noqa: BLE001 - the run is done; the cache still works
                _log.warning("could not compact the score cache: %s", exc)
        if self._runs_folder:
            mark_latest(self._runs_folder, prefix)
        yield summary


class Finish(beam.PTransform):
    """{`read`, `outcomes`, `batches`: tuples of branches, `files`, `cuts`} -> the run's
    summary (one element)."""

    def __init__(self, finish: FinishRun):
        super().__init__()
        self._finish = finish

    def expand(self, parts):
        inputs = tuple(
            branch | f"InputOutcome{i}" >> beam.Map(read_outcome)
            for i, branch in enumerate(parts["read"])
        )
        counts = (*inputs, *parts["outcomes"]) | "CountOutcomes" >> CombineBranches(CountOutcomes())
        return (
            parts["files"].pipeline
            | "Start" >> beam.Create([None])
            | "WriteSummaryAndSuccess"
            >> beam.ParDo(
                self._finish,
                counts=beam.pvalue.AsSingleton(counts),
                cuts=beam.pvalue.AsDict(parts["cuts"]),
                files=beam.pvalue.AsSingleton(
                    parts["files"] | "CountFiles" >> beam.combiners.Count.Globally()
                ),
                cost=beam.pvalue.AsSingleton(
                    parts["batches"] | "BatchesAndCost" >> CombineBranches(CombineBatchStats())
                ),
            )
        )
