"""`rmclean subset`: a small, consistent slice of a downloaded dataset, to try a run on first.

A real dataset is downloaded in pieces: ALLaVA's LAION images come as ten zip chunks, its VFLAN
images as one more zip, LLaVA-Video's videos as 5 GB archives. A random 1% of the records would
need every piece. This keeps, from each manifest, about `fraction` of its records, chosen among
those whose media are actually here (files under the source's media root, or videos in the
archives the config names), so whatever pieces were downloaded, the subset runs without
`media_missing` errors. The choice is a hash of the record's first media path (of its id when
it has none), so records sharing an image (ALLaVA's caption and instruct subsets) or a video
(LLaVA-Video's caption, open-ended and multiple-choice files) are kept or left together.

The subset has the dataset's layout under a new root: the kept records in their manifests
(same relative paths, same form), their media files copied, and for each video archive a new
archive holding only the kept videos, so the same config runs on it with `INPUT=`.
Memory holds one record and the archives' member lists; each manifest is read twice (once to
count what is here, once to write).
"""

from __future__ import annotations

import hashlib
import io
import json
import posixpath
import tarfile
from dataclasses import dataclass, field
from typing import Any

import fsspec

from pipelines.config import RunConfig, SourceConfig
from transforms.core.record import ErrorRecord
from transforms.core.storage import absolute_url, glob_under, holds_files
from transforms.io.llava_manifests import MALFORMED_LINE, raw_records
from transforms.io.manifest_files import ManifestWriter
from transforms.io.media_files import MediaFiles
from transforms.io.paths import join_inside, normalize_member
from transforms.io.video_archives import iter_archive_videos, list_archive_videos

MEDIA_KEYS = ("image", "video")


class SubsetError(ValueError):
    """Bad usage found before anything was written; the message says what to do."""


@dataclass
class ManifestCounts:
    records: int = 0
    media_here: int = 0
    kept: int = 0


@dataclass
class SubsetReport:
    manifests: dict[str, ManifestCounts] = field(default_factory=dict)
    media_files: int = 0
    archives: dict[str, int] = field(default_factory=dict)  # archive -> videos kept
    unreadable: int = 0  # JSON Lines lines that are not JSON


def _media_paths(record: Any) -> list[tuple[str, str]]:
    if not isinstance(record, dict):
        return []
    found = []
    for kind in MEDIA_KEYS:
        value = record.get(kind)
        for path in value if isinstance(value, list) else [value]:
            if isinstance(path, str) and path:
                found.append((kind, path))
    return found


def _choice(record: Any, media: list[tuple[str, str]]) -> float:
    """A number in [0, 1) fixed by the record's first media path (else its id or text)."""
    if media:
        key = media[0][1]
    elif isinstance(record, dict) and ("id" in record or "idx" in record):
        key = str(record.get("id", record.get("idx")))
    else:
        key = json.dumps(record, sort_keys=True)
    return int.from_bytes(hashlib.sha1(key.encode("utf-8")).digest()[:8], "big") / 2.0**64


class _Sources:
    """Where each source's media are: files under its media root, videos in its archives."""

    def __init__(self, config: RunConfig):
        self.root = config.root.rstrip("/")
        self.fs, _ = fsspec.core.url_to_fs(self.root)
        self.archive_of: dict[str, dict[str, str]] = {}  # source -> member -> archive
        listed: dict[str, dict[str, str]] = {}
        for source in config.sources:
            members: dict[str, str] = {}
            for pattern in source.video_archives:
                for archive in glob_under(self.root, (pattern,)):
                    if archive not in listed:
                        listed[archive] = {
                            name: archive
                            for name, _ in (
                                item
                                for item in list_archive_videos(archive, source.name)
                                if not isinstance(item, ErrorRecord)
                            )
                        }
                    for name, where in listed[archive].items():
                        members.setdefault(name, where)
            self.archive_of[source.name] = members
        self.archives = sorted(listed)
        self.media_roots = config.media_roots()

    def location(self, source: SourceConfig, kind: str, path: str) -> tuple[str, str] | None:
        """('archive', member) or ('file', path relative to the root); None if not here."""
        if kind == "video":
            member = normalize_member(path)
            if member in self.archive_of[source.name]:
                return "archive", member
        try:
            url = join_inside(self.media_roots[source.name], path)
        except ValueError:  # unsafe or remote: not a file of this dataset
            return None
        if not self.fs.isfile(url):
            return None
        return "file", url[len(self.root) + 1 :]

    def all_here(self, source: SourceConfig, media: list[tuple[str, str]]) -> list | None:
        located = [self.location(source, kind, path) for kind, path in media]
        return None if any(place is None for place in located) else located


def _check(config: RunConfig, fraction: float, output: str) -> None:
    if not 0 < fraction <= 1:
        raise SubsetError(f"--fraction must be in (0, 1], got {fraction}")
    formats = {s.format for s in config.sources}
    if formats != {"llava"}:
        raise SubsetError(
            "subset reads LLaVA-style manifests; this config has sources of format "
            f"{', '.join(sorted(formats - {'llava'}))}"
        )
    if holds_files(output):
        raise SubsetError(f"--output {output} already holds files; choose a new or empty folder")
    if absolute_url(output).startswith(absolute_url(config.root).rstrip("/") + "/"):
        raise SubsetError(f"--output {output} is inside the dataset root {config.root}")


def _manifests(config: RunConfig, source: SourceConfig) -> list[str]:
    root = config.root.rstrip("/")
    found = glob_under(root, source.manifests)
    if not found:
        raise SubsetError(
            f"source {source.name!r}: no manifest matches "
            f"{', '.join(f'{root}/{p}' for p in source.manifests)}\n{config.layout_help}".strip()
        )
    return found


def _count(sources: _Sources, source: SourceConfig, url: str) -> ManifestCounts:
    counts = ManifestCounts()
    for record in raw_records(url):
        counts.records += 1
        if (
            record is not MALFORMED_LINE
            and sources.all_here(source, _media_paths(record)) is not None
        ):
            counts.media_here += 1
    return counts


def make_subset(config: RunConfig, fraction: float, output: str) -> SubsetReport:
    """Write about `fraction` of each manifest of `config` (records whose media are here) to
    `output`, with their media; return what was written."""
    _check(config, fraction, output)
    output = output.rstrip("/")
    sources = _Sources(config)
    report = SubsetReport()
    media = MediaFiles(output)
    wanted: dict[str, set[str]] = {archive: set() for archive in sources.archives}
    root_fs = sources.fs
    for source in config.sources:
        for url in _manifests(config, source):
            relative = url[len(absolute_url(config.root).rstrip("/")) + 1 :]
            counts = _count(sources, source, url)
            # Keep `fraction` of all records, drawn from those whose media are here.
            here = counts.media_here
            keep_below = min(1.0, fraction * counts.records / here) if here else 0.0
            writer = ManifestWriter(f"{output}/{relative}")
            for record in raw_records(url):
                if record is MALFORMED_LINE:
                    report.unreadable += 1
                    continue
                paths = _media_paths(record)
                located = sources.all_here(source, paths)
                if located is None or _choice(record, paths) >= keep_below:
                    continue
                writer.write(record)
                for how, where in located:
                    if how == "archive":
                        wanted[sources.archive_of[source.name][where]].add(where)
                    else:
                        media.write(where, root_fs.cat_file(f"{sources.root}/{where}"))
            writer.close()
            counts.kept = writer.count
            report.manifests[relative] = counts
    media.close()
    report.media_files = media.written
    for archive, members in wanted.items():
        relative = archive[len(absolute_url(config.root).rstrip("/")) + 1 :]
        report.archives[relative] = _write_archive(archive, members, f"{output}/{relative}")
    return report


def _write_archive(archive: str, members: set[str], target: str) -> int:
    """A .tar.gz at `target` holding the `members` videos of `archive`, streamed through."""
    fs, path = fsspec.core.url_to_fs(target)
    fs.makedirs(posixpath.dirname(path), exist_ok=True)
    written = 0
    with fs.open(path, "wb") as raw, tarfile.open(fileobj=raw, mode="w|gz") as tar:
        if members:
            for name, data in iter_archive_videos(archive):
                if name in members:
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
                    written += 1
                    if written == len(members):
                        break
    return written
