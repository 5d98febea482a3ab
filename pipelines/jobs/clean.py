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
from pipelines.runners import beam_args_for, local_processes, runs_locally, shuffles_in_memory
from pipelines.stages.finish import Finish, FinishSettings, ToFinish, run_setup
from pipelines.stages.load_media import LoadMedia
from pipelines.stages.read_sources import ReadSources, discover_inputs
from pipelines.stages.route_by_score import RouteByScore
from pipelines.stages.score_samples import ScoreSamples, cache_dir_of, scoring_setup_id
from pipelines.stages.write_outputs import ToWrite, WriteOutputs
from transforms.beam.branches import Branches
from transforms.core.run_identity import new_run_id
from transforms.core.run_info import RunInfo
from transforms.history.input_fingerprint import input_fingerprint
from transforms.samples.score_cache import AttachKnownScores, cache_files
from transforms.shuffle.sorted_runs import grouping


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
    # Derived once: the weights fingerprint in it reads the model files, and the scoring
    # stage and the finishing step must name the same folder.
    setup_id = scoring_setup_id(config)
    cache_dir = cache_dir_of(config, setup_id)
    inputs = discover_inputs(config)
    # Local runners would hold a shuffle in memory: theirs go through sorted files instead.
    shuffle_dir = f"{prefix}/{SHUFFLE_DIR}" if shuffles_in_memory(options) else None

    def shuffle(name: str) -> beam.PTransform:
        return grouping(shuffle_dir and f"{shuffle_dir}/{name}")

    read = p | "ReadSources" >> ReadSources(config, inputs)
    light = read.samples
    if cache_dir and cache_files(cache_dir):
        light = Branches(
            (light | "AttachKnownScores" >> AttachKnownScores(cache_dir, shuffle("cache")),)
        )
    loaded = light | "LoadMedia" >> LoadMedia(
        config, read.archive_videos, shuffle("media"), shuffle("archives")
    )
    scored = loaded.samples | "ScoreSamples" >> ScoreSamples(
        config, local_processes(options), cache_dir
    )
    routed = scored | "RouteByScore" >> RouteByScore(config, f"{prefix}/{SPILL_DIR}")
    errors = read.errors + loaded.errors + scored.errors + routed.errors
    written = ToWrite(routed.clean, routed.review, errors) | "WriteOutputs" >> WriteOutputs(
        config, prefix, run_info
    )
    input_files = [f for files in inputs.values() for f in files.manifests + files.archives]
    setup = run_setup(
        config,
        run_info,
        runner=options.get("runner") or "DirectRunner",
        input_fingerprint=input_fingerprint(config.root, input_files),
        model_fingerprint=setup_id,
    )
    parts = ToFinish(read.read, written.outcomes, written.files, routed.cuts, scored.batches)
    parts | "Finish" >> Finish(
        FinishSettings(prefix, cache_dir, config.max_error_fraction, setup, started_at, runs_folder)
    )


def run(
    config: RunConfig,
    beam_args: list[str] | None = None,
    check_models: bool = True,
    runs_folder: str | None = None,
    runner: str | None = None,
) -> dict:
    """Run the pipeline to completion and return the summary it wrote.

    The runner is chosen as `rmclean clean` chooses it (`runners.beam_args_for`): `runner` a
    preset or Beam runner name, else a `--runner` in `beam_args`, else the in-process one.
    `check_models=False` is for callers that ran `preflight_models` themselves (the CLI does,
    before it prepares the output prefix). With `runs_folder`, its LATEST names this run once
    it has finished.
    """
    started_at = time.time()
    beam_args = beam_args_for(runner, beam_args or [])
    if check_models:
        # Model options fail here, before Beam starts, not inside a worker's load_model.
        preflight_models(config, runs_locally(beam_args))
    pipeline = beam.Pipeline(options=PipelineOptions(beam_args))
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
