"""Resolving a sample's media reference to a file, without ever leaving the dataset root.

Manifests come from the internet. A path such as `../../etc/passwd` must not make the pipeline
read (and then write into its outputs) files outside the dataset, and a URL must not make a
batch job on a million samples fetch from the network unless the user asked for it.
"""

from __future__ import annotations

import posixpath
import re

# `http://`, `s3://`, `gs://`, ...: a scheme followed by ://, as fsspec reads them.
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


class UnsafePathError(ValueError):
    pass


class RemoteMediaError(ValueError):
    """A URL to another host or bucket, and the source does not allow fetching remote media."""


def join_inside(
    root: str, relative: str, allow_outside: bool = False, allow_remote: bool = False
) -> str:
    """Where `relative` lives: `root`/`relative`, refusing what leaves the root.

    Absolute paths, `file://` URLs and `..` that climbs out of `root` are refused unless
    `allow_outside`; network URLs (`http://`, `s3://`, ...) unless `allow_remote`.
    """
    url = _URL.match(relative)
    if url and url.group(1).lower() != "file":
        if not allow_remote:
            raise RemoteMediaError(
                f"media path {relative!r} is a URL; fetching media from the network is off "
                "(set `remote_media: true` on the source to allow it)"
            )
        return relative
    if url or relative.startswith(("/", "\\")):
        if allow_outside:
            return relative
        raise UnsafePathError(f"absolute media path {relative!r} is not allowed")
    normalized = posixpath.normpath(relative)
    if not allow_outside and (normalized == ".." or normalized.startswith("../")):
        raise UnsafePathError(f"media path {relative!r} escapes the dataset root")
    return posixpath.join(root.rstrip("/"), normalized) if root else normalized


def normalize_member(name: str) -> str | None:
    """An archive member's path as manifests write it, or None when it is unsafe."""
    if name.startswith("/"):
        return None
    normalized = posixpath.normpath(name)
    if normalized == ".." or normalized.startswith("../"):
        return None
    return normalized
