"""`Branches`, the stages' one way of handing on PCollections kept apart."""

from __future__ import annotations

import re
from pathlib import Path

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that, equal_to

from pipelines.runners import beam_args_for
from transforms.beam.branches import Branches

STAGES = Path(__file__).resolve().parents[1] / "pipelines" / "stages"


def test_branches_are_mapped_apart_extended_and_joined_only_by_flatten():
    with beam.Pipeline(options=PipelineOptions(beam_args_for(None, []))) as p:
        first = p | "First" >> beam.Create([1, 2])
        second = p | "Second" >> beam.Create([3])
        branches = Branches((first,)) + second
        assert type(branches) is Branches and branches == (first, second)
        doubled = branches.each("Double", beam.Map(lambda x: 2 * x))
        assert type(doubled) is Branches and len(doubled) == 2
        # Each branch is its own step, labelled by its index: nothing joined them.
        assert [d.producer.full_label for d in doubled] == ["Double0", "Double1"]
        split = doubled.each(
            "Split",
            beam.Map(lambda x: beam.pvalue.TaggedOutput("odd", x) if x % 3 else x).with_outputs(
                "odd", main="even"
            ),
        )
        assert_that(split.tagged("odd").flatten("Odd"), equal_to([2, 4]), label="OddOnes")
        assert_that(doubled.flatten("All"), equal_to([2, 4, 6]), label="All")


def test_the_stages_join_branches_only_through_branches_flatten():
    """A Flatten written into a stage bypasses the one place that says when it is allowed."""
    for path in sorted(STAGES.glob("*.py")):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"\bbeam\.Flatten\(", text), f"{path.name} flattens branches itself"
