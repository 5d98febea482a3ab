"""The stand-in's InternLM2 language model (upstream's modeling_internlm2.py, IXC-2.5).

What it keeps from upstream, because rmclean meets or patches it:
- `INTERNLM2_ATTENTION_CLASSES` maps `config.attn_implementation` to the attention class each
  decoder layer builds: "eager" (materialises batch x heads x L^2 scores) or
  "flash_attention_2" (imports flash_attn when the model runs, and raises without it);
- `InternLM2Model.forward` builds the 4-D additive mask with `_prepare_decoder_attention_mask`
  for every implementation but flash_attention_2, which gets the 2-D mask;
- queries, keys and values come from one `wqkv` PLoRA in the (kv heads, groups + 2, head dim)
  layout, the rotary tables are cached at `max_position_embeddings` in the default dtype;
- PLoRA linears everywhere (`wqkv`, `wo`, `w1`, `w2`, `w3`), whose low-rank branch runs on the
  image tokens `im_mask` marks; `past_key_values` come back when `use_cache`.
"""

import math
import warnings

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from torchvision import transforms  # noqa: F401 - upstream imports it here too
from transformers.activations import ACT2FN
from transformers.modeling_outputs import BaseModelOutputWithPast
from transformers.modeling_utils import PreTrainedModel

from .build_mlp import PLoRA
from .configuration_internlm_xcomposer2 import InternLMXcomposer2Config as InternLM2Config

flash_attn_func, flash_attn_varlen_func = None, None


def _import_flash_attn():
    global flash_attn_func, flash_attn_varlen_func
    try:
        from flash_attn import flash_attn_func as dense
        from flash_attn import flash_attn_varlen_func as varlen
    except ImportError as exc:
        raise ImportError("flash_attn is not installed.") from exc
    flash_attn_func, flash_attn_varlen_func = dense, varlen


def _make_causal_mask(shape, dtype, device, past_key_values_length=0):
    batch, length = shape
    mask = torch.full((length, length), torch.finfo(dtype).min, device=device)
    positions = torch.arange(length, device=device)
    mask.masked_fill_(positions < (positions + 1).view(length, 1), 0)
    mask = mask.to(dtype)
    if past_key_values_length > 0:
        past = torch.zeros(length, past_key_values_length, dtype=dtype, device=device)
        mask = torch.cat([past, mask], dim=-1)
    return mask[None, None].expand(batch, 1, length, length + past_key_values_length)


def _expand_mask(mask, dtype, tgt_len=None):
    batch, source = mask.size()
    target = tgt_len if tgt_len is not None else source
    expanded = mask[:, None, None, :].expand(batch, 1, target, source).to(dtype)
    inverted = 1.0 - expanded
    return inverted.masked_fill(inverted.to(torch.bool), torch.finfo(dtype).min)


class InternLM2RMSNorm(nn.Module):
    def __init__(self, hidden_size, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, hidden_states):
        dtype = hidden_states.dtype
        hidden_states = hidden_states.to(torch.float32)
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
        return self.weight * hidden_states.to(dtype)


class InternLM2RotaryEmbedding(nn.Module):
    def __init__(self, dim, max_position_embeddings=2048, base=10000, device=None):
        super().__init__()
        self.dim = dim
        self.max_position_embeddings = max_position_embeddings
        self.base = base
        inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2).float().to(device) / dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        self._set_cos_sin_cache(
            max_position_embeddings, self.inv_freq.device, torch.get_default_dtype()
        )

    def _positions(self, seq_len, device):
        return torch.arange(seq_len, device=device, dtype=self.inv_freq.dtype)

    def _set_cos_sin_cache(self, seq_len, device, dtype):
        self.max_seq_len_cached = seq_len
        freqs = torch.einsum("i,j->ij", self._positions(seq_len, device), self.inv_freq)
        angles = torch.cat((freqs, freqs), dim=-1)
        self.register_buffer("cos_cached", angles.cos().to(dtype), persistent=False)
        self.register_buffer("sin_cached", angles.sin().to(dtype), persistent=False)

    def forward(self, x, seq_len=None):
        if seq_len > self.max_seq_len_cached:
            self._set_cos_sin_cache(seq_len, x.device, torch.float32)
        return (
            self.cos_cached[:seq_len].to(dtype=x.dtype),
            self.sin_cached[:seq_len].to(dtype=x.dtype),
        )


class InternLM2LinearScalingRotaryEmbedding(InternLM2RotaryEmbedding):
    def __init__(
        self, dim, max_position_embeddings=2048, base=10000, device=None, scaling_factor=1.0
    ):
        self.scaling_factor = scaling_factor
        super().__init__(dim, max_position_embeddings, base, device)

    def _positions(self, seq_len, device):
        return super()._positions(seq_len, device) / self.scaling_factor


class InternLM2DynamicNTKScalingRotaryEmbedding(InternLM2RotaryEmbedding):
    def __init__(
        self, dim, max_position_embeddings=2048, base=10000, device=None, scaling_factor=1.0
    ):
        self.scaling_factor = scaling_factor
        super().__init__(dim, max_position_embeddings, base, device)

    def _set_cos_sin_cache(self, seq_len, device, dtype):
        if seq_len > self.max_position_embeddings:
            stretch = self.scaling_factor * seq_len / self.max_position_embeddings
            base = self.base * (stretch - (self.scaling_factor - 1)) ** (self.dim / (self.dim - 2))
            exponents = torch.arange(0, self.dim, 2).float().to(device) / self.dim
            self.register_buffer("inv_freq", 1.0 / (base**exponents), persistent=False)
        super()._set_cos_sin_cache(seq_len, device, dtype)


def rotate_half(x):
    first, second = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2 :]
    return torch.cat((-second, first), dim=-1)


def apply_rotary_pos_emb(q, k, cos, sin, position_ids, unsqueeze_dim=1):
    cos = cos[position_ids].unsqueeze(unsqueeze_dim)
    sin = sin[position_ids].unsqueeze(unsqueeze_dim)
    return (q * cos) + (rotate_half(q) * sin), (k * cos) + (rotate_half(k) * sin)


def _plora(in_features, out_features, bias):
    return PLoRA(in_features, out_features, bias=bias, lora_r=256, lora_alpha=256, lora_len=1225)


class InternLM2MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.hidden_size = config.hidden_size
        self.intermediate_size = config.intermediate_size
        self.w1 = _plora(self.hidden_size, self.intermediate_size, False)
        self.w3 = _plora(self.hidden_size, self.intermediate_size, False)
        self.w2 = _plora(self.intermediate_size, self.hidden_size, False)
        self.act_fn = ACT2FN[config.hidden_act]

    def forward(self, x, im_mask):
        return self.w2(self.act_fn(self.w1(x, im_mask)) * self.w3(x, im_mask), im_mask)


def repeat_kv(hidden_states, n_rep):
    batch, kv_heads, length, head_dim = hidden_states.shape
    if n_rep == 1:
        return hidden_states
    expanded = hidden_states[:, :, None].expand(batch, kv_heads, n_rep, length, head_dim)
    return expanded.reshape(batch, kv_heads * n_rep, length, head_dim)


class InternLM2Attention(nn.Module):
    def __init__(self, config: InternLM2Config):
        super().__init__()
        self.config = config
        self.hidden_size = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.head_dim = self.hidden_size // self.num_heads
        self.num_key_value_heads = config.num_key_value_heads
        self.num_key_value_groups = self.num_heads // self.num_key_value_heads
        self.max_position_embeddings = config.max_position_embeddings
        self.is_causal = True
        if self.head_dim * self.num_heads != self.hidden_size:
            raise ValueError("hidden_size must be divisible by num_heads")
        width = (self.num_heads + 2 * self.num_key_value_heads) * self.head_dim
        self.wqkv = _plora(self.hidden_size, width, config.bias)
        self.wo = _plora(self.num_heads * self.head_dim, self.hidden_size, config.bias)
        self._init_rope()

    def _init_rope(self):
        scaling = self.config.rope_scaling
        common = dict(max_position_embeddings=self.max_position_embeddings)
        if scaling is None:
            self.rotary_emb = InternLM2RotaryEmbedding(
                self.head_dim, base=self.config.rope_theta, **common
            )
        elif scaling["type"] == "dynamic":
            self.rotary_emb = InternLM2DynamicNTKScalingRotaryEmbedding(
                self.head_dim,
                base=self.config.rope_theta,
                scaling_factor=scaling["factor"],
                **common,
            )
        elif scaling["type"] == "linear":
            self.rotary_emb = InternLM2LinearScalingRotaryEmbedding(
                self.head_dim,
                base=self.config.rope_theta,
                scaling_factor=scaling["factor"],
                **common,
            )
        else:
            raise ValueError("rope scaling must be dynamic or linear")
        return self.rotary_emb

    def _project(self, hidden_states, im_mask, position_ids, past_key_value):
        """Queries, keys and values (batch, heads, length, head_dim), rotated, cache appended."""
        qkv = self.wqkv(hidden_states, im_mask)
        qkv = rearrange(
            qkv, "b q (h gs d) -> b q h gs d", gs=2 + self.num_key_value_groups, d=self.head_dim
        )
        query = rearrange(qkv[..., : self.num_key_value_groups, :], "b q h gs d -> b q (h gs) d")
        query = query.transpose(1, 2)
        key = qkv[..., -2, :].transpose(1, 2)
        value = qkv[..., -1, :].transpose(1, 2)
        kv_seq_len = key.shape[-2] + (past_key_value[0].shape[-2] if past_key_value else 0)
        cos, sin = self.rotary_emb(value, seq_len=kv_seq_len)
        query, key = apply_rotary_pos_emb(query, key, cos, sin, position_ids)
        if past_key_value is not None:
            key = torch.cat([past_key_value[0], key], dim=2)
            value = torch.cat([past_key_value[1], value], dim=2)
        return query, key, value

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
        if "padding_mask" in kwargs:
            warnings.warn("padding_mask is deprecated; pass attention_mask", stacklevel=2)
        batch, length, _ = hidden_states.size()
        query, key, value = self._project(hidden_states, im_mask, position_ids, past_key_value)
        present = (key, value) if use_cache else None
        key = repeat_kv(key, self.num_key_value_groups)
        value = repeat_kv(value, self.num_key_value_groups)
        weights = torch.matmul(query, key.transpose(2, 3)) / math.sqrt(self.head_dim)
        if attention_mask is not None:
            weights = weights + attention_mask
        weights = nn.functional.softmax(weights, dim=-1, dtype=torch.float32).to(query.dtype)
        out = torch.matmul(weights, value).transpose(1, 2).contiguous()
        out = self.wo(out.reshape(batch, length, self.hidden_size), im_mask)
        return out, (weights if output_attentions else None), present


class InternLM2FlashAttention2(InternLM2Attention):
    """Upstream's flash-attn path: varlen over the unpadded tokens when the 2-D mask has
    padding, dense causal otherwise. flash_attn is imported by `InternLM2Model.forward`."""

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
        batch, length, _ = hidden_states.size()
        query, key, value = self._project(hidden_states, im_mask, position_ids, past_key_value)
        present = (key, value) if use_cache else None
        query, key, value = (t.transpose(1, 2) for t in (query, key, value))
        causal = self.is_causal and length != 1
        if attention_mask is None:
            out = flash_attn_func(query, key, value, 0.0, causal=causal)
        else:
            out = self._varlen(query, key, value, attention_mask, causal)
        out = self.wo(out.reshape(batch, length, self.hidden_size).contiguous(), im_mask)
        return out, None, present

    def _varlen(self, query, key, value, attention_mask, causal):
        batch, length = attention_mask.shape
        lengths = attention_mask.sum(dim=-1, dtype=torch.int32)
        kept = torch.nonzero(attention_mask.flatten(), as_tuple=False).flatten()
        starts = F.pad(torch.cumsum(lengths, dim=0, dtype=torch.int32), (1, 0))
        longest = int(lengths.max())
        flat = [t.reshape(batch * length, *t.shape[2:])[kept] for t in (query, key, value)]
        out = flash_attn_varlen_func(
            *flat, starts, starts, longest, longest, dropout_p=0.0, causal=causal
        )
        padded = out.new_zeros(batch * length, *out.shape[1:])
        padded[kept] = out
        return padded.reshape(batch, length, *out.shape[1:])


INTERNLM2_ATTENTION_CLASSES = {
    "eager": InternLM2Attention,
    "flash_attention_2": InternLM2FlashAttention2,
}


class InternLM2DecoderLayer(nn.Module):
    def __init__(self, config: InternLM2Config):
        super().__init__()
        self.hidden_size = config.hidden_size
        self.attention = INTERNLM2_ATTENTION_CLASSES[config.attn_implementation](config=config)
        self.feed_forward = InternLM2MLP(config)
        self.attention_norm = InternLM2RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.ffn_norm = InternLM2RMSNorm(config.hidden_size, eps=config.rms_norm_eps)

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
        attended, weights, present = self.attention(
            hidden_states=self.attention_norm(hidden_states),
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_value=past_key_value,
            output_attentions=output_attentions,
            use_cache=use_cache,
            im_mask=im_mask,
            **kwargs,
        )
        hidden_states = hidden_states + attended
        hidden_states = hidden_states + self.feed_forward(self.ffn_norm(hidden_states), im_mask)
        outputs = (hidden_states,)
        if output_attentions:
            outputs += (weights,)
        if use_cache:
            outputs += (present,)
        return outputs


class InternLM2PreTrainedModel(PreTrainedModel):
    config_class = InternLM2Config
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["InternLM2DecoderLayer"]
    _skip_keys_device_placement = "past_key_values"

    def _init_weights(self, module):
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            module.weight.data.normal_(mean=0.0, std=std)
            if module.bias is not None:
                module.bias.data.zero_()
        elif isinstance(module, nn.Embedding):
            module.weight.data.normal_(mean=0.0, std=std)
            if module.padding_idx is not None:
                module.weight.data[module.padding_idx].zero_()


InternLM2_INPUTS_DOCSTRING = """input_ids or inputs_embeds, attention_mask (batch, length) of 1
for real tokens and 0 for padding, position_ids, past_key_values, use_cache, im_mask."""


class InternLM2Model(InternLM2PreTrainedModel):
    _auto_class = "AutoModel"

    def __init__(self, config: InternLM2Config):
        super().__init__(config)
        self.padding_idx = config.pad_token_id
        self.vocab_size = config.vocab_size
        self.config = config
        self.tok_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, self.padding_idx)
        self.layers = nn.ModuleList(
            [InternLM2DecoderLayer(config) for _ in range(config.num_hidden_layers)]
        )
        self.norm = InternLM2RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self):
        return self.tok_embeddings

    def set_input_embeddings(self, value):
        self.tok_embeddings = value

    def _prepare_decoder_attention_mask(
        self, attention_mask, input_shape, inputs_embeds, past_key_values_length
    ):
        combined = None
        if input_shape[-1] > 1:
            combined = _make_causal_mask(
                input_shape, inputs_embeds.dtype, inputs_embeds.device, past_key_values_length
            )
        if attention_mask is not None:
            expanded = _expand_mask(attention_mask, inputs_embeds.dtype, tgt_len=input_shape[-1])
            expanded = expanded.to(inputs_embeds.device)
            combined = expanded if combined is None else expanded + combined
        return combined

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        position_ids=None,
        past_key_values=None,
        inputs_embeds=None,
        use_cache=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        **kwargs,
    ):
        im_mask = kwargs.get("im_mask", None)
        config = self.config
        output_attentions = (
            output_attentions if output_attentions is not None else config.output_attentions
        )
        output_hidden_states = (
            output_hidden_states
            if output_hidden_states is not None
            else config.output_hidden_states
        )
        use_cache = use_cache if use_cache is not None else config.use_cache
        return_dict = return_dict if return_dict is not None else config.use_return_dict
        if config.attn_implementation == "flash_attention_2":
            _import_flash_attn()
        if input_ids is not None and inputs_embeds is not None:
            raise ValueError("give input_ids or inputs_embeds, not both")
        if input_ids is None and inputs_embeds is None:
            raise ValueError("give input_ids or inputs_embeds")
        batch, length = (input_ids if input_ids is not None else inputs_embeds).shape[:2]
        past_length = past_key_values[0][0].shape[2] if past_key_values is not None else 0
        if position_ids is None:
            device = (input_ids if input_ids is not None else inputs_embeds).device
            position_ids = torch.arange(
                past_length, length + past_length, dtype=torch.long, device=device
            ).unsqueeze(0)
        if inputs_embeds is None:
            inputs_embeds = self.tok_embeddings(input_ids)
            im_mask = torch.zeros(inputs_embeds.shape[:2]).to(inputs_embeds.device).bool()
        if config.attn_implementation == "flash_attention_2":
            has_padding = attention_mask is not None and 0 in attention_mask
            attention_mask = attention_mask if has_padding else None
        else:
            if attention_mask is None:
                attention_mask = torch.ones(
                    (batch, length + past_length), dtype=torch.bool, device=inputs_embeds.device
                )
            attention_mask = self._prepare_decoder_attention_mask(
                attention_mask, (batch, length), inputs_embeds, past_length
            )
        hidden_states = inputs_embeds
        all_hidden = () if output_hidden_states else None
        all_attentions = () if output_attentions else None
        cache = () if use_cache else None
        for index, layer in enumerate(self.layers):
            if output_hidden_states:
                all_hidden += (hidden_states,)
            outputs = layer(
                hidden_states,
                attention_mask=attention_mask,
                position_ids=position_ids,
                past_key_value=past_key_values[index] if past_key_values is not None else None,
                output_attentions=output_attentions,
                use_cache=use_cache,
                im_mask=im_mask,
            )
            hidden_states = outputs[0]
            if use_cache:
                cache += (outputs[2 if output_attentions else 1],)
            if output_attentions:
                all_attentions += (outputs[1],)
        hidden_states = self.norm(hidden_states)
        if output_hidden_states:
            all_hidden += (hidden_states,)
        if not return_dict:
            parts = [hidden_states, cache, all_hidden, all_attentions]
            return tuple(part for part in parts if part is not None)
        return BaseModelOutputWithPast(
            last_hidden_state=hidden_states,
            past_key_values=cache,
            hidden_states=all_hidden,
            attentions=all_attentions,
        )
