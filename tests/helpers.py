"""Tiny datasets and models built inside the tests (no network, no downloads)."""

from __future__ import annotations

import io
import ipaddress
import json
import socket
import tarfile
from pathlib import Path

import av
import numpy as np
import pandas as pd
from PIL import Image

from pipelines.config import RunConfig, SourceConfig


def jpeg_bytes(colour=(200, 30, 30), size=(64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "JPEG")
    return buffer.getvalue()


def mp4_bytes(frames: int = 16, fps: int = 8, size=(64, 48)) -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for index in range(frames):
            pixels = np.full((size[1], size[0], 3), 230, np.uint8)
            pixels[10:20, 2 + 2 * index : 12 + 2 * index] = (0, 0, 255)
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


def conversation(question: str, answer: str, placeholder: str = "<image>\n") -> list[dict]:
    return [{"from": "human", "value": placeholder + question}, {"from": "gpt", "value": answer}]


def write_tar_gz(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def write_json(path: Path, payload) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload))


class AnswerLengthModel:
    """A reward model whose score is known in advance: log of the answer's word count minus 1.

    One-word answers score -1, 'bad' anywhere in the answer scores -5, NaN for 'nan'.
    """

    name = "answer-length"

    def score(self, samples):
        scores = []
        for sample in samples:
            answer = sample.assistant_turns()[-1]
            if "nan" in answer.split():
                scores.append(float("nan"))
            elif "bad" in answer.split():
                scores.append(-5.0)
            else:
                scores.append(float(np.log(len(answer.split()))) - 1.0)
        return scores


# The test model named as a user would name their own backend: an importable factory.
TEST_MODEL = "tests.helpers:AnswerLengthModel"


class TurnAnswerLengthModel(AnswerLengthModel):
    """`AnswerLengthModel` for every assistant turn: a backend that reads per-turn rewards.

    Turn i scores as the conversation cut after answer i would (its answer's length rule), so
    an answer holding 'bad' scores -5 at its turn; the sample's score is the last turn's.
    """

    name = "turn-answer-length"

    def score(self, samples):
        from models.base import Reward

        rewards = []
        for sample in samples:
            turns = [
                super(TurnAnswerLengthModel, self).score(
                    [sample.replace(conversations=[{"from": "gpt", "value": answer}])]
                )[0]
                for answer in sample.assistant_turns()
            ]
            rewards.append(Reward(turns[-1], tuple(turns)))
        return rewards


TURN_TEST_MODEL = "tests.helpers:TurnAnswerLengthModel"


def tiny_config(root: Path | str, output: Path | str, **overrides) -> RunConfig:
    config = RunConfig(
        name="tiny",
        root=str(root),
        output=str(output),
        model=TEST_MODEL,
        max_error_fraction=1.0,  # a third of the tiny dataset is broken on purpose
        sources=(
            SourceConfig("images", ("images.json",)),
            SourceConfig("videos", ("videos.json",), video_archives=("videos_*.tar.gz",)),
            SourceConfig("text", ("text.json",)),
        ),
    )
    return config.with_overrides(**overrides)


def read_parquet_dir(directory: Path) -> pd.DataFrame:
    files = sorted(directory.glob("*.parquet"))
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


class DyingModel(AnswerLengthModel):
    """Kills its process, like a lost worker, on call number $RMCLEAN_TEST_DIE_AT_CALL."""

    calls = 0

    def score(self, samples):
        import os

        DyingModel.calls += 1
        if DyingModel.calls == int(os.environ.get("RMCLEAN_TEST_DIE_AT_CALL", "0")):
            os._exit(137)
        return super().score(samples)


class SlowModel(AnswerLengthModel):
    """Takes $RMCLEAN_TEST_SECONDS_PER_CALL per call and appends each scored id to
    $RMCLEAN_TEST_SCORED_LOG, so a test knows exactly what was scored before it stopped a run."""

    def score(self, samples):
        import os
        import time

        time.sleep(float(os.environ.get("RMCLEAN_TEST_SECONDS_PER_CALL", "0.2")))
        scores = super().score(samples)
        log = os.environ.get("RMCLEAN_TEST_SCORED_LOG")
        if log:
            with open(log, "a") as handle:
                handle.writelines(f"{sample.id}\n" for sample in samples)
        return scores


CRASH_MARKER = b"kill this decoder"


def crash_on_marker(data, fps, max_frames, max_side):
    """Decodes like decord, but the process dies (SIGKILL, as the OOM killer does) mid-video
    on a video whose bytes hold CRASH_MARKER."""
    import os
    import signal

    from transforms.media.decode import decode_video

    if CRASH_MARKER in data:
        os.kill(os.getpid(), signal.SIGKILL)
    return decode_video(data, fps, max_frames, max_side)


HANG_MARKER = b"hang this decoder"


def hang_on_marker(data, fps, max_frames, max_side):
    """Decodes like decord, but never returns on a video whose bytes hold HANG_MARKER, as
    decord does on a container that over-reports its frame count."""
    import time

    from transforms.media.decode import decode_video

    while HANG_MARKER in data:
        time.sleep(1)
    return decode_video(data, fps, max_frames, max_side)


def pid_frames(data, fps, max_frames, max_side):
    """A stand-in decoder whose one frame holds its process id (which process decoded it)."""
    import os
    import time

    time.sleep(float(data.decode() or 0))
    return np.full((1, 1, 1, 1), os.getpid(), dtype=np.int64)


def logged_decode(data, fps, max_frames, max_side):
    """decord, with (start, end) of every decode appended to $RMCLEAN_TEST_DECODE_LOG."""
    import os
    import time

    from transforms.media.decode import decode_video

    started = time.time()
    frames = decode_video(data, fps, max_frames, max_side)
    with open(os.environ["RMCLEAN_TEST_DECODE_LOG"], "a") as log:
        log.write(json.dumps({"start": started, "end": time.time()}) + "\n")
    return frames


class SlowLoggedModel(AnswerLengthModel):
    """A model a GPU would be: `score()` takes `seconds` per batch with the GIL released.

    Options: `seconds`, `log` (appends {"device", "pid", "start", "end", "ids"} per call),
    `device` (set by the device pool). Every load appends {"loaded": device, "pid"} too.
    """

    def __init__(self, options=None):
        import os

        options = dict(options or {})
        self.seconds = float(options.get("seconds", 0.2))
        self.log = options.get("log")
        self.device = options.get("device", "unset")
        self._write({"loaded": self.device, "pid": os.getpid()})

    def _write(self, line):
        if self.log:
            with open(self.log, "a") as handle:
                handle.write(json.dumps(line) + "\n")

    def score(self, samples):
        import os
        import time

        started = time.time()
        time.sleep(self.seconds)
        ids = [s.id for s in samples]
        self._write(
            {
                "device": self.device,
                "pid": os.getpid(),
                "start": started,
                "end": time.time(),
                "ids": ids,
            }
        )
        return super().score(samples)


def _loopback(address) -> bool:
    if not isinstance(address, tuple):
        return True  # a Unix socket path
    host = str(address[0])
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def block_network(monkeypatch) -> None:
    """No connection leaves this machine (loopback and Unix sockets still work for Beam),
    and the Hugging Face libraries are told they are offline, as on the GPU workers."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    original_connect = socket.socket.connect

    def guarded_connect(sock, address):
        if not _loopback(address):
            raise ConnectionRefusedError(f"network blocked in this test: {address}")
        return original_connect(sock, address)

    def guarded_resolve(host, *args, **kwargs):
        if host not in (None, "localhost") and not _loopback((host, 0)):
            raise socket.gaierror(f"network blocked in this test: {host}")
        return original_getaddrinfo(host, *args, **kwargs)

    original_getaddrinfo = socket.getaddrinfo
    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_resolve)


def _answer_length_tokens(options):
    return AnswerWords()


class AnswerWords:
    """A token estimate a plug-in spec can give: one per word of the conversation."""

    def __call__(self, sample):
        return sum(len(str(t.get("value", "")).split()) for t in sample.conversations)


def _load_answer_length(options):
    return AnswerLengthModel()


# A plug-in exported as a spec (MODEL=tests.helpers:ANSWER_LENGTH_SPEC): options, estimator.
def _answer_length_spec():
    from models.spec import BackendSpec

    return BackendSpec(
        name="answer-length",
        defaults={"device": "cpu", "flavour": "plain"},
        load=_load_answer_length,
        estimator=_answer_length_tokens,
        run_options=("max_batch_tokens",),
    )


ANSWER_LENGTH_SPEC = _answer_length_spec()


def install_stamp(repo: Path) -> str:
    """The install stamp `make` would build for this environment (EXTRAS and the torch spec
    included), for `make -o STAMP ...`: a test that runs a make target must never reinstall the
    shared .venv in the middle of the suite."""
    import subprocess

    printed = subprocess.run(
        ["make", "-s", "--no-print-directory", "-f", "Makefile", "-f", "-", "print-install-stamp"],
        input="print-install-stamp:\n\t@echo $(INSTALLED)\n",
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    return printed.stdout.strip()
