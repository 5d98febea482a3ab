"""ReadSources: every source's files -> light samples and error records, one per record.

Manifests stream record by record; Parquet and WebDataset inputs are read without their media
bytes (read again whole by LoadMedia, after the shuffle); video archives are listed, headers
only, so LoadMedia knows which archive holds each video. Every input file is found before the
pipeline starts (`discover_inputs`), so missing data stops the command, not a worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import apache_beam as beam

from pipelines.config import RunConfig
from pipelines.progress import READ, CountProgress
from transforms.beam.branches import Branches
from transforms.beam.steps import ERRORS_TAG, SplitErrors
from transforms.core.storage import glob_under
from transforms.io.llava_manifests import read_manifest
from transforms.io.shard_inputs import read_light
from transforms.io.video_archives import list_archive_videos


class DataMissingError(FileNotFoundError):
    """The configured dataset is not where the config says; the message says how to fix it."""


@dataclass(frozen=True)
class SourceFiles:
    manifests: list[str]
    archives: list[str]


def discover_inputs(config: RunConfig) -> dict[str, SourceFiles]:
    """Resolve every source's globs now, so missing data fails before any worker starts."""
    resolved = {}
    for source in config.sources:
        manifests = glob_under(config.root, source.manifests)
        if not manifests:
            wanted = ", ".join(f"{config.root}/{p}" for p in source.manifests)
            raise DataMissingError(
                f"source {source.name!r}: no input matches {wanted}.\n{config.layout_help}".strip()
            )
        archives = glob_under(config.root, source.video_archives)
        if source.video_archives and not archives:
            wanted = ", ".join(f"{config.root}/{p}" for p in source.video_archives)
            raise DataMissingError(
                f"source {source.name!r}: no video archive matches {wanted}.\n"
                f"{config.layout_help}".strip()
            )
        resolved[source.name] = SourceFiles(manifests, archives)
    return resolved


class SourcesRead(NamedTuple):
    """What ReadSources gives the stages after it."""

    read: Branches  # every record read, per source, and the archives' errors: the input counts
    samples: Branches  # light samples (no media bytes), one branch per source
    errors: Branches  # per source, and the archives' errors
    # (member path, archive) for every video in an archive; None when the run has no archives
    archive_videos: beam.PCollection | None


class ReadSources(beam.PTransform):
    """Pipeline -> `SourcesRead`.

    An archive that cannot be read is one error record, counted as an input of the first
    source that lists it.
    """

    def __init__(self, config: RunConfig, inputs: dict[str, SourceFiles]):
        super().__init__()
        self._config = config
        self._inputs = inputs

    def expand(self, p):
        archive_owner: dict[str, str] = {}
        for source in self._config.sources:
            for archive in self._inputs[source.name].archives:
                archive_owner.setdefault(archive, source.name)
        listed = (
            p
            | "Archives" >> beam.Create(sorted(archive_owner.items()))
            | "ListArchiveVideos" >> beam.FlatMapTuple(list_archive_videos)
            | "SplitArchiveErrors" >> beam.ParDo(SplitErrors()).with_outputs(ERRORS_TAG, main="ok")
        )
        archive_errors = listed[ERRORS_TAG] | "CountArchiveErrors" >> beam.ParDo(
            CountProgress(READ)
        )
        reads = Branches(
            self._read(p, source) | f"CountRead[{source.name}]" >> beam.ParDo(CountProgress(READ))
            for source in self._config.sources
        )
        splits = Branches(
            read
            | f"SplitReadErrors[{source.name}]"
            >> beam.ParDo(SplitErrors()).with_outputs(ERRORS_TAG, main="samples")
            for read, source in zip(reads, self._config.sources, strict=True)
        )
        return SourcesRead(
            read=reads + archive_errors,
            samples=splits.tagged("samples"),
            errors=splits.tagged(ERRORS_TAG) + archive_errors,
            archive_videos=listed.ok if archive_owner else None,
        )

    def _read(self, p, source):
        label = f"Read[{source.name}]"
        files = p | f"{label}/Files" >> beam.Create(self._inputs[source.name].manifests)
        if source.format == "llava":
            return files | f"{label}/Records" >> beam.FlatMap(read_manifest, source.name)
        # Parquet and WebDataset hold their media: read without it here, whole after the shuffle.
        return files | f"{label}/Samples" >> beam.FlatMap(read_light, source.name, source.format)
