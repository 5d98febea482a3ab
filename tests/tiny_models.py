"""Builders for tiny random checkpoints, saved to disk the way real ones are.

Tests then load them through the backends' factories, i.e. through the same
`from_pretrained` path a real checkpoint takes. Nothing here touches the network.
"""

from __future__ import annotations

import importlib.util
import json
import textwrap
from pathlib import Path

import torch

from bench.gpu_reward_bench import SPECIALS as QWEN_SPECIALS
from bench.gpu_reward_bench import build_tokenizer

QWEN_CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}"
    "{% for c in m['content'] %}{% if c['type'] == 'image' %}"
    "<|vision_start|><|image_pad|><|vision_end|>{% elif c['type'] == 'video' %}"
    "<|vision_start|><|video_pad|><|vision_end|>{% else %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
)
TEXT_CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
)


def build_tiny_qwen_vl(directory: Path, model_type: str = "qwen2_vl", seed: int = 0) -> Path:
    """A random Qwen2-VL (or Qwen2.5-VL) + value head, saved as a checkpoint directory."""
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
    )
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )

    from models.vlm_value_head import save_value_head

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
    save_value_head(str(directory), torch.nn.Linear(32, 1))
    return directory


def build_tiny_text_rm(directory: Path, seed: int = 0) -> Path:
    """A random Qwen2 sequence classifier (1 label) with a chat-template tokenizer."""
    from transformers import Qwen2Config, Qwen2ForSequenceClassification

    torch.manual_seed(seed)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(["<|endoftext|>", "<|im_start|>", "<|im_end|>"], TEXT_CHAT_TEMPLATE)
    # pad = eos on purpose: the backend must still read the real last token.
    tokenizer.pad_token = "<|im_end|>"
    config = Qwen2Config(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=len(tokenizer),
        num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.pad_token_id,
    )
    Qwen2ForSequenceClassification(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


IXC_MODELING = textwrap.dedent(
    '''
    """A stand-in for IXC-2.5-Reward's remote code: same get_scores API, tiny network.

    It really opens every media file it is given (images with PIL, videos as bytes), so the
    backend's temporary files must exist during the call.
    """
    import os

    import numpy as np
    import torch
    from PIL import Image
    from transformers import PretrainedConfig, PreTrainedModel

    IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp")
    VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".wmv")


    class TinyIxcConfig(PretrainedConfig):
        model_type = "tiny_ixc_reward"

        def __init__(self, vocab_size=128, hidden_size=16, **kwargs):
            self.vocab_size = vocab_size
            self.hidden_size = hidden_size
            super().__init__(**kwargs)


    class TinyIxcRewardModel(PreTrainedModel):
        config_class = TinyIxcConfig

        def __init__(self, config):
            super().__init__(config)
            self.embed = torch.nn.Embedding(config.vocab_size, config.hidden_size)
            self.media = torch.nn.Linear(4, config.hidden_size)
            self.head = torch.nn.Linear(config.hidden_size, 1)
            self.tokenizer = None
            self.seen_paths = []
            self.post_init()

        def _media_features(self, path, hd_num):
            extension = os.path.splitext(path)[1].lower()
            if extension in IMAGE_EXTENSIONS:
                with Image.open(path) as image:
                    pixels = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
                return [*pixels.mean(axis=(0, 1)).tolist(), hd_num / 10.0]
            if extension in VIDEO_EXTENSIONS:
                with open(path, "rb") as handle:
                    data = np.frombuffer(handle.read(), dtype=np.uint8)
                return [float(data.mean()) / 255.0, 0.0, 0.0, -1.0]
            raise ValueError(f"unknown media extension {extension}")

        def get_scores(self, chats, path_lists, max_length=16384, hd_num=9):
            self.seen_paths.append([list(paths) for paths in path_lists])
            texts = [" ".join(f"{m['role']} {m['content']}" for m in chat) for chat in chats]
            encoded = self.tokenizer(
                texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt"
            )
            mask = encoded["attention_mask"].unsqueeze(-1).to(self.embed.weight.dtype)
            tokens = (self.embed(encoded["input_ids"]) * mask).sum(1) / mask.sum(1)
            media = torch.zeros_like(tokens)
            for row, paths in enumerate(path_lists):
                if paths:
                    features = torch.tensor(
                        [self._media_features(p, hd_num) for p in paths], dtype=tokens.dtype
                    )
                    media[row] = self.media(features).mean(0)
            return self.head(torch.tanh(tokens + media)).squeeze(-1).tolist()
    '''
)


def build_tiny_ixc(directory: Path, seed: int = 0) -> Path:
    """A remote-code checkpoint: config.json with auto_map, modeling file, weights, tokenizer."""
    directory.mkdir(parents=True, exist_ok=True)
    module_file = directory / "modeling_tiny_ixc.py"
    module_file.write_text(IXC_MODELING)
    spec = importlib.util.spec_from_file_location("tiny_ixc_builder", module_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    tokenizer = build_tokenizer(["<|endoftext|>"], TEXT_CHAT_TEMPLATE)
    torch.manual_seed(seed)
    model = module.TinyIxcRewardModel(module.TinyIxcConfig(vocab_size=len(tokenizer)))
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    config = json.loads((directory / "config.json").read_text())
    config["auto_map"] = {
        "AutoConfig": "modeling_tiny_ixc.TinyIxcConfig",
        "AutoModel": "modeling_tiny_ixc.TinyIxcRewardModel",
    }
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    return directory
