"""The pipeline's one shuffle: samples grouped by where their media comes from.

Samples whose video sits in an archive are grouped by that archive, so one worker streams it
once and hands each video to the samples waiting for it; samples read from a Parquet or
WebDataset input are grouped by that file, read again whole after the shuffle; every other
sample is grouped by (source, id). Exact duplicates name the same media, so they meet in one
group and the same shuffle drops them (for Parquet and WebDataset inputs, duplicates within
one file). Only light samples, without media bytes, go through it: remote runners pay for every
byte shuffled, and local ones would hold it whole in memory, so there it goes through sorted
files (`transforms/shuffle/sorted_runs.py`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import NamedTuple

from transforms.core.record import ErrorRecord, Sample
from transforms.io.shard_inputs import read_kept
from transforms.io.video_archives import archive_key, attach_archive_videos
from transforms.samples.dedupe import drop_exact_duplicates

ARCHIVE = "archive"
SHARD = "shard"
SAMPLE = "sample"


def group_key(sample: Sample, archive_of: dict[str, str]) -> tuple[tuple[str, ...], Sample]:
    """(group, sample): the input shard or archive holding its media, else its (source, id)."""
    if sample.media_file is not None:
        return (SHARD, *sample.media_file), sample
    archive = archive_of.get(archive_key(sample) or "")
    if archive is not None:
        return (ARCHIVE, archive), sample
    return (SAMPLE, sample.source, sample.id), sample


class ListedVideo(NamedTuple):
    """An archive listing's entry as it meets, keyed by its member path, the samples naming
    that video (`join_archive`)."""

    archive: str


def join_archive(member_group: tuple[str, Iterable]) -> Iterator[tuple[tuple[str, ...], Sample]]:
    """The samples naming one video path, each keyed by its group (`group_key`): the archive
    listing that video (the first by name when several do), else the sample's own (source, id).

    The listings meet the samples in a shuffle keyed by member path, so no step holds the
    listing of every archive (a side input of LLaVA-Video-178K's would be ~178k entries in
    every consuming step of every worker).
    """
    member, values = member_group
    samples, archives = [], []
    for value in values:
        if isinstance(value, ListedVideo):
            archives.append(value.archive)
        else:
            samples.append(value)
    archive_of = {member: min(archives)} if archives else {}
    for sample in samples:
        yield group_key(sample, archive_of)


def open_group(group: tuple[tuple[str, ...], Iterable[Sample]]) -> Iterator[Sample | ErrorRecord]:
    """Drop the group's exact duplicates; attach the media an archive or input shard holds."""
    key, samples = group
    kept = drop_exact_duplicates(samples)
    if key[0] == SAMPLE:
        yield from kept
        return
    unique = []
    for item in kept:
        if isinstance(item, ErrorRecord):
            yield item
        else:
            unique.append(item)
    if key[0] == ARCHIVE:
        yield from attach_archive_videos(key[1], unique)
    else:
        yield from read_kept(key[1:], unique)
