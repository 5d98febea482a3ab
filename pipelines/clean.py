"""The cleaning pipeline: read -> fetch media -> rules -> decode -> score -> route -> write.

`build` lays out the Beam graph from a validated `RunConfig`; `run` executes it. The last step
writes summary.json and `_SUCCESS` only after every file write has finished and the counts add
up, so `_SUCCESS` means the whole run landed.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
import uuid

import apache_beam as beam
import fsspec
from apache_beam.options.pipeline_options import PipelineOptions

from models.base import RewardModelHandler, ScoreOutcome
from models.loading import ModelConfigError
from models.registry import (
    CopyLoader,
    preflight_models,
    token_estimator_for,
    weights_fingerprint,
)
from models.score_ahead import BATCHES_TAG, ScoreAhead
from pipelines.config import RunConfig
from pipelines.output_prefix import SPILL_DIR, remove_spill
from pipelines.progress import READ, SCORED, CountProgress
from pipelines.runners import local_processes, runs_locally
from pipelines.steps import (
    ERRORS_TAG,
    GroupStep,
    SplitErrors,
    apply_step,
    guarded,
    unexpected_error,
)
from transforms.core.record import ErrorRecord, Sample
from transforms.core.run_identity import new_run_id
from transforms.core.run_info import RunInfo
from transforms.core.storage import absolute_url, glob_paths
from transforms.io.llava_manifests import read_manifest
from transforms.io.shard_index import index_path
from transforms.io.shard_inputs import read_light
from transforms.io.spill import SPILL_SHARD_MB, SpillShard, read_spilled
from transforms.io.video_archives import list_archive_videos
from transforms.io.write_shards import (
    OUTCOMES,
    WRITE_ERRORS,
    WriteLines,
    WriteSamples,
    WriteTempShards,
)
from transforms.media.decode_ahead import DecodeAhead, DecodeSettings
from transforms.media.fetch import fetch_media
from transforms.media.groups import group_key, open_group
from transforms.report import summary as report
from transforms.report.html import write_html_report
from transforms.report.run_cost import CombineBatchStats
from transforms.samples.route import (
    CLEAN,
    ERRORS,
    QUANTILE_POINTS,
    REVIEW,
    percentile_cut,
    route_by_cut,
    route_by_threshold,
)
from transforms.samples.rules import check_rules
from transforms.samples.score_cache import (
    CACHED,
    PersistScores,
    cache_files,
    compact,
    look_up_cached,
    model_cache_id,
    read_cache_file,
)

# Error records are small; their JSON Lines files roll over at this size.
ERRORS_SHARD_MB = 64


class DataMissingError(FileNotFoundError):
    """The configured dataset is not where the config says; the message says how to fix it."""


def _expand(root: str, patterns: tuple[str, ...]) -> list[str]:
    return [path for pattern in patterns for path in glob_paths(f"{root.rstrip('/')}/{pattern}")]


def discover_inputs(config: RunConfig) -> dict[str, dict[str, list[str]]]:
    """Resolve every source's globs now, so missing data fails before any worker starts."""
    resolved = {}
    for source in config.sources:
        manifests = _expand(config.root, source.manifests)
        if not manifests:
            wanted = ", ".join(f"{config.root}/{p}" for p in source.manifests)
            raise DataMissingError(
                f"source {source.name!r}: no input matches {wanted}.\n{config.layout_help}".strip()
            )
        archives = _expand(config.root, source.video_archives)
        if source.video_archives and not archives:
            wanted = ", ".join(f"{config.root}/{p}" for p in source.video_archives)
            raise DataMissingError(
                f"source {source.name!r}: no video archive matches {wanted}.\n"
                f"{config.layout_help}".strip()
            )
        resolved[source.name] = {"manifests": manifests, "archives": archives}
    return resolved


def media_roots(config: RunConfig) -> dict[str, str]:
    root = config.root.rstrip("/")
    roots = {s.name: f"{root}/{s.media_root}" if s.media_root else root for s in config.sources}
    return {"": root, **roots}


def _read_source(p, config: RunConfig, source, files: list[str]):
    label = f"Read[{source.name}]"
    files_in = p | f"{label}/Files" >> beam.Create(files)
    if source.format == "llava":
        return files_in | f"{label}/Records" >> beam.FlatMap(read_manifest, source.name)
    # Parquet and WebDataset hold their media: read without it here, whole after the shuffle.
    return files_in | f"{label}/Samples" >> beam.FlatMap(read_light, source.name, source.format)


def _list_archives(p, archive_sources: dict[str, str]):
    """(member path -> archive side input, error records for unreadable archives).

    The index holds a few bytes per video and no video data. An archive that cannot be read
    is one error record, counted as an input of the first source that lists it.
    """
    if not archive_sources:
        return {}, []
    listed = (
        p
        | "Archives" >> beam.Create(sorted(archive_sources.items()))
        | "ListArchiveVideos" >> beam.FlatMapTuple(list_archive_videos)
        | "SplitArchiveErrors" >> beam.ParDo(SplitErrors()).with_outputs(ERRORS_TAG, main="ok")
    )
    index = beam.pvalue.AsDict(
        # A video in two archives is read from the first one by name, on every run.
        listed.ok | "FirstArchive" >> beam.CombinePerKey(min)
    )
    return index, [listed[ERRORS_TAG]]


def _scored(outcome_result) -> Sample | ErrorRecord:
    sample: Sample = outcome_result.example
    outcome: ScoreOutcome = outcome_result.inference
    sample = sample.replace(decoded=None)
    if outcome.score is None:
        reason = outcome.reason or (
            "non_finite_score" if "non-finite" in (outcome.error or "") else "model_error"
        )
        return ErrorRecord.for_sample(sample, "score", reason, outcome.error or "no score")
    sample.timings["score"] = outcome.seconds
    return sample.replace(score=outcome.score)


def _handler(config: RunConfig, text: bool = False) -> RewardModelHandler:
    """The scoring handler for the media model, or for the text-only model."""
    name = config.text_model if text else config.model
    options = config.backend_options(text)
    # Each copy gets its own device; a backend-level `device` option names the one device.
    device = options.pop("device", None)
    devices = config.devices if device in (None, "", "auto") else (device,)
    if config.max_batch_tokens:
        # Beam's own length-aware batching: with element_size_fn, BatchElements sizes batches
        # by the sum of estimated tokens and closes one before it would pass the budget.
        estimate = token_estimator_for(name, options)
        size = config.max_batch_tokens
        batching = {"min_batch_size": size, "max_batch_size": size, "element_size_fn": estimate}
    else:
        # A fixed size (min = max): full batches from the first, not Beam's ramp from 1.
        size = config.samples_per_batch
        batching = {"min_batch_size": size, "max_batch_size": size}
        estimate = _estimate_or_none(name, options)
    return RewardModelHandler(
        CopyLoader(name, options),
        name,
        large_model=config.large_model,
        devices=devices,
        estimate_tokens=estimate,
        **batching,
    )


def _estimate_or_none(name: str, options: dict):
    """The backend's token estimate for the run's cost figures, if it has one."""
    try:
        return token_estimator_for(name, options)
    except ModelConfigError:
        return None


def _score_branches(decoded, config: RunConfig, processes: int | None) -> list:
    """(PredictionResults, BatchStats) for every decoded sample, one pair per model.

    Text-only samples go to `text_model` if one is set. The branches stay apart downstream:
    a Flatten of sample-carrying PCollections would be held whole in memory by local runners.
    A large model is shared by the worker processes of a machine unless there is only one.
    """
    shared = config.large_model and processes != 1
    if not config.text_model:
        branches = [("ScoreSamples", decoded, _handler(config))]
    else:
        parts = decoded | "SplitTextOnly" >> beam.Partition(
            lambda sample, _: 1 if sample.is_text_only else 0, 2
        )
        branches = [
            ("ScoreSamples", parts[0], _handler(config)),
            ("ScoreTextSamples", parts[1], _handler(config, text=True)),
        ]
    scored = [
        samples | label >> ScoreAhead(handler, shared) for label, samples, handler in branches
    ]
    return [(outputs.predictions, outputs[BATCHES_TAG]) for outputs in scored]


def cache_dir_of(config: RunConfig) -> str | None:
    """The score cache folder for this scoring setup, or None without a cache."""
    if not config.score_cache:
        return None
    # Weights changed in place (a retrained or re-downloaded model) make a new cache too.
    models_used = [
        config.model,
        config.model_options,
        weights_fingerprint(config.model, config.backend_options()),
    ]
    if config.text_model:
        models_used += [
            config.text_model,
            config.text_model_options,
            weights_fingerprint(config.text_model, config.backend_options(text=True)),
        ]
    return f"{config.score_cache.rstrip('/')}/{model_cache_id(models_used)}"


def _look_up_score_cache(p, samples, cache_dir: str):
    """Outputs `samples` (still to score), `cached` (served from the cache) and `errors`.

    The cache is (key, score) pairs: small enough to look up as a side input, which keeps the
    media-carrying samples out of a GroupByKey.
    """
    known_scores = (
        p
        | "CacheFiles" >> beam.Create(cache_files(cache_dir))
        | "ReadCache" >> beam.FlatMap(read_cache_file)
    )
    return guarded(
        samples,
        "LookUpScoreCache",
        "cache",
        look_up_cached,
        beam.pvalue.AsDict(known_scores),
        tags=(CACHED,),
    )


def _score(decoded, config: RunConfig, cache_dir: str | None, processes: int | None):
    """([scored samples per model], [score errors per model], batch stats of every model)."""
    scored_branches, score_errors, batch_stats = [], [], []
    for i, (predictions, batches) in enumerate(_score_branches(decoded, config, processes)):
        ok, errors = apply_step(
            predictions, f"AttachScores{i}", "score", _scored, sample_of=lambda r: r.example
        )
        ok = ok | f"CountScored{i}" >> beam.ParDo(CountProgress(SCORED))
        if cache_dir:
            # Persisted before routing: a retried or killed run keeps what it already scored.
            ok = ok | f"PersistScores{i}" >> beam.ParDo(
                PersistScores(
                    cache_dir, config.score_cache_flush_every, config.score_cache_flush_seconds
                )
            )
        scored_branches.append(ok)
        score_errors.append(errors)
        batch_stats.append(batches)
    all_batches = tuple(batch_stats) | "AllBatchStats" >> beam.Flatten()
    return scored_branches, score_errors, all_batches


def _rule_route(sample: Sample):
    broken = check_rules(sample)
    if broken is None:
        return sample
    reason, detail = broken
    return beam.pvalue.TaggedOutput(REVIEW, sample.replace(reason=reason, detail=detail))


def _tagged(routed: tuple[str, Sample]):
    route, sample = routed
    return beam.pvalue.TaggedOutput(route, sample) if route == REVIEW else sample


def _route_by_threshold(sample: Sample, threshold: float):
    return _tagged(route_by_threshold(sample, threshold))


def _route_spilled(path: str, cuts: dict[str, float], percentile: float):
    """Route every sample of one spill shard by its source's cut; a failure costs one sample.

    Each routed sample carries the run's cuts to the writers, which record them.
    """
    for sample in read_spilled(path):
        if isinstance(sample, ErrorRecord):
            yield beam.pvalue.TaggedOutput(ERRORS_TAG, sample)
            continue
        try:
            sample = sample.replace(run_cuts=cuts)
            yield _tagged(route_by_cut(sample, cuts[sample.source], percentile))
        except Exception as exc:  # noqa: BLE001 - the same policy as every per-sample step
            yield beam.pvalue.TaggedOutput(ERRORS_TAG, unexpected_error(sample, "route", exc))


def _route(branches: list, config: RunConfig, spill_dir: str):
    """([clean], [review], [errors], cuts) from branches of scored samples, by threshold or
    percentile.

    Each branch is routed on its own; only the light (source, score) pairs are flattened to
    find the cuts. `cuts` holds (source, cut) so the report can mark it on each histogram.
    """
    scores = (
        tuple(
            branch | f"SourceScore{i}" >> beam.Map(lambda s: (s.source, s.score))
            for i, branch in enumerate(branches)
        )
        | "AllSourceScores" >> beam.Flatten()
    )
    if config.threshold is not None:
        cuts = (
            scores
            | "ScoredSources" >> beam.Keys()
            | "DistinctSources" >> beam.Distinct()
            | "ThresholdCut" >> beam.Map(lambda source, t: (source, t), config.threshold)
        )
        routed = [
            guarded(
                branch,
                f"RouteByScore{i}",
                "route",
                _route_by_threshold,
                config.threshold,
                tags=(REVIEW,),
            )
            for i, branch in enumerate(branches)
        ]
    else:
        cuts = (
            scores
            | "SourceQuantiles" >> beam.ApproximateQuantiles.PerKey(QUANTILE_POINTS)
            | "PercentileCut"
            >> beam.Map(lambda kv, pct: (kv[0], percentile_cut(kv[1], pct)), config.percentile)
        )
        # The cut needs every score: the scored samples wait for it on disk, not in memory.
        spilled = (
            tuple(
                branch
                | f"SpillScored{i}"
                >> beam.ParDo(WriteTempShards(spill_dir, SpillShard, SPILL_SHARD_MB))
                for i, branch in enumerate(branches)
            )
            | "AllSpilled" >> beam.Flatten()
        )
        routed = [
            spilled
            | "RouteByPercentile"
            >> beam.FlatMap(
                _route_spilled, beam.pvalue.AsDict(cuts), config.percentile
            ).with_outputs(ERRORS_TAG, REVIEW, main="samples")
        ]
    clean = [split["samples"] for split in routed]
    review = [split[REVIEW] for split in routed]
    errors = [split[ERRORS_TAG] for split in routed]
    return clean, review, errors, cuts


def _how_scored(sample: Sample) -> str:
    if sample.cached:
        return "from_cache"
    return "scored" if sample.score is not None else "not_scored"


def _outcome(item: Sample | ErrorRecord, route: str) -> tuple:
    """What the summary needs of one sample: (source, route, how it was scored, timings)."""
    if isinstance(item, ErrorRecord):
        return item.source, route, None, {}
    return item.source, route, _how_scored(item), item.timings


def _describe_for(route: str):
    """The writers' `describe`: each written sample's outcome for `route`."""
    return functools.partial(_outcome, route=route)


def _sum_timings(timings_list) -> dict[str, float]:
    total: dict[str, float] = {}
    for timings in timings_list:
        for stage, seconds in timings.items():
            total[stage] = total.get(stage, 0.0) + seconds
    return total


def _counted(branches: list, label: str, stage: str) -> tuple:
    # A tuple, not a list: Beam reads a list piped into a transform as elements to Create.
    return tuple(
        branch | f"{label}{i}" >> beam.ParDo(CountProgress(stage))
        for i, branch in enumerate(branches)
    )


def _lines(branches: list, label: str, to_line) -> beam.PCollection:
    return (
        tuple(branch | f"{label}{i}" >> beam.Map(to_line) for i, branch in enumerate(branches))
        | f"All{label}" >> beam.Flatten()
    )


def _finish(
    _,
    prefix,
    cache_dir,
    max_error_fraction,
    settings,
    started_at,
    inputs,
    routed,
    reasons,
    stage_seconds,
    cuts,
    how_scored,
    written,
    scoring_cost,
):
    summary = report.build_summary(
        dict(inputs),
        report.count_table(routed),
        dict(reasons),
        stage_seconds,
        {
            **settings,
            "cuts": dict(sorted(cuts.items())),
            "scoring": {
                k: dict(how_scored).get(k, 0) for k in ("scored", "from_cache", "not_scored")
            },
            "files_written": written,
            **scoring_cost,
        },
        started_at,
    )
    remove_spill(prefix)
    report.write_json(f"{prefix}/report/summary.json", summary)
    # Either check raising fails the run: summary.json stays for diagnosis, _SUCCESS never lands.
    report.check_conservation(summary)
    report.check_error_fraction(summary, max_error_fraction)
    # The shards are finalized (side inputs), so the page can read them back.
    write_html_report(prefix, summary)
    report.write_success(prefix)
    if cache_dir:
        _compact_cache(cache_dir)
    yield summary


def _compact_cache(cache_dir: str) -> None:
    try:
        compact(cache_dir)
    except Exception as exc:  # noqa: BLE001 - the run is done; an uncompacted cache still works
        logging.getLogger(__name__).warning("could not compact the score cache: %s", exc)


def _decode_settings(config: RunConfig, processes: int | None) -> DecodeSettings:
    """The decode step's settings; a fresh key names this run's machine-wide decoder slots."""
    decode = config.decode
    return DecodeSettings(
        max_side=decode.max_side,
        video_fps=decode.video_fps,
        max_frames=decode.max_frames,
        video_timeout_s=decode.video_timeout_s,
        workers=decode.workers,
        prefetch_mb=decode.prefetch_mb,
        # Remote runners may start one worker process per core: budget for that many.
        processes_per_machine=processes or os.cpu_count() or 1,
        run_key=uuid.uuid4().hex,
    )


def build(p: beam.Pipeline, config: RunConfig, started_at: float | None = None) -> None:
    started_at = time.time() if started_at is None else started_at
    inputs = discover_inputs(config)
    prefix = config.output.rstrip("/")

    archive_sources: dict[str, str] = {}
    for source in config.sources:
        for archive in inputs[source.name]["archives"]:
            archive_sources.setdefault(archive, source.name)
    archive_index, archive_errors = _list_archives(p, archive_sources)
    reads = [
        _read_source(p, config, source, inputs[source.name]["manifests"])
        for source in config.sources
    ] + archive_errors
    everything_read = (
        tuple(reads) | "AllReads" >> beam.Flatten() | "CountRead" >> beam.ParDo(CountProgress(READ))
    )
    read = everything_read | "SplitReadErrors" >> beam.ParDo(SplitErrors()).with_outputs(
        ERRORS_TAG, main="samples"
    )
    keyed = guarded(read.samples, "KeyByMediaGroup", "read", group_key, archive_index)
    grouped = (
        keyed.samples
        | "GroupByMediaSource" >> beam.GroupByKey()
        | "DropDuplicatesAttachVideos"
        >> beam.ParDo(GroupStep("fetch", open_group)).with_outputs(ERRORS_TAG, main="samples")
    )
    fetched = guarded(
        grouped.samples,
        "FetchMedia",
        "fetch",
        fetch_media,
        media_roots(config),
        config.allow_media_outside_root,
        frozenset(s.name for s in config.sources if s.remote_media),
    )
    checked = guarded(fetched.samples, "CheckRules", "rules", _rule_route, tags=(REVIEW,))
    cache_dir = cache_dir_of(config)
    to_score, cached_branches, cache_errors = checked.samples, [], []
    if cache_dir:
        looked_up = _look_up_score_cache(p, to_score, cache_dir)
        to_score = looked_up.samples
        cached_branches.append(looked_up[CACHED])
        cache_errors.append(looked_up[ERRORS_TAG])
    processes = local_processes(p.options.get_all_options())
    decoded = to_score | "DecodeMedia" >> beam.ParDo(
        DecodeAhead(_decode_settings(config, processes))
    ).with_outputs(ERRORS_TAG, main="samples")
    decoded, decode_errors = decoded.samples, decoded[ERRORS_TAG]
    scored_branches, score_errors, batch_stats = _score(decoded, config, cache_dir, processes)
    spill_dir = f"{prefix}/{SPILL_DIR}"
    clean, low, route_errors, cuts = _route(scored_branches + cached_branches, config, spill_dir)
    clean = _counted(clean, "CountClean", CLEAN)
    review = _counted([checked[REVIEW], *low], "CountReview", REVIEW)
    run_id = new_run_id()
    run_info = RunInfo(run_id, config.model, config.text_model, config.threshold, config.percentile)

    # A sample counts as clean or review once it is in a shard: outcomes come from the writers.
    write_clean = clean | "WriteClean" >> WriteSamples(
        f"{prefix}/{CLEAN}",
        config.format,
        config.shard_mb,
        index_path(prefix, CLEAN),
        _describe_for(CLEAN),
        run_info=run_info,
    )
    write_review = review | "WriteReview" >> WriteSamples(
        f"{prefix}/{REVIEW}",
        config.format,
        config.shard_mb,
        index_path(prefix, REVIEW),
        _describe_for(REVIEW),
        run_info=run_info,
    )
    errors = (
        (
            read[ERRORS_TAG],
            keyed[ERRORS_TAG],
            grouped[ERRORS_TAG],
            fetched[ERRORS_TAG],
            checked[ERRORS_TAG],
            *cache_errors,
            decode_errors,
            *score_errors,
            *route_errors,
            write_clean[WRITE_ERRORS],
            write_review[WRITE_ERRORS],
        )
        | "AllErrors" >> beam.Flatten()
        | "CountErrors" >> beam.ParDo(CountProgress(ERRORS))
    )
    write_errors = errors | "WriteErrors" >> WriteSamples(
        f"{prefix}/errors", "jsonl", ERRORS_SHARD_MB, describe=_describe_for(ERRORS), name="errors"
    )
    written = [
        write_clean["files"],
        write_review["files"],
        write_errors["files"],
        _lines(review, "FlaggedJson", report.flagged_json_line)
        | "WriteFlaggedJsonl" >> WriteLines(f"{prefix}/report/flagged.jsonl"),
        _lines(review, "FlaggedCsv", report.flagged_csv_line)
        | "WriteFlaggedCsv"
        >> WriteLines(f"{prefix}/report/flagged.csv", header=report.FLAGGED_CSV_HEADER),
    ]
    files_written = tuple(written) | "AllWrittenFiles" >> beam.Flatten()
    # One light record per sample feeds every count in the summary.
    outcomes = (
        write_clean[OUTCOMES],
        write_review[OUTCOMES],
        write_errors[OUTCOMES],
    ) | "AllOutcomes" >> beam.Flatten()
    kept = outcomes | "Kept" >> beam.Filter(lambda o: o[1] != ERRORS)
    settings = {
        "run_id": run_id,
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
        "format": config.format,
        "shard_mb": config.shard_mb,
        "runner": p.options.get_all_options().get("runner") or "DirectRunner",
    }
    (
        p
        | "StartFinish" >> beam.Create([None])
        | "WriteSummaryAndSuccess"
        >> beam.FlatMap(
            _finish,
            prefix,
            cache_dir,
            config.max_error_fraction,
            settings,
            started_at,
            beam.pvalue.AsList(
                everything_read
                | "InputSource" >> beam.Map(lambda r: r.source)
                | "CountInputs" >> beam.combiners.Count.PerElement()
            ),
            beam.pvalue.AsList(
                outcomes
                | "SourceRoute" >> beam.Map(lambda o: (o[0], o[1]))
                | "CountRouted" >> beam.combiners.Count.PerElement()
            ),
            beam.pvalue.AsList(
                errors
                | "ErrorReason" >> beam.Map(lambda e: f"{e.stage}/{e.reason}")
                | "CountReasons" >> beam.combiners.Count.PerElement()
            ),
            beam.pvalue.AsSingleton(
                kept
                | "Timings" >> beam.Map(lambda o: o[3])
                | "SumTimings" >> beam.CombineGlobally(_sum_timings)
            ),
            beam.pvalue.AsDict(cuts),
            beam.pvalue.AsList(
                kept
                | "HowScored" >> beam.Map(lambda o: o[2])
                | "CountHowScored" >> beam.combiners.Count.PerElement()
            ),
            beam.pvalue.AsSingleton(
                files_written | "CountFiles" >> beam.combiners.Count.Globally()
            ),
            beam.pvalue.AsSingleton(
                batch_stats | "BatchesAndCost" >> beam.CombineGlobally(CombineBatchStats())
            ),
        )
    )


def run(config: RunConfig, beam_args: list[str] | None = None) -> dict:
    """Run the pipeline to completion and return the summary it wrote."""
    started_at = time.time()
    # Model options fail here, before Beam starts, not inside a worker's load_model.
    preflight_models(config, runs_locally(beam_args or []))
    options = PipelineOptions(beam_args or [])
    with beam.Pipeline(options=options) as p:
        build(p, config, started_at)
    with fsspec.open(f"{config.output.rstrip('/')}/report/summary.json") as handle:
        return json.load(handle)
