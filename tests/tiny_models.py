"""Builders for tiny random checkpoints, saved to disk the way the real ones are.

Tests load them through the backends' factories, i.e. through the same `from_pretrained` /
remote-code path a real checkpoint takes. Nothing here touches the network.

- `build_tiny_qwen_vl`: a Qwen2-VL / Qwen2.5-VL saved by transformers (the legacy key layout
  Skywork-VL-Reward-7B ships: `model.layers.*`, `visual.*`, `lm_head.weight`) with the value
  head in `value_head.safetensors` as `v_head.summary.weight` / `.bias` (trl's layout), or
  under another name or inside the model shards;
- `build_tiny_ixc`: a remote-code checkpoint laid out as IXC-2.5-Reward's (saved by
  transformers 4.33: the vision tower as `vit.vision_tower.vision_model.*`, config.json as
  shipped, a sentencepiece InternLM2 tokenizer) running `tests/ixc_standin`, with its CLIP
  tower in a separate folder (`build_tiny_clip`, `vision_model.*` names) and a TrueType font
  (`write_test_font`) for its video frame labels. Any width: the benchmark builds one at the
  real hidden size.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from bench.random_text_rm import TINY as TINY_TEXT_SHAPES
from bench.random_text_rm import text_classifier, text_tokenizer
from bench.random_value_head import SPECIALS as QWEN_SPECIALS
from bench.random_value_head import WORDS, build_tokenizer

STANDIN = Path(__file__).resolve().parent / "ixc_standin"
IXC_CODE_FILES = (
    "configuration_internlm_xcomposer2.py",
    "modeling_internlm_xcomposer2.py",
    "modeling_internlm2.py",
    "build_mlp.py",
    "ixc_utils.py",
    "tokenization_internlm2.py",
)
# InternLM2's turn markers and reward token are pieces of its sentencepiece model.
IXC_MARKERS = ["[UNUSED_TOKEN_130]", "[UNUSED_TOKEN_145]", "[UNUSED_TOKEN_146]"]
# IXC-2.5-Reward's config.json as shipped (transformers 4.33.2); the builder changes only the
# sizes it is given.
IXC_CONFIG = {
    "architectures": ["InternLMXComposer2ForCausalLM"],
    "attn_implementation": "flash_attention_2",
    "auto_map": {
        "AutoConfig": "configuration_internlm_xcomposer2.InternLMXcomposer2Config",
        "AutoModel": "modeling_internlm_xcomposer2.InternLMXComposer2ForCausalLM",
        "AutoModelForCausalLM": "modeling_internlm_xcomposer2.InternLMXComposer2ForCausalLM",
    },
    "bias": False,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "hidden_act": "silu",
    "hidden_size": 4096,
    "initializer_range": 0.02,
    "intermediate_size": 14336,
    "max_length": 16384,
    "max_position_embeddings": 24576,
    "model_type": "internlm2",
    "num_attention_heads": 32,
    "num_hidden_layers": 32,
    "num_key_value_heads": 8,
    "pad_token_id": 2,
    "rms_norm_eps": 1e-05,
    "rope_scaling": {"factor": 2.0, "type": "dynamic"},
    "rope_theta": 1000000,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "transformers_version": "4.33.2",
    "use_cache": True,
    "vocab_size": 92544,
}
# internlm/internlm-xcomposer2d5-clip: CLIP ViT-L/14 at 560 px.
CLIP_CONFIG = {
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "image_size": 560,
    "patch_size": 14,
    "projection_dim": 768,
    "hidden_act": "quick_gelu",
}
TINY_IXC = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
}
# 4 x the CLIP width is the merged 2x2 patch width, which the model takes as its hidden size.
TINY_CLIP = {
    "hidden_size": 8,
    "intermediate_size": 16,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
}

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


def _save_sharded(state: dict, directory: Path, shards: int) -> None:
    """model-0000i-of-0000n.safetensors plus the index, as `save_pretrained` lays them out."""
    keys = sorted(state)
    weight_map = {}
    for number in range(shards):
        file = f"model-{number + 1:05d}-of-{shards:05d}.safetensors"
        names = keys[number::shards]
        save_file({k: state[k] for k in names}, str(directory / file), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(names, file))
    total = sum(t.numel() * t.element_size() for t in state.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (directory / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))


def _named_as_4x(key: str, tower: str) -> str:
    """A transformers 5 name of a CLIPVisionModel's tensor as transformers 4.x saved it: 4.x's
    CLIPVisionModel held its layers in `.vision_model`, 5.x holds them directly."""
    if not key.startswith(tower):
        return key
    rest = key[len(tower) :]
    return key if rest.startswith("vision_model.") else f"{tower}vision_model.{rest}"


def build_tiny_clip(directory: Path, seed: int = 0, shape: dict | None = None) -> Path:
    """A CLIP vision tower at IXC's geometry (560 px, 14 px patches), saved as the
    internlm-xcomposer2d5-clip folder is: config.json and `vision_model.*` tensors."""
    from transformers import CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(seed)
    directory.mkdir(parents=True, exist_ok=True)
    config = CLIPVisionConfig(**{**CLIP_CONFIG, **(shape or TINY_CLIP)})
    config.architectures = ["CLIPVisionModel"]
    model = CLIPVisionModel(config)
    state = {_named_as_4x(k, ""): v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(directory / "model.safetensors"), metadata={"format": "pt"})
    config.save_pretrained(directory)
    return directory


def build_ixc_tokenizer(directory: Path) -> None:
    """tokenizer.model (a sentencepiece BPE trained here, InternLM2's ids: unk 0, <s> 1,
    </s> 2, its turn markers as pieces, byte fallback so any text encodes) and the config that
    points AutoTokenizer at the checkpoint's InternLM2Tokenizer."""
    import sentencepiece as spm

    words = [*WORDS, "user", "assistant", "system"]
    text = [" ".join(words[i:] + words[:i]) for i in range(len(words))]
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(text),
        model_writer=model,
        model_type="bpe",
        vocab_size=400,
        hard_vocab_limit=False,
        user_defined_symbols=IXC_MARKERS,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        byte_fallback=True,
        character_coverage=1.0,
        # InternLM2's: text as it is, no "▁" put in front ([UNUSED_TOKEN_146] then "system").
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=False,
        minloglevel=2,
    )
    (directory / "tokenizer.model").write_bytes(model.getvalue())
    specials = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "</s>", "unk_token": "<unk>"}
    config = {
        **specials,
        "auto_map": {"AutoTokenizer": ["tokenization_internlm2.InternLM2Tokenizer", None]},
        "tokenizer_class": "InternLM2Tokenizer",
        "clean_up_tokenization_spaces": False,
        "model_max_length": 1000000000000000019884624838656,
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    (directory / "special_tokens_map.json").write_text(json.dumps(specials, indent=2))


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


def _randomise(model: torch.nn.Module, generator: torch.Generator) -> None:
    """Weights that give scores of order one, different for every input: matrices at
    1/sqrt(fan-in), biases small, the image separators at one, norms left at one. The vision
    tower moves off the clip folder's weights too, as fine-tuning moved the real one's."""
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.startswith("plora_"):
                parameter.normal_(0.0, 1.0, generator=generator)
            elif parameter.dim() >= 2:
                fan_in = parameter.numel() // parameter.shape[0]
                parameter.normal_(0.0, fan_in**-0.5, generator=generator)
            elif name.endswith("bias"):
                parameter.normal_(0.0, 0.1, generator=generator)


def build_tiny_ixc(
    directory: Path,
    clip_dir: Path,
    font_file: Path,
    seed: int = 0,
    max_length: int = 16384,
    shape: dict | None = None,
    dtype: torch.dtype = torch.float32,
    shards: int = 2,
) -> Path:
    """A checkpoint folder laid out as IXC-2.5-Reward's: the code files, config.json as
    shipped (sizes from `shape`, default tiny), the tokenizer, and `shards` safetensors shards
    plus index holding every weight under the names transformers 4.33 saved (the CLIP tower's
    as `vit.vision_tower.vision_model.*`). `dtype=bfloat16` saves as the real one does."""
    from tests.ixc_standin.configuration_internlm_xcomposer2 import InternLMXcomposer2Config
    from tests.ixc_standin.modeling_internlm_xcomposer2 import InternLMXComposer2ForCausalLM

    directory.mkdir(parents=True, exist_ok=True)
    for name in IXC_CODE_FILES:
        shutil.copy(STANDIN / name, directory / name)
    build_ixc_tokenizer(directory)
    shipped = {**copy.deepcopy(IXC_CONFIG), "max_length": max_length, **(shape or TINY_IXC)}
    if shape is None:
        import sentencepiece as spm

        processor = spm.SentencePieceProcessor(model_file=str(directory / "tokenizer.model"))
        shipped["vocab_size"] = processor.get_piece_size()
    # A copy: transformers 5 standardises the rope dict it is given in place.
    fields = {
        k: v for k, v in copy.deepcopy(shipped).items() if k not in ("auto_map", "architectures")
    }
    config = InternLMXcomposer2Config(**{**fields, "attn_implementation": "eager"})
    config.max_length = max_length
    torch.manual_seed(seed)
    with _standin_fetches_served_locally(clip_dir, font_file):
        model = InternLMXComposer2ForCausalLM(config)
    _randomise(model, torch.Generator().manual_seed(seed))
    state = {
        _named_as_4x(k, "vit.vision_tower."): v.detach().to(dtype).contiguous()
        for k, v in model.state_dict().items()
    }
    _save_sharded(state, directory, shards)
    (directory / "config.json").write_text(json.dumps(shipped, indent=2))
    return directory


# The value-head backends' tiny checkpoints the backend tests run on: name -> (backend, build).
VALUE_HEAD_CHECKPOINTS = {
    "qwen2_vl": ("vlm-value-head", lambda d: build_tiny_qwen_vl(d, model_type="qwen2_vl")),
    "qwen2_5_vl": ("vlm-value-head", lambda d: build_tiny_qwen_vl(d, model_type="qwen2_5_vl")),
    "llama": ("text-rm", lambda d: build_tiny_text_rm(d, architecture="llama")),
    "gemma2": ("text-rm", lambda d: build_tiny_text_rm(d, architecture="gemma2")),
}
