"""A tiny stand-in for InternLM-XComposer2.5-Reward's remote code, with its quirks.

Written from what upstream's code does (InternLM-XComposer's modeling_internlm_xcomposer2.py,
ixc_utils.py, build_mlp.py and the reward model's get_scores), not copied from it:
- `__init__` reads `config.max_length` (transformers 5 drops it from configs: AttributeError),
  downloads the frame-label font with `urlopen` (fails offline) and builds the CLIP tower with
  `from_pretrained` (refused on transformers 5's meta device, and needs the hub);
- config.json asks for flash_attention_2, whose attention imports flash_attn at the first
  forward pass (ImportError without it);
- the chat format is InternLM2's (`[UNUSED_TOKEN_146]role\\n...[UNUSED_TOKEN_145]\\n`, roles
  system/user/assistant only) ending in `</s>[UNUSED_TOKEN_130]`, the reward token;
- media go where the text says `<ImageHere>`; only for exactly one medium and no marker is it
  put first; with several media hd_num drops to 6 and surplus media are silently ignored;
- each sample is cut to max_length (the reward token with it), the batch is right-padded with
  the pad embedding, and the score is read at the last real position;
- `get_scores` returns `logits.squeeze().cpu().tolist()`: a bare float for one conversation.
"""

import os

import torch
from PIL import Image
from torch import nn
from transformers import PreTrainedModel

from .build_mlp import build_vision_projector, build_vision_tower
from .configuration_tiny_ixc import TinyIxcConfig
from .ixc_utils import (
    frames_to_image,
    get_font,
    image_transform,
    load_video,
    to_tensor,
    video_transform,
)

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp"}
VIDEO_EXTENSIONS = {".mp4", ".avi", ".mkv", ".mov", ".wmv"}
ROLES = ("system", "user", "assistant")


class RMSNorm(nn.Module):
    def __init__(self, size, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x):
        return self.weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)


class Attention(nn.Module):
    """Causal self-attention over the real (unpadded) tokens."""

    def __init__(self, config):
        super().__init__()
        self.heads = config.num_attention_heads
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size, bias=False)
        self.out = nn.Linear(config.hidden_size, config.hidden_size, bias=False)

    def attend(self, q, k, v, mask):
        return nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)

    def forward(self, x, mask):
        batch, length, size = x.shape
        q, k, v = self.qkv(x).reshape(batch, length, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        y = self.attend(q, k, v, mask).transpose(1, 2).reshape(batch, length, size)
        return self.out(y)


def _import_flash_attn():
    # As upstream: imported at the first forward pass, inside try (so loading never checks it).
    try:
        from flash_attn import flash_attn_func
    except ImportError as exc:
        raise ImportError("flash_attn is not installed.") from exc
    return flash_attn_func


class FlashAttention2(Attention):
    def attend(self, q, k, v, mask):
        _import_flash_attn()
        raise NotImplementedError("the stand-in has no flash-attention kernel")


ATTENTION_CLASSES = {"eager": Attention, "flash_attention_2": FlashAttention2}


class DecoderLayer(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.attention = ATTENTION_CLASSES[config.attn_implementation](config)
        self.attention_norm = RMSNorm(config.hidden_size)
        self.ffn_norm = RMSNorm(config.hidden_size)
        self.feed_forward = nn.Sequential(
            nn.Linear(config.hidden_size, config.intermediate_size),
            nn.SiLU(),
            nn.Linear(config.intermediate_size, config.hidden_size),
        )

    def forward(self, x, mask):
        x = x + self.attention(self.attention_norm(x), mask)
        return x + self.feed_forward(self.ffn_norm(x))


class TinyLanguageModel(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.tok_embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(config) for _ in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size)

    def forward(self, embeds, attention_mask):
        length = embeds.shape[1]
        causal = torch.ones(length, length, dtype=torch.bool, device=embeds.device).tril()
        mask = causal[None, None] & attention_mask.bool()[:, None, None, :]
        x = embeds
        for layer in self.layers:
            x = layer(x, mask)
        return self.norm(x)


class TinyIxcRewardModel(PreTrainedModel):
    config_class = TinyIxcConfig
    base_model_prefix = "model"

    def __init__(self, config):
        super().__init__(config)
        self.model = TinyLanguageModel(config)
        self.score = nn.Linear(config.hidden_size, 1, bias=False)  # upstream's head, no bias
        self.tokenizer = None
        self.font = get_font()
        self.max_length = config.max_length
        print(f"Set max length to {self.max_length}")  # upstream prints this on every load
        self.post_init()
        vision_dim = 4 * config.vision_hidden_size
        self.plora_glb_GN = nn.Parameter(torch.zeros([1, 1, vision_dim]))
        self.plora_sub_GN = nn.Parameter(torch.zeros([1, 1, 1, vision_dim]))
        self.vit = build_vision_tower()
        self.vision_proj = build_vision_projector(config.vision_hidden_size, config.hidden_size)
        # Test hook: what each get_scores call saw, per conversation, before any cut.
        self.seen = []

    def _init_weights(self, module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.5)

    def apply_chat_template(self, conversation):
        prompt = ""
        for message in conversation:
            if message["role"] not in ROLES:
                raise ValueError(f"unsupported role {message['role']!r}")
            role, content = message["role"], message["content"]
            prompt += f"[UNUSED_TOKEN_146]{role}\n{content}[UNUSED_TOKEN_145]\n"
        return prompt + "</s>[UNUSED_TOKEN_130]"

    def encode_img(self, path, hd_num):
        extension = os.path.splitext(path)[1].lower()
        if extension in IMAGE_EXTENSIONS:
            with Image.open(path) as image:
                image = image_transform(image, hd_num=hd_num)
        elif extension in VIDEO_EXTENSIONS:
            image = video_transform(frames_to_image(load_video(path), self.font))
        else:
            raise ValueError(f"unknown media format {path}")
        pixels = to_tensor(image).to(self.device)
        features = self.vit(pixels, self.plora_glb_GN, self.plora_sub_GN)
        return self.vision_proj(features.to(self.vision_proj[0].weight.dtype))

    def embed(self, text, first):
        ids = self.tokenizer(text, return_tensors="pt", add_special_tokens=first).input_ids
        return self.model.tok_embeddings(ids.to(self.device))

    def wrap(self, conversation, paths, hd_num):
        prompt = self.apply_chat_template(conversation)
        if len(paths) == 1 and "<ImageHere>" not in prompt:
            prompt = "<ImageHere>" + prompt
        if len(paths) > 1:
            hd_num = 6
        pieces = []
        for index, part in enumerate(prompt.split("<ImageHere>")):
            if index == 0 or part:
                pieces.append(self.embed(part, first=index == 0))
            if index < len(paths):
                pieces.append(self.encode_img(paths[index], hd_num))
        return torch.cat(pieces, dim=1)

    def get_scores(self, conversations, images, max_length=16384, hd_num=24):
        self.max_length = max_length
        pairs = list(zip(conversations, images, strict=True))
        wrapped = [self.wrap(conversation, paths, hd_num) for conversation, paths in pairs]
        self.seen.append([(w.shape[1], list(p)) for w, (_, p) in zip(wrapped, pairs, strict=True)])
        wrapped = [w[:, : self.max_length] for w in wrapped]
        longest = max(w.shape[1] for w in wrapped)
        pad_id = torch.tensor([[self.tokenizer.pad_token_id]], device=self.device)
        pad = self.model.tok_embeddings(pad_id)
        rows, masks = [], []
        for w in wrapped:
            short = longest - w.shape[1]
            rows.append(torch.cat([w, pad.expand(1, short, -1)], dim=1))
            masks.append(torch.cat([torch.ones(w.shape[1]), torch.zeros(short)]))
        mask = torch.stack(masks).to(self.device)
        hidden = self.model(torch.cat(rows), mask)
        # Upstream pools at the last position the mask marks real (cumsum's first maximum).
        ends = mask.cumsum(dim=1).argmax(dim=1)
        logits = self.score(hidden[torch.arange(len(wrapped), device=hidden.device), ends])
        return logits.float().squeeze().cpu().tolist()

    def get_score(self, conversation, image, max_length=16384, hd_num=24):
        return self.get_scores([conversation], [image], max_length, hd_num)
