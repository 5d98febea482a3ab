"""LLaVA conversation turns -> the chat messages reward models take.

LLaVA-style data marks where media goes with `<image>` / `<video>` in the human turn. Most
reward models insert the media themselves, so the placeholders are stripped (leaving them
would score the literal string); a model with its own marker (IXC's `<ImageHere>`) gets that
marker in their place instead. Roles map human -> user, gpt -> assistant, system -> system;
anything else is an error that names the sample rather than a silently wrong prompt.
"""

from __future__ import annotations

import re
from typing import Any

from transforms.core.record import ASSISTANT_ROLES, HUMAN_ROLES, IMAGE, VIDEO, Sample

PLACEHOLDER = re.compile(r"[ \t]*<(?:image|video)>[ \t]*\n?")
SYSTEM_ROLES = ("system",)


def strip_placeholders(text: str) -> str:
    """Remove `<image>` / `<video>` markers and the newline LLaVA puts after them."""
    return PLACEHOLDER.sub("", text).strip()


def replace_placeholders(text: str, marker: str) -> str:
    """`<image>` / `<video>` markers become `marker`, in place and in order."""
    return PLACEHOLDER.sub(lambda m: marker + "\n" * m.group(0).endswith("\n"), text).strip()


def placeholder_count(sample: Sample) -> int:
    """How many `<image>` / `<video>` markers the sample's turns carry."""
    return sum(len(PLACEHOLDER.findall(str(t.get("value", "")))) for t in sample.conversations)


def role_of(turn: dict[str, Any], sample_id: str) -> str:
    role = turn.get("from", turn.get("role"))
    if role in HUMAN_ROLES:
        return "user"
    if role in ASSISTANT_ROLES:
        return "assistant"
    if role in SYSTEM_ROLES:
        return "system"
    raise ValueError(f"sample {sample_id}: unknown conversation role {role!r}")


def to_chat(sample: Sample, media_marker: str | None = None) -> list[dict[str, str]]:
    """[{role, content}]; placeholders stripped, or replaced by `media_marker` when given."""
    chat: list[dict[str, str]] = []
    for turn in sample.conversations:
        role = role_of(turn, sample.id)
        text = str(turn.get("value", turn.get("content", "")))
        if media_marker is None:
            text = strip_placeholders(text)
        else:
            text = replace_placeholders(text, media_marker)
        chat.append({"role": role, "content": text})
    if not any(m["role"] == "assistant" for m in chat):
        raise ValueError(f"sample {sample.id}: no assistant turn to score")
    return chat


def to_multimodal_chat(sample: Sample) -> list[dict[str, Any]]:
    """Messages in the processor-template form: media entries first in the first user turn.

    `{"type": "image"}` / `{"type": "video"}` entries appear once per media item, in the
    sample's media order, which is also the order the pixels are passed in.
    """
    media = [{"type": "image" if ref.kind == IMAGE else "video"} for ref in sample.media]
    unknown = {ref.kind for ref in sample.media} - {IMAGE, VIDEO}
    if unknown:
        raise ValueError(f"sample {sample.id}: unsupported media kind(s) {sorted(unknown)}")
    messages: list[dict[str, Any]] = []
    for message in to_chat(sample):
        content: list[dict[str, Any]] = []
        if message["role"] == "user" and media:
            content, media = media, []
        content.append({"type": "text", "text": message["content"]})
        messages.append({"role": message["role"], "content": content})
    if media:  # no user turn at all: the media still has to be seen
        messages.insert(0, {"role": "user", "content": media})
    return messages


def text_length(sample: Sample) -> int:
    """Characters of conversation text the model will read (placeholders excluded)."""
    return sum(len(strip_placeholders(str(t.get("value", "")))) for t in sample.conversations)


def assistant_turn_cuts(sample: Sample) -> list[Sample]:
    """The conversation cut after each of its assistant turns, in order: what a reward model
    that reads one reward at the end scores to give each turn its own score.

    The last cut is `sample` itself when the conversation ends with an answer. Where the text's
    `<image>`/`<video>` placeholders place several media, a cut keeps the media its own
    placeholders name (a cut is then what the dataset would hold had it ended there); otherwise
    every cut keeps all the media, which the model puts first.
    """
    answers = [i for i, t in enumerate(sample.conversations) if t.get("from") in ASSISTANT_ROLES]
    placed = len(sample.media) > 1 and placeholder_count(sample) == len(sample.media)
    cuts = []
    for end in (i + 1 for i in answers):
        if end == len(sample.conversations):
            cuts.append(sample)
            continue
        cut = sample.replace(conversations=sample.conversations[:end])
        if placed:
            kept = placeholder_count(cut)
            decoded = sample.decoded[:kept] if sample.decoded is not None else None
            cut = cut.replace(media=sample.media[:kept], decoded=decoded)
        cuts.append(cut)
    return cuts
