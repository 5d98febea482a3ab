"""Videos read in place from `.tar.gz` archives (LLaVA-Video-178K ships them only that way).

A gzip stream has no random access, so each archive is read once front to back and its members
are joined to manifest records by path; users never extract hundreds of GB first.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterable, Iterator

import fsspec

from transforms.media_paths import normalize_member
from transforms.record import VIDEO, ErrorRecord, Sample

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".wmv", ".webm")


def iter_archive_videos(archive_path: str) -> Iterator[tuple[str, bytes]]:
    """(member path, bytes) for every video member, streamed; unsafe member paths are skipped."""
    with fsspec.open(archive_path, "rb") as raw, tarfile.open(fileobj=raw, mode="r|*") as tar:
        for member in tar:
            if not member.isfile() or not member.name.lower().endswith(VIDEO_EXTENSIONS):
                continue
            name = normalize_member(member.name)
            if name is None:
                continue
            handle = tar.extractfile(member)
            if handle is not None:
                yield name, handle.read()


def archive_key(sample: Sample) -> str | None:
    """The path under which this sample's video would appear in an archive."""
    for ref in sample.media:
        if ref.kind == VIDEO and ref.data is None:
            return normalize_member(ref.path)
    return None


def attach_archive_video(
    joined: tuple[str, dict[str, Iterable]],
) -> Iterator[Sample | ErrorRecord]:
    """Give every sample keyed to `path` the archive's bytes for that path (first copy wins).

    Samples whose video is in no archive pass on without bytes; fetching from disk comes next
    and reports the file as missing if it is not there either.
    """
    path, groups = joined
    payloads = list(groups["videos"])
    data = payloads[0] if payloads else None
    for sample in groups["samples"]:
        if data is not None:
            media = [
                ref.__class__(ref.kind, ref.path, data)
                if ref.kind == VIDEO and ref.data is None and normalize_member(ref.path) == path
                else ref
                for ref in sample.media
            ]
            sample = sample.replace(media=media)
        yield sample
