"""Where each assistant turn of a conversation ends among its tokens, by the model's own chat
template, so a value head can read a reward per turn from the one forward pass.

The reward of the conversation cut after answer i is the value at the last token of that cut
conversation as the model's chat template renders it (for Qwen's template, the newline after
the answer's `<|im_end|>`; for Llama 3's, the `<|eot_id|>`). Causal attention means the hidden
state at that token of the whole conversation saw nothing after it, so the value read there is
the same, provided the cut's rendering tokenizes to the first tokens of the whole one. Some
templates break that: one that gives the last answer something earlier answers lack (Qwen3-style
templates add an empty thinking block to it), one that moves the system prompt into the last
user turn (Mistral-style), or one where the text after a cut merges with the cut's last token.

So it is checked, not assumed: every cut of a sample (but the whole conversation itself) is
rendered and tokenized, on the CPU, beside the sample's own tokenization. A sample whose cut
does not tokenize as the start of the whole one gets its score only, no turn scores, and the
reason is logged once. A template that already fails on a plain two-answer conversation turns
turn reading off for the model (logged once, at load) and costs nothing after.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from models.chat import role_of
from transforms.core.record import Sample

_log = logging.getLogger(__name__)

# The conversation the template is tried on when the model loads.
PROBE = Sample(
    "turn-end-probe",
    "probe",
    [
        {"from": "human", "value": "What colour is the square?"},
        {"from": "gpt", "value": "It is red."},
        {"from": "human", "value": "And the circle?"},
        {"from": "gpt", "value": "Blue."},
    ],
)


class TurnEnds:
    """Turn ends for one backend: `render(sample)` is its chat template's text for a sample and
    `tokenize(texts)` its token ids for each text, exactly as its forward pass tokenizes."""

    def __init__(
        self,
        backend: str,
        render: Callable[[Sample], str],
        tokenize: Callable[[list[str]], list[list[int]]],
    ):
        self.backend = backend
        self._render = render
        self._tokenize = tokenize
        self._logged: set[str] = set()
        self.unavailable = self._probe()  # why turn ends cannot be read at all, or None
        if self.unavailable:
            _log.warning(
                "%s: no turn scores for any sample: %s; every sample gets its score only",
                backend,
                self.unavailable,
            )

    def of(
        self, samples: Sequence[Sample], ids: Sequence[Sequence[int]]
    ) -> list[tuple[int, ...] | None]:
        """For each sample, offsets into its `ids` (the whole sample's tokens) of the token
        ending each assistant turn, or None when they cannot be read (the reason logged once
        per kind). Every cut of the micro-batch is tokenized in one call."""
        if self.unavailable:
            return [None] * len(samples)
        found = []
        for sample, (ends, problem) in zip(samples, self._ends(samples, ids), strict=True):
            if problem:
                self.skip(sample, *problem)
            found.append(ends)
        return found

    def skip(self, sample: Sample, kind: str, reason: str) -> None:
        """Say why `sample` gets no turn scores: the first sample of each `kind` is logged."""
        if kind in self._logged:
            return
        self._logged.add(kind)
        _log.warning(
            "%s: sample %s gets its score only, no turn scores: %s (logged once; later "
            "samples like it are not named)",
            self.backend,
            sample.id,
            reason,
        )

    def _ends(
        self, samples: Sequence[Sample], ids: Sequence[Sequence[int]]
    ) -> list[tuple[tuple[int, ...] | None, tuple[str, str] | None]]:
        """Per sample: (its turn ends, None) or (None, (kind, reason))."""
        found: list = []
        texts: list[str] = []
        owners: list[int] = []  # which sample each text is a cut of
        ended: list[bool] = []  # whether the sample's last message is an answer
        for number, sample in enumerate(samples):
            messages = sample.conversations
            answers = [i for i, t in enumerate(messages) if role_of(t, sample.id) == "assistant"]
            # The cut after the last message is the sample itself: its end is its last token.
            cuts = [i for i in answers if i < len(messages) - 1]
            ended.append(len(cuts) < len(answers))
            found.append(None if answers else ("no_answer", "it has no assistant turn"))
            try:
                cut_texts = [
                    self._render(sample.replace(conversations=messages[: i + 1])) for i in cuts
                ]
            except Exception as exc:  # noqa: BLE001 - a template may refuse a cut: score only
                found[-1] = found[-1] or (
                    "refused",
                    f"the chat template refused a cut of it ({exc})"[:300],
                )
                continue
            texts += cut_texts
            owners += [number] * len(cut_texts)
        ends: list[list[int]] = [[] for _ in samples]
        for owner, cut_ids in zip(owners, self._tokenize(texts) if texts else [], strict=True):
            whole = ids[owner]
            if found[owner] is None and (
                not cut_ids or len(cut_ids) >= len(whole) or list(whole[: len(cut_ids)]) != cut_ids
            ):
                found[owner] = (
                    "not_a_prefix",
                    f"its conversation cut after answer {len(ends[owner])} does not tokenize as "
                    "the start of the whole conversation (the chat template renders that answer "
                    "differently when it is the last one, or the tokens merge at the cut)",
                )
            ends[owner].append(len(cut_ids) - 1)
        results = []
        for number, problem in enumerate(found):
            if problem:
                results.append((None, problem))
                continue
            last = [len(ids[number]) - 1] if ended[number] else []
            results.append((tuple(ends[number] + last), None))
        return results

    def _probe(self) -> str | None:
        try:
            whole = self._tokenize([self._render(PROBE)])[0]
        except Exception as exc:  # noqa: BLE001 - a template that cannot render plain turns
            return f"its chat template cannot render a plain two-answer conversation ({exc})"
        _, problem = self._ends([PROBE], [whole])[0]
        if problem:
            return f"on a plain two-answer conversation, {problem[1]}"
        return None
