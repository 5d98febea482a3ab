"""Globbing local paths and object-store URLs alike.

fsspec's glob drops the protocol (`s3://bucket/x` comes back as `bucket/x`); everything
downstream (fsspec opens, Beam's file IO) needs it back, while local paths stay plain.
"""

from __future__ import annotations

import fsspec


def glob_paths(pattern: str) -> list[str]:
    """Sorted matches of `pattern`, in the same form (plain path or URL) as the pattern."""
    fs, _, _ = fsspec.get_fs_token_paths(pattern)
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    prefix = "" if protocol in ("file", "local") else f"{protocol}://"
    return [f"{prefix}{m}" if prefix and "://" not in m else m for m in sorted(fs.glob(pattern))]
