"""Load each media reference's bytes from the dataset root (local disk or any fsspec URL)."""

from __future__ import annotations

from collections.abc import Container

import fsspec

from transforms.core.record import ErrorRecord, MediaRef, Sample
from transforms.io.paths import RemoteMediaError, UnsafePathError, join_inside


def fetch_media(
    sample: Sample,
    media_roots: dict[str, str],
    allow_outside_root: bool = False,
    remote_sources: Container[str] = (),
) -> Sample | ErrorRecord:
    """Fill in `data` for media not yet loaded (archive videos and shard media already are).

    `media_roots` maps a source name to the directory its media paths are relative to; the
    "" entry is the dataset root, for sources named by the data rather than the config.
    Sources in `remote_sources` may name media by URL (http://, s3://, ...).
    """
    if all(ref.data is not None for ref in sample.media):
        return sample
    root = media_roots.get(sample.source, media_roots[""])
    media = []
    for ref in sample.media:
        if ref.data is not None:
            media.append(ref)
            continue
        try:
            location = join_inside(
                root, ref.path, allow_outside_root, sample.source in remote_sources
            )
        except UnsafePathError as exc:
            return ErrorRecord.for_sample(sample, "fetch", "unsafe_media_path", str(exc))
        except RemoteMediaError as exc:
            return ErrorRecord.for_sample(sample, "fetch", "remote_media_not_allowed", str(exc))
        try:
            with fsspec.open(location, "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            detail = f"{ref.kind} {ref.path!r} not found (looked for {location})"
            return ErrorRecord.for_sample(sample, "fetch", "media_missing", detail)
        except (IsADirectoryError, PermissionError, OSError) as exc:
            detail = f"{ref.kind} {ref.path!r} could not be read: {exc}"
            return ErrorRecord.for_sample(sample, "fetch", "media_unreadable", detail)
        media.append(MediaRef(ref.kind, ref.path, data))
    return sample.replace(media=media)
