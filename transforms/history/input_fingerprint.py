"""One fingerprint of a run's input files, so the run history can tell "same input" apart.

It covers the files the sources list (manifests, input shards, video archives): each one's path
below the dataset root, size and the version its store keeps (an object's ETag or generation,
else the modification time). Loose media files are not listed (ALLaVA has millions): a changed
image under an unchanged manifest shows as a changed sample in `rmclean compare` instead.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

import fsspec

VERSION_KEYS = ("ETag", "etag", "generation", "md5Hash", "mtime", "LastModified", "updated")


def input_fingerprint(root: str, files: Iterable[str]) -> str:
    fs, root_path = fsspec.core.url_to_fs(root)
    root_path = root_path.rstrip("/")
    described = []
    for url in sorted(set(files)):
        _, path = fsspec.core.url_to_fs(url)
        info = fs.info(path)
        version = next((info[key] for key in VERSION_KEYS if info.get(key) is not None), None)
        relative = path[len(root_path) + 1 :] if path.startswith(f"{root_path}/") else path
        described.append([relative, info.get("size"), str(version)])
    text = json.dumps(described, separators=(",", ":"))
    return hashlib.sha1(text.encode("utf-8")).hexdigest()
