"""A scored conversation's turns: which assistant turn first scores below a cut.

Kept free of Beam, so the config and the CLI can name repairs before the pipeline is imported.
"""

from __future__ import annotations

from collections.abc import Sequence


def first_low_turn(turn_scores: Sequence[float] | None, cut: float | None) -> int | None:
    """The index (into `turn_scores`, from 0) of the first assistant turn scoring below `cut`;
    None without one, without a cut, and without turn scores or for a single turn."""
    turns = turn_scores or ()
    if len(turns) < 2 or cut is None:
        return None
    return next((i for i, score in enumerate(turns) if score < cut), None)
