"""Preference pairs (faithful vs corrupted conversation) for training the demo reward model.

Training seeds are kept disjoint from sample-dataset seeds: ``preference_pairs`` only accepts
seeds >= ``TRAINING_SEED_MIN`` (10_000) and ``write_sample_dataset`` only seeds below it, and the
two draw from differently-named random streams, so the model is never trained on the exact
images, videos or conversations it is later asked to clean.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from . import conversations as C
from .scenes import (
    differs_everywhere,
    encode_image,
    encode_video,
    random_image_scene,
    random_video_scene,
)
from .wordbank import TOPICS

TRAINING_SEED_MIN = 10_000
KIND_WEIGHTS = {"image": 0.6, "video": 0.2, "text": 0.2}  # roughly the sample dataset's mix
# empty_answer is included although the pipeline's rules catch it first: a reward model that
# never saw an empty answer scores it anywhere, e.g. above the -2.0 cut for about half of them.
_PAIR_DEFECTS = {"image": C.IMAGE_DEFECTS, "video": C.VIDEO_DEFECTS, "text": C.TEXT_DEFECTS}


@dataclass(frozen=True)
class Pair:
    """One preference pair; ``media`` is the encoded image/video (None for text)."""

    kind: str  # "image" | "video" | "text"
    media: bytes | None
    media_ext: str  # "jpeg", "png", "mp4" or "" for text
    chosen: list[dict]
    rejected: list[dict]
    defect: str


def preference_pairs(
    n: int, seed: int, kind_weights: dict[str, float] | None = None
) -> Iterator[Pair]:
    """Yield ``n`` pairs deterministically for ``seed`` (which must be >= 10_000), mixing
    image/video/text by ``kind_weights`` (default KIND_WEIGHTS)."""
    if seed < TRAINING_SEED_MIN:
        raise ValueError(f"training seeds must be >= {TRAINING_SEED_MIN} (sample seeds are below)")
    rng = random.Random(f"rmclean-pairs:{seed}")
    mix = kind_weights or KIND_WEIGHTS
    kinds, weights = list(mix), list(mix.values())
    for _ in range(n):
        kind = rng.choices(kinds, weights)[0]
        yield {"image": _image_pair, "video": _video_pair, "text": _text_pair}[kind](rng)


def _image_pair(rng: random.Random) -> Pair:
    scene = random_image_scene(rng)
    style = rng.choice(C.IMAGE_STYLES)
    chosen = C.image_conversation(scene, style, rng)
    defect = rng.choice(_PAIR_DEFECTS["image"])
    donor = None
    while defect == "mismatched" and (donor is None or donor[-1] == chosen[-1]):
        # A donor must say something else (a multiple-choice donor can pick the same letter).
        donor = C.image_conversation(_distinct(scene, random_image_scene, rng), style, rng)
    ext = "png" if rng.random() < 0.2 else "jpeg"
    media = encode_image(scene, "PNG" if ext == "png" else "JPEG")
    rejected = C.corrupt(chosen, defect, scene, rng, donor)
    return Pair("image", media, ext, chosen, rejected, defect)


def _video_pair(rng: random.Random) -> Pair:
    scene = random_video_scene(rng)
    style = rng.choice(C.VIDEO_STYLES)
    chosen = C.video_conversation(scene, style, rng)
    defect = rng.choice(_PAIR_DEFECTS["video"])
    donor = None
    while defect == "mismatched" and (donor is None or donor[-1] == chosen[-1]):
        # A donor must say something else (a multiple-choice donor can pick the same letter).
        donor = C.video_conversation(_distinct(scene, random_video_scene, rng), style, rng)
    rejected = C.corrupt(chosen, defect, scene, rng, donor)
    return Pair("video", encode_video(scene), "mp4", chosen, rejected, defect)


def _text_pair(rng: random.Random) -> Pair:
    topic = rng.choice(sorted(TOPICS))
    chosen = C.text_conversation(rng, topic)
    defect = rng.choice(_PAIR_DEFECTS["text"])
    donor = None
    if defect == "mismatched":
        donor = C.text_conversation(rng, rng.choice([t for t in sorted(TOPICS) if t != topic]))
    rejected = C.corrupt(chosen, defect, topic, rng, donor)
    return Pair("text", None, "", chosen, rejected, defect)


def _distinct(scene, draw, rng: random.Random):
    """Draw scenes until one differs from ``scene`` in every stated attribute."""
    while True:
        other = draw(rng)
        if differs_everywhere(scene, other):
            return other
