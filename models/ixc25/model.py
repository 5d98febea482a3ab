"""IXC-2.5-Reward scored through its checkpoint's own `get_scores` (engine: upstream), the model
the batched engine (`ixc25/batched.py`) builds on. How the backend meets that code is in
`ixc25/backend.py`'s notes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import Any

import torch

from models.chat import assistant_turn_cuts
from models.ixc25.inputs import IMAGE_HERE, ixc_chat, render_prompt, video_geometry, write_media
from models.micro_batches import MicroBatchedModel
from models.tokens import IxcTokenEstimator, ixc_media_tokens
from models.work import WorkMeter
from transforms.core.record import Sample

# The model is given this many tokens more than the limit enforced here, so that its own
# cut never reaches a sample this backend counted as fitting (the counts agree to a few
# tokens: the chat format is rendered here, not by the model).
COUNT_SLACK = 64


def normalise_scores(raw: Any, count: int) -> list[float]:
    """One float per conversation from whatever get_scores returned (float, list, tensor)."""
    if isinstance(raw, torch.Tensor):
        flat = raw.detach().float().flatten().cpu().tolist()
    elif isinstance(raw, (int, float)):
        flat = [raw]
    else:
        flat = torch.as_tensor(raw, dtype=torch.float64).flatten().tolist()
    if len(flat) != count:
        raise RuntimeError(f"get_scores returned {len(flat)} scores for {count} conversations")
    return [float(score) for score in flat]


class Ixc25RewardModel(MicroBatchedModel):
    """`RewardModel` over a loaded IXC-2.5-Reward's get_scores (engine: upstream), or any
    model with the same API."""

    name = "ixc25"

    def __init__(self, model: Any, device: torch.device, dtype: torch.dtype, options: dict):
        self.model = model
        self.tokenizer = model.tokenizer
        self.device = device
        self.dtype = dtype
        self.hd_num = int(options["hd_num"])
        self.max_length = int(options["max_length"])
        run_budget, forward = options["max_batch_tokens"], int(options["forward_tokens"])
        self.max_batch_tokens = min(run_budget, forward) if run_budget else forward
        self.max_batch_size = options["max_batch_size"]
        self.tmp_dir = options["tmp_dir"]
        self.video_tokens = int(options["video_tokens"])
        self.estimate_tokens = IxcTokenEstimator(self.hd_num, self.video_tokens)
        self.per_turn = bool(options["per_turn"])
        self.work = WorkMeter()

    def _turn_cuts(self, sample: Sample) -> list[Sample] | None:
        return assistant_turn_cuts(sample) if self.per_turn else None

    def sample_tokens(self, sample: Sample) -> int:
        """Exact: the prompt's pieces between media tokenized as the model does, plus media."""
        media = len(sample.media)
        pieces = render_prompt(ixc_chat(sample), media).split(IMAGE_HERE)
        total = sum(
            len(self.tokenizer(piece, add_special_tokens=i == 0)["input_ids"])
            for i, piece in enumerate(pieces)
            if i == 0 or piece
        )
        return total + ixc_media_tokens(sample, self.hd_num, self.video_tokens, video_geometry)

    def _forward(self, samples: list[Sample]) -> list[float]:
        # The model's own code loads the media from files inside get_scores: nothing to
        # prepare ahead, the files are written per call.
        chats = [ixc_chat(sample) for sample in samples]
        call_dir = tempfile.mkdtemp(prefix=f"rmclean-ixc25-{os.getpid()}-", dir=self.tmp_dir)
        try:
            path_lists = []
            for number, sample in enumerate(samples):
                sample_dir = os.path.join(call_dir, f"{number:04d}")
                os.mkdir(sample_dir)
                paths = [write_media(sample, i, sample_dir) for i in range(len(sample.media))]
                path_lists.append(paths)
            with torch.inference_mode(), self._autocast():
                raw = self.model.get_scores(
                    chats,
                    path_lists,
                    max_length=self.max_length + COUNT_SLACK,
                    hd_num=self.hd_num,
                )
        finally:
            shutil.rmtree(call_dir, ignore_errors=True)
        lengths = [self.sample_tokens(sample) for sample in samples]
        self.work.record(sum(lengths), max(lengths) * len(lengths))  # get_scores pads right
        return normalise_scores(raw, len(samples))

    def _autocast(self):
        # The model's own evaluation runs under autocast: its vision tower hands fp32 features
        # to a bf16 projector. The CPU gets the same, so bf16 works there as on CUDA.
        if self.dtype in (torch.float16, torch.bfloat16):
            return torch.autocast(self.device.type, dtype=self.dtype)
        return contextlib.nullcontext()
