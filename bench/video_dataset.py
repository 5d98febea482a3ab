"""Real-size videos for the benchmarks: 30 s, 640x360, 30 fps h264 (PyAV), packed as a
LLaVA-Video-178K subset, plus what one costs to decode and to score.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
from pathlib import Path

import numpy as np

BUCKET = "0_30_s_bench_v0_1"
SIZE = (640, 360)
SECONDS = 30
FPS = 30
QUESTION = "<video>\nDescribe what happens in the video."


def make_video(seed: int, seconds: int = SECONDS, size=SIZE, fps: int = FPS) -> bytes:
    """An h264 mp4: a drifting textured background with a moving square (not trivially small)."""
    import av

    rng = np.random.default_rng(seed)
    width, height = size
    texture = rng.integers(0, 255, (height, width * 2, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for index in range(seconds * fps):
            shift = (index * 2) % width
            frame = texture[:, shift : shift + width].copy()
            x = (index * 3) % (width - 60)
            frame[140:200, x : x + 60] = (255, 40, 40)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


def cached_videos(cache: Path, count: int) -> list[bytes]:
    cache.mkdir(parents=True, exist_ok=True)
    videos = []
    for index in range(count):
        path = cache / f"v{index:03d}_{SIZE[0]}x{SIZE[1]}_{SECONDS}s.mp4"
        if not path.exists():
            path.write_bytes(make_video(index))
        videos.append(path.read_bytes())
    return videos


def write_dataset(root: Path, videos: list[bytes]) -> Path:
    """A LLaVA-Video-178K bucket: caption records, empty QA files, videos only in a tar.gz."""
    folder = root / BUCKET
    folder.mkdir(parents=True, exist_ok=True)
    records = [
        {
            "id": f"bench-{i:03d}",
            "video": f"bench/videos/v{i:03d}.mp4",
            "conversations": [
                {"from": "human", "value": QUESTION},
                {"from": "gpt", "value": f"A red square moves right across texture {i}."},
            ],
        }
        for i in range(len(videos))
    ]
    (folder / f"{BUCKET}_cap_processed.json").write_text(json.dumps(records))
    (folder / "0_30_s_bench_oe_v0_1_qa_processed.json").write_text("[]")
    (folder / "0_30_s_bench_mc_v0_1_qa_processed.json").write_text("[]")
    with tarfile.open(folder / f"{BUCKET}_videos_1.tar.gz", "w:gz", compresslevel=1) as tar:
        for i, data in enumerate(videos):
            info = tarfile.TarInfo(f"bench/videos/v{i:03d}.mp4")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return root


def decode_seconds(video: bytes, repeats: int = 3) -> float:
    """One video decoded at 1 fps on one core, as the pipeline samples it (best of `repeats`)."""
    from transforms.media.decode import decode_video

    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        decode_video(video, 1.0, 32, 1024)
        best = min(best, time.perf_counter() - started)
    return best


def video_tokens(video: bytes) -> int:
    """The stand-in's token estimate for one decoded bench video (it sleeps per token)."""
    from bench.sleepy_model import SleepyRewardModel
    from transforms.core.record import VIDEO, MediaRef, Sample
    from transforms.media.decode import decode_video

    frames = decode_video(video, 1.0, 32, 1024)
    sample = Sample(
        "x",
        "s",
        [{"from": "human", "value": QUESTION}, {"from": "gpt", "value": "A red square."}],
        media=[MediaRef(VIDEO, "x.mp4", video)],
        decoded=[frames],
    )
    return SleepyRewardModel().estimate_tokens(sample)
