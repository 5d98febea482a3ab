"""IXC-2.5-Reward scored a micro-batch at a time with the model's own parts (engine: batched).

`get_scores` (engine: upstream, `ixc25/backend.py`) reads every medium from a temporary file, builds
and encodes each one on the scoring thread, one vision-tower call per medium, then runs one
padded forward. This path builds the same inputs from what the pipeline already holds:
- on the helper thread, ahead of the forward (`MicroBatchedModel.prepare_ahead`): each image
  as the code reads it (`ixc25_inputs.image_as_read`), through the code's own `Image_transform`
  at the code's hd_num (6 with several media) and the model's `vis_processor`; each video from
  its bytes in memory through the code's own `load_video`, `frame2img` (with the model's font)
  and `Video_transform`; the prompt rendered and cut at the `<ImageHere>` markers as
  `apply_chat_template` does, each piece tokenized by the model's tokenizer (BOS on the first);
- on the scoring thread: one call of the model's vision tower (`vit`, which takes a list of
  images) and projector for every medium of the micro-batch, the model's token embeddings for
  the text, right padding with the pad token's embedding, and one call of the model's own
  `forward`, which reads each score at the last real position, as in `get_scores`.
Micro-batches are length-sorted (`micro_batches.py`), so padding stays small. The result equals
`get_scores` per sample (tests/test_ixc25.py checks it on the stand-in of the model's code).
"""

from __future__ import annotations

import io
import sys
from dataclasses import dataclass
from typing import Any

import torch

from models.ixc25.inputs import IMAGE_HERE, image_as_read, ixc_chat, render_prompt
from models.ixc25.model import Ixc25RewardModel
from models.loading import ModelConfigError
from models.tokens import IXC_MULTI_MEDIA_HD_NUM
from transforms.core.record import IMAGE, VIDEO, Sample

# What the batched path calls in the module of the model's code (imported there by name).
CODE_FUNCTIONS = ("Image_transform", "Video_transform", "frame2img", "load_video")
MODEL_PARTS = ("vit", "vision_proj", "plora_glb_GN", "plora_sub_GN", "vis_processor", "font")


@dataclass
class PreparedBatch:
    """One micro-batch's inputs: per sample, its pieces in order, each ("text", token ids) or
    ("media", index into `pixels`); `pixels` holds each medium as (1, 3, H, W) floats."""

    sequences: list[list[tuple[str, Any]]]
    pixels: list[torch.Tensor]


class Ixc25BatchedModel(Ixc25RewardModel):
    """`RewardModel` over IXC-2.5-Reward: inputs built ahead, one vision pass and one forward
    per micro-batch."""

    prepare_ahead = True

    def __init__(self, model: Any, device: torch.device, dtype: torch.dtype, options: dict):
        super().__init__(model, device, dtype, options)
        code = sys.modules.get(type(model).__module__)
        lacking = [name for name in CODE_FUNCTIONS if not hasattr(code, name)]
        lacking += [name for name in MODEL_PARTS if not hasattr(model, name)]
        if lacking:
            raise ModelConfigError(
                f"ixc25: this checkpoint's code has no {', '.join(lacking)}, which the batched "
                "engine calls; set `engine: upstream` under model_options"
            )
        self.code = code

    # -- helper thread ---------------------------------------------------------------------
    def _prepare(self, samples: list[Sample]) -> PreparedBatch:
        batch = PreparedBatch([], [])
        for sample in samples:
            media = len(sample.media)
            hd_num = self.hd_num if media <= 1 else IXC_MULTI_MEDIA_HD_NUM
            pieces = render_prompt(ixc_chat(sample), media).split(IMAGE_HERE)
            items: list[tuple[str, Any]] = []
            for index, piece in enumerate(pieces):
                if index == 0 or piece:
                    encoded = self.tokenizer(
                        piece, return_tensors="pt", add_special_tokens=index == 0
                    )
                    items.append(("text", encoded.input_ids))
                if index < media:
                    batch.pixels.append(self._pixels(sample, index, hd_num))
                    items.append(("media", len(batch.pixels) - 1))
            batch.sequences.append(items)
        return batch

    def _pixels(self, sample: Sample, index: int, hd_num: int) -> torch.Tensor:
        ref = sample.media[index]
        if ref.kind == IMAGE:
            image = self.code.Image_transform(image_as_read(sample, index), hd_num=hd_num)
        elif ref.kind == VIDEO:
            if not ref.data:
                raise ValueError(f"sample {sample.id}: video {ref.path!r} has no bytes to score")
            frames = self.code.load_video(io.BytesIO(ref.data))
            image = self.code.Video_transform(
                self.code.frame2img(frames, self.model.font), hd_num=hd_num
            )
        else:
            raise ValueError(f"sample {sample.id}: unsupported media kind {ref.kind!r}")
        return self.model.vis_processor(image).unsqueeze(0)

    # -- scoring thread --------------------------------------------------------------------
    def _forward(self, batch: PreparedBatch) -> list[float]:
        model, device = self.model, self.device
        embed = model.model.tok_embeddings
        with torch.inference_mode(), self._autocast():
            media = self._encode_media(batch.pixels)
            rows, marks = [], []
            for items in batch.sequences:
                parts = [
                    embed(value.to(device)) if kind == "text" else media[value]
                    for kind, value in items
                ]
                rows.append(torch.cat(parts, dim=1))
                marks.append(
                    torch.cat(
                        [
                            torch.full(part.shape[:2], kind == "media", device=device)
                            for part, (kind, _) in zip(parts, items, strict=True)
                        ],
                        dim=1,
                    )
                )
            lengths = torch.tensor([row.shape[1] for row in rows], device=device)
            longest = int(lengths.max())
            pad = embed(torch.tensor([[self.tokenizer.pad_token_id]], device=device))
            embeds = torch.cat(
                [torch.cat([r, pad.expand(1, longest - r.shape[1], -1)], dim=1) for r in rows]
            )
            im_mask = torch.cat(
                [torch.cat([m, m.new_zeros(1, longest - m.shape[1])], dim=1) for m in marks]
            )
            self.work.record(int(lengths.sum()), longest * len(rows))
            attention_mask = torch.arange(longest, device=device)[None] < lengths[:, None]
            outputs = model(
                inputs_embeds=embeds,
                attention_mask=attention_mask,
                im_mask=im_mask,
                use_cache=False,
            )
        return outputs.logits.float().flatten().tolist()

    def _encode_media(self, pixels: list[torch.Tensor]) -> list[torch.Tensor]:
        """Every medium of the micro-batch through the vision tower and projector at once."""
        if not pixels:
            return []
        model = self.model
        features, lengths = model.vit(
            [p.to(self.device) for p in pixels], model.plora_glb_GN, model.plora_sub_GN
        )
        return list(model.vision_proj(features).split(list(lengths), dim=1))
