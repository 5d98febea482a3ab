"""One decoder of the decode pool: `python -m transforms.media.decode_worker FD IDLE_S [DECODER]`.

It reads jobs (one sample's media) from the Unix socket FD, decodes every image and video,
and answers with the frames (`shared_frames`) or the first failure. It imports only what
decoding needs, never the pipeline. After IDLE_S seconds without a job it says "bye" and ends,
freeing its machine-wide slot (`decode_slots`); a job that crossed the "bye" is answered by it,
so the pool knows the job was never started. A job that outlives its deadline (plus a grace period)
ends the process by SIGALRM even when decord spins in C holding the GIL and the parent is
gone, so a hung decoder never outlives its job for long; the parent normally kills it first.
DECODER (`module:function`, same signature as `decode_video`) replaces decord, for tests.
"""

from __future__ import annotations

import importlib
import math
import signal
import sys
import time
from multiprocessing.connection import Connection

from transforms.core.record import IMAGE
from transforms.media.decode import DecodeError, decode_image, decode_video
from transforms.media.shared_frames import send_arrays

SELF_KILL_GRACE_S = 10


def _load(spec: str):
    module, _, name = spec.partition(":")
    target = importlib.import_module(module)
    for part in name.split("."):
        target = getattr(target, part)
    return target


def decode_job(job: tuple, video_decoder=decode_video) -> tuple[list, tuple | None]:
    """(arrays, None) or (arrays so far, (media index, reason, detail)) for one job."""
    _, media, fps, max_frames, max_side, _ = job
    arrays = []
    for index, (kind, _path, data) in enumerate(media):
        try:
            if kind == IMAGE:
                arrays.append(decode_image(data, max_side))
            else:
                arrays.append(video_decoder(data, fps, max_frames, max_side))
        except DecodeError as exc:
            return arrays, (index, exc.reason, exc.detail)
        except Exception as exc:  # noqa: BLE001 - reported as this sample's decode failure
            reason = "unexpected_error" if kind == IMAGE else "corrupt_video"
            return arrays, (index, reason, f"{type(exc).__name__}: {exc}"[:500])
    return arrays, None


def serve(connection: Connection, idle_s: float, video_decoder=decode_video) -> None:
    while True:
        try:
            if not connection.poll(idle_s):
                connection.send(("bye",))
                return
            job = connection.recv()
        except (EOFError, OSError):
            return  # the pipeline closed the pool, or died
        job_id, timeout_s = job[0], job[-1]
        # The job's clock starts now, not when the pool sent it: a fresh decoder may still
        # have been importing, which is not the video's fault.
        connection.send(("started", job_id))
        signal.alarm(math.ceil(timeout_s) + SELF_KILL_GRACE_S)
        started = time.perf_counter()
        arrays, failure = decode_job(job, video_decoder)
        seconds = time.perf_counter() - started
        signal.alarm(0)
        if failure is None:
            send_arrays(connection, ("ok", job_id, seconds), arrays)
        else:
            connection.send(("error", job_id, seconds, failure))


def main(argv: list[str]) -> None:
    # SIGALRM's default action ends the process, which is what a stuck decode needs.
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the pipeline's to handle
    video_decoder = _load(argv[2]) if len(argv) > 2 else decode_video
    serve(Connection(int(argv[0])), float(argv[1]), video_decoder)


if __name__ == "__main__":
    main(sys.argv[1:])
