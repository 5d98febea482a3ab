"""The stand-in's vision tower, projector and PLoRA linear layer (upstream's build_mlp.py).

As upstream: the tower is built inside the model's `__init__` by `CLIPVisionModel.
from_pretrained` of a separate hub repo (which transformers 5 refuses on the meta device it
builds models on), it runs a global 560 px view plus every 560 px crop of each image through
CLIP in one batch, merges 2x2 patches, and lays each image out as the global view's 20 x 20
grid with a separator per row, one separator, then the crops' grid with a separator per row:
(h*w + 1) * 400 + 1 + (h + 1) * 20 tokens for h x w crops.
"""

import math
import re

import torch
from torch import nn
from transformers import CLIPVisionModel

CROP_PX = 560


def build_vision_tower(vision_tower="internlm/internlm-xcomposer2d5-clip"):
    return CLIPVisionTower(vision_tower)


def build_vision_projector(hidden_size=4096):
    # Upstream: 'mlp2x_gelu' from 4096 (4 x CLIP-L's 1024) to 4096 (the LM's width).
    projector_type = "mlp2x_gelu"
    depth = re.match(r"^mlp(\d+)x_gelu$", projector_type)
    if depth:
        layers = [nn.Linear(hidden_size, hidden_size)]
        for _ in range(1, int(depth.group(1))):
            layers += [nn.GELU(), nn.Linear(hidden_size, hidden_size)]
        return nn.Sequential(*layers)
    if projector_type == "identity":
        return IdentityMap()
    raise ValueError(f"unknown projector type {projector_type}")


class IdentityMap(nn.Module):
    def forward(self, x, *args, **kwargs):
        return x

    @property
    def config(self):
        return {"mm_projector_type": "identity"}


def _merge_2x2(features, side):
    """(n, side*side, C) patch features -> (n, side/2, side/2, 4C), 2x2 neighbours merged."""
    count, _, channels = features.shape
    grid = features.reshape(count, side // 2, 2, side // 2, 2, channels)
    return grid.permute(0, 1, 3, 2, 4, 5).reshape(count, side // 2, side // 2, 4 * channels)


class CLIPVisionTower(nn.Module):
    def __init__(self, vision_tower):
        super().__init__()
        self.is_loaded = False
        self.vision_tower_name = vision_tower
        self.select_layer = -1
        self.select_feature = "patch"
        self.load_model()

    def load_model(self):
        self.vision_tower = CLIPVisionModel.from_pretrained(self.vision_tower_name)
        self.vision_tower.requires_grad_(False)
        self.is_loaded = True

    def feature_select(self, outputs):
        features = outputs.hidden_states[self.select_layer]
        if self.select_feature == "patch":
            return features[:, 1:]
        if self.select_feature == "cls_patch":
            return features
        raise ValueError(f"unexpected select feature {self.select_feature}")

    def forward(self, images, glb_GN, sub_GN):
        if not self.is_loaded:
            self.load_model()
        assert type(images) is list
        grids, views = [], []
        for image in images:
            _, _, height, width = image.shape
            rows, cols = height // CROP_PX, width // CROP_PX
            grids.append((rows, cols))
            crops = image.reshape(1, 3, rows, CROP_PX, cols, CROP_PX)
            crops = crops.permute(0, 2, 4, 1, 3, 5).reshape(-1, 3, CROP_PX, CROP_PX).contiguous()
            overview = nn.functional.interpolate(
                image.float(), size=(CROP_PX, CROP_PX), mode="bicubic"
            ).to(crops.dtype)
            views += [overview, crops]
        views = torch.cat(views, dim=0)
        outputs = self.vision_tower(
            views.to(device=self.device, dtype=self.dtype), output_hidden_states=True
        )
        features = self.feature_select(outputs).to(views.dtype)
        _, patches, channels = features.shape
        side = int(math.sqrt(patches))
        assert patches == 40**2
        half = side // 2
        laid_out, lengths = [], []
        for rows, cols in grids:
            overview = _merge_2x2(features[:1], side)
            overview = torch.cat([overview, sub_GN.repeat(1, half, 1, 1)], dim=2)
            overview = overview.reshape(1, -1, 4 * channels)
            crops = _merge_2x2(features[1 : 1 + rows * cols], side)
            crops = crops.reshape(1, rows, cols, half, half, -1).permute(0, 1, 3, 2, 4, 5)
            crops = crops.reshape(1, rows * half, cols * half, 4 * channels)
            crops = torch.cat([crops, sub_GN.repeat(1, rows * half, 1, 1)], dim=2)
            crops = crops.reshape(1, -1, 4 * channels)
            laid_out.append(torch.cat([overview, glb_GN, crops], dim=1))
            length = (rows * cols + 1) * 400 + 1 + (rows + 1) * 20
            assert length == laid_out[-1].shape[1]
            lengths.append(length)
            features = features[1 + rows * cols :]
        return torch.cat(laid_out, dim=1), lengths

    @property
    def dtype(self):
        return self.vision_tower.dtype

    @property
    def device(self):
        return self.vision_tower.device

    @property
    def config(self):
        return self.vision_tower.config

    @property
    def hidden_size(self):
        return self.config.hidden_size


class PLoRA(nn.Linear):
    """A linear layer plus a low-rank branch applied only to image tokens (`im_mask`)."""

    def __init__(
        self,
        in_features,
        out_features,
        bias=True,
        device=None,
        dtype=None,
        lora_r=8,
        lora_alpha=16,
        lora_dropout=0.05,
        lora_len=0,
        **kwargs,
    ):
        super().__init__(in_features, out_features, bias, device, dtype)
        self.lora_r = lora_r
        self.lora_alpha = lora_alpha
        self.lora_len = lora_len
        self.lora_dropout = nn.Dropout(p=lora_dropout) if lora_dropout > 0 else (lambda x: x)
        self.lora_scaling = lora_alpha / lora_r
        self.Plora_A = nn.Linear(in_features, lora_r, bias=False, device=device, dtype=dtype)
        self.Plora_B = nn.Linear(lora_r, out_features, bias=False, device=device, dtype=dtype)

    def forward(self, x, im_mask=None):
        batch, length, channels = x.shape
        im_mask = im_mask.view(-1)
        x = x.reshape(-1, channels)
        out = super().forward(x)
        if im_mask is not None:
            if torch.sum(im_mask) > 0:
                low_rank = self.Plora_B(self.Plora_A(self.lora_dropout(x[im_mask])))
                out[im_mask] += low_rank * self.lora_scaling
            else:
                # No image token: a zero-weighted pass keeps the branch in the graph.
                out[:1] += self.Plora_B(self.Plora_A(self.lora_dropout(x[:1]))) * 0
        return out.reshape(batch, length, -1)
