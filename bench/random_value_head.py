"""A Qwen2.5-VL value-head backend with random weights at 7B shapes (or a tiny Qwen2-VL /
Qwen2.5-VL), image samples of 1 to 10 crops, and mixed micro-batches (text only, images,
videos, two images), for the GPU reward benchmark and the tests' tiny checkpoints.
"""

from __future__ import annotations

import numpy as np
import torch

from models.value_head.vlm_value_head import DEFAULTS, VlmValueHeadRewardModel
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
# Qwen2-VL's vision tower names its sizes differently (no windows, a plain MLP).
TINY_QWEN2_VISION = dict(depth=2, embed_dim=32, hidden_size=32, mlp_ratio=2, num_heads=4)


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

    from models.value_head.checkpoint import FALLBACK_CHAT_TEMPLATE

    core = train_byte_bpe(specials)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="[PAD]", eos_token=specials[0]
    )
    tokenizer.add_special_tokens({"additional_special_tokens": specials})
    tokenizer.chat_template = chat_template or FALLBACK_CHAT_TEMPLATE
    return tokenizer


def build_backend(
    tiny: bool,
    device: torch.device,
    dtype: torch.dtype,
    max_batch_tokens: int | None,
    model_type: str = "qwen2_5_vl",
):
    """Random-weight Qwen2.5-VL (or, tiny, Qwen2-VL) base model + value head behind the real
    backend class, its attention the model's sdpa (the bench switches it for packing)."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLModel, Qwen2VLConfig, Qwen2VLModel

    from models.value_head.qwen_vl_inputs import image_processor_class

    shapes = TINY if tiny else QWEN25_VL_7B
    tokenizer = build_tokenizer()
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIALS}
    text = dict(shapes["text"], vocab_size=shapes["vocab_size"], pad_token_id=0)
    text.update(bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"])
    qwen2 = model_type == "qwen2_vl"
    if qwen2 and not tiny:
        raise ValueError("the real-shape bench builds Qwen2.5-VL-7B; Qwen2-VL only tiny")
    vision = dict(
        TINY_QWEN2_VISION if qwen2 else shapes["vision"],
        patch_size=14,
        spatial_merge_size=2,
        temporal_patch_size=2,
    )
    config_class, model_class = (
        (Qwen2VLConfig, Qwen2VLModel) if qwen2 else (Qwen2_5_VLConfig, Qwen2_5_VLModel)
    )
    config = config_class(
        text_config=text,
        vision_config=vision,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = model_class._from_config(config, dtype=dtype, attn_implementation="sdpa")
        head = torch.nn.Linear(config.text_config.hidden_size, 1)
    processor = image_processor_class()(min_pixels=4 * TOKEN_PX**2, max_pixels=4096 * TOKEN_PX**2)
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


def make_mixed_samples(count: int, seed: int, scale: float) -> list[Sample]:
    """In turn: an image of 1-10 crops, a text-only sample, a video of 2-8 frames, and two
    images in one sample; QA text as in `make_samples`. `scale` shrinks the pixel area."""
    rng = np.random.default_rng(seed)
    images = make_samples(count, seed, scale)
    samples = []
    for i in range(count):
        question = " ".join(rng.choice(WORDS, int(rng.integers(4, 16))))
        answer = " ".join(rng.choice(WORDS, int(rng.integers(4, 60))))
        kind = i % 4
        if kind == 0:
            samples.append(images[i])
            continue
        if kind == 1:
            conversation = [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]
            samples.append(Sample(f"mixed-{i}", "bench", conversation))
            continue
        if kind == 2:
            frames = int(rng.integers(2, 9))
            side = max(TOKEN_PX, int(TOKEN_PX * np.sqrt(CROP_TOKENS * scale)))
            pixels = [rng.integers(0, 256, (frames, side, side + TOKEN_PX, 3), dtype=np.uint8)]
            refs = [MediaRef("video", f"bench/{i}.mp4", b"")]
            marker = "<video>"
        else:
            pixels = [img.decoded[0] for img in (images[i], images[(i + 1) % count])]
            refs = [MediaRef("image", f"bench/{i}-{n}.jpg", b"") for n in range(2)]
            marker = "<image>\n<image>"
        conversation = [
            {"from": "human", "value": f"{marker}\n{question}"},
            {"from": "gpt", "value": answer},
        ]
        samples.append(Sample(f"mixed-{i}", "bench", conversation, refs, decoded=pixels))
    return samples


def with_turns(samples: list[Sample], seed: int, max_answers: int = 6) -> list[Sample]:
    """The same samples (media and conversation kept) with 1 to `max_answers` - 1 more
    exchanges after theirs, but one in five left as it was; every third opens with a system
    message, and every seventh ends with a question nobody answered (its score is then read
    after that question, its last turn score before it)."""
    rng = np.random.default_rng(seed)
    out = []
    for i, sample in enumerate(samples):
        extra = int(rng.integers(1, max_answers)) if i % 5 and max_answers > 1 else 0
        conversation = list(sample.conversations)
        for _ in range(extra):
            question = " ".join(rng.choice(WORDS, int(rng.integers(2, 8))))
            answer = " ".join(rng.choice(WORDS, int(rng.integers(1, 16))))
            conversation += [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]
        if i % 3 == 2:
            conversation.insert(0, {"from": "system", "value": "answer about the media only"})
        if i % 7 == 6:
            conversation.append({"from": "human", "value": "and what else"})
        out.append(sample.replace(id=f"{sample.id}-turns", conversations=conversation))
    return out
