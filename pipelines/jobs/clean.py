"""The cleaning pipeline: read -> load media -> score -> route -> write -> finish.

`build` composes the stages (`pipelines/stages/`), each a named composite transform; `run`
executes the graph. Every record read ends in exactly one of clean/, review/ or errors/, and
the last stage writes `_SUCCESS` only after every file landed and the counts add up.
"""

from __future__ import annotations

import json
import time

import apache_beam as beam
import fsspec
from apache_beam.options.pipeline_options import PipelineOptions

from models.registry import preflight_models
from pipelines.config import RunConfig
from pipelines.engine_jobs import cancel_job
from pipelines.run_folders.output_prefix import SHUFFLE_DIR, SPILL_DIR
from pipelines.runners import local_processes, runs_locally, shuffles_in_memory
from pipelines.stages.finish import Finish, FinishRun
from pipelines.stages.load_media import LoadMedia
from pipelines.stages.read_sources import DataMissingError, ReadSources, discover_inputs
from pipelines.stages.route_by_score import RouteByScore
from pipelines.stages.score_samples import ScoreSamples, cache_dir_of, scoring_setup_id
from pipelines.stages.write_outputs import WriteOutputs
from transforms.core.run_identity import new_run_id
from transforms.core.run_info import RunInfo
from transforms.core.storage import absolute_url
from transforms.history.input_fingerprint import input_fingerprint
from transforms.samples.score_cache import AttachKnownScores, cache_files
from transforms.shuffle.sorted_runs import grouping

__all__ = ["DataMissingError", "build", "cache_dir_of", "run"]


def build(
    p: beam.Pipeline,
    config: RunConfig,
    started_at: float | None = None,
    runs_folder: str | None = None,
) -> None:
    """The pipeline for `config`; `runs_folder` (the config's output folder) gets the LATEST
    pointer when the run finishes."""
    started_at = time.time() if started_at is None else started_at
    prefix = config.output.rstrip("/")
    run_info = RunInfo(
        new_run_id(), config.model, config.text_model, config.threshold, config.percentile
    )
    options = p.options.get_all_options()
    processes = local_processes(options)
    # Derived once: the weights fingerprint in it reads the model files, and the scoring
    # stage and the finishing step must name the same folder.
    setup_id = scoring_setup_id(config)
    cache_dir = cache_dir_of(config, setup_id)
    inputs = discover_inputs(config)
    identity = {
        "input_fingerprint": input_fingerprint(
            config.root, [f for files in inputs.values() for f in files.manifests + files.archives]
        ),
        "model_fingerprint": setup_id,
    }

    read = p | "ReadSources" >> ReadSources(config, inputs)
    # Local runners would hold a shuffle in memory: theirs go through sorted files instead.
    shuffle_dir = f"{prefix}/{SHUFFLE_DIR}" if shuffles_in_memory(options) else None
    light = read["samples"]
    if cache_dir and cache_files(cache_dir):
        light = (
            light
            | "AttachKnownScores"
            >> AttachKnownScores(cache_dir, grouping(shuffle_dir and f"{shuffle_dir}/cache")),
        )
    archives = any(files.archives for files in inputs.values())
    loaded = light | "LoadMedia" >> LoadMedia(
        config,
        read["archive_videos"] if archives else None,
        grouping(shuffle_dir and f"{shuffle_dir}/media"),
        grouping(shuffle_dir and f"{shuffle_dir}/archives"),
    )
    scored = loaded["samples"] | "ScoreSamples" >> ScoreSamples(config, processes, cache_dir)
    routed = tuple(scored["scored"]) | "RouteByScore" >> RouteByScore(
        config, f"{prefix}/{SPILL_DIR}"
    )
    written = {
        "clean": tuple(routed["clean"]),
        "review": (scored["rule_flagged"], *routed["review"]),
        "errors": (*read["errors"], *loaded["errors"], *scored["errors"], *routed["errors"]),
    } | "WriteOutputs" >> WriteOutputs(config, prefix, run_info)
    finish = FinishRun(
        prefix,
        cache_dir,
        config.max_error_fraction,
        {**_settings(config, prefix, run_info, options), **identity},
        started_at,
        runs_folder,
    )
    {
        "read": read["read"],
        "outcomes": written["outcomes"],
        "files": written["files"],
        "cuts": routed["cuts"],
        "batches": scored["batches"],
    } | "Finish" >> Finish(finish)


def _settings(config: RunConfig, prefix: str, run_info: RunInfo, options: dict) -> dict:
    """What summary.json says about how the run was set up."""
    return {
        "run_id": run_info.run_id,
        "dataset": config.name,
        # Absolute, like every sample's origin, so `rmclean export` can tell each input file's
        # path within the dataset; media paths are relative to the media root of their source.
        "input": absolute_url(config.root),
        "media_roots": {s.name: s.media_root for s in config.sources},
        "output": prefix,
        "model": config.model,
        "text_model": config.text_model,
        "rmclean_version": run_info.rmclean_version,
        "devices": config.devices if isinstance(config.devices, str) else list(config.devices),
        "threshold": config.threshold,
        "percentile": config.percentile,
        "repair": config.repair,
        "format": config.format,
        "shard_mb": config.shard_mb,
        "runner": options.get("runner") or "DirectRunner",
    }


def run(
    config: RunConfig,
    beam_args: list[str] | None = None,
    check_models: bool = True,
    runs_folder: str | None = None,
) -> dict:
    """Run the pipeline to completion and return the summary it wrote.

    `check_models=False` is for callers that ran `preflight_models` themselves (the CLI does,
    before it prepares the output prefix). With `runs_folder`, its LATEST names this run once
    it has finished.
    """
    started_at = time.time()
    if check_models:
        # Model options fail here, before Beam starts, not inside a worker's load_model.
        preflight_models(config, runs_locally(beam_args or []))
    pipeline = beam.Pipeline(options=PipelineOptions(beam_args or []))
    build(pipeline, config, started_at, runs_folder)
    result = pipeline.run()
    try:
        result.wait_until_finish()
    except BaseException:
        # Ctrl-C, SIGTERM or a failure here must not leave the job running on Spark, Flink
        # or Dataflow, writing into an output prefix the caller is about to remove.
        cancel_job(result)
        raise
    with fsspec.open(f"{config.output.rstrip('/')}/report/summary.json") as handle:
        return json.load(handle)
