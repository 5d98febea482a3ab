"""The bundled demo reward model: loads from disk, batches exactly, ranks faithful over corrupt."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.demo.features import question_answer, words
from models.demo.model import DEFAULT_DIR, WEIGHTS_FILE, DemoRewardModel
from synth.pairs import preference_pairs
from transforms.core.record import MediaRef, Sample
from transforms.media.decode import decode_image, decode_video

SEED = 20_255  # >= 10_000 like training seeds, not the training or held-out seed; 60 pairs
# from it hold every defect class at least twice


@pytest.fixture(scope="module")
def model() -> DemoRewardModel:
    return DemoRewardModel.from_pretrained(DEFAULT_DIR)


@pytest.fixture(scope="module")
def pairs() -> list:
    return list(preference_pairs(60, SEED))


def to_sample(pair, conversations, name: str, decode: bool = True) -> Sample:
    if pair.kind == "text":
        return Sample(id=name, source="test", conversations=conversations)
    ref = MediaRef(kind=pair.kind, path=f"{name}.{pair.media_ext}", data=pair.media)
    decoder = decode_image if pair.kind == "image" else decode_video
    decoded = [decoder(pair.media, max_side=1024)] if decode else None
    return Sample(id=name, source="test", conversations=conversations, media=[ref], decoded=decoded)


def test_weights_load_from_disk_and_are_small(model):
    assert (DEFAULT_DIR / WEIGHTS_FILE).stat().st_size < 3 * 1024 * 1024
    assert model.name and model.version
    assert math.isfinite(model.scale) and math.isfinite(model.offset)


def scores(model, samples) -> list[float]:
    return [reward.score for reward in model.score(samples)]


def test_batched_scores_equal_single_scores(model, pairs):
    samples = [to_sample(p, p.chosen, f"c{i}") for i, p in enumerate(pairs[:12])]
    batched = scores(model, samples)
    single = [scores(model, [s])[0] for s in samples]
    assert batched == pytest.approx(single, abs=1e-4)
    # A sample's score does not depend on its batch-mates or their order.
    reordered = scores(model, samples[::-1][:7])
    assert reordered == pytest.approx(batched[::-1][:7], abs=1e-4)
    assert all(isinstance(v, float) and math.isfinite(v) for v in batched)


@pytest.mark.parametrize(
    "defect",
    [
        "wrong_object",
        "wrong_colour",
        "wrong_count",
        "wrong_motion",
        "mismatched",
        "off_topic",
        "empty_answer",
    ],
)
def test_faithful_outscores_corrupted(model, pairs, defect):
    chosen = [p for p in pairs if p.defect == defect][:3]
    assert chosen, f"no {defect} pair generated"
    for i, p in enumerate(chosen):
        good, bad = scores(model, [to_sample(p, p.chosen, "good"), to_sample(p, p.rejected, "bad")])
        assert good > bad, (defect, i, good, bad)


def test_every_kind_scores(model, pairs):
    kinds = {}
    for p in pairs:
        kinds.setdefault(p.kind, p)
    assert set(kinds) == {"text", "image", "video"}
    samples = [to_sample(p, p.chosen, k) for k, p in kinds.items()]
    assert all(math.isfinite(s) for s in scores(model, samples))
    # Like every backend it reads the decode step's pixels; it never decodes bytes itself.
    for kind in ("image", "video"):
        undecoded = to_sample(kinds[kind], kinds[kind].chosen, kind + "-bytes", decode=False)
        with pytest.raises(ValueError, match="undecoded"):
            model.score([undecoded])
    empty = [{"from": "human", "value": "<image>\nWhat is shown?"}, {"from": "gpt", "value": ""}]
    assert math.isfinite(scores(model, [to_sample(kinds["image"], empty, "empty")])[0])
    assert model.score([]) == []


def test_text_features():
    assert words("<image>\nThree red Circles, 3 squares") == ["3", "red", "circle", "3", "square"]
    question, answer = question_answer(
        [
            {"from": "human", "value": "<video>\nWhere does it go?\nA. left\nB. up\nC. right"},
            {"from": "gpt", "value": "B."},
        ]
    )
    assert answer == "up" and "A." not in question


def test_calibration_offset_is_platt_unless_a_kind_would_be_flagged_too_often():
    from bench.demo_model.train import CLEAN_FLAG_SHARE, THRESHOLD, calibration_offset

    rng = np.random.default_rng(0)
    kinds = np.repeat([0, 1, 2], 200)
    chosen = rng.normal(5.0, 1.0, 600)
    # Platt's offset is kept when the cut flags no kind's faithful samples too often ...
    assert calibration_offset(1.0, -0.5, chosen, kinds) == -0.5
    # ... and raised, never lowered, when one kind sits low: text here, 10% of it below the cut.
    chosen[:20] = -3.0
    b = calibration_offset(1.0, -0.5, chosen, kinds)
    assert b > -0.5
    for k in range(3):
        assert (chosen[kinds == k] + b < THRESHOLD).mean() <= CLEAN_FLAG_SHARE


def test_every_assistant_turn_is_scored_as_the_conversation_cut_after_it(model, pairs):
    """Turn i's score is what the conversation kept up to answer i scores on its own (so a
    repaired prefix keeps its turn's score), and the last turn's is the sample's score."""
    images = [p for p in pairs if p.kind == "image"][:4]
    conversations, cut = [], []
    for i, p in enumerate(images):
        follow_up = {"from": "human", "value": p.rejected[0]["value"].split("\n", 1)[-1]}
        turns = [*p.chosen, follow_up, p.rejected[1], follow_up, p.chosen[1]]
        conversations.append(to_sample(p, turns, f"multi{i}"))
        cut += [to_sample(p, turns[: 2 * (k + 1)], f"cut{i}-{k}") for k in range(3)]
    rewards = model.score(conversations)
    alone = scores(model, cut)
    for i, reward in enumerate(rewards):
        assert len(reward.turn_scores) == 3
        assert reward.turn_scores == pytest.approx(alone[3 * i : 3 * i + 3], abs=1e-5)
        assert reward.score == reward.turn_scores[-1]
        # The corrupted answer in the middle is the low one.
        assert reward.turn_scores[1] < min(reward.turn_scores[0], reward.turn_scores[2])
