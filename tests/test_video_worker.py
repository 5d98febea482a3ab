"""Video decoding that hangs or crashes is killed and reported; the next video still decodes."""

import time

import pytest

from tests.helpers import crash_process, hang_forever, mp4_bytes
from transforms.decode_media import DecodeError
from transforms.video_worker import KillableVideoDecoder


def test_real_videos_decode_in_the_child_process():
    decoder = KillableVideoDecoder(timeout_s=60)
    try:
        assert decoder(mp4_bytes(frames=16, fps=8), 1.0, 32, None).shape == (2, 48, 64, 3)
        with pytest.raises(DecodeError) as caught:
            decoder(b"\x00" * 100, 1.0, 32, None)
        assert caught.value.reason == "corrupt_video"
    finally:
        decoder.close()


def test_a_hang_is_killed_after_the_timeout():
    decoder = KillableVideoDecoder(timeout_s=1.0, decode=hang_forever)
    try:
        started = time.monotonic()
        with pytest.raises(DecodeError) as caught:
            decoder(b"video", 1.0, 32, None)
        assert caught.value.reason == "decode_timeout"
        assert time.monotonic() - started < 30
        assert decoder.processes == 0  # killed, restarted on next use
    finally:
        decoder.close()


def test_a_crashed_decoder_is_an_error_and_is_restarted():
    decoder = KillableVideoDecoder(timeout_s=30, decode=crash_process)
    try:
        with pytest.raises(DecodeError) as caught:
            decoder(b"video", 1.0, 32, None)
        assert caught.value.reason == "decoder_crashed"
        with pytest.raises(DecodeError):
            decoder(b"video", 1.0, 32, None)
    finally:
        decoder.close()
