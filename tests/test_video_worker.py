"""Video decoding that hangs or crashes is killed and reported; the next video still decodes."""

import time

import pytest

from tests.helpers import CRASH_MARKER, HANG_MARKER, crash_on_marker, hang_on_marker, mp4_bytes
from transforms.media.decode import DecodeError
from transforms.media.video_worker import KillableVideoDecoder


def test_real_videos_decode_in_the_child_process():
    decoder = KillableVideoDecoder(timeout_s=60)
    try:
        assert decoder(mp4_bytes(frames=16, fps=8), 1.0, 32, None).shape == (2, 48, 64, 3)
        with pytest.raises(DecodeError) as caught:
            decoder(b"\x00" * 100, 1.0, 32, None)
        assert caught.value.reason == "corrupt_video"
    finally:
        decoder.close()


@pytest.mark.slow
def test_a_hang_is_killed_after_the_timeout_and_the_next_video_decodes():
    decoder = KillableVideoDecoder(timeout_s=1.0, decode=hang_on_marker)
    try:
        started = time.monotonic()
        with pytest.raises(DecodeError) as caught:
            decoder(HANG_MARKER, 1.0, 32, None)
        assert caught.value.reason == "decode_timeout"
        assert time.monotonic() - started < 30
        assert decoder.processes == 0  # the hung process was killed
        # A new process takes the next video: it decodes as if nothing had happened.
        assert decoder(mp4_bytes(frames=16, fps=8), 1.0, 32, None).shape == (2, 48, 64, 3)
        assert decoder.processes == 1
    finally:
        decoder.close()


@pytest.mark.slow
def test_a_crashed_decoder_is_an_error_and_is_restarted():
    decoder = KillableVideoDecoder(timeout_s=30, decode=crash_on_marker)
    try:
        with pytest.raises(DecodeError) as caught:
            decoder(CRASH_MARKER, 1.0, 32, None)
        assert caught.value.reason == "decoder_crashed"
        assert decoder(mp4_bytes(frames=16, fps=8), 1.0, 32, None).shape == (2, 48, 64, 3)
    finally:
        decoder.close()
