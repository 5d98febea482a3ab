"""Text-only reward models loaded as `AutoModelForSequenceClassification` (e.g. for ALLaVA's
text subset): the tokenizer's chat template, one padded forward per batch, score = logit 0.

The logit is read at the last token the attention mask marks real, computed here rather than
by the model's pad-id search, which mis-fires when the pad token doubles as the end-of-turn
token (common: many tokenizers set pad = eos).
"""

from __future__ import annotations

from typing import Any

import torch

from models.chat import to_chat
from models.loading import (
    last_token_index,
    padded_position_ids,
    resolve_device,
    resolve_dtype,
    take_options,
)
from models.tokens import MicroBatchedModel, TextTokenEstimator
from transforms.record import Sample

DEFAULTS: dict[str, Any] = {
    "path": None,
    "dtype": "auto",
    "device": "auto",
    "max_length": 4096,
    "padding_side": "right",
    "max_batch_tokens": None,
    "max_batch_size": None,
    "attn_implementation": "sdpa",
}


class TextRewardModel(MicroBatchedModel):
    """`RewardModel` over a sequence-classification checkpoint with a chat template."""

    name = "text-rm"

    def __init__(self, model: Any, tokenizer: Any, options: dict[str, Any]):
        self.model = model.eval()
        self.device = next(model.parameters()).device
        self.tokenizer = tokenizer
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError("text-rm needs a tokenizer with a chat template")
        self.max_length = int(options["max_length"])
        self.padding_side = options["padding_side"]
        self.max_batch_tokens = options["max_batch_tokens"]
        self.max_batch_size = options["max_batch_size"]
        self.estimate_tokens = TextTokenEstimator()

    def _score_batch(self, samples: list[Sample]) -> list[float]:
        for sample in samples:
            if not sample.is_text_only:
                raise ValueError(
                    f"sample {sample.id} has media; text-rm scores text-only samples "
                    "(route media samples to a multimodal backend)"
                )
        texts = [self.tokenizer.apply_chat_template(to_chat(s), tokenize=False) for s in samples]
        encoded = self.tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self.max_length,
            padding_side=self.padding_side,
            add_special_tokens=False,
            return_tensors="pt",
        ).to(self.device)
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


def load_text_rm(options: dict[str, Any] | None = None) -> TextRewardModel:
    """Factory: options as in `DEFAULTS`."""
    options = take_options("text-rm", options, DEFAULTS)
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    device = resolve_device(options["device"])
    dtype = resolve_dtype(options["dtype"], device)
    model = AutoModelForSequenceClassification.from_pretrained(
        str(options["path"]), dtype=dtype, attn_implementation=options["attn_implementation"]
    ).to(device)
    tokenizer = AutoTokenizer.from_pretrained(str(options["path"]))
    return TextRewardModel(model, tokenizer, options)
