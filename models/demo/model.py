"""The bundled demo reward model: loads once, scores a batch of samples in one forward pass,
with a score for every assistant turn of each conversation.

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

from models.base import Reward
from transforms.core.record import Sample

from .features import (
    Features,
    collate,
    pad_ids,
    question_answer,
    sample_features,
    text_ids,
    turn_pairs,
)
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

    def score(self, samples: Sequence[Sample]) -> list[Reward]:
        """Calibrated rewards from one batched pass: each sample's media is encoded once, then
        read with every (question, answer) pair of its conversation, one per assistant turn.

        The sample's score is its last pair's (the last human turn and the last answer), as it
        always was; the turn scores are every pair's, so `turn_scores[i]` is also what the
        conversation cut after answer i would score.
        """
        if not samples:
            return []
        media_items = [sample_features(s, self.buckets) for s in samples]
        questions, answers, owners, rows = [], [], [], []
        for number, sample in enumerate(samples):
            pairs = turn_pairs(sample.conversations)
            whole = question_answer(sample.conversations)
            # The sample's own pair is its last turn's, unless the conversation does not end
            # with an answer (the rules send those to review before any model sees them).
            texts = pairs if pairs and pairs[-1] == whole else [*pairs, whole]
            rows.append((len(owners), len(pairs), len(texts)))
            for question, answer in texts:
                q_ids, a_ids = text_ids(question, answer, self.buckets)
                questions.append(q_ids)
                answers.append(a_ids)
                owners.append(number)
        with torch.inference_mode():
            media = {k: v.to(self.device) for k, v in to_tensors(media_items).items()}
            encoded = self.net.encode_media(media)
            owner = torch.tensor(owners, device=self.device)
            raw = self.net.score_text(
                encoded[owner],
                torch.from_numpy(pad_ids(questions)).to(self.device),
                torch.from_numpy(pad_ids(answers)).to(self.device),
            ).cpu()
        calibrated = (raw.double() * self.scale + self.offset).tolist()
        rewards = []
        for start, turns, texts in rows:
            scores = calibrated[start : start + texts]
            rewards.append(Reward(scores[-1], tuple(scores[:turns])))
        return rewards
