"""A Qwen2.5-VL value-head backend with random weights at 7B shapes (or tiny), and image samples
of 1 to 10 crops, for the GPU reward benchmark and the tests' tiny checkpoints.
"""

from __future__ import annotations

import numpy as np
import torch

from models.vlm_value_head import DEFAULTS, VlmValueHeadRewardModel
from transforms.core.record import MediaRef, Sample

TOKEN_PX = 28
CROP_TOKENS = 180
WORDS = (
    "a an the is of on in and to what shown describe image video picture red blue green "
    "square bar moves right left cat dog sat mat hello there friend say hi yes no good bad "
    "answer question this that it with white black small large one two three"
).split()


SPECIALS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]


QWEN25_VL_7B = {
    "text": dict(
        hidden_size=3584,
        intermediate_size=18944,
        num_hidden_layers=28,
        num_attention_heads=28,
        num_key_value_heads=4,
        max_position_embeddings=128000,
        rope_parameters={"rope_type": "default", "mrope_section": [16, 24, 24], "rope_theta": 1e6},
    ),
    "vision": dict(
        depth=32,
        hidden_size=1280,
        intermediate_size=3420,
        num_heads=16,
        out_hidden_size=3584,
        window_size=112,
        fullatt_block_indexes=[7, 15, 23, 31],
        tokens_per_second=2,
    ),
    "vocab_size": 152064,
}


TINY = {
    "text": dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=32768,
        rope_parameters={"rope_type": "default", "mrope_section": [1, 1, 2], "rope_theta": 1e4},
    ),
    "vision": dict(
        depth=2,
        hidden_size=32,
        intermediate_size=64,
        num_heads=4,
        out_hidden_size=32,
        window_size=112,
        fullatt_block_indexes=[1],
    ),
    "vocab_size": 512,
}


def train_byte_bpe(specials: list[str]):
    """A byte-level BPE (`tokenizers.Tokenizer`) trained on a few words, so any text encodes,
    with "[PAD]" and `specials` as special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["[PAD]", *specials],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator([" ".join(WORDS)] * 3, trainer)
    return core


def build_tokenizer(specials: list[str] = SPECIALS, chat_template: str | None = None):
    """A byte-level BPE trained on a few words (any text encodes), with Qwen's special tokens.

    Byte-level on purpose: transformers 5 rebuilds a Qwen checkpoint's tokenizer as
    `Qwen2Tokenizer` from vocab + merges, which only round-trips a byte-level BPE.
    """
    from transformers import PreTrainedTokenizerFast

    from models.value_head_checkpoint import FALLBACK_CHAT_TEMPLATE

    core = train_byte_bpe(specials)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="[PAD]", eos_token=specials[0]
    )
    tokenizer.add_special_tokens({"additional_special_tokens": specials})
    tokenizer.chat_template = chat_template or FALLBACK_CHAT_TEMPLATE
    return tokenizer


def build_backend(tiny: bool, device: torch.device, dtype: torch.dtype, max_batch_tokens: int):
    """Random-weight Qwen2.5-VL base model + value head behind the real backend class."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLModel
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )

    shapes = TINY if tiny else QWEN25_VL_7B
    tokenizer = build_tokenizer()
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIALS}
    text = dict(shapes["text"], vocab_size=shapes["vocab_size"], pad_token_id=0)
    text.update(bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"])
    vision = dict(shapes["vision"], patch_size=14, spatial_merge_size=2, temporal_patch_size=2)
    config = Qwen2_5_VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2_5_VLModel._from_config(config, dtype=dtype, attn_implementation="sdpa")
        head = torch.nn.Linear(config.text_config.hidden_size, 1)
    processor = Qwen2VLImageProcessorPil(min_pixels=4 * TOKEN_PX**2, max_pixels=4096 * TOKEN_PX**2)
    options = dict(DEFAULTS, max_batch_tokens=max_batch_tokens)
    backend = VlmValueHeadRewardModel(
        model, head, tokenizer, processor, tokenizer.chat_template, options, device
    )
    return backend


def make_samples(count: int, seed: int, scale: float) -> list[Sample]:
    """Images of 1-10 'crops' (~180 tokens each, aspect 1:2 to 2:1) with short QA text.

    `scale` shrinks the pixel area for the tiny run.
    """
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(count):
        tokens = int(rng.integers(1, 11)) * CROP_TOKENS * scale
        aspect = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
        height = max(TOKEN_PX, int(np.sqrt(tokens / aspect) * TOKEN_PX))
        width = max(TOKEN_PX, int(np.sqrt(tokens * aspect) * TOKEN_PX))
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        question = " ".join(rng.choice(WORDS, int(rng.integers(8, 30))))
        answer = " ".join(rng.choice(WORDS, int(rng.integers(20, 120))))
        conversation = [
            {"from": "human", "value": f"<image>\n{question}"},
            {"from": "gpt", "value": answer},
        ]
        ref = MediaRef("image", f"bench/{i}.jpg", b"")
        samples.append(Sample(f"bench-{i}", "bench", conversation, [ref], decoded=[pixels]))
    return samples
