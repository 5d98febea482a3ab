"""Qwen2-VL / Qwen2.5-VL checkpoints with a scalar value head (Skywork-VL-Reward design).

score = value_head(last hidden state at each sample's last token), and a turn score per
assistant turn = value_head(the hidden state where the chat template ends that turn), from the
same forward pass (`turn_ends.py`, `value_reads.py`). Everything goes through transformers' own
model classes; inputs are built on the CPU by `qwen_vl_inputs.py`.

Packed (the default, `packing: true`): each micro-batch is one row without padding
(`packing.py`), its images and video frames go through the vision tower in one pass (one
varlen attention call over their windows, `varlen_attention.py`), and the language model runs
the row with each sample's own rope positions, attention never crossing from one sample into
another. `packing: false` runs the model's own padded forward instead (left or right padding).

The value head and the chat template are found by `value_head/checkpoint.py`.
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch

from models.base import Reward
from models.loading import (
    ModelConfigError,
    check_device,
    checkpoint_fingerprint,
    resolve_device,
    resolve_dtype,
    take_options,
)
from models.micro_batches import MicroBatchedModel
from models.spec import BackendSpec
from models.tokens import QwenTokenEstimator
from models.value_head.checkpoint import (
    chat_template_of,
    find_value_head,
    load_value_head,
)
from models.value_head.qwen_vl_inputs import (
    PackedQwenInputs,
    PaddedQwenInputs,
    QwenVlInputs,
    image_processor_class,
)
from models.value_head.varlen_attention import packed_attention, use_attention
from models.work import WorkMeter, timed_forward
from transforms.core.record import Sample

DEFAULTS: dict[str, Any] = {
    "path": None,
    "dtype": "auto",
    "device": "auto",
    "packing": True,  # one padding-free row per micro-batch; false: the model's padded forward
    "padding_side": "right",  # padded forward only
    # None: packed, flash-attn's kernels when installed on CUDA, else rmclean's varlen
    # attention (torch's varlen kernel on CUDA); padded, sdpa.
    "attn_implementation": None,
    "min_pixels": None,  # default: the checkpoint's preprocessor_config.json
    "max_pixels": None,
    "video_max_pixels": 28 * 28 * 128,
    "video_max_frames": 32,
    "video_fps": 1.0,  # the decode step's sampling rate; sets Qwen2.5-VL's temporal positions
    "max_batch_tokens": None,  # token budget per forward (padded size, or packed total)
    "max_batch_size": None,
}


class VlmValueHeadRewardModel(MicroBatchedModel):
    """`RewardModel` over a Qwen2-VL-family base model plus a linear value head."""

    name = "vlm-value-head"
    prepare_ahead = True  # resizing, patching and tokenizing overlap the previous forward

    def __init__(
        self,
        model: Any,
        value_head: torch.nn.Linear,
        tokenizer: Any,
        image_processor: Any,
        chat_template: str,
        options: dict[str, Any],
        device: torch.device | None = None,
    ):
        self.model = model.eval()
        self.device = device or next(model.parameters()).device
        self.value_head = value_head.float().to(self.device).eval()
        self.packed = bool(options["packing"])
        self.padding_side = options["padding_side"]
        self.max_batch_tokens = options["max_batch_tokens"]
        self.max_batch_size = options["max_batch_size"]
        self.inputs = QwenVlInputs(
            tokenizer,
            image_processor,
            chat_template,
            model.config,
            model.get_rope_index,
            options,
            model.dtype,
        )
        self.work = WorkMeter()
        self.estimate_tokens = QwenTokenEstimator(
            self.inputs.min_pixels,
            self.inputs.max_pixels,
            self.inputs.video_max_pixels,
            self.inputs.video_max_frames,
        )

    def build_inputs(self, samples: list[Sample]) -> dict[str, torch.Tensor]:
        """The padded layout on the CPU (the model's own forward takes it)."""
        return self.inputs.padded(samples, self.padding_side).batch

    def _prepare(self, samples: list[Sample]) -> Any:
        if self.packed:
            return self.inputs.packed(samples)
        return self.inputs.padded(samples, self.padding_side)

    def _forward(self, inputs: Any) -> list[float | Reward]:
        if isinstance(inputs, PackedQwenInputs):
            return self._forward_packed(inputs.to(self.device, self.model.dtype))
        return self._forward_padded(inputs)

    def _forward_padded(self, inputs: PaddedQwenInputs) -> list[float | Reward]:
        rows, columns = inputs.reads.padded(inputs.batch["attention_mask"])
        batch = {k: v.to(self.device) for k, v in inputs.batch.items()}
        with torch.inference_mode(), timed_forward(self.device, self.model.visual) as times:
            hidden = self.model(**batch, use_cache=False).last_hidden_state
            read = hidden[rows.to(hidden.device), columns.to(hidden.device)]
            values = self.value_head(read.float()).squeeze(-1).cpu()
        mask = batch["attention_mask"]
        self.work.record(
            int(mask.sum()), mask.numel(), times.vision_seconds, times.language_seconds
        )
        return inputs.reads.rewards(values.tolist())

    def _forward_packed(self, inputs: PackedQwenInputs) -> list[float | Reward]:
        row, media = inputs.row, inputs.media
        with torch.inference_mode(), timed_forward(self.device, self.model.visual) as times:
            embeds = self.model.get_input_embeddings()(row.input_ids)
            if media.pixels is not None:
                encoded = self.model.visual(media.pixels, grid_thw=media.grid_thw)
                features = getattr(encoded, "pooler_output", encoded).to(embeds.dtype)
                image_rows = sum(media.image_tokens)
                for token_id, rows in (
                    (self.model.config.image_token_id, features[:image_rows]),
                    (self.model.config.video_token_id, features[image_rows:]),
                ):
                    slots = (row.input_ids == token_id).unsqueeze(-1)
                    embeds = embeds.masked_scatter(slots, rows) if len(rows) else embeds
            hidden = self.model.language_model(
                inputs_embeds=embeds,
                position_ids=inputs.position_ids,
                attention_mask=None,
                use_cache=False,
                **row.attention_kwargs(),
            ).last_hidden_state
            values = self.value_head(hidden[0, row.read_at].float()).squeeze(-1).cpu()
        self.work.record(row.tokens, row.tokens, times.vision_seconds, times.language_seconds)
        return row.reads.rewards(values.tolist())


def preflight(options: dict[str, Any] | None, workers_here: bool = True) -> None:
    """Unknown options; with `workers_here`, a missing checkpoint or value head, or an
    unusable device, too: all before any weight loads."""
    options = take_options("vlm-value-head", options, DEFAULTS)
    if not workers_here:
        return
    path = str(options["path"])
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise ModelConfigError(
            f"vlm-value-head: {path!r} is not a checkpoint folder (no config.json); download "
            "it first, e.g. `hf download Skywork/Skywork-VL-Reward-7B "
            f"--local-dir {path}`"
        )
    find_value_head(path)
    check_device("vlm-value-head", path, options["device"])


def load_vlm_value_head(options: dict[str, Any] | None = None) -> VlmValueHeadRewardModel:
    """Factory: options as in `DEFAULTS`; `path` is a local checkpoint directory."""
    options = take_options("vlm-value-head", options, DEFAULTS)
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    path = str(options["path"])
    check_device("vlm-value-head", path, options["device"])
    device = resolve_device(options["device"])
    dtype = resolve_dtype(options["dtype"], device)
    config = AutoConfig.from_pretrained(path)
    if not config.model_type.startswith(("qwen2_vl", "qwen2_5_vl")):
        raise ValueError(f"vlm-value-head supports Qwen2-VL / Qwen2.5-VL, not {config.model_type}")
    head = load_value_head(path, config.get_text_config().hidden_size)
    requested = options["attn_implementation"]
    attention = packed_attention(requested, device) if options["packing"] else requested or "sdpa"
    model = AutoModel.from_pretrained(path, dtype=dtype).to(device)
    use_attention(model, attention)
    tokenizer = AutoTokenizer.from_pretrained(path)
    image_processor = image_processor_class().from_pretrained(path)
    return VlmValueHeadRewardModel(
        model, head, tokenizer, image_processor, chat_template_of(path, tokenizer), options, device
    )


def saved_pixel_bounds(path: str | None) -> tuple[int, int]:
    """(min_pixels, max_pixels) from a local checkpoint's preprocessor_config.json."""
    default = (56 * 56, 28 * 28 * 1280)
    config_file = os.path.join(path, "preprocessor_config.json") if path else ""
    if not config_file or not os.path.exists(config_file):
        return default
    with open(config_file) as handle:
        saved = json.load(handle)
    size = saved.get("size") or {}
    return (
        int(size.get("shortest_edge", saved.get("min_pixels", default[0]))),
        int(size.get("longest_edge", saved.get("max_pixels", default[1]))),
    )


def _estimator(options: dict[str, Any]) -> QwenTokenEstimator:
    saved = saved_pixel_bounds(options.get("path"))
    return QwenTokenEstimator(
        int(options["min_pixels"] or saved[0]),
        int(options["max_pixels"] or saved[1]),
        int(options["video_max_pixels"]),
        int(options["video_max_frames"]),
    )


def _fingerprint(options: dict[str, Any]) -> str | None:
    return checkpoint_fingerprint(options.get("path"))


SPEC = BackendSpec(
    name="vlm-value-head",
    defaults=DEFAULTS,
    load=load_vlm_value_head,
    estimator=_estimator,
    check=preflight,
    fingerprint=_fingerprint,
    # Scores cached before turn scores were read lack them: those caches are not reused.
    holds="turn scores",
    # Frames are sampled by the decode step (decode.video_fps / decode.max_frames): the
    # model's temporal positions must say the same.
    run_options=("max_batch_tokens", "max_batch_size", "video_fps", "video_max_frames"),
)
