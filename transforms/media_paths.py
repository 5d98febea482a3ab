"""Resolving a sample's media reference to a file, without ever leaving the dataset root."""

from __future__ import annotations

import posixpath


class UnsafePathError(ValueError):
    pass


def join_inside(root: str, relative: str, allow_outside: bool = False) -> str:
    """`root`/`relative`, refusing absolute paths and `..` that climb out of `root`.

    Manifests come from the internet; a path such as `../../etc/passwd` must not make the
    pipeline read (and then write into its outputs) files outside the dataset.
    """
    if allow_outside and (relative.startswith("/") or "://" in relative):
        return relative
    if relative.startswith("/") or "://" in relative or relative.startswith("\\"):
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
