"""Send each sample of a finished run to where the reviewers' decisions (or the policy) put it.

Shard by shard, in the run's index order: a shard holding no decided sample is copied whole
(its index rows carried over as they stream by), any other is read and routed sample by
sample into rolling temp shards of the new prefix, renamed and indexed at the end.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import fsspec

from transforms.core.record import Sample
from transforms.core.run_info import RunInfo
from transforms.core.storage import copy_file
from transforms.io.rolling_shards import (
    RollingShards,
    finalize_shards,
    temp_dir_under,
    temp_shard_path,
)
from transforms.io.shard_formats import SHARD_TYPES, SUFFIXES
from transforms.io.shard_index import SidecarWriter, index_path, iter_index
from transforms.io.stored_samples import iter_stored_samples
from transforms.review.matching import Match
from transforms.samples.route import CLEAN, DROPPED, REVIEW

UNDECIDED = "undecided"
DESTINATIONS = (CLEAN, REVIEW, DROPPED)


class ReviewNotConservedError(RuntimeError):
    """The new prefix does not account for every sample of the run."""


@dataclass
class Destination:
    """One folder of the new prefix: rolling temp shards, renamed and indexed at the end."""

    prefix: str
    folder: str
    file_format: str
    shard_mb: float
    run_info: RunInfo
    temp_paths: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.directory = f"{self.prefix}/{self.folder}"
        self.temp_dir = temp_dir_under(self.directory)
        shard_type = SHARD_TYPES[self.file_format]
        self.shards = RollingShards(
            self.temp_dir, shard_type, self.shard_mb, indexed=True, run_info=self.run_info
        )

    def write(self, sample: Sample) -> None:
        closed = self.shards.write(sample)
        if closed:
            self.temp_paths.append(closed)

    def adopt(self, shard_url: str) -> SidecarWriter:
        """Copy a whole shard in; the caller fills its index sidecar from the run's index."""
        temp = temp_shard_path(self.temp_dir, SUFFIXES[self.file_format])
        copy_file(shard_url, temp)
        self.temp_paths.append(temp)
        return SidecarWriter(temp)

    def finish(self) -> None:
        closed = self.shards.close()
        if closed:
            self.temp_paths.append(closed)
        index_file = index_path(self.prefix, self.folder)
        for _ in finalize_shards(
            None,
            self.directory,
            self.temp_dir,
            self.file_format,
            self.temp_paths,
            index_file,
            run_info=self.run_info,
        ):
            pass


class ReviewRouter:
    """Where each sample of the run goes, and how many of each source went where."""

    def __init__(self, undecided: str, destinations: dict[str, Destination]):
        self.undecided = undecided
        self.destinations = destinations
        self.counts: dict[str, dict[str, int]] = {}

    def count(self, source: str, destination: str, number: int = 1) -> None:
        per_source = self.counts.setdefault(source, dict.fromkeys(DESTINATIONS, 0))
        per_source[destination] += number

    def copies_whole(self, route: str, has_decisions: bool) -> bool:
        return not has_decisions and (route != REVIEW or self.undecided == REVIEW)

    def destination(self, route: str, match: Match | None, sample: Sample) -> tuple[str, Sample]:
        if match is not None:
            verdict = CLEAN if match.verdict == "keep" else DROPPED
            return verdict, sample.replace(review_decision=match.verdict, review_note=match.note)
        if route != REVIEW or self.undecided == REVIEW:
            return route, sample
        where = CLEAN if self.undecided == "keep" else DROPPED
        return where, sample.replace(review_decision=UNDECIDED, review_note="")

    def rewrite(self, run_prefix: str, route: str, shard: str, matches: dict[str, Match]):
        """Stream one shard, sending each sample where its decision (or the policy) says."""
        fs, root = fsspec.core.url_to_fs(f"{run_prefix}/{shard}")
        seen = 0
        for position, sample in iter_stored_samples(fs, root):
            match = matches.get(position)
            if match is not None:
                if sample.id != match.id:
                    raise ReviewNotConservedError(
                        f"{run_prefix}/{shard} holds {sample.id!r} at {position}, but the run's "
                        f"index says {match.id!r}: the run changed after it finished"
                    )
                seen += 1
            where, routed = self.destination(route, match, sample)
            self.destinations[where].write(routed)
            self.count(sample.source, where)
        if seen != len(matches):
            raise ReviewNotConservedError(
                f"{run_prefix}/{shard} no longer holds {len(matches) - seen} decided sample(s) "
                "its index points at: the run changed after it finished"
            )


def route_samples(run_prefix: str, router: ReviewRouter, by_shard: dict[str, dict[str, Match]]):
    """Every sample of the run to its destination, shard by shard, in the run's index order.

    A shard without decisions is copied whole and its index rows carried over as they stream
    by; any other shard is read and routed sample by sample. No index rows are held. A prefix
    that was itself reviewed has a dropped/ too: it is carried over whole (the pages do not
    show dropped samples, so no decision can name one).
    """
    routes = [CLEAN, REVIEW]
    fs, dropped_index = fsspec.core.url_to_fs(index_path(run_prefix, DROPPED))
    if fs.exists(dropped_index):
        routes.append(DROPPED)
    for route in routes:
        index_file = index_path(run_prefix, route)
        current, sidecar, done = None, None, set()
        for row in iter_index(index_file):
            shard = row["shard"]
            if shard != current:
                if shard in done:
                    raise ReviewNotConservedError(f"{index_file} is not grouped by shard")
                if sidecar is not None:
                    sidecar.close()
                current, sidecar = shard, None
                done.add(shard)
                matches = by_shard.get(shard, {})
                if router.copies_whole(route, bool(matches)):
                    sidecar = router.destinations[route].adopt(f"{run_prefix}/{shard}")
                else:
                    router.rewrite(run_prefix, route, shard, matches)
            if sidecar is not None:
                sidecar.add_entry(row)
                router.count(row["source"], route)
        if sidecar is not None:
            sidecar.close()
