"""Outputs yielded from `finish_bundle`, which Beam requires to carry their own window."""

from __future__ import annotations

import apache_beam as beam
from apache_beam.transforms.window import GlobalWindows


def in_global_window(output):
    """A value or TaggedOutput from `process`, windowed so `finish_bundle` may yield it.

    Every rmclean pipeline is a batch job in the global window, so that is the window here.
    """
    if isinstance(output, beam.pvalue.TaggedOutput):
        return beam.pvalue.TaggedOutput(output.tag, GlobalWindows.windowed_value(output.value))
    return GlobalWindows.windowed_value(output)
