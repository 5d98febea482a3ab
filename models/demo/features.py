"""Samples to the small, fixed-size inputs the demo reward model reads.

Text becomes hashed word ids (crc32 of normalised lowercase words, so ids are stable across
processes and Python versions); media becomes two thumbnails (first and last sampled frame; an
image fills only the first) plus an estimate of how many separate shapes the first one holds.
Everything here is plain numpy so it can be computed once per sample and cached for training.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from transforms.core.record import ASSISTANT_ROLES, HUMAN_ROLES, VIDEO, Sample

SIZE = 64  # thumbnail side in pixels; shapes in the sample data stay >= ~4 px at this size
MAX_QUESTION_TOKENS = 64
MAX_ANSWER_TOKENS = 128
MAX_COUNT = 6  # object-count estimates are clipped to 0..MAX_COUNT
KIND_TEXT, KIND_IMAGE, KIND_VIDEO = 0, 1, 2

_PLACEHOLDER = re.compile(r"<(image|video)>\s*", re.IGNORECASE)
_WORD = re.compile(r"[a-z]+|\d+")
_OPTION = re.compile(r"^\s*\(?([A-H])[.):]\s*(.+?)\s*$")
_LETTER_ANSWER = re.compile(
    r"^\s*(?:the answer is\s*)?\(?([A-H])(?:[.):]\s*(.*)|\s*)$", re.I | re.S
)
_NUMBERS = {
    w: str(i)
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve".split()
    )
}


def words(text: str) -> list[str]:
    """Lowercase words and digit runs; number words become digits and plural 's' is dropped,
    so "three circles" and "3 circle" give the same ids."""
    out = []
    for word in _WORD.findall(_PLACEHOLDER.sub(" ", text).lower()):
        word = _NUMBERS.get(word, word)
        if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        out.append(word)
    return out


def hash_ids(tokens: list[str], buckets: int, limit: int) -> list[int]:
    """Bucket ids in 1..buckets-1 (0 is padding)."""
    return [zlib.crc32(t.encode()) % (buckets - 1) + 1 for t in tokens[:limit]]


def question_answer(conversations: list[dict[str, Any]]) -> tuple[str, str]:
    """The last human turn and the last assistant turn (see `readable_pair`): what the model
    reads for the sample's score."""
    question = answer = ""
    for turn in conversations:
        if turn.get("from") in HUMAN_ROLES:
            question = str(turn.get("value") or "")
        elif turn.get("from") in ASSISTANT_ROLES:
            answer = str(turn.get("value") or "")
    return readable_pair(question, answer)


def turn_pairs(conversations: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """One (question, answer) per assistant turn, in order: the answer and the human turn
    before it. For a conversation that ends with an answer, the last pair is exactly
    `question_answer`'s, so the last turn's score is the sample's score."""
    pairs, question = [], ""
    for turn in conversations:
        if turn.get("from") in HUMAN_ROLES:
            question = str(turn.get("value") or "")
        elif turn.get("from") in ASSISTANT_ROLES:
            pairs.append(readable_pair(question, str(turn.get("value") or "")))
    return pairs


def readable_pair(question: str, answer: str) -> tuple[str, str]:
    """A multiple-choice letter answer is replaced by its option's text and the options are
    removed from the question, so a bag-of-words model judges the content of the chosen
    option rather than a bare letter."""
    options: dict[str, str] = {}
    stem = []
    for line in question.splitlines():
        match = _OPTION.match(line)
        if match:
            options[match.group(1).upper()] = match.group(2)
        else:
            stem.append(line)
    if len(options) >= 2:
        question = "\n".join(stem)
        letter = _LETTER_ANSWER.match(answer)
        if letter and letter.group(1).upper() in options:
            rest = letter.group(2) or ""
            answer = options[letter.group(1).upper()] + (" " + rest if rest else "")
    return question, answer


def _thumbnail(frame: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (3, SIZE, SIZE) uint8, area-averaged (stretched, not cropped, so no
    shape is cut off)."""
    image = Image.fromarray(np.ascontiguousarray(frame[..., :3]))
    return np.asarray(image.resize((SIZE, SIZE), Image.Resampling.BOX)).transpose(2, 0, 1)


def _background(thumb: np.ndarray) -> np.ndarray:
    """Background colour in [0, 1]: the median of the border pixels."""
    border = np.concatenate(
        [thumb[:, 0, :], thumb[:, -1, :], thumb[:, :, 0], thumb[:, :, -1]], axis=1
    )
    return np.median(border, axis=1).astype(np.float32) / 255.0


def count_objects(thumb: np.ndarray, background: np.ndarray, threshold: float = 0.3) -> int:
    """Number of separate foreground blobs, via the Euler number of the foreground mask
    (Gray's 2x2-quad formula, 8-connectivity); exact for blobs without holes."""
    diff = np.abs(thumb.astype(np.float32) / 255.0 - background[:, None, None]).max(axis=0)
    mask = np.pad(diff > threshold, 1).astype(np.int8)
    a, b, c, d = mask[:-1, :-1], mask[:-1, 1:], mask[1:, :-1], mask[1:, 1:]
    total = a + b + c + d
    q1 = int((total == 1).sum())
    q3 = int((total == 3).sum())
    qd = int(((total == 2) & (a == d)).sum())
    return int(np.clip(round((q1 - q3 - 2 * qd) / 4), 0, MAX_COUNT))


def _components(mask: np.ndarray) -> np.ndarray:
    """4-connected component labels (0 = background) by iterated min-label propagation."""
    big = mask.size + 1
    labels = np.where(mask, np.arange(1, mask.size + 1).reshape(mask.shape), big)
    for _ in range(4 * sum(mask.shape)):
        padded = np.pad(labels, 1, constant_values=big)
        neighbours = np.minimum.reduce(
            [
                padded[1:-1, 1:-1],
                padded[:-2, 1:-1],
                padded[2:, 1:-1],
                padded[1:-1, :-2],
                padded[1:-1, 2:],
            ]
        )
        updated = np.where(mask, neighbours, big)
        if np.array_equal(updated, labels):
            break
        labels = updated
    return np.where(mask, labels, 0)


FILL_CENTRES = (0.5, 0.64, 0.785, 0.9, 1.0)  # triangle .. circle .. square
HUE_BINS = 12  # 30-degree hue bins of the foreground
STATS = 7 + len(FILL_CENTRES) + HUE_BINS  # per-frame statistics, see `frame_stats`


def _hue_histogram(rgb: np.ndarray) -> np.ndarray:
    """Share of (N, 3) pixels in each of HUE_BINS hue bins (HSV hue, 0-360 degrees)."""
    hsv = np.asarray(Image.fromarray((rgb[None] * 255).astype(np.uint8)).convert("HSV"))[0]
    bins = (hsv[:, 0].astype(np.int64) * HUE_BINS) // 256
    return np.bincount(bins, minlength=HUE_BINS)[:HUE_BINS] / max(len(bins), 1)


def frame_stats(frame: np.ndarray, threshold: float = 0.3) -> np.ndarray:
    """Hand-made summary of the foreground (pixels far from the border colour) of one frame:
    [area share, mean colour r/g/b, centroid x/y in -1..1, blob count/4, mean fill of the blobs'
    bounding boxes as soft bins around FILL_CENTRES, share of foreground per hue bin].

    The fill of a blob's bounding box (triangle ~0.5, circle ~0.79, square ~1) survives the
    non-uniform stretch of a thumbnail, so it tells shapes apart whatever the aspect ratio; soft
    bins make each shape a separate input instead of a position on one scale."""
    image = Image.fromarray(np.ascontiguousarray(frame[..., :3]))
    thumb = np.asarray(image.resize((2 * SIZE, 2 * SIZE), Image.Resampling.BOX), np.float32)
    thumb /= 255.0
    border = np.concatenate([thumb[0], thumb[-1], thumb[:, 0], thumb[:, -1]])
    diff = np.abs(thumb - np.median(border, axis=0)).max(axis=2)
    mask = diff > threshold
    out = np.zeros(STATS, np.float32)
    if mask.sum() < 4:
        return out
    ys, xs = np.nonzero(mask)
    out[0] = mask.mean()
    out[1:4] = thumb[mask].mean(axis=0)
    out[4] = xs.mean() / (mask.shape[1] - 1) * 2 - 1
    out[5] = ys.mean() / (mask.shape[0] - 1) * 2 - 1
    labels = _components(mask)
    fills, areas = [], []
    for label in np.unique(labels[labels > 0]):
        by, bx = np.nonzero(labels == label)
        if len(by) < 6:  # compression speckle
            continue
        box = (by.max() - by.min() + 1) * (bx.max() - bx.min() + 1)
        fills.append(len(by) / box)
        areas.append(len(by))
    if areas:
        fill = float(np.average(fills, weights=areas))
        out[6] = len(areas) / 4.0
        out[7 : 7 + len(FILL_CENTRES)] = np.exp(-(((fill - np.array(FILL_CENTRES)) / 0.06) ** 2))
    out[7 + len(FILL_CENTRES) :] = _hue_histogram(thumb[mask])
    return out


@dataclass
class Features:
    """One sample's model inputs (numpy, unbatched)."""

    question: list[int]
    answer: list[int]
    kind: int
    frames: np.ndarray  # (2, 3, SIZE, SIZE) uint8: first and last frame (zeros if absent)
    background: np.ndarray  # (2, 3) float32 in [0, 1]
    counts: np.ndarray  # (2,) int64: blob counts of the two frames
    stats: np.ndarray  # (2, STATS) float32: `frame_stats` of the two frames


def media_features(
    pixels: np.ndarray | None, kind: str | None
) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Kind code, thumbnails, background colours, blob counts and frame statistics (zeros for
    text-only)."""
    frames = np.zeros((2, 3, SIZE, SIZE), np.uint8)
    background = np.zeros((2, 3), np.float32)
    counts = np.zeros(2, np.int64)
    stats = np.zeros((2, STATS), np.float32)
    if pixels is None or kind is None:
        return KIND_TEXT, frames, background, counts, stats
    pixels = np.asarray(pixels)
    if kind == VIDEO or pixels.ndim == 4:
        picked, code = [pixels[0], pixels[-1]], KIND_VIDEO
    else:
        picked, code = [pixels], KIND_IMAGE
    for i, frame in enumerate(picked):
        frames[i] = _thumbnail(frame)
        background[i] = _background(frames[i])
        counts[i] = count_objects(frames[i], background[i])
        stats[i] = frame_stats(frame)
    return code, frames, background, counts, stats


def _decoded_media(sample: Sample) -> tuple[np.ndarray | None, str | None]:
    """The sample's first media item as pixels, as the pipeline's decode step left it."""
    if not sample.media:
        return None, None
    if not sample.decoded or sample.decoded[0] is None:
        # Decoding belongs to the decode step (killable workers, the run's limits), as for
        # every backend; undecoded media here means the caller skipped it.
        raise ValueError(
            f"sample {sample.id}: media {sample.media[0].path!r} reached the demo model "
            "undecoded; decode it first (transforms/media/decode.py)"
        )
    return sample.decoded[0], sample.media[0].kind


def sample_features(sample: Sample, buckets: int) -> Features:
    pixels, kind = _decoded_media(sample)
    return build_features(sample.conversations, pixels, kind, buckets)


def build_features(
    conversations: list[dict[str, Any]], pixels: np.ndarray | None, kind: str | None, buckets: int
) -> Features:
    question, answer = text_ids(*question_answer(conversations), buckets)
    code, frames, background, counts, stats = media_features(pixels, kind)
    return Features(
        question=question,
        answer=answer,
        kind=code,
        frames=frames,
        background=background,
        counts=counts,
        stats=stats,
    )


def text_ids(question: str, answer: str, buckets: int) -> tuple[list[int], list[int]]:
    """Hashed word ids of a question and its answer, cut where the model stops reading."""
    return (
        hash_ids(words(question), buckets, MAX_QUESTION_TOKENS),
        hash_ids(words(answer), buckets, MAX_ANSWER_TOKENS),
    )


def pad_ids(rows: list[list[int]]) -> np.ndarray:
    """(len(rows), longest) token ids, 0 = padding."""
    padded = np.zeros((len(rows), max([len(r) for r in rows] + [1])), np.int64)
    for i, row in enumerate(rows):
        padded[i, : len(row)] = row
    return padded


def collate(items: list[Features]) -> dict[str, np.ndarray]:
    """Stack features into padded numpy arrays (token id 0 = padding)."""
    return {
        "question": pad_ids([f.question for f in items]),
        "answer": pad_ids([f.answer for f in items]),
        "kind": np.array([f.kind for f in items], np.int64),
        "frames": np.stack([f.frames for f in items]),
        "background": np.stack([f.background for f in items]),
        "counts": np.stack([f.counts for f in items]),
        "stats": np.stack([f.stats for f in items]),
    }
