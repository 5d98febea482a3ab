"""Vision tower and projector of the IXC-2.5-Reward stand-in.

As upstream, the tower is built inside the model's `__init__` by `CLIPVisionModel.
from_pretrained` of a separate hub repo (transformers 5 refuses that on the meta device),
and an image of h x w crops becomes (h*w + 1) * 400 + 1 + (h + 1) * 20 tokens: a global
view and the crops, each 40 x 40 CLIP patches merged 2 x 2, with a separator per row.
"""

import torch
from torch import nn
from transformers import CLIPVisionModel

VISION_TOWER = "internlm/internlm-xcomposer2d5-clip"


def build_vision_tower(vision_tower=VISION_TOWER):
    return VisionTower(vision_tower)


def build_vision_projector(vision_hidden_size, hidden_size):
    return nn.Sequential(
        nn.Linear(4 * vision_hidden_size, hidden_size),
        nn.GELU(),
        nn.Linear(hidden_size, hidden_size),
    )


def _merge_2x2(features, side):
    """(n, side*side, C) patch features -> (n, side/2, side/2, 4C)."""
    n, _, channels = features.shape
    grid = features.reshape(n, side // 2, 2, side // 2, 2, channels)
    return grid.permute(0, 1, 3, 2, 4, 5).reshape(n, side // 2, side // 2, 4 * channels)


class VisionTower(nn.Module):
    def __init__(self, name):
        super().__init__()
        self.vision_tower = CLIPVisionModel.from_pretrained(name)
        self.vision_tower.requires_grad_(False)

    def forward(self, image, glb_sep, sub_sep):
        _, _, height, width = image.shape
        rows, cols = height // 560, width // 560
        crops = image.reshape(1, 3, rows, 560, cols, 560).permute(0, 2, 4, 1, 3, 5)
        crops = crops.reshape(rows * cols, 3, 560, 560)
        overview = nn.functional.interpolate(image, size=(560, 560), mode="bicubic")
        views = torch.cat([overview, crops]).to(self.vision_tower.dtype)
        hidden = self.vision_tower(views, output_hidden_states=True).hidden_states[-1][:, 1:]
        side = int(hidden.shape[1] ** 0.5)
        merged = _merge_2x2(hidden, side)  # (1 + rows*cols, 20, 20, 4C)
        half, channels = side // 2, merged.shape[-1]
        overview = torch.cat([merged[0], sub_sep.reshape(1, 1, channels).expand(half, 1, -1)], 1)
        tiles = merged[1:].reshape(rows, cols, half, half, channels).permute(0, 2, 1, 3, 4)
        tiles = tiles.reshape(rows * half, cols * half, channels)
        separators = sub_sep.reshape(1, 1, channels).expand(rows * half, 1, -1)
        tiles = torch.cat([tiles, separators], 1)
        parts = [overview.reshape(-1, channels), glb_sep.reshape(1, channels)]
        tokens = torch.cat([*parts, tiles.reshape(-1, channels)])
        expected = (rows * cols + 1) * 400 + 1 + (rows + 1) * 20
        assert tokens.shape[0] == expected, (tokens.shape, expected)
        return tokens.unsqueeze(0)
