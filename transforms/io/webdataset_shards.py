"""Stream WebDataset tar shards (ours or img2dataset-style) as samples."""

from __future__ import annotations

import tarfile
from collections.abc import Iterator

import fsspec

from transforms.core.record import ErrorRecord, Sample
from transforms.io.read_guard import guarded_file, record_or_error
from transforms.io.webdataset_rows import files_to_sample


def split_member_name(name: str) -> tuple[str, str]:
    directory, _, base = name.rpartition("/")
    key, _, suffix = base.partition(".")
    return (f"{directory}/{key}" if directory else key), suffix


def read_webdataset_shard(path: str, source: str) -> Iterator[Sample | ErrorRecord]:
    """Members sharing a key are consecutive in a shard; each group becomes one sample.

    A shard that is not a tar, or breaks off, costs one error record after the samples read
    before the break; a malformed sample costs that sample.
    """
    yield from guarded_file(_read_shard, path, source, reason="corrupt_shard")


def iter_tar_groups(raw) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {suffix: bytes}) per sample of a tar stream: a sample's files are consecutive."""
    key, files = None, {}
    with tarfile.open(fileobj=raw, mode="r|*") as tar:
        for member in tar:
            if not member.isfile():
                continue
            member_key, suffix = split_member_name(member.name)
            if member_key != key and key is not None:
                yield key, files
                files = {}
            key = member_key
            handle = tar.extractfile(member)
            files[suffix] = handle.read() if handle else b""
    if key is not None:
        yield key, files


def _read_shard(path: str, source: str) -> Iterator[Sample | ErrorRecord]:
    with fsspec.open(path, "rb") as raw:
        for key, files in iter_tar_groups(raw):
            yield record_or_error(files_to_sample, files, source, f"{path}:{key}")
