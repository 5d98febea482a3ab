"""Files on local disk and object stores alike, through fsspec.

fsspec's glob drops the protocol (`s3://bucket/x` comes back as `bucket/x`); everything
downstream (fsspec opens, Beam's file IO) needs it back, while local paths stay plain.
"""

from __future__ import annotations

import shutil

import fsspec

COPY_BLOCK_BYTES = 8 << 20  # copies stream a block at a time, whatever the file's size


def _prefix(fs) -> str:
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return "" if protocol in ("file", "local") else f"{protocol}://"


def absolute_url(url: str) -> str:
    """`url` in the form `glob_paths` gives (so input paths and it share a prefix): local paths
    absolute, object-store URLs with their protocol."""
    fs, path = fsspec.core.url_to_fs(url)
    return f"{_prefix(fs)}{path}"


def glob_paths(pattern: str) -> list[str]:
    """Sorted matches of `pattern`, in the same form (plain path or URL) as the pattern."""
    fs, _, _ = fsspec.get_fs_token_paths(pattern)
    prefix = _prefix(fs)
    return [f"{prefix}{m}" if prefix and "://" not in m else m for m in sorted(fs.glob(pattern))]


def glob_under(root: str, patterns: tuple[str, ...]) -> list[str]:
    """Every match of each pattern under `root`, pattern by pattern (each sorted)."""
    return [path for pattern in patterns for path in glob_paths(f"{root.rstrip('/')}/{pattern}")]


def holds_files(url: str) -> bool:
    """Whether `url` is a file, or a folder with anything in it."""
    fs, path = fsspec.core.url_to_fs(url)
    return fs.exists(path) and (not fs.isdir(path) or bool(fs.ls(path)))


def copy_file(source: str, target: str) -> None:
    """Copy one file to another (local or object store), a block at a time."""
    with fsspec.open(source, "rb") as reader, fsspec.open(target, "wb") as writer:
        shutil.copyfileobj(reader, writer, COPY_BLOCK_BYTES)


def open_for_write(url: str):
    """A binary write handle for `url`, its parent folders made (object stores need none)."""
    fs, _, (path,) = fsspec.get_fs_token_paths(url)
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    return fs.open(path, "wb")


def remove_tree(url: str) -> None:
    """Delete a file or folder if it is there."""
    fs, _, (path,) = fsspec.get_fs_token_paths(url)
    if fs.exists(path):
        fs.rm(path, recursive=True)
