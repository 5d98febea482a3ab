"""Scaled-dot-product attention for IXC-2.5's InternLM2, for installs without flash-attn.

The checkpoint's code offers eager attention (batch x 32 heads x L^2 scores in memory: a
16-sample CPU batch of the sample dataset was killed at 22.5 GB) or flash-attn, which has no
prebuilt wheel for recent torch releases. So an "sdpa" entry is added to the code's own
attention table (`INTERNLM2_ATTENTION_CLASSES`, read through `config.attn_implementation`):
a subclass of its eager class with the same weights (`wqkv`, `wo`, PLoRA branches), its own
rotary embedding and `apply_rotary_pos_emb`, and torch's `scaled_dot_product_attention` in
place of the score matrix. The model's `_prepare_decoder_attention_mask` would still build a
batch x L^2 additive mask for it; for "sdpa" it passes the 2-D padding mask on instead.

For right-padded batches (what `get_scores` and the batched path build) plain causal
attention gives the real tokens exactly what eager attention gives them, since padding only
follows them; memory then stays linear in the sequence length (flash or memory-efficient
kernels). Any other mask becomes a dense boolean mask.
"""

from __future__ import annotations

import sys
from typing import Any

import torch

SDPA = "sdpa"
PATCHED = "_rmclean_sdpa_mask"


def attention_table(modules: list[Any]) -> tuple[Any, dict] | None:
    """(module, its INTERNLM2_ATTENTION_CLASSES) among the checkpoint's code modules."""
    for module in modules:
        table = getattr(module, "INTERNLM2_ATTENTION_CLASSES", None)
        if isinstance(table, dict) and "eager" in table:
            return module, table
    return None


def install_sdpa(modules: list[Any]) -> bool:
    """Add "sdpa" to the code's attention table; False if this code has no such table."""
    found = attention_table(modules)
    if found is None:
        return False
    module, table = found
    if SDPA not in table:
        table[SDPA] = sdpa_attention_class(table["eager"])
    model_class = getattr(module, "InternLM2Model", None)
    prepare = getattr(model_class, "_prepare_decoder_attention_mask", None)
    if prepare is None:
        return False
    if not getattr(prepare, PATCHED, False):
        model_class._prepare_decoder_attention_mask = _padding_mask_for_sdpa(prepare)
    return True


def _padding_mask_for_sdpa(original):
    def prepare(self, attention_mask, input_shape, inputs_embeds, past_key_values_length):
        if getattr(self.config, "attn_implementation", None) != SDPA:
            return original(
                self, attention_mask, input_shape, inputs_embeds, past_key_values_length
            )
        return attention_mask

    setattr(prepare, PATCHED, True)
    return prepare


def sdpa_mask(
    padding: torch.Tensor | None, q_len: int, kv_len: int
) -> tuple[torch.Tensor | None, bool]:
    """(attn_mask, is_causal) for scaled_dot_product_attention from a (batch, kv_len) mask of
    real tokens. Right padding (or none) with no cache: plain causal. Otherwise a dense
    boolean mask, causal aligned to the end; a row with no key to see sees them all, as
    eager attention's uniform softmax over equal scores does."""
    if padding is not None:
        padding = padding.bool()
        lengths = padding.sum(-1, keepdim=True)
        positions = torch.arange(kv_len, device=padding.device)
        right_padded = bool(torch.equal(padding, positions < lengths))
        if padding.all():
            padding = None
    if q_len == kv_len and (padding is None or right_padded):
        return None, True
    rows = torch.arange(q_len, device=padding.device if padding is not None else None)
    keys = torch.arange(kv_len, device=rows.device)
    allowed = (keys[None, :] <= rows[:, None] + (kv_len - q_len))[None, None]
    if padding is not None:
        allowed = allowed & padding[:, None, None, :]
    return allowed | ~allowed.any(-1, keepdim=True), False


def sdpa_attention_class(eager: type) -> type:
    """A subclass of the code's eager attention whose scores go through torch's SDPA."""
    code = sys.modules[eager.__module__]
    apply_rotary_pos_emb, repeat_kv = code.apply_rotary_pos_emb, code.repeat_kv

    class InternLM2SdpaAttention(eager):  # type: ignore[misc, valid-type]
        def forward(
            self,
            hidden_states,
            attention_mask=None,
            position_ids=None,
            past_key_value=None,
            output_attentions=False,
            use_cache=False,
            im_mask=None,
            **kwargs,
        ):
            batch, q_len, _ = hidden_states.size()
            groups, head_dim = self.num_key_value_groups, self.head_dim
            # wqkv's layout: per key/value head, its `groups` queries, then key, then value.
            qkv = self.wqkv(hidden_states, im_mask)
            qkv = qkv.view(batch, q_len, self.num_key_value_heads, groups + 2, head_dim)
            query = qkv[..., :groups, :].reshape(batch, q_len, self.num_heads, head_dim)
            query, key, value = (
                query.transpose(1, 2),
                qkv[..., -2, :].transpose(1, 2),
                qkv[..., -1, :].transpose(1, 2),
            )
            past = past_key_value[0].shape[-2] if past_key_value is not None else 0
            kv_len = q_len + past
            cos, sin = self.rotary_emb(value, seq_len=kv_len)
            query, key = apply_rotary_pos_emb(query, key, cos, sin, position_ids)
            if past_key_value is not None:
                key = torch.cat([past_key_value[0], key], dim=2)
                value = torch.cat([past_key_value[1], value], dim=2)
            present = (key, value) if use_cache else None
            mask, causal = sdpa_mask(attention_mask, q_len, kv_len)
            out = torch.nn.functional.scaled_dot_product_attention(
                query,
                repeat_kv(key, groups),
                repeat_kv(value, groups),
                attn_mask=mask,
                is_causal=causal,
            )
            out = out.transpose(1, 2).reshape(batch, q_len, self.hidden_size)
            return self.wo(out, im_mask), None, present

    InternLM2SdpaAttention.__module__ = __name__
    InternLM2SdpaAttention.__qualname__ = "InternLM2SdpaAttention"
    return InternLM2SdpaAttention
