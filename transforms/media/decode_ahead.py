"""The decode step: a pool of decoder processes working ahead of the model.

`DecodeAhead` hands each sample's media to a `DecodePool` and returns at once, emitting the
samples whose frames are ready; so while the model scores one batch (downstream in the same
fused stage, or on its own threads), the pool's processes decode the next ones on the other
cores, as many as the machine has (`decode.workers`), however many pipeline processes share it.
How far ahead it runs is bounded in bytes (`decode.prefetch_mb`, per machine): media and frames
of samples handed to the pool and not yet passed on, and the samples themselves; and while
decoding is the slower side, by JOBS_AHEAD_PER_DECODER jobs waiting per decoder. Frames arrive
in shared memory (`shared_frames`), decoded once and never copied on this side. Every failure is
an `ErrorRecord` on the `errors` output, as in any `SampleStep`: a decode error, a hung decoder
(killed at `decode.video_timeout_s` per video), a decoder that died mid-video, or a bug here. At
the end of a bundle every sample still in the pool is waited for, so none is lost.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass

import apache_beam as beam
from apache_beam.metrics import Metrics

from transforms.beam.bundle_outputs import in_global_window
from transforms.beam.steps import ERRORS_TAG, METRICS_NAMESPACE, unexpected_error
from transforms.core.image_header import header_size
from transforms.core.record import IMAGE, ErrorRecord, Sample
from transforms.media.decode_pool import DecodeJob, DecodePool, DecodeResult
from transforms.media.decode_slots import DecodeSlots

STAGE = "decode"
MIB = 1 << 20
# Until a video has been decoded, assume 32 frames at 640x360 (LLaVA-Video's common size).
FIRST_VIDEO_GUESS_BYTES = 32 * 360 * 640 * 3
# What a held sample costs beyond its media and frames: the record, its conversation, the job.
HELD_SAMPLE_OVERHEAD_BYTES = 4 << 10
# Jobs handed to the pool and not yet answered, per decoder: enough to keep every decoder fed;
# more would only hold samples in memory while the decoders, not the model, are the limit.
JOBS_AHEAD_PER_DECODER = 8
# Default prefetch: this share of the memory available at start, within these bounds.
PREFETCH_SHARE_OF_FREE = 0.1
PREFETCH_MIN_MB, PREFETCH_MAX_MB = 256, 4096


def available_memory_bytes() -> int | None:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return None


def default_prefetch_mb(processes_per_machine: int = 1) -> int:
    """A tenth of the free memory, shared by the pipeline processes on this machine."""
    free = available_memory_bytes()
    if free is None:
        return PREFETCH_MIN_MB
    share = free * PREFETCH_SHARE_OF_FREE / MIB / max(1, processes_per_machine)
    return int(min(PREFETCH_MAX_MB, max(PREFETCH_MIN_MB, share)))


@dataclass(frozen=True)
class DecodeSettings:
    max_side: int | None
    video_fps: float
    max_frames: int
    video_timeout_s: float
    # Decoder processes per machine, shared by the run's processes there; None = its cores.
    workers: int | None = None
    # Media and frames held ahead of the model, in MiB; None = sized from free memory.
    prefetch_mb: float | None = None
    # Pipeline worker processes sharing this machine (Beam's multi-process local runner).
    processes_per_machine: int = 1
    # Names the machine-wide decoder slots of one run (`decode_slots`); None = no shared cap.
    run_key: str | None = None
    # `module:function` replacing decord's video decode, for tests.
    video_decoder: str | None = None

    def pool_size(self) -> int:
        return self.workers or os.cpu_count() or 1

    def prefetch_bytes(self) -> int:
        """This process's share of the machine's prefetch bound."""
        if self.prefetch_mb:
            return int(self.prefetch_mb * MIB / max(1, self.processes_per_machine))
        return int(default_prefetch_mb(self.processes_per_machine) * MIB)


@dataclass
class _Held:
    sample: Sample
    nbytes: int  # media bytes plus frames (estimated until decoded)


class DecodeAhead(beam.DoFn):
    """Sample -> Sample with `decoded` frames, or an ErrorRecord on `errors`."""

    def __init__(self, settings: DecodeSettings):
        self._settings = settings
        self._passed = Metrics.counter(METRICS_NAMESPACE, f"{STAGE}_ok")
        self._failed = Metrics.counter(METRICS_NAMESPACE, f"{STAGE}_errors")

    def setup(self):
        settings = self._settings
        size = settings.pool_size()
        # Any of the run's processes may use every decoder of the machine (the one streaming
        # an archive needs them all), but together they start no more than `size`.
        slots = DecodeSlots(settings.run_key, size) if settings.run_key else None
        self._pool = DecodePool(size, settings.video_decoder, slots)
        self._limit = self._settings.prefetch_bytes()
        self._jobs_ahead = JOBS_AHEAD_PER_DECODER * size
        self._ids = itertools.count()
        self._held: dict[int, _Held] = {}
        self._held_bytes = 0
        self._video_bytes_seen = [0, 0]  # frames bytes, videos: the running mean's parts

    def start_bundle(self):
        if self._held:
            # A failed bundle left samples in the pool; they will be retried with it.
            self._pool.close()
            self._held, self._held_bytes = {}, 0

    def process(self, sample: Sample):
        if not sample.media:
            self._passed.inc()
            yield sample
            return
        try:
            self._submit(sample)
        except Exception as exc:  # noqa: BLE001 - e.g. a decoder that cannot start: data
            yield self._unexpected(sample, exc)
            return
        yield from self._ready(block=False)
        # Ahead by at most the prefetch bound, and by a few jobs per decoder when decoding is
        # the slower side: wait for frames before taking more samples.
        while self._held and (
            self._held_bytes > self._limit or self._pool.pending > self._jobs_ahead
        ):
            yield from self._ready(block=True)

    def finish_bundle(self):
        while self._held:
            yield from map(in_global_window, self._ready(block=True))

    def teardown(self):
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.close()

    def _submit(self, sample: Sample) -> None:
        job_id = next(self._ids)
        media = tuple((ref.kind, ref.path, ref.data or b"") for ref in sample.media)
        videos = sum(1 for ref in sample.media if ref.kind != IMAGE)
        settings = self._settings
        job = DecodeJob(
            job_id,
            media,
            settings.video_fps,
            settings.max_frames,
            settings.max_side,
            settings.video_timeout_s * max(1, videos),
        )
        held = _Held(sample, self._estimate_bytes(sample))
        self._pool.submit(job)
        self._held[job_id] = held
        self._held_bytes += held.nbytes

    def _estimate_bytes(self, sample: Sample) -> int:
        total = HELD_SAMPLE_OVERHEAD_BYTES
        frames_seen, videos_seen = self._video_bytes_seen
        for ref in sample.media:
            total += len(ref.data or b"")
            if ref.kind == IMAGE:
                # A large guess for an unreadable header: the decoder reports the problem.
                height, width = header_size(ref.data) or (1024, 1024)
                side = self._settings.max_side
                scale = min(1.0, side / max(height, width)) if side else 1.0
                total += int(height * scale) * int(width * scale) * 3
            else:
                total += frames_seen // videos_seen if videos_seen else FIRST_VIDEO_GUESS_BYTES
        return total

    def _ready(self, block: bool):
        for result in self._pool.results(block):
            held = self._held.pop(result.job_id, None)
            if held is None:
                continue
            self._held_bytes -= held.nbytes
            try:
                output = self._finished(held.sample, result)
            except Exception as exc:  # noqa: BLE001 - a bug here costs one record, not the run
                output = self._unexpected(held.sample, exc)
            yield output

    def _finished(self, sample: Sample, result: DecodeResult):
        if result.failure is not None:
            index, reason, detail = result.failure
            ref = sample.media[index]
            self._failed.inc()
            error = ErrorRecord.for_sample(
                sample, STAGE, reason, f"{ref.kind} {ref.path!r}: {detail}"
            )
            return beam.pvalue.TaggedOutput(ERRORS_TAG, error)
        for ref, frames in zip(sample.media, result.frames, strict=True):
            if ref.kind != IMAGE:
                self._video_bytes_seen[0] += frames.nbytes
                self._video_bytes_seen[1] += 1
        decoded = sample.replace(decoded=result.frames)
        decoded.timings[STAGE] = decoded.timings.get(STAGE, 0.0) + result.seconds
        self._passed.inc()
        return decoded

    def _unexpected(self, sample: Sample, exc: Exception):
        self._failed.inc()
        return beam.pvalue.TaggedOutput(ERRORS_TAG, unexpected_error(sample, STAGE, exc))
