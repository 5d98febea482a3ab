"""Text-only reward models loaded as `AutoModelForSequenceClassification` (e.g. for ALLaVA's
text subset): the tokenizer's chat template, one padded forward per batch, score = logit 0.

The logit is read at the last token the attention mask marks real, computed here rather than
by the model's pad-id search, which mis-fires when the pad token doubles as the end-of-turn
token (common: many tokenizers set pad = eos). Conversations longer than `max_length` tokens
are refused (`score/too_long`), not cut: cutting drops the end of the response, which is what
the score is about. The attention implementation is transformers' choice for the model (e.g.
Gemma-2 reward models need eager) unless `attn_implementation` is set.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from models.chat import to_chat
from models.loading import (
    ModelConfigError,
    check_device,
    checkpoint_fingerprint,
    last_token_index,
    looks_like_hub_name,
    padded_position_ids,
    resolve_device,
    resolve_dtype,
    take_options,
)
from models.micro_batches import MicroBatchedModel
from models.spec import BackendSpec
from models.tokens import TextTokenEstimator
from transforms.core.record import Sample

FALLBACK_MAX_LENGTH = 4096

DEFAULTS: dict[str, Any] = {
    "path": None,
    "dtype": "auto",
    "device": "auto",
    "max_length": None,  # None: what the model reads (config.max_position_embeddings)
    "padding_side": "right",
    "max_batch_tokens": None,
    "max_batch_size": None,
    "attn_implementation": None,  # None: transformers picks what the model supports
}


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

    def _text(self, sample: Sample) -> str:
        if not sample.is_text_only:
            raise ValueError(
                f"sample {sample.id} has media; text-rm scores text-only samples "
                "(route media samples to a multimodal backend)"
            )
        return self.tokenizer.apply_chat_template(to_chat(sample), tokenize=False)

    def sample_tokens(self, sample: Sample) -> int:
        """Exact: the chat template's output as the forward pass tokenizes it."""
        encoded = self.tokenizer(self._text(sample), add_special_tokens=False)
        return len(encoded["input_ids"])

    def _prepare(self, samples: list[Sample]) -> Any:
        return self.tokenizer(
            [self._text(sample) for sample in samples],
            padding=True,
            padding_side=self.padding_side,
            add_special_tokens=False,
            return_tensors="pt",
        ).to(self.device)

    def _forward(self, encoded: Any) -> list[float]:
        mask = encoded["attention_mask"]
        with torch.inference_mode():
            logits = self._logits(encoded["input_ids"], mask)
        return logits[:, 0].float().cpu().tolist()

    def _logits(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Per-sample logits at the last real token."""
        head = getattr(self.model, "score", None)
        base = getattr(self.model, "base_model", None)
        positions = padded_position_ids(mask)
        if isinstance(head, torch.nn.Linear) and base is not None and base is not self.model:
            hidden = base(
                input_ids=input_ids, attention_mask=mask, position_ids=positions, use_cache=False
            ).last_hidden_state
            rows = torch.arange(hidden.shape[0], device=hidden.device)
            pooled = hidden[rows, last_token_index(mask)]
            return head(pooled)
        # Architectures with their own head layout: trust the model's pooling.
        return self.model(input_ids=input_ids, attention_mask=mask, position_ids=positions).logits


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
    attention = options["attn_implementation"]
    # None leaves the choice to transformers (Gemma-2, for one, refuses sdpa).
    chosen = {"attn_implementation": attention} if attention else {}
    model = AutoModelForSequenceClassification.from_pretrained(path, dtype=dtype, **chosen).to(
        device
    )
    tokenizer = AutoTokenizer.from_pretrained(path)
    return TextRewardModel(model, tokenizer, options)


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
    run_options=("max_batch_tokens", "max_batch_size"),
)
