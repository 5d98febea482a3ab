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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import apache_beam as beam

from pipelines.config import RunConfig
from pipelines.run_folders.latest_run import mark_latest
from pipelines.run_folders.output_prefix import remove_temporaries
from transforms.beam.branches import Branches
from transforms.beam.combine_branches import CombineBranches
from transforms.core.run_info import RunInfo
from transforms.core.storage import absolute_url
from transforms.counts.run_cost import CombineBatchStats
from transforms.counts.run_counts import CountOutcomes, RunCounts, read_outcome
from transforms.history.since_last_run import record_run, since_last_run
from transforms.report import summary as report
from transforms.report.html import write_html_report
from transforms.samples.score_cache import compact

_log = logging.getLogger(__name__)


def run_setup(
    config: RunConfig,
    run_info: RunInfo,
    runner: str,
    input_fingerprint: str,
    model_fingerprint: str,
) -> dict[str, Any]:
    """What summary.json says about how the run was set up."""
    return {
        "run_id": run_info.run_id,
        "dataset": config.name,
        # Absolute, like every sample's origin, so `rmclean export` can tell each input file's
        # path within the dataset; media paths are relative to the media root of their source.
        "input": absolute_url(config.root),
        "media_roots": {s.name: s.media_root for s in config.sources},
        "output": config.output.rstrip("/"),
        "model": config.model,
        "text_model": config.text_model,
        "rmclean_version": run_info.rmclean_version,
        "devices": config.devices if isinstance(config.devices, str) else list(config.devices),
        "threshold": config.threshold,
        "percentile": config.percentile,
        "repair": config.repair,
        "format": config.format,
        "shard_mb": config.shard_mb,
        "runner": runner,
        "input_fingerprint": input_fingerprint,
        "model_fingerprint": model_fingerprint,
    }


@dataclass(frozen=True)
class FinishSettings:
    """What the finishing step is told about the run."""

    prefix: str
    cache_dir: str | None  # the score cache to compact, if any
    max_error_fraction: float
    setup: Mapping[str, Any]  # `run_setup`
    started_at: float
    # Where the LATEST pointer goes (the config's output folder); None writes none.
    runs_folder: str | None = None


class ToFinish(NamedTuple):
    """What `Finish` waits for: every stage's part in the summary."""

    read: Branches  # every record read (ReadSources): the input counts
    outcomes: Branches  # one per record written (WriteOutputs)
    files: beam.PCollection  # every file written (WriteOutputs)
    cuts: beam.PCollection  # (source, cut) pairs (RouteByScore)
    batches: Branches  # one stat per scored batch (ScoreSamples)


class FinishRun(beam.DoFn):
    def __init__(self, settings: FinishSettings):
        self._settings = settings

    def process(self, _, counts: RunCounts, cuts: dict, files: int, cost: dict[str, Any]):
        prefix = self._settings.prefix
        settings = {
            **self._settings.setup,
            "cuts": dict(sorted(cuts.items())),
            "files_written": files,
            **cost,
        }
        summary = report.build_summary(counts, settings, self._settings.started_at)
        remove_temporaries(prefix)
        summary["since_last_run"] = since_last_run(prefix, summary)
        report.write_json(f"{prefix}/report/summary.json", summary)
        report.check_conservation(summary)
        report.check_error_fraction(summary, self._settings.max_error_fraction)
        # The shards are finalized (side inputs), so the page can read them back.
        write_html_report(prefix, summary)
        report.write_success(prefix)
        record_run(prefix, summary)
        if self._settings.cache_dir:
            try:
                compact(self._settings.cache_dir)
            except Exception as exc:  # noqa: BLE001 - the run is done; the cache still works
                _log.warning("could not compact the score cache: %s", exc)
        if self._settings.runs_folder:
            mark_latest(self._settings.runs_folder, prefix)
        yield summary


class Finish(beam.PTransform):
    """`ToFinish` -> the run's summary (one element)."""

    def __init__(self, settings: FinishSettings):
        super().__init__()
        self._settings = settings

    def expand(self, parts: ToFinish):
        inputs = parts.read.each("InputOutcome", beam.Map(read_outcome))
        counts = inputs + parts.outcomes | "CountOutcomes" >> CombineBranches(CountOutcomes())
        return (
            parts.files.pipeline
            | "Start" >> beam.Create([None])
            | "WriteSummaryAndSuccess"
            >> beam.ParDo(
                FinishRun(self._settings),
                counts=beam.pvalue.AsSingleton(counts),
                cuts=beam.pvalue.AsDict(parts.cuts),
                files=beam.pvalue.AsSingleton(
                    parts.files | "CountFiles" >> beam.combiners.Count.Globally()
                ),
                cost=beam.pvalue.AsSingleton(
                    parts.batches | "BatchesAndCost" >> CombineBranches(CombineBatchStats())
                ),
            )
        )
