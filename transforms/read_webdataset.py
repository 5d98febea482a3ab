"""Stream WebDataset tar shards (ours or img2dataset-style) as samples."""

from __future__ import annotations

import tarfile
from collections.abc import Iterator

import fsspec

from transforms.record import ErrorRecord, Sample
from transforms.webdataset_rows import files_to_sample


def split_member_name(name: str) -> tuple[str, str]:
    directory, _, base = name.rpartition("/")
    key, _, suffix = base.partition(".")
    return (f"{directory}/{key}" if directory else key), suffix


def read_webdataset_shard(path: str, source: str) -> Iterator[Sample | ErrorRecord]:
    """Members sharing a key are consecutive in a shard; each group becomes one sample."""

    def emit(key: str, files: dict[str, bytes]) -> Sample | ErrorRecord:
        origin = f"{path}:{key}"
        try:
            return files_to_sample(files, source, origin)
        except (KeyError, ValueError, TypeError) as exc:
            detail = f"sample {key!r} in {path} is incomplete or malformed: {exc!r}"
            return ErrorRecord(source, "read", "bad_webdataset_sample", detail, origin, key)

    key, files = None, {}
    try:
        with fsspec.open(path, "rb") as raw, tarfile.open(fileobj=raw, mode="r|*") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                member_key, suffix = split_member_name(member.name)
                if member_key != key and key is not None:
                    yield emit(key, files)
                    files = {}
                key = member_key
                handle = tar.extractfile(member)
                files[suffix] = handle.read() if handle else b""
    except (tarfile.TarError, OSError, EOFError) as exc:
        yield ErrorRecord(source, "read", "corrupt_shard", f"{path}: {exc}", path)
    if key is not None:
        yield emit(key, files)
