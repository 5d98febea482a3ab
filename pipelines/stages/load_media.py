"""LoadMedia: light samples -> samples with their media bytes, or error records.

The one place media bytes are attached. Samples are grouped by where their bytes live (the
archive holding their video, the Parquet/WebDataset input file they came from, else their
own (source, id)), exact duplicates are dropped in the same groups, each archive or input file
is streamed once to the samples waiting for it, and loose files are fetched from the dataset
root (never from outside it, never from the network unless the source allows it).
"""

from __future__ import annotations

import apache_beam as beam

from pipelines.config import RunConfig
from pipelines.steps import ERRORS_TAG, GroupStep, guarded
from transforms.media.fetch import fetch_media
from transforms.media.groups import group_key, open_group


class LoadMedia(beam.PTransform):
    """Branches of light samples -> {`samples` with media bytes, `errors`: a tuple}.

    `archive_videos`: (member path, archive) pairs from ReadSources, looked up as a side input.
    `group`: the shuffle (`transforms/io/sorted_runs.grouping`): through sorted files on
    runners that would hold it in memory, Beam's GroupByKey elsewhere.
    """

    def __init__(self, config: RunConfig, archive_videos, group: beam.PTransform):
        super().__init__()
        self._config = config
        self._archive_videos = archive_videos
        self._group = group

    def expand(self, branches):
        config = self._config
        # A video in two archives is read from the first one by name, on every run.
        archive_of = beam.pvalue.AsDict(
            self._archive_videos | "FirstArchive" >> beam.CombinePerKey(min)
        )
        keyed = [
            guarded(branch, f"KeyByMediaGroup{i}", "read", group_key, archive_of)
            for i, branch in enumerate(branches)
        ]
        grouped = (
            tuple(k.samples for k in keyed)
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
        errors = (*(k[ERRORS_TAG] for k in keyed), grouped[ERRORS_TAG], fetched[ERRORS_TAG])
        return {"samples": fetched.samples, "errors": errors}
