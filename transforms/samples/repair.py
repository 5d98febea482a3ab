"""`repair: truncate`: keep the good start of a conversation whose later turns scored low.

A conversation flagged for a low turn (`low_score_turn`) loses nine good turns with its one bad
one. When its first low turn is not its first answer, every turn before it scored at or above
the cut, and (turn scores being rewards of the conversation cut after each turn) so does the
conversation cut there. That prefix goes to clean/ as a sample of its own, marked
`repaired_from` (the original's messages, assistant turns and score, and the dropped turns'
scores); its score is its last turn's. The original goes to review/ as before, marked
`repaired_prefix` (the messages and assistant turns kept), so a reviewer sees what was cut.

Counted once: the prefix is the sample, in clean; the original in review/ is its evidence and
is counted apart (`repaired_originals` in summary.json, which must equal `repaired`).

Not repaired (review only): a conversation whose first answer is already low (no good prefix),
and one whose dropped turns hold an `<image>`/`<video>` placeholder the kept media needs.
"""

from __future__ import annotations

from transforms.core.record import ASSISTANT_ROLES, Sample
from transforms.samples.rules import PLACEHOLDER
from transforms.samples.turns import first_low_turn

TRUNCATE = "truncate"
REPAIRS = (TRUNCATE,)
# What a written sample is to a repair: the kept prefix, the original it came from, or neither.
REPAIRED = "repaired"
ORIGINAL = "original"


def repair_role(sample: Sample) -> str | None:
    if sample.repaired_from is not None:
        return REPAIRED
    if sample.repaired_prefix is not None:
        return ORIGINAL
    return None


def truncated(sample: Sample, cut: float) -> tuple[Sample, Sample] | None:
    """(the good prefix, the original marked) of a flagged sample, or None if it has none.

    The prefix ends with the answer before the first turn scoring below `cut`.
    """
    turn = first_low_turn(sample.turn_scores, cut)
    if not turn:  # None, or 0: the first answer is low, nothing good to keep
        return None
    answers = [i for i, t in enumerate(sample.conversations) if t.get("from") in ASSISTANT_ROLES]
    end = answers[turn - 1] + 1
    kept, dropped = sample.conversations[:end], sample.conversations[end:]
    if any(PLACEHOLDER.search(str(t.get("value", ""))) for t in dropped):
        return None
    turns = sample.turn_scores
    prefix = sample.replace(
        conversations=kept,
        score=turns[turn - 1],
        turn_scores=turns[:turn],
        reason=None,
        detail=None,
        timings={},  # the original's stage times are counted once, with the original
        repaired_from={
            "messages": len(sample.conversations),
            "turns": len(turns),
            "score": sample.score,
            "dropped_turn_scores": turns[turn:],
        },
    )
    original = sample.replace(
        detail=f"{sample.detail}; repaired: its first {turn} turn(s) are in clean/",
        repaired_prefix={"messages": end, "turns": turn},
    )
    return prefix, original
