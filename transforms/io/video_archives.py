"""Videos read in place from `.tar.gz` archives (LLaVA-Video-178K ships them only that way).

A gzip stream has no random access. Each archive is listed once (headers only) to learn which
videos it holds, and read once more front to back by the one worker that holds all samples
waiting for its videos; users never extract hundreds of GB first, and video bytes never go
through a shuffle.
"""

from __future__ import annotations

import tarfile
from collections import defaultdict
from collections.abc import Iterable, Iterator

import fsspec

from transforms.core.record import VIDEO, ErrorRecord, MediaRef, Sample
from transforms.io.paths import normalize_member

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".wmv", ".webm")


def _video_members(tar: tarfile.TarFile) -> Iterator[tuple[str, tarfile.TarInfo]]:
    """(path as manifests write it, member) for every video member; unsafe paths skipped."""
    for member in tar:
        if not member.isfile() or not member.name.lower().endswith(VIDEO_EXTENSIONS):
            continue
        name = normalize_member(member.name)
        if name is not None:
            yield name, member


def iter_archive_videos(archive_path: str) -> Iterator[tuple[str, bytes]]:
    """(member path, bytes) for every video member, streamed front to back."""
    with fsspec.open(archive_path, "rb") as raw, tarfile.open(fileobj=raw, mode="r|*") as tar:
        for name, member in _video_members(tar):
            handle = tar.extractfile(member)
            if handle is not None:
                yield name, handle.read()


def list_archive_videos(archive_path: str, source: str) -> Iterator[tuple[str, str] | ErrorRecord]:
    """(member path, archive path) for every video member: headers only, no video kept.

    An archive that cannot be read (not gzip, not a tar, cut short) yields the members listed
    before the break and one error record for the archive, counted under `source`; samples
    whose video is not listed then fail to fetch it, each with its own error record.
    """
    listed = 0
    try:
        with fsspec.open(archive_path, "rb") as raw, tarfile.open(fileobj=raw, mode="r|*") as tar:
            for name, _ in _video_members(tar):
                listed += 1
                yield name, archive_path
    except Exception as exc:  # noqa: BLE001 - one unreadable archive must not end the job
        detail = (
            f"{archive_path}: {type(exc).__name__}: {str(exc)[:300]} "
            f"(after {listed} videos; the videos past this point cannot be read)"
        )
        yield ErrorRecord(source, "read", "corrupt_archive", detail, archive_path)


def archive_key(sample: Sample) -> str | None:
    """The path under which this sample's video would appear in an archive."""
    for ref in sample.media:
        if ref.kind == VIDEO and ref.data is None:
            return normalize_member(ref.path)
    return None


def _with_video(sample: Sample, path: str, data: bytes) -> Sample:
    media = [
        MediaRef(ref.kind, ref.path, data)
        if ref.kind == VIDEO and ref.data is None and normalize_member(ref.path) == path
        else ref
        for ref in sample.media
    ]
    return sample.replace(media=media)


def attach_archive_videos(
    archive_path: str, samples: Iterable[Sample]
) -> Iterator[Sample | ErrorRecord]:
    """Stream one archive, giving each waiting sample its video as the member goes by.

    Memory holds the (light) waiting samples and one video. Reading stops once every sample
    has its video. A sample whose member is not there after all (the archive changed since it
    was indexed) goes on without bytes, and fetching reports the file as missing; if the
    archive breaks off, every sample still waiting gets an error record saying so.
    """
    waiting: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        waiting[archive_key(sample)].append(sample)
    try:
        for name, data in iter_archive_videos(archive_path):
            for sample in waiting.pop(name, ()):
                yield _with_video(sample, name, data)
            if not waiting:
                return
    except Exception as exc:  # noqa: BLE001 - the waiting samples fail, the job goes on
        detail = f"the archive {archive_path} could not be read to the end: {exc}"[:1000]
        for leftover in waiting.values():
            for sample in leftover:
                yield ErrorRecord.for_sample(sample, "fetch", "archive_unreadable", detail)
        return
    for leftover in waiting.values():
        yield from leftover
