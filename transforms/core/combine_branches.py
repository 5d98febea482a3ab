"""One combine over several branches, without a Flatten of their elements.

Local runners hold a multi-input Flatten whole in memory, so flattening one element per
record (outcomes, scores, batch stats) before a combine costs memory in proportion to the
dataset. Instead each branch is combined where it is made (Beam lifts a combine's first half
into the step producing its input), only the accumulators are flattened (one per bundle and
key), and they are merged once.
"""

from __future__ import annotations

import apache_beam as beam


class _Accumulate(beam.CombineFn):
    """`fn`, stopped before `extract_output`: its output is the accumulator itself."""

    def __init__(self, fn: beam.CombineFn):
        self._fn = fn

    def create_accumulator(self):
        return self._fn.create_accumulator()

    def add_input(self, accumulator, element):
        return self._fn.add_input(accumulator, element)

    def merge_accumulators(self, accumulators):
        return self._fn.merge_accumulators(accumulators)

    def compact(self, accumulator):
        return self._fn.compact(accumulator)

    def extract_output(self, accumulator):
        return accumulator


class _Finish(beam.CombineFn):
    """`fn` over accumulators of `fn`: merges them, then extracts."""

    def __init__(self, fn: beam.CombineFn):
        self._fn = fn

    def create_accumulator(self):
        return self._fn.create_accumulator()

    def add_input(self, accumulator, partial):
        return self._fn.merge_accumulators([accumulator, partial])

    def merge_accumulators(self, accumulators):
        return self._fn.merge_accumulators(accumulators)

    def extract_output(self, accumulator):
        return self._fn.extract_output(accumulator)


class CombineBranches(beam.PTransform):
    """A tuple of PCollections -> `fn` over all their elements: one element globally, or one
    (key, result) per key with `per_key` (the elements are then (key, value) pairs)."""

    def __init__(self, fn: beam.CombineFn, per_key: bool = False):
        super().__init__()
        self._fn = fn
        self._per_key = per_key

    def expand(self, branches):
        accumulate = _Accumulate(self._fn)
        partial = tuple(
            branch
            | f"Accumulate{i}"
            >> (
                beam.CombinePerKey(accumulate)
                if self._per_key
                else beam.CombineGlobally(accumulate).without_defaults()
            )
            for i, branch in enumerate(branches)
        )
        together = partial | "Accumulators" >> beam.Flatten()
        finish = _Finish(self._fn)
        if self._per_key:
            return together | "Merge" >> beam.CombinePerKey(finish)
        return together | "Merge" >> beam.CombineGlobally(finish)
