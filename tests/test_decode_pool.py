"""The decode pool: frames decoded once and handed over in shared memory, jobs spread over
processes, and a decoder that hangs or dies costs exactly its own job, nothing else."""

from __future__ import annotations

import mmap
import time

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that, equal_to

from tests.helpers import CRASH_MARKER, conversation, jpeg_bytes, mp4_bytes
from transforms.beam.steps import ERRORS_TAG
from transforms.core.record import IMAGE, VIDEO, MediaRef, Sample
from transforms.media.decode import decode_image, decode_video
from transforms.media.decode_ahead import DecodeAhead, DecodeSettings
from transforms.media.decode_pool import DecodeJob, DecodePool
from transforms.media.decode_slots import DecodeSlots
from transforms.media.shared_frames import ZERO_COPY


def _job(job_id, data, kind=VIDEO, timeout_s=30.0):
    return DecodeJob(job_id, ((kind, f"m{job_id}", data),), 1.0, 32, None, timeout_s)


def _all_results(pool, expected):
    results = []
    while len(results) < expected:
        results += pool.results(block=True)
    return {r.job_id: r for r in results}


def test_frames_arrive_decoded_once_in_shared_memory():
    video, image = mp4_bytes(), jpeg_bytes()
    pool = DecodePool(1)
    try:
        media = ((IMAGE, "a.jpg", image), (VIDEO, "b.mp4", video))
        pool.submit(DecodeJob(7, media, 1.0, 32, None, 30.0))
        (result,) = pool.results(block=True)
    finally:
        pool.close()
    assert result.job_id == 7 and result.failure is None and result.seconds > 0
    np.testing.assert_array_equal(result.frames[0], decode_image(image))
    np.testing.assert_array_equal(result.frames[1], decode_video(video, 1.0, 32, None))
    if ZERO_COPY:
        # Views on the decoder's memory file: nothing was copied on this side.
        assert all(isinstance(frames.base, mmap.mmap) for frames in result.frames)
        assert result.frames[1].flags.writeable


@pytest.mark.slow
def test_jobs_run_in_several_processes_at_once():
    pool = DecodePool(2, "tests.helpers:pid_frames")
    try:
        pool.submit(_job(0, b"0.5"))
        pool.submit(_job(1, b"0.5"))
        assert pool.processes == 2 and pool.pending == 2
        results = _all_results(pool, 2)
    finally:
        pool.close()
    pids = {int(r.frames[0].item()) for r in results.values()}
    assert len(pids) == 2


@pytest.mark.slow
def test_a_decoder_killed_mid_video_costs_only_its_own_job():
    video = mp4_bytes()
    pool = DecodePool(2, "tests.helpers:crash_on_marker")
    try:
        for job_id in range(6):
            pool.submit(_job(job_id, video + (CRASH_MARKER if job_id == 2 else b"")))
        results = _all_results(pool, 6)
        assert pool.pending == 0 and pool.processes <= 2
    finally:
        pool.close()
    assert sorted(results) == list(range(6))
    assert results[2].frames is None and results[2].failure[1] == "decoder_crashed"
    assert "died" in results[2].failure[2]
    for job_id in (0, 1, 3, 4, 5):
        assert results[job_id].failure is None and results[job_id].frames[0].shape[0] == 2


@pytest.mark.slow
def test_a_hung_decoder_is_killed_at_its_deadline_and_the_others_finish():
    pool = DecodePool(2, "tests.helpers:pid_frames")
    try:
        pool.submit(_job(0, b"1000", timeout_s=1.0))
        for job_id in (1, 2, 3):
            pool.submit(_job(job_id, b"0", timeout_s=30.0))
        results = _all_results(pool, 4)
    finally:
        pool.close()
    assert results[0].failure[1] == "decode_timeout"
    assert all(results[j].failure is None for j in (1, 2, 3))


def _video_sample(i, data):
    return Sample(
        f"v{i}",
        "videos",
        conversation("Describe.", "A bar moves.", "<video>\n"),
        [MediaRef(VIDEO, f"v{i}.mp4", data)],
    )


@pytest.mark.slow
def test_the_decode_step_loses_and_repeats_nothing_when_a_decoder_dies():
    video = mp4_bytes()
    samples = [_video_sample(i, video + (CRASH_MARKER if i == 3 else b"")) for i in range(8)]
    samples.append(
        Sample("img", "images", conversation("Q?", "A."), [MediaRef(IMAGE, "a.jpg", jpeg_bytes())])
    )
    samples.append(Sample("txt", "text", conversation("Q?", "A.", "")))
    settings = DecodeSettings(
        None,
        1.0,
        32,
        30.0,
        workers=2,
        prefetch_mb=64,
        video_decoder="tests.helpers:crash_on_marker",
    )
    with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as p:
        outputs = (
            p
            | beam.Create(samples)
            | beam.ParDo(DecodeAhead(settings)).with_outputs(ERRORS_TAG, main="samples")
        )
        decoded = outputs.samples | "Shapes" >> beam.Map(
            lambda s: (s.id, tuple(d.shape for d in s.decoded or ()))
        )
        expected = [(f"v{i}", ((2, 48, 64, 3),)) for i in range(8) if i != 3]
        expected += [("img", ((48, 64, 3),)), ("txt", ())]
        assert_that(decoded, equal_to(expected), label="EverySampleOnce")
        errors = outputs[ERRORS_TAG] | "Reasons" >> beam.Map(lambda e: (e.id, e.stage, e.reason))
        assert_that(errors, equal_to([("v3", "decode", "decoder_crashed")]), label="OneError")


@pytest.mark.slow
def test_an_idle_decoder_ends_and_the_next_job_still_decodes():
    pool = DecodePool(1, "tests.helpers:pid_frames", idle_exit_s=0.3)
    try:
        pool.submit(_job(0, b"0"))
        first = _all_results(pool, 1)[0]
        time.sleep(1.5)  # the decoder says "bye" and ends meanwhile
        pool.submit(_job(1, b"0"))
        second = _all_results(pool, 1)[1]
    finally:
        pool.close()
    assert first.failure is None and second.failure is None
    assert int(first.frames[0].item()) != int(second.frames[0].item())  # a fresh process


@pytest.mark.slow
def test_pools_of_one_run_share_the_machine_wide_slots(tmp_path, monkeypatch):
    monkeypatch.setattr("transforms.media.decode_slots.ROOT", tmp_path)
    slots = DecodeSlots("run", 2)
    # Two pipeline processes' pools, each allowed the machine's two decoders.
    busy = DecodePool(2, "tests.helpers:pid_frames", DecodeSlots("run", 2), idle_exit_s=0.5)
    waiting = DecodePool(2, "tests.helpers:pid_frames", slots, idle_exit_s=0.5)
    try:
        busy.submit(_job(0, b"1"))
        busy.submit(_job(1, b"1"))
        waiting.submit(_job(2, b"0"))
        assert busy.processes == 2 and waiting.processes == 0  # no third decoder
        assert [r.job_id for r in waiting.results(block=False)] == []
        done = _all_results(busy, 2)
        # The other pool gets a slot once the first pool's decoders end for idleness.
        later = _all_results(waiting, 1)
    finally:
        busy.close()
        waiting.close()
    assert all(r.failure is None for r in [*done.values(), *later.values()])
    assert not (tmp_path / "run").exists()  # slot files removed once nobody holds one


def test_slot_folders_left_by_killed_runs_are_swept(tmp_path, monkeypatch):
    import os

    monkeypatch.setattr("transforms.media.decode_slots.ROOT", tmp_path)
    stale, recent = tmp_path / "old-run", tmp_path / "other-run"
    for folder in (stale, recent):
        folder.mkdir()
        (folder / "slot-0").touch()
    os.utime(stale, (0, 0))
    fd = DecodeSlots("new-run", 1).take()
    os.close(fd)
    assert not stale.exists() and recent.exists() and (tmp_path / "new-run").exists()
