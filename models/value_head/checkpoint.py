"""What a value-head checkpoint holds beside its base model: the head's tensors, the template.

The value head is a Linear(hidden, 1) found by its tensor names, first in
`value_head.safetensors` next to the checkpoint, then in the checkpoint's own `*.safetensors`
shards. Skywork-VL-Reward-7B ships `value_head.safetensors` with `v_head.summary.weight` and
`v_head.summary.bias`: trl's `AutoModelForCausalLMWithValueHead` layout, which LLaMA-Factory
and ms-swift also write. Also accepted: `v_head.*`, `value_head.*` and `score.*` (each
optionally under a module prefix, e.g. `pretrained_model.v_head.summary.weight`).
"""

from __future__ import annotations

import glob
import json
import os
from typing import Any

import torch
from safetensors import safe_open

from models.loading import (
    ModelConfigError,
)

VALUE_HEAD_FILE = "value_head.safetensors"


# Used only when neither the tokenizer nor the checkpoint carries a chat template; it renders
# the same token layout as Qwen2-VL's own template.
FALLBACK_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% else %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
)


# Tried in this order; the first name with a weight tensor wins.
HEAD_NAMES = ("v_head.summary", "v_head", "value_head", "score")


# Prefixes of the base model's own tensors, left out when listing what a checkpoint holds.
BACKBONE_PREFIXES = ("model.", "visual.", "lm_head.", "language_model.")


def _head_keys(keys: list[str]) -> dict[str, str] | None:
    """{"weight": key, "bias": key?} for the first head name present among `keys`."""
    for name in HEAD_NAMES:
        weights = [k for k in keys if k == f"{name}.weight" or k.endswith(f".{name}.weight")]
        if weights:
            found = {"weight": weights[0]}
            bias = weights[0][: -len("weight")] + "bias"
            if bias in keys:
                found["bias"] = bias
            return found
    return None


def _head_files(directory: str) -> list[str]:
    own = os.path.join(directory, VALUE_HEAD_FILE)
    shards = sorted(glob.glob(os.path.join(directory, "*.safetensors")))
    return ([own] if os.path.exists(own) else []) + [f for f in shards if f != own]


def find_value_head(directory: str) -> tuple[str, dict[str, str]]:
    """(file, tensor names) of the value head; reads safetensors headers only, no weights."""
    seen: dict[str, list[str]] = {}
    for file in _head_files(directory):
        with safe_open(file, "pt") as handle:
            keys = list(handle.keys())
        found = _head_keys(keys)
        if found:
            return file, found
        seen[os.path.basename(file)] = keys
    listed = []
    for name, keys in seen.items():
        shown = [k for k in keys if not k.startswith(BACKBONE_PREFIXES)] or keys
        listed.append(f"{name}: {shown[:12]}{' ...' if len(shown) > 12 else ''} ({len(keys)} keys)")
    wanted = ", ".join(f"{name}.weight" for name in HEAD_NAMES)
    raise ModelConfigError(
        f"vlm-value-head: no value head in {directory}: looked for {wanted} in "
        f"{VALUE_HEAD_FILE} and the checkpoint's *.safetensors; keys seen: "
        + ("; ".join(listed) or "no safetensors files")
    )


def load_value_head(directory: str, hidden_size: int) -> torch.nn.Linear:
    file, names = find_value_head(directory)
    with safe_open(file, "pt") as handle:
        tensors = {part: handle.get_tensor(key) for part, key in names.items()}
    weight = tensors["weight"].float().reshape(1, -1)
    if weight.shape[1] != hidden_size:
        raise ModelConfigError(
            f"vlm-value-head: the value head {names['weight']} in {file} has input size "
            f"{weight.shape[1]}, the model's hidden size is {hidden_size}"
        )
    head = torch.nn.Linear(hidden_size, 1, bias="bias" in tensors)
    with torch.no_grad():
        head.weight.copy_(weight)
        if "bias" in tensors:
            head.bias.copy_(tensors["bias"].float().reshape(1))
    return head


def chat_template_of(directory: str, tokenizer: Any) -> str:
    """The tokenizer's template, else the processor's saved one, else the built-in fallback."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.chat_template
    jinja = os.path.join(directory, "chat_template.jinja")
    if os.path.exists(jinja):
        with open(jinja) as handle:
            return handle.read()
    saved = os.path.join(directory, "chat_template.json")
    if os.path.exists(saved):
        with open(saved) as handle:
            return json.load(handle)["chat_template"]
    return FALLBACK_CHAT_TEMPLATE
