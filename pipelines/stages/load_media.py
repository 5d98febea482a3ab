"""LoadMedia: light samples -> samples with their media bytes, or error records.

The one place media bytes are attached. Samples are grouped by where their bytes live (the
archive holding their video, the Parquet/WebDataset input file they came from, else their
own (source, id)), exact duplicates are dropped in the same groups, each archive or input file
is streamed once to the samples waiting for it, and loose files are fetched from the dataset
root (never from outside it, never from the network unless the source allows it). Which
archive holds a sample's video is learnt in a shuffle of its own before that (the archives'
listings meet the samples naming their videos), not from a side input of every listing.
"""

from __future__ import annotations

from typing import NamedTuple

import apache_beam as beam

from pipelines.config import RunConfig
from transforms.beam.branches import Branches
from transforms.beam.steps import ERRORS_TAG, GroupStep, guarded
from transforms.io.video_archives import archive_key
from transforms.media.fetch import fetch_media
from transforms.media.groups import ListedVideo, group_key, join_archive, open_group

TO_ARCHIVE_JOIN = "to_archive_join"


def key_by_group(sample, archives_listed: bool):
    """(group, sample) for a sample whose group is known now; (video path, sample) on the
    `TO_ARCHIVE_JOIN` output for one whose video an archive may hold."""
    member = archive_key(sample) if archives_listed and sample.media_file is None else None
    if member is None:
        return group_key(sample, {})
    return beam.pvalue.TaggedOutput(TO_ARCHIVE_JOIN, (member, sample))


class MediaLoaded(NamedTuple):
    """What LoadMedia gives the scoring stage."""

    samples: beam.PCollection  # samples with their media bytes, out of the media shuffle
    errors: Branches


class LoadMedia(beam.PTransform):
    """`Branches` of light samples -> `MediaLoaded`.

    `archive_videos`: (member path, archive) pairs from ReadSources, or None when the run has
    no archives. `group`, `archive_group`: the media shuffle and the archive join's
    (`transforms/shuffle/sorted_runs.grouping`): through sorted files on runners that would hold
    them in memory, Beam's GroupByKey elsewhere.
    """

    def __init__(
        self,
        config: RunConfig,
        archive_videos,
        group: beam.PTransform,
        archive_group: beam.PTransform,
    ):
        super().__init__()
        self._config = config
        self._archive_videos = archive_videos
        self._group = group
        self._archive_group = archive_group

    def expand(self, branches):
        config = self._config
        listed = self._archive_videos is not None
        keyed = Branches(
            guarded(
                branch, f"KeyByMediaGroup{i}", "read", key_by_group, listed, tags=(TO_ARCHIVE_JOIN,)
            )
            for i, branch in enumerate(branches)
        )
        by_group = keyed.tagged("samples")
        if listed:
            # A video in two archives is read from the first one by name, on every run.
            listings = self._archive_videos | "ListedVideos" >> beam.MapTuple(
                lambda member, archive: (member, ListedVideo(archive))
            )
            joined = (
                keyed.tagged(TO_ARCHIVE_JOIN) + listings
                | "GroupByVideoPath" >> self._archive_group
                | "JoinArchives" >> beam.FlatMap(join_archive)
            )
            by_group += joined
        grouped = (
            by_group
            | "GroupByMediaSource" >> self._group
            | "DropDuplicatesAttachMedia"
            >> beam.ParDo(GroupStep("fetch", open_group)).with_outputs(ERRORS_TAG, main="samples")
        )
        fetched = guarded(
            grouped.samples,
            "FetchMedia",
            "fetch",
            fetch_media,
            config.media_roots(),
            config.allow_media_outside_root,
            frozenset(s.name for s in config.sources if s.remote_media),
        )
        errors = keyed.tagged(ERRORS_TAG) + (grouped[ERRORS_TAG], fetched[ERRORS_TAG])
        return MediaLoaded(fetched.samples, errors)
