"""Branches: PCollections of one kind (samples, errors, outcomes, batch stats) kept apart.

Local runners (the FnApiRunner of the default, `local` and `portable`) hold every element of a
multi-input Flatten in memory until the next stage runs, so per-record PCollections are never
flattened into one: each source, model or step keeps its own branch to the end, transformed
where it is (`each`), counted where it is made (`combine_branches.CombineBranches`), written
(`io/write_shards.WriteSamples`) or grouped (`io/sorted_runs.grouping`) branch by branch.
`flatten` is the one way to join branches, and says when that is allowed.

A `Branches` is a tuple, so Beam takes it as a transform's input as it takes any tuple of
PCollections.
"""

from __future__ import annotations

from collections.abc import Iterable

import apache_beam as beam


class Branches(tuple):
    """A tuple of PCollections of one kind, kept apart (see the module's docstring)."""

    __slots__ = ()

    def __new__(cls, branches: Iterable = ()) -> Branches:
        return super().__new__(cls, branches)

    def __add__(self, other: Iterable) -> Branches:
        """These branches, then `other`'s (a PCollection is one branch)."""
        if isinstance(other, beam.pvalue.PCollection):
            other = (other,)
        return Branches((*self, *other))

    def each(self, label: str, transform: beam.PTransform) -> Branches:
        """`transform` applied to every branch, as step `<label><index>`."""
        return Branches(branch | f"{label}{i}" >> transform for i, branch in enumerate(self))

    def tagged(self, tag: str) -> Branches:
        """The `tag` output of every branch, when each is a multi-output step's outputs."""
        return Branches(outputs[tag] for outputs in self)

    def flatten(self, label: str) -> beam.PCollection:
        """One PCollection of every branch's elements.

        Only for elements there are few of (one per file written, spill shard or bundle):
        per-record branches stay apart on every runner, because the local ones would hold the
        Flatten whole in memory.
        """
        return self | label >> beam.Flatten()
