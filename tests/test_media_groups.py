"""The one shuffle: archive videos streamed to their samples, duplicates dropped, no bytes lost."""

from __future__ import annotations

import pytest

from pipelines.jobs.clean import run
from tests.helpers import (
    conversation,
    mp4_bytes,
    read_parquet_dir,
    tiny_config,
    write_json,
    write_tar_gz,
)
from transforms.core.record import ErrorRecord, Sample
from transforms.io.llava_manifests import record_to_sample
from transforms.io.shard_inputs import read_light
from transforms.media.groups import ListedVideo, group_key, join_archive, open_group
from transforms.shards.shard_formats import SHARD_TYPES


def _video_sample(sid: str, path: str, answer: str = "A bar moves.") -> Sample:
    record = {"id": sid, "video": path, "conversations": conversation("Q?", answer, "<video>\n")}
    return record_to_sample(record, "videos", "videos.json")


def test_archive_videos_group_by_archive_and_everything_else_by_id():
    index = {"vids/a.mp4": "/data/videos_1.tar.gz"}
    in_archive = _video_sample("v1", "vids/a.mp4")
    elsewhere = _video_sample("v2", "vids/not-archived.mp4")
    assert group_key(in_archive, index)[0] == ("archive", "/data/videos_1.tar.gz")
    assert group_key(elsewhere, index)[0] == ("sample", "videos", "v2")


def test_the_archive_join_keys_samples_by_the_first_archive_listing_their_video():
    """The listings meet the samples in a shuffle keyed by video path: a video listed in two
    archives is read from the first by name; one no archive lists is its sample's own group."""
    first, second = _video_sample("v1", "vids/a.mp4"), _video_sample("v1b", "vids/a.mp4")
    listings = [ListedVideo("/data/videos_2.tar.gz"), ListedVideo("/data/videos_1.tar.gz")]
    joined = list(join_archive(("vids/a.mp4", [first, listings[0], second, listings[1]])))
    assert joined == [
        (("archive", "/data/videos_1.tar.gz"), first),
        (("archive", "/data/videos_1.tar.gz"), second),
    ]
    unlisted = _video_sample("v2", "vids/not-archived.mp4")
    assert list(join_archive(("vids/not-archived.mp4", [unlisted]))) == [
        (("sample", "videos", "v2"), unlisted)
    ]


def test_an_archive_group_hands_each_sample_its_own_video(tmp_path):
    first, second = mp4_bytes(frames=8), mp4_bytes(frames=12)
    archive = tmp_path / "videos_1.tar.gz"
    write_tar_gz(archive, {"vids/a.mp4": first, "vids/b.mp4": second})
    samples = [
        _video_sample("v1", "vids/a.mp4"),
        _video_sample("v2", "vids/b.mp4"),
        _video_sample("v3", "vids/a.mp4", "Another question on the same video."),
        _video_sample("v1", "vids/a.mp4"),  # an exact duplicate of the first
        _video_sample("v4", "vids/gone.mp4"),  # listed once, missing now
    ]
    out = list(open_group((("archive", str(archive)), samples)))
    errors = [o for o in out if isinstance(o, ErrorRecord)]
    kept = {(o.id, o.conversations[-1]["value"]): o for o in out if isinstance(o, Sample)}
    assert [(e.id, e.reason) for e in errors] == [("v1", "duplicate_sample")]
    assert len(out) == 5
    data = {key[0]: sample.media[0].data for key, sample in kept.items()}
    assert data["v2"] == second
    assert [s.media[0].data for k, s in kept.items() if k[0] in ("v1", "v3")] == [first, first]
    # Not in the archive after all: no bytes, so fetching reports it missing.
    assert data["v4"] is None


@pytest.mark.slow
def test_a_video_in_two_archives_comes_from_the_first_by_name(tmp_path):
    root = tmp_path / "data"
    one, two = mp4_bytes(frames=8), mp4_bytes(frames=12)
    root.mkdir()
    write_tar_gz(root / "videos_2.tar.gz", {"vids/a.mp4": two, "vids/b.mp4": two})
    write_tar_gz(root / "videos_1.tar.gz", {"vids/a.mp4": one})
    write_json(
        root / "videos.json",
        [
            {
                "id": "v-a",
                "video": "vids/a.mp4",
                "conversations": conversation("Q?", "A bar moves right.", "<video>\n"),
            },
            {
                "id": "v-b",
                "video": "vids/b.mp4",
                "conversations": conversation("Q?", "A bar moves left.", "<video>\n"),
            },
        ],
    )
    for name in ("images.json", "text.json"):
        write_json(root / name, [])
    summary = run(tiny_config(root, tmp_path / "out"))
    assert summary["counts"]["total"] == {"input": 2, "clean": 2, "review": 0, "errors": 0}
    clean = read_parquet_dir(tmp_path / "out" / "clean").set_index("id")
    assert clean.loc["v-a", "videos"][0]["bytes"] == one
    assert clean.loc["v-b", "videos"][0]["bytes"] == two


def test_a_shard_input_that_changed_during_the_run_is_an_error_not_a_loss(tmp_path):
    shard = tmp_path / "part-0.parquet"
    samples = [_video_sample(f"v{i}", f"vids/{i}.mp4") for i in range(3)]
    for sample in samples:
        sample.media[0].data = b"video bytes"
    with open(shard, "wb") as handle:
        writer = SHARD_TYPES["parquet"](handle)
        for sample in samples:
            writer.write(sample)
        writer.close()
    light = list(read_light(str(shard), "own", "parquet"))
    assert [ref.data for s in light for ref in s.media] == [None, None, None]
    assert {s.media_file for s in light} == {("parquet", str(shard), "own")}
    with open(shard, "wb") as handle:  # rewritten with the last sample gone
        writer = SHARD_TYPES["parquet"](handle)
        for sample in samples[:2]:
            writer.write(sample)
        writer.close()
    out = list(open_group((group_key(light[0], {})[0], light)))
    assert [(o.id, o.media[0].data) for o in out if isinstance(o, Sample)] == [
        ("v0", b"video bytes"),
        ("v1", b"video bytes"),
    ]
    assert [(o.id, o.reason) for o in out if isinstance(o, ErrorRecord)] == [
        ("v2", "media_missing")
    ]
