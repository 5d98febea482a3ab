"""Builders for tiny random checkpoints, saved to disk the way the real ones are.

Tests load them through the backends' factories, i.e. through the same `from_pretrained` /
remote-code path a real checkpoint takes. Nothing here touches the network.

- `build_tiny_qwen_vl`: a Qwen2-VL / Qwen2.5-VL saved by transformers (the legacy key layout
  Skywork-VL-Reward-7B ships: `model.layers.*`, `visual.*`, `lm_head.weight`) with the value
  head in `value_head.safetensors` as `v_head.summary.weight` / `.bias` (trl's layout), or
  under another name or inside the model shards;
- `build_tiny_ixc`: a remote-code checkpoint running `tests/ixc_standin`, which reproduces
  IXC-2.5-Reward's quirks (see its modeling file), with its CLIP tower in a separate folder
  (`build_tiny_clip`) and a TrueType font (`write_test_font`) for its video frame labels.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from bench.random_text_rm import TINY as TINY_TEXT_SHAPES
from bench.random_text_rm import text_classifier, text_tokenizer
from bench.random_value_head import SPECIALS as QWEN_SPECIALS
from bench.random_value_head import build_tokenizer, train_byte_bpe

STANDIN = Path(__file__).resolve().parent / "ixc_standin"
IXC_CODE_FILES = (
    "configuration_tiny_ixc.py",
    "modeling_tiny_ixc.py",
    "ixc_utils.py",
    "build_mlp.py",
)
IXC_SPECIALS = ["<s>", "</s>", "[UNUSED_TOKEN_146]", "[UNUSED_TOKEN_145]", "[UNUSED_TOKEN_130]"]

QWEN_CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}"
    "{% for c in m['content'] %}{% if c['type'] == 'image' %}"
    "<|vision_start|><|image_pad|><|vision_end|>{% elif c['type'] == 'video' %}"
    "<|vision_start|><|video_pad|><|vision_end|>{% else %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
)


def build_tiny_qwen_vl(
    directory: Path,
    model_type: str = "qwen2_vl",
    seed: int = 0,
    head_name: str | None = "v_head.summary",
    head_in_shards: bool = False,
) -> Path:
    """A random Qwen2-VL (or Qwen2.5-VL) + value head, saved as a checkpoint directory.

    The head is `head_name`.weight / .bias in value_head.safetensors (Skywork's file), or in
    the model's own shard with `head_in_shards`; `head_name=None` saves no head at all.
    """
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
    )
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )

    torch.manual_seed(seed)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(QWEN_SPECIALS, QWEN_CHAT_TEMPLATE)
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in QWEN_SPECIALS}
    text = dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=len(tokenizer),
        max_position_embeddings=4096,
        rope_parameters={"rope_type": "default", "mrope_section": [1, 1, 2], "rope_theta": 1e4},
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=tokenizer.pad_token_id,
    )
    vision = dict(depth=2, num_heads=4, patch_size=14, spatial_merge_size=2, temporal_patch_size=2)
    media_ids = dict(
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    if model_type == "qwen2_5_vl":
        vision.update(hidden_size=32, out_hidden_size=32, intermediate_size=64, window_size=56)
        vision["fullatt_block_indexes"] = [1]
        config = Qwen2_5_VLConfig(text_config=text, vision_config=vision, **media_ids)
        model = Qwen2_5_VLForConditionalGeneration(config)
    else:
        vision.update(embed_dim=32, hidden_size=32, mlp_ratio=2)
        config = Qwen2VLConfig(text_config=text, vision_config=vision, **media_ids)
        model = Qwen2VLForConditionalGeneration(config)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    # Small pixel bounds keep CPU forwards fast: 4..64 tokens per image.
    Qwen2VLImageProcessorPil(min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 64).save_pretrained(
        directory
    )
    if head_name:
        head = torch.nn.Linear(32, 1)
        tensors = {f"{head_name}.weight": head.weight.detach(), f"{head_name}.bias": head.bias}
        tensors = {key: value.detach().contiguous() for key, value in tensors.items()}
        if head_in_shards:
            shard = directory / "model.safetensors"
            save_file({**load_file(shard), **tensors}, str(shard), metadata={"format": "pt"})
        else:
            save_file(tensors, str(directory / "value_head.safetensors"))
    return directory


def build_tiny_text_rm(directory: Path, seed: int = 0, architecture: str = "qwen2") -> Path:
    """A random sequence classifier (1 label) with a chat-template tokenizer, pad = eos.

    `architecture`: "qwen2", "llama", or "gemma2": a Gemma-2 reward model, which transformers 5
    refuses to load with `attn_implementation="sdpa"`, whose sliding window and logit
    soft-capping change its scores (`bench.random_text_rm.text_classifier`).
    """
    torch.manual_seed(seed)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = text_tokenizer()
    model = text_classifier(architecture, TINY_TEXT_SHAPES, tokenizer)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def write_test_font(path: Path) -> Path:
    """A real TrueType font (Pillow's bundled Aileron), standing in for SimHei.ttf."""
    from PIL import ImageFont

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(ImageFont.load_default(size=40).font_bytes)
    return path


def build_tiny_clip(directory: Path, seed: int = 0) -> Path:
    """A CLIP vision tower at IXC's geometry (560 px, 14 px patches), one tiny layer."""
    from transformers import CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(seed)
    config = CLIPVisionConfig(
        hidden_size=8,
        intermediate_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=560,
        patch_size=14,
    )
    CLIPVisionModel(config).save_pretrained(directory)
    return directory


def build_ixc_tokenizer():
    """Byte-level BPE with InternLM2's special tokens; `<s>` first with special tokens on."""
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    core = train_byte_bpe(IXC_SPECIALS)
    bos = core.token_to_id("<s>")
    core.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", bos)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="</s>",
        additional_special_tokens=IXC_SPECIALS[2:],
    )


@contextlib.contextmanager
def _standin_fetches_served_locally(clip_dir: Path, font_file: Path):
    """While the builder constructs the stand-in: its font and CLIP downloads read local files."""
    from tests.ixc_standin import build_mlp, ixc_utils

    original_urlopen, original_clip = ixc_utils.urlopen, build_mlp.CLIPVisionModel

    class LocalClip(original_clip):
        @classmethod
        def from_pretrained(cls, name, *args, **kwargs):
            return original_clip.from_pretrained(clip_dir, *args, **kwargs)

    ixc_utils.urlopen = lambda url: open(font_file, "rb")  # noqa: SIM115
    build_mlp.CLIPVisionModel = LocalClip
    try:
        yield
    finally:
        ixc_utils.urlopen, build_mlp.CLIPVisionModel = original_urlopen, original_clip


def build_tiny_ixc(
    directory: Path, clip_dir: Path, font_file: Path, seed: int = 0, max_length: int = 16384
) -> Path:
    """A remote-code checkpoint shaped like IXC-2.5-Reward's: code files, config.json with
    auto_map, flash_attention_2 and max_length, a tokenizer, and two weight shards + index
    holding every weight (the CLIP tower's included, as upstream's checkpoint does)."""
    from tests.ixc_standin.configuration_tiny_ixc import TinyIxcConfig
    from tests.ixc_standin.modeling_tiny_ixc import TinyIxcRewardModel

    directory.mkdir(parents=True, exist_ok=True)
    for name in IXC_CODE_FILES:
        shutil.copy(STANDIN / name, directory / name)
    tokenizer = build_ixc_tokenizer()
    tokenizer.save_pretrained(directory)
    config = TinyIxcConfig(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        attn_implementation="eager",
    )
    config.max_length = max_length
    torch.manual_seed(seed)
    with _standin_fetches_served_locally(clip_dir, font_file):
        model = TinyIxcRewardModel(config)
    state = {key: value.detach().contiguous() for key, value in model.state_dict().items()}
    keys = sorted(state)
    shards = {
        "model-00001-of-00002.safetensors": keys[::2],
        "model-00002-of-00002.safetensors": keys[1::2],
    }
    weight_map = {}
    for file, names in shards.items():
        save_file({k: state[k] for k in names}, str(directory / file), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(names, file))
    (directory / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": weight_map}, indent=2)
    )
    saved = config.to_dict()
    saved.update(
        max_length=max_length,
        attn_implementation="flash_attention_2",
        architectures=["TinyIxcRewardModel"],
        auto_map={
            "AutoConfig": "configuration_tiny_ixc.TinyIxcConfig",
            "AutoModel": "modeling_tiny_ixc.TinyIxcRewardModel",
        },
    )
    (directory / "config.json").write_text(json.dumps(saved, indent=2, default=str))
    return directory
