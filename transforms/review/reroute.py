"""Send each sample of a finished run to where the reviewers' decisions (or the policy) put it.

Shard by shard, in the run's index order: a shard holding no decided sample is copied whole
(its index rows carried over as they stream by), any other is read and routed sample by
sample into rolling temp shards of the new prefix, renamed and indexed at the end.

A repaired conversation's original (in review/, its kept prefix in clean/) is counted with its
prefix, as in the run: kept, it goes to clean/ whole and replaces its prefix (which the matching
marked SUPERSEDED and is left out); dropped, or undecided under `--undecided keep|drop`, it goes
to dropped/ and its prefix stays, the repair standing; undecided, it stays in review/.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import fsspec

from transforms.core.record import Sample
from transforms.core.routes import CLEAN, DROPPED, REVIEW
from transforms.core.run_info import RunInfo
from transforms.core.storage import copy_file
from transforms.review.matching import SUPERSEDED, Match
from transforms.samples.repair import ORIGINAL, REPAIRED, repair_role
from transforms.shards.rolling_shards import (
    RollingShards,
    finalize_shards,
    temp_dir_under,
    temp_shard_path,
)
from transforms.shards.shard_formats import SHARD_TYPES, SUFFIXES
from transforms.shards.shard_index import SidecarWriter, index_path, iter_index
from transforms.shards.stored_samples import iter_stored_samples

UNDECIDED = "undecided"
DESTINATIONS = (CLEAN, REVIEW, DROPPED)
# Repairs, counted apart from the destinations: kept prefixes (also counted in clean) and the
# originals beside them (in review/ or dropped/, counted in neither).
REPAIR_COUNTS = ("repaired", "repaired_originals")


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

    def count(self, source: str, destination: str, repair: str | None = None) -> None:
        per_source = self.counts.setdefault(
            source, dict.fromkeys((*DESTINATIONS, *REPAIR_COUNTS), 0)
        )
        if repair == ORIGINAL:
            per_source["repaired_originals"] += 1
            return
        per_source[destination] += 1
        if repair == REPAIRED:
            per_source["repaired"] += 1

    def copies_whole(self, route: str, has_decisions: bool) -> bool:
        return not has_decisions and (route != REVIEW or self.undecided == REVIEW)

    def destination(
        self, route: str, match: Match | None, sample: Sample
    ) -> tuple[str, Sample] | None:
        """(folder, sample as written there), or None for a sample left out (a superseded
        repaired prefix)."""
        original = repair_role(sample) == ORIGINAL
        if match is not None:
            if match.verdict == SUPERSEDED:
                return None
            decided = sample.replace(review_decision=match.verdict, review_note=match.note)
            if match.verdict == "keep":
                # Kept whole: it replaces its prefix, so it is no longer a repair's original.
                return CLEAN, decided.replace(repaired_prefix=None) if original else decided
            return DROPPED, decided
        if route != REVIEW or self.undecided == REVIEW:
            return route, sample
        where = CLEAN if self.undecided == "keep" and not original else DROPPED
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
            sent = self.destination(route, match, sample)
            if sent is not None:
                where, routed = sent
                self.destinations[where].write(routed)
                self.count(routed.source, where, repair_role(routed))
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
                router.count(row["source"], route, row.get("repair"))
        if sidecar is not None:
            sidecar.close()
