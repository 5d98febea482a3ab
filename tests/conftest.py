"""Shared fixtures: a tiny dataset with one example of each route."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser import start_chromium
from tests.helpers import (
    block_network,
    conversation,
    jpeg_bytes,
    mp4_bytes,
    write_json,
    write_tar_gz,
)


@pytest.fixture()
def offline(monkeypatch):
    """This test runs with no network, as an offline GPU worker does."""
    block_network(monkeypatch)


@pytest.fixture()
def chromium(tmp_path):
    """Headless Chromium (selenium); downloads go to `chromium.download_dir` in tmp_path."""
    driver = start_chromium(tmp_path / "chromium-profile", tmp_path / "downloads")
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture()
def tiny_dataset(tmp_path: Path) -> Path:
    return build_tiny_dataset(tmp_path)


def build_tiny_dataset(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    (root / "images" / "good.jpg").write_bytes(jpeg_bytes())
    (root / "images" / "broken.jpg").write_bytes(jpeg_bytes()[:200])
    write_json(
        root / "images.json",
        [
            {
                "id": "img-good",
                "image": "images/good.jpg",
                "url": "u1",
                "conversations": conversation("What is shown?", "A red square on white."),
            },
            {
                "id": "img-bad",
                "image": "images/good.jpg",
                "conversations": conversation("What is shown?", "bad answer here"),
            },
            {
                "id": "img-empty",
                "image": "images/good.jpg",
                "conversations": conversation("What is shown?", "N/A"),
            },
            {
                "id": "img-missing",
                "image": "images/nowhere.jpg",
                "conversations": conversation("What is shown?", "Something."),
            },
            {
                "id": "img-broken",
                "image": "images/broken.jpg",
                "conversations": conversation("What is shown?", "Something red."),
            },
            {
                "id": "img-nan",
                "image": "images/good.jpg",
                "conversations": conversation("What is shown?", "nan nan"),
            },
        ],
    )
    video = mp4_bytes()
    write_tar_gz(root / "videos_1.tar.gz", {"vids/a.mp4": video, "vids/b.mp4": video})
    write_json(
        root / "videos.json",
        [
            {
                "id": "vid-good",
                "video": "vids/a.mp4",
                "data_source": "x",
                "conversations": conversation("Describe.", "A blue bar moves right.", "<video>\n"),
            },
            {
                "id": "vid-bad",
                "video": "vids/b.mp4",
                "conversations": conversation("Describe.", "bad bad", "<video>\n"),
            },
        ],
    )
    write_json(
        root / "text.json",
        [{"idx": "txt-1", "conversations": conversation("Say hi.", "Hello there friend.", "")}],
    )
    return root
