"""Text-only reward models loaded as `AutoModelForSequenceClassification` (e.g. for ALLaVA's
text subset): the tokenizer's chat template, score = logit 0 at each sample's last token, and
a turn score per assistant turn = logit 0 at the token where the template ends that turn
(`turn_ends.py`, `value_reads.py`), from the same forward pass.

Packed (the default, `packing: true`): each micro-batch is one row without padding
(`packing.py`), positions restarting at every sample and attention never crossing from one
sample into another (`varlen_attention.py`, which keeps the model's own sliding windows and
logit soft-capping); the score head runs on the tokens read. `packing: false` runs one padded
forward per micro-batch, the tokens counted from the first one the attention mask marks real
(computed here rather than by the model's pad-id search, which mis-fires when the pad token
doubles as the end-of-turn token: many tokenizers set pad = eos). A model whose score head is
not a plain linear layer on its base model is always run padded, pooled by the model itself at
the last token only: it gives scores, no turn scores.

Conversations longer than `max_length` tokens are refused (`score/too_long`), not cut: cutting
drops the end of the response, which is what the score is about.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import torch

from models.base import Reward
from models.chat import to_chat
from models.loading import (
    ModelConfigError,
    check_device,
    checkpoint_fingerprint,
    looks_like_hub_name,
    padded_position_ids,
    resolve_device,
    resolve_dtype,
    take_options,
)
from models.micro_batches import MicroBatchedModel
from models.spec import BackendSpec
from models.tokens import TextTokenEstimator
from models.value_head.packing import PackedRow, pack
from models.value_head.turn_ends import TurnEnds
from models.value_head.value_reads import ValueReads
from models.value_head.varlen_attention import packed_attention, use_attention
from models.work import WorkMeter, timed_forward
from transforms.core.record import Sample

_log = logging.getLogger(__name__)
FALLBACK_MAX_LENGTH = 4096

DEFAULTS: dict[str, Any] = {
    "path": None,
    "dtype": "auto",
    "device": "auto",
    "max_length": None,  # None: what the model reads (config.max_position_embeddings)
    "packing": True,  # one padding-free row per micro-batch; false: padded forwards
    "padding_side": "right",  # padded forwards only
    "max_batch_tokens": None,
    "max_batch_size": None,
    # None: packed, flash-attn's kernels when installed on CUDA, else rmclean's varlen
    # attention; padded, what transformers picks for the model (Gemma-2: eager).
    "attn_implementation": None,
}


@dataclass(frozen=True)
class PaddedText:
    """A padded micro-batch: the tokenizer's padded encoding and where its values are read."""

    encoded: Any  # BatchEncoding: input_ids, attention_mask
    reads: ValueReads


class TextRewardModel(MicroBatchedModel):
    """`RewardModel` over a sequence-classification checkpoint with a chat template."""

    name = "text-rm"
    prepare_ahead = True  # tokenizing the next micro-batch overlaps this one's forward

    def __init__(self, model: Any, tokenizer: Any, options: dict[str, Any]):
        self.model = model.eval()
        self.device = next(model.parameters()).device
        self.tokenizer = tokenizer
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError("text-rm needs a tokenizer with a chat template")
        self.max_length = int(
            options["max_length"]
            or getattr(model.config, "max_position_embeddings", None)
            or FALLBACK_MAX_LENGTH
        )
        self.padding_side = options["padding_side"]
        self.max_batch_tokens = options["max_batch_tokens"]
        self.max_batch_size = options["max_batch_size"]
        self.estimate_tokens = TextTokenEstimator()
        self.work = WorkMeter()
        head = getattr(model, "score", None)
        base = getattr(model, "base_model", None)
        # A plain linear head on the base model's hidden states: then we can pool ourselves.
        self._head = head if isinstance(head, torch.nn.Linear) and base is not model else None
        self._base = base if self._head is not None else None
        self.packed = bool(options["packing"]) and self._head is not None
        self.turn_ends = None
        if self._head is not None:
            self.turn_ends = TurnEnds("text-rm", self._text, self._token_ids)
        else:
            _log.warning(
                "text-rm: the score head of %s is not a linear layer on its base model's hidden "
                "states, so the model pools it itself, at the last token only: scores, no turn "
                "scores",
                type(model).__name__,
            )

    def _text(self, sample: Sample) -> str:
        if not sample.is_text_only:
            raise ValueError(
                f"sample {sample.id} has media; text-rm scores text-only samples "
                "(route media samples to a multimodal backend)"
            )
        return self.tokenizer.apply_chat_template(to_chat(sample), tokenize=False)

    def _token_ids(self, texts: list[str]) -> list[list[int]]:
        """Token ids of chat texts, as the forward pass tokenizes them."""
        return self.tokenizer(texts, add_special_tokens=False)["input_ids"]

    def sample_tokens(self, sample: Sample) -> int:
        """Exact: the chat template's output as the forward pass tokenizes it."""
        return len(self._token_ids([self._text(sample)])[0])

    def _prepare(self, samples: list[Sample]) -> Any:
        texts = [self._text(sample) for sample in samples]
        ids = self._token_ids(texts)
        turn_ends = None
        if self.turn_ends is not None:
            turn_ends = self.turn_ends.of(samples, ids)
        if self.packed:
            return pack(ids, turn_ends)
        encoded = self.tokenizer(
            texts,
            padding=True,
            padding_side=self.padding_side,
            add_special_tokens=False,
            return_tensors="pt",
        )
        return PaddedText(encoded, ValueReads.of([len(i) for i in ids], turn_ends))

    def _forward(self, inputs: Any) -> list[float | Reward]:
        if isinstance(inputs, PackedRow):
            return self._forward_packed(inputs.to(self.device))
        return self._forward_padded(inputs)

    def _forward_packed(self, row: PackedRow) -> list[float | Reward]:
        with torch.inference_mode(), timed_forward(self.device) as times:
            hidden = self._base(
                input_ids=row.input_ids,
                position_ids=row.positions,
                attention_mask=None,
                use_cache=False,
                **row.attention_kwargs(),
            ).last_hidden_state
            logits = self._head(hidden[0, row.read_at]).float().cpu()
        self.work.record(row.tokens, row.tokens, None, times.language_seconds)
        return row.reads.rewards(logits[:, 0].tolist())

    def _forward_padded(self, inputs: PaddedText) -> list[float | Reward]:
        rows, columns = inputs.reads.padded(inputs.encoded["attention_mask"])
        encoded = inputs.encoded.to(self.device)
        input_ids, mask = encoded["input_ids"], encoded["attention_mask"]
        positions = padded_position_ids(mask)
        with torch.inference_mode(), timed_forward(self.device) as times:
            if self._head is not None:
                hidden = self._base(
                    input_ids=input_ids,
                    attention_mask=mask,
                    position_ids=positions,
                    use_cache=False,
                ).last_hidden_state
                logits = self._head(hidden[rows.to(self.device), columns.to(self.device)])
                values = inputs.reads.rewards(logits.float().cpu()[:, 0].tolist())
            else:  # architectures with their own head layout: trust the model's pooling
                logits = self.model(
                    input_ids=input_ids, attention_mask=mask, position_ids=positions
                ).logits
                values = logits.float().cpu()[:, 0].tolist()
        self.work.record(int(mask.sum()), mask.numel(), None, times.language_seconds)
        return values


def preflight(options: dict[str, Any] | None, workers_here: bool = True) -> None:
    """Unknown options; with `workers_here`, a missing checkpoint or unusable device too."""
    options = take_options("text-rm", options, DEFAULTS)
    path = str(options["path"])
    limit = options["max_length"]
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ModelConfigError("text-rm: max_length must be a positive integer")
    if not workers_here:
        return
    if not os.path.isdir(path) and not looks_like_hub_name(path):
        raise ModelConfigError(f"text-rm: checkpoint folder {path!r} not found")
    check_device("text-rm", path, options["device"])


def load_text_rm(options: dict[str, Any] | None = None) -> TextRewardModel:
    """Factory: options as in `DEFAULTS`."""
    options = take_options("text-rm", options, DEFAULTS)
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = str(options["path"])
    check_device("text-rm", path, options["device"])
    device = resolve_device(options["device"])
    dtype = resolve_dtype(options["dtype"], device)
    model = AutoModelForSequenceClassification.from_pretrained(path, dtype=dtype).to(device)
    reward_model = TextRewardModel(model, AutoTokenizer.from_pretrained(path), options)
    requested = options["attn_implementation"]
    # Padded and unset: transformers' choice for the model (Gemma-2, for one, refuses sdpa).
    attention = packed_attention(requested, device) if reward_model.packed else requested
    if attention:
        use_attention(model, attention)
    return reward_model


def _estimator(options: dict[str, Any]) -> TextTokenEstimator:
    return TextTokenEstimator()


def _fingerprint(options: dict[str, Any]) -> str | None:
    return checkpoint_fingerprint(options.get("path"))


SPEC = BackendSpec(
    name="text-rm",
    defaults=DEFAULTS,
    load=load_text_rm,
    estimator=_estimator,
    check=preflight,
    fingerprint=_fingerprint,
    # Scores cached before turn scores were read lack them: those caches are not reused.
    holds="turn scores",
    run_options=("max_batch_tokens", "max_batch_size"),
)
