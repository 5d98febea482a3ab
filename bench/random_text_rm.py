"""A text-rm backend with random weights: Llama-3.1-8B's shapes (Skywork-Reward-V2-Llama-3.1-8B),
or tiny Llama / Gemma-2 classifiers, and text conversations of one to four turns, for the GPU
reward benchmark and the tests' tiny checkpoints.
"""

from __future__ import annotations

import numpy as np
import torch

from bench.random_value_head import WORDS, build_tokenizer
from models.value_head.text_rm import DEFAULTS, TextRewardModel
from transforms.core.record import Sample

TEXT_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
TEXT_CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
)

LLAMA_31_8B = dict(
    hidden_size=4096,
    intermediate_size=14336,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=8,
    max_position_embeddings=131072,
    rope_parameters={"rope_type": "default", "rope_theta": 500000.0},
    vocab_size=128256,
)
TINY = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=512,
)


def text_tokenizer():
    """The byte-level test tokenizer with a plain chat template; pad = eos on purpose (the
    backend must still read each sample's real last token)."""
    tokenizer = build_tokenizer(TEXT_SPECIALS, TEXT_CHAT_TEMPLATE)
    tokenizer.pad_token = "<|im_end|>"
    return tokenizer


def text_classifier(architecture: str, shapes: dict, tokenizer, dtype=None):
    """A random one-label sequence classifier: "llama", "qwen2" or "gemma2".

    The Gemma-2 one has a sliding window of 6 tokens on its first layer and attention logits
    of a few units soft-capped at 1.0, so that both change its scores on short conversations
    (Gemma-2's own defaults, 4096 and 50.0, would not).
    """
    from transformers import (
        Gemma2Config,
        Gemma2ForSequenceClassification,
        LlamaConfig,
        LlamaForSequenceClassification,
        Qwen2Config,
        Qwen2ForSequenceClassification,
    )

    shape = dict(
        shapes,
        vocab_size=max(shapes.get("vocab_size", 0), len(tokenizer)),
        num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.pad_token_id,
    )
    if architecture == "gemma2":
        config = Gemma2Config(head_dim=8, sliding_window=6, attn_logit_softcapping=1.0, **shape)
        model = Gemma2ForSequenceClassification._from_config(config, dtype=dtype)
        with torch.no_grad():  # attention logits of a few units, so that the cap bites
            for layer in model.model.layers:
                layer.self_attn.q_proj.weight.mul_(10)
                layer.self_attn.k_proj.weight.mul_(10)
        return model
    classes = {
        "llama": (LlamaConfig, LlamaForSequenceClassification),
        "qwen2": (Qwen2Config, Qwen2ForSequenceClassification),
    }
    config_class, model_class = classes[architecture]
    return model_class._from_config(config_class(**shape), dtype=dtype)


def build_text_backend(
    architecture: str, tiny: bool, device: torch.device, dtype: torch.dtype, max_batch_tokens
) -> TextRewardModel:
    """Random-weight classifier behind the real backend class (packed by default)."""
    tokenizer = text_tokenizer()
    torch.manual_seed(0)
    with torch.device(device):
        model = text_classifier(architecture, TINY if tiny else LLAMA_31_8B, tokenizer, dtype)
    options = dict(DEFAULTS, path="random", max_batch_tokens=max_batch_tokens)
    return TextRewardModel(model.eval(), tokenizer, options)


def make_text_samples(count: int, seed: int, scale: float) -> list[Sample]:
    """Conversations of 1-4 turns whose answers total about 100-2,000 words x `scale`."""
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(count):
        turns = int(rng.integers(1, 5))
        words = max(4, int(rng.integers(100, 2000) * scale))
        conversation = []
        for _ in range(turns):
            question = " ".join(rng.choice(WORDS, int(rng.integers(5, 25))))
            answer = " ".join(rng.choice(WORDS, max(1, words // turns)))
            conversation += [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]
        samples.append(Sample(f"text-{i}", "bench", conversation))
    return samples
