"""One combine over several branches, without a Flatten of their elements.

Local runners hold a multi-input Flatten whole in memory, so flattening one element per
record (outcomes, scores, batch stats) before a combine costs memory in proportion to the
dataset. Instead each branch is accumulated where it is made, one accumulator per bundle (and
key), only the accumulators are flattened, and they are merged once. (Beam would lift a
CombineGlobally per branch the same way, but at ten transforms each; with dozens of branches
that alone took seconds to build.)
"""

from __future__ import annotations

import apache_beam as beam

from transforms.beam.bundle_outputs import in_global_window


class _AccumulateBundle(beam.DoFn):
    """Elements -> one accumulator of `fn` per bundle (per key and bundle with `per_key`)."""

    def __init__(self, fn: beam.CombineFn, per_key: bool):
        self._fn = fn
        self._per_key = per_key

    def start_bundle(self):
        self._accumulators: dict = {}

    def process(self, element):
        key, value = element if self._per_key else (None, element)
        accumulator = self._accumulators.get(key)
        if accumulator is None:
            accumulator = self._fn.create_accumulator()
        self._accumulators[key] = self._fn.add_input(accumulator, value)
        # Nothing per element (finish_bundle emits); an explicit empty iterable, because Beam
        # 2.62 (the engines' release) warns at every build about a process that returns None.
        return ()

    def finish_bundle(self):
        for key, accumulator in self._accumulators.items():
            accumulator = self._fn.compact(accumulator)
            yield in_global_window((key, accumulator) if self._per_key else accumulator)
        self._accumulators = {}


class _MergeAccumulators(beam.CombineFn):
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
        accumulate = _AccumulateBundle(self._fn, self._per_key)
        partial = tuple(
            branch | f"Accumulate{i}" >> beam.ParDo(accumulate) for i, branch in enumerate(branches)
        )
        together = partial | "Accumulators" >> beam.Flatten()
        merge = _MergeAccumulators(self._fn)
        if self._per_key:
            return together | "Merge" >> beam.CombinePerKey(merge)
        return together | "Merge" >> beam.CombineGlobally(merge)
