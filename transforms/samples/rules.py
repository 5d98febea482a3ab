"""Cheap content checks that run before any media is decoded or any GPU time is spent.

A sample failing a rule goes to review (its content is the problem, not the file), with a
reason code and a sentence saying what was wrong.
"""

from __future__ import annotations

import re

from transforms.core.record import ASSISTANT_ROLES, HUMAN_ROLES, Sample

# Answers that say nothing. "none" is deliberately absent: it can answer "how many dogs?".
EMPTY_ANSWERS = frozenset({"", "n/a", "na", "n.a.", "n/a.", "null", "-", "..."})
PLACEHOLDER = re.compile(r"<(image|video)>")


def check_rules(sample: Sample) -> tuple[str, str] | None:
    """(reason, detail) for the first rule the sample breaks, or None."""
    roles = [turn["from"] for turn in sample.conversations]
    if not any(role in HUMAN_ROLES for role in roles):
        return "missing_turn", "the conversation has no human turn"
    if not any(role in ASSISTANT_ROLES for role in roles):
        return "missing_turn", "the conversation has no assistant turn"
    if roles[-1] in HUMAN_ROLES:
        return "missing_turn", "the last human turn has no answer"
    for number, question in enumerate(sample.human_turns(), start=1):
        if not PLACEHOLDER.sub("", question).strip():
            return "empty_question", f"human turn {number} is empty"
    for number, answer in enumerate(sample.assistant_turns(), start=1):
        if answer.strip().lower() in EMPTY_ANSWERS:
            shown = answer.strip() or "empty"
            return "empty_answer", f"assistant turn {number} is {shown!r}"
    referenced = {m.group(1) for t in sample.human_turns() for m in PLACEHOLDER.finditer(t)}
    present = {ref.kind for ref in sample.media}
    missing = sorted(referenced - present)
    if missing:
        return "media_reference_without_media", (
            f"the conversation refers to <{missing[0]}> but the record has no {missing[0]}"
        )
    return None
