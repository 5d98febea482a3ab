"""The bundled demo reward model: loads once, scores a batch of samples in one forward pass.

Scores are calibrated log-odds that a sample is faithful (Platt scaling fitted on held-out pairs,
see `train.py`), so 0 is a coin flip and -2.0, P(faithful) = 0.12 by that fit, is a sensible
review cut, matching the scale of IXC-2.5-Reward. Training raises the offset above Platt's only
if -2.0 would flag more than 3% of one kind's held-out faithful samples; config.json records
both (`b`, `b_platt`), and for the committed weights they are equal.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from transforms.core.record import Sample

from .features import Features, collate, sample_features
from .network import DemoRewardNet

DEFAULT_DIR = Path(__file__).resolve().parent
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.safetensors"


def to_tensors(items: list[Features]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in collate(items).items()}


class DemoRewardModel:
    """A few-MB CPU reward model for image, video and text-only samples."""

    def __init__(self, net: DemoRewardNet, config: dict, device: str = "cpu"):
        self.device = torch.device(device)
        self.net = net.eval().to(self.device)
        self.config = config
        self.name = str(config.get("name", "demo"))
        self.version = str(config.get("version", "0"))
        self.buckets = int(config["buckets"])
        self.scale = float(config["calibration"]["a"])
        self.offset = float(config["calibration"]["b"])

    @classmethod
    def from_pretrained(
        cls, directory: str | Path = DEFAULT_DIR, device: str = "cpu"
    ) -> DemoRewardModel:
        directory = Path(directory)
        config = json.loads((directory / CONFIG_FILE).read_text())
        net = DemoRewardNet(**config["network"])
        net.load_state_dict(load_file(str(directory / WEIGHTS_FILE)))
        return cls(net, config, device)

    def raw_scores(self, items: list[Features]) -> torch.Tensor:
        with torch.inference_mode():
            tensors = {k: v.to(self.device) for k, v in to_tensors(items).items()}
            return self.net(tensors).cpu()

    def score(self, samples: Sequence[Sample]) -> list[float]:
        """Calibrated rewards, one per sample, from a single batched forward pass."""
        if not samples:
            return []
        items = [sample_features(s, self.buckets) for s in samples]
        raw = self.raw_scores(items)
        return [float(v) for v in (raw.double() * self.scale + self.offset).tolist()]
