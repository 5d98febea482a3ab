import pytest

from transforms.core.record import ErrorRecord, MediaRef, Sample
from transforms.io.paths import RemoteMediaError, UnsafePathError, join_inside, normalize_member
from transforms.media.fetch import fetch_media


@pytest.mark.parametrize(
    "path", ["../../etc/passwd", "/etc/passwd", "a/../../b", "file:///etc/passwd", "\\x\\y"]
)
def test_paths_escaping_the_root_are_refused(path):
    with pytest.raises(UnsafePathError):
        join_inside("/data", path)


@pytest.mark.parametrize("path", ["http://host/a.jpg", "https://h/b.png", "s3://x/y", "gs://b/c"])
def test_urls_are_fetched_only_when_the_source_allows_it(path):
    with pytest.raises(RemoteMediaError, match="remote_media: true"):
        join_inside("/data", path)
    assert join_inside("/data", path, allow_remote=True) == path


def test_paths_inside_the_root_resolve():
    assert join_inside("/data/", "a/./b/../c.jpg") == "/data/a/c.jpg"
    assert join_inside("s3://bucket/root", "img/1.jpg") == "s3://bucket/root/img/1.jpg"


@pytest.mark.parametrize(
    "name, expected", [("./v/a.mp4", "v/a.mp4"), ("/abs.mp4", None), ("../x.mp4", None)]
)
def test_archive_member_names(name, expected):
    assert normalize_member(name) == expected


def test_fetch_reads_bytes_and_reports_missing_and_unsafe(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"xyz")
    roots = {"": str(tmp_path)}

    def fetch(path):
        return fetch_media(Sample("s", "src", [], [MediaRef("image", path)]), roots)

    assert fetch("a.jpg").media[0].data == b"xyz"
    missing = fetch("b.jpg")
    assert isinstance(missing, ErrorRecord) and missing.reason == "media_missing"
    assert "b.jpg" in missing.detail and missing.stage == "fetch"
    unsafe = fetch("../a.jpg")
    assert isinstance(unsafe, ErrorRecord) and unsafe.reason == "unsafe_media_path"
