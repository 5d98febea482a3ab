"""The pipeline's one shuffle: samples grouped by where their media comes from.

Samples whose video sits in an archive are grouped by that archive, so one worker streams it
once and hands each video to the samples waiting for it; every other sample is grouped by
(source, id). Either way exact duplicates meet in one group (they name the same media), so
the same shuffle drops them. Only light samples, without media bytes, go through it: local
runners hold a GroupByKey whole in memory, and remote ones pay for every byte shuffled.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from transforms.dedupe import drop_exact_duplicates
from transforms.record import ErrorRecord, Sample
from transforms.video_archives import archive_key, attach_archive_videos

ARCHIVE = "archive"
SAMPLE = "sample"


def group_key(sample: Sample, archive_of: dict[str, str]) -> tuple[tuple[str, ...], Sample]:
    """(group, sample): the archive holding its video, else its (source, id)."""
    archive = archive_of.get(archive_key(sample) or "")
    if archive is not None:
        return (ARCHIVE, archive), sample
    return (SAMPLE, sample.source, sample.id), sample


def open_group(group: tuple[tuple[str, ...], Iterable[Sample]]) -> Iterator[Sample | ErrorRecord]:
    """Drop the group's exact duplicates; for an archive group, attach the videos."""
    key, samples = group
    kept = drop_exact_duplicates(samples)
    if key[0] != ARCHIVE:
        yield from kept
        return
    unique = []
    for item in kept:
        if isinstance(item, ErrorRecord):
            yield item
        else:
            unique.append(item)
    yield from attach_archive_videos(key[1], unique)
