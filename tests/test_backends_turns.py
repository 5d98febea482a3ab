"""Turn scores of the value-head backends, on tiny real transformers models (Qwen2-VL,
Qwen2.5-VL, a Llama-style and a Gemma-2-style text RM) in fp32 on the CPU.

Each turn score, read from the one forward pass over the whole conversation, equals the score of
the conversation cut after that answer scored on its own (within 1e-4), packed and padded, in
micro-batches mixing multi-turn, single-turn, text-only, image and video samples; no extra
forward pass runs for them; a single-turn sample's score is the model's own value at its last
token; and a template or sample whose cuts cannot be read gets its score only, said once."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from bench.random_text_rm import make_text_samples
from bench.random_value_head import make_mixed_samples, with_turns
from models.base import Reward, score_of
from models.chat import to_chat
from models.registry import loader_for
from tests.tiny_models import VALUE_HEAD_CHECKPOINTS
from transforms.core.record import Sample

ATOL = 1e-4
CHECKPOINTS = VALUE_HEAD_CHECKPOINTS
LAYOUTS = {
    "packed": {},
    "padded_right": {"packing": False},
    "padded_left": {"packing": False, "padding_side": "left"},
}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("turns")
    return {name: build(root / name) for name, (_, build) in CHECKPOINTS.items()}


def backend_of(name: str) -> str:
    return CHECKPOINTS[name][0]


def load(name: str, path: Path, **options):
    return loader_for(backend_of(name), {"path": str(path), **options})()


def samples_for(name: str) -> list[Sample]:
    """Media models: text-only, 1-10-crop image, video and two-image samples in turn, of 1 to
    5 answers; text models: conversations of 1 to 4 answers; some opening with a system
    message, some ending with an unanswered question."""
    if backend_of(name) == "vlm-value-head":
        return with_turns(make_mixed_samples(12, seed=2, scale=0.05), seed=2, max_answers=5)
    return with_turns(make_text_samples(12, seed=3, scale=0.01), seed=3, max_answers=1)


def answers(sample: Sample) -> list[int]:
    return [i for i, turn in enumerate(sample.conversations) if turn["from"] == "gpt"]


def cut(sample: Sample, answer: int) -> Sample:
    """The sample as a conversation ending with its answer number `answer` (from 0)."""
    return sample.replace(conversations=sample.conversations[: answers(sample)[answer] + 1])


def scored_alone(model, sample: Sample) -> float:
    return score_of(model.score([sample])[0])


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("name", list(CHECKPOINTS))
def test_turn_scores_from_one_pass_equal_each_cut_scored_alone(checkpoints, name, layout):
    samples = samples_for(name)
    kinds = {(len(answers(s)) > 1, bool(s.media) and s.media[0].kind) for s in samples}
    if backend_of(name) == "vlm-value-head":  # one micro-batch really mixes all of these
        assert {(True, "image"), (True, "video"), (True, False), (False, "image")} <= kinds
    model = load(name, checkpoints[name], **LAYOUTS[layout])
    alone = load(name, checkpoints[name], packing=False)
    results = model.score(samples)
    assert model.work.take().forward_passes == 1
    for sample, result in zip(samples, results, strict=True):
        assert isinstance(result, Reward) and len(result.turn_scores) == len(answers(sample))
        cuts = [scored_alone(alone, cut(sample, i)) for i in range(len(answers(sample)))]
        assert list(result.turn_scores) == pytest.approx(cuts, abs=ATOL), sample.id
        assert result.score == pytest.approx(scored_alone(alone, sample), abs=ATOL)
        ends_with_answer = answers(sample)[-1] == len(sample.conversations) - 1
        # The last answer's read is the score's own when nothing follows it.
        assert (result.turn_scores[-1] == result.score) is ends_with_answer
    assert len({round(score_of(r), 6) for r in results}) == len(results)


@pytest.mark.parametrize("name", list(CHECKPOINTS))
def test_turn_scores_cost_no_extra_forward_pass(checkpoints, name):
    """Counted twice: calls into the language model (and the vision tower) and the work meter,
    whose tokens are the whole conversations' only: no cut was run."""
    samples = samples_for(name)
    model = load(name, checkpoints[name])
    language = model.model.language_model if backend_of(name) == "vlm-value-head" else model._base
    calls = {"language": 0, "vision": 0}
    language.register_forward_hook(lambda *_: calls.__setitem__("language", calls["language"] + 1))
    vision = getattr(model.model, "visual", None)
    if vision is not None:
        vision.register_forward_hook(lambda *_: calls.__setitem__("vision", calls["vision"] + 1))
    results = model.score(samples)
    turns = sum(len(r.turn_scores) for r in results)
    assert turns > len(samples) + 10  # many more values than samples...
    assert calls == {"language": 1, "vision": int(vision is not None)}  # ...from one pass
    work = model.work.take()
    assert work.forward_passes == 1
    whole = sum(getattr(model._prepare([s]), "row", model._prepare([s])).tokens for s in samples)
    assert work.real_tokens == work.computed_tokens == whole


@pytest.mark.parametrize("layout", ["packed", "padded_left"])
@pytest.mark.parametrize("name", list(CHECKPOINTS))
def test_split_into_micro_batches_each_gets_one_forward_pass(checkpoints, name, layout):
    """Micro-batches of at most 5 (12 samples: 3 of them): three language-model calls, three
    forward passes metered, and the same scores and turn scores as one micro-batch gives."""
    samples = samples_for(name)
    whole = load(name, checkpoints[name], **LAYOUTS[layout]).score(samples)
    model = load(name, checkpoints[name], max_batch_size=5, **LAYOUTS[layout])
    language = model.model.language_model if backend_of(name) == "vlm-value-head" else model._base
    calls = []
    language.register_forward_hook(lambda *_: calls.append(1))
    split = model.score(samples)
    assert len(calls) == model.work.take().forward_passes == 3
    for one, other in zip(whole, split, strict=True):
        assert list(other.turn_scores) == pytest.approx(list(one.turn_scores), abs=ATOL)
        assert other.score == pytest.approx(one.score, abs=ATOL)


def own_last_token_value(name: str, model, sample: Sample) -> float:
    """The sample's score as the transformers model itself gives it (text RM: its own
    sequence-classification pooling; VLM: its own forward, the value head on the last token)."""
    with torch.inference_mode():
        if backend_of(name) == "text-rm":
            text = model.tokenizer.apply_chat_template(to_chat(sample), tokenize=False)
            ids = model.tokenizer(text, add_special_tokens=False, return_tensors="pt")
            return float(model.model(**ids).logits[0, 0])
        batch = model.build_inputs([sample])
        hidden = model.model(**batch, use_cache=False).last_hidden_state
        return float(model.value_head(hidden[0, -1]))


@pytest.mark.parametrize("name", list(CHECKPOINTS))
def test_a_single_turn_samples_score_is_the_models_own_last_token_value(checkpoints, name):
    samples = samples_for(name)
    model = load(name, checkpoints[name])
    results = model.score(samples)
    single = [(s, r) for s, r in zip(samples, results, strict=True) if len(answers(s)) == 1]
    single = [(s, r) for s, r in single if s.conversations[-1]["from"] == "gpt"]
    assert len(single) >= 2
    for sample, result in single:
        assert result.turn_scores == (result.score,)
        assert result.score == pytest.approx(own_last_token_value(name, model, sample), abs=1e-5)


def template_with(rule: str) -> str:
    """The tiny checkpoints' Qwen-style template, with one real template's habit that moves
    tokens when a conversation is cut:
    - "thinking": the last answer gets an empty thinking block (Qwen3's templates), so no cut
      is ever the start of the whole conversation;
    - "system_last": the system prompt is written into the last user turn (Mistral's v0.3
      template), so only conversations with a system prompt and several answers break."""
    content = (
        "{% macro text(c) %}{% if c is string %}{{ c }}{% else %}{% for p in c %}"
        "{% if p['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
        "{% elif p['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
        "{% else %}{{ p['text'] }}{% endif %}{% endfor %}{% endif %}{% endmacro %}"
    )
    if rule == "thinking":
        return content + (
            "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
            "{% if m['role'] == 'assistant' and loop.last %}<think>\n\n</think>\n\n{% endif %}"
            "{{ text(m['content']) }}<|im_end|>\n{% endfor %}"
        )
    return content + (
        "{% set ns = namespace(last_user=-1, system='') %}"
        "{% for m in messages %}{% if m['role'] == 'user' %}{% set ns.last_user = loop.index0 %}"
        "{% elif m['role'] == 'system' %}{% set ns.system = m['content'] %}{% endif %}"
        "{% endfor %}"
        "{% for m in messages %}{% if m['role'] != 'system' %}<|im_start|>{{ m['role'] }}\n"
        "{% if loop.index0 == ns.last_user and ns.system %}{{ text(ns.system) }}\n\n{% endif %}"
        "{{ text(m['content']) }}<|im_end|>\n{% endif %}{% endfor %}"
    )


def with_template(path: Path, template: str, into: Path) -> Path:
    """A copy of a checkpoint whose tokenizer carries `template`."""
    import shutil

    from transformers import AutoTokenizer

    shutil.copytree(path, into)
    tokenizer = AutoTokenizer.from_pretrained(into)
    tokenizer.chat_template = template
    tokenizer.save_pretrained(into)
    return into


def turn_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "models.value_head.turn_ends"]


@pytest.mark.parametrize("name", ["qwen2_5_vl", "llama"])
def test_a_template_that_cannot_mark_turn_ends_gives_scores_only_said_once(
    checkpoints, name, tmp_path, caplog
):
    path = with_template(checkpoints[name], template_with("thinking"), tmp_path / "thinking")
    samples = samples_for(name)
    with caplog.at_level(logging.WARNING, logger="models.value_head.turn_ends"):
        model = load(name, path)
        first = model.score(samples[:6])
        second = model.score(samples[6:])
    assert len(turn_warnings(caplog)) == 1
    assert "no turn scores for any sample" in turn_warnings(caplog)[0]
    assert "does not tokenize as the start of the whole" in turn_warnings(caplog)[0]
    alone = load(name, path, packing=False)
    for sample, result in zip(samples, first + second, strict=True):
        assert type(result) is float  # no invented turn scores, not even for one answer
        assert result == pytest.approx(scored_alone(alone, sample), abs=ATOL)


@pytest.mark.parametrize("layout", ["packed", "padded_left"])
@pytest.mark.parametrize("name", ["qwen2_vl", "gemma2"])
def test_a_sample_whose_cuts_do_not_tokenize_as_its_start_gets_its_score_only(
    checkpoints, name, layout, tmp_path, caplog
):
    path = with_template(checkpoints[name], template_with("system_last"), tmp_path / "system")
    samples = samples_for(name)
    with caplog.at_level(logging.WARNING, logger="models.value_head.turn_ends"):
        model = load(name, path, **LAYOUTS[layout])
        results = model.score(samples[:6]) + model.score(samples[6:])
    broken = [
        s.id for s in samples if s.conversations[0]["from"] == "system" and len(answers(s)) > 1
    ]
    assert len(broken) >= 2
    warnings = turn_warnings(caplog)  # the first broken sample named, the others not
    assert len(warnings) == 1 and f"sample {broken[0]} gets its score only" in warnings[0]
    assert "cut after answer 0 does not tokenize as the start" in warnings[0]
    alone = load(name, path, packing=False)
    for sample, result in zip(samples, results, strict=True):
        if sample.id in broken:
            assert type(result) is float, sample.id
            assert result == pytest.approx(scored_alone(alone, sample), abs=ATOL)
            continue
        cuts = [scored_alone(alone, cut(sample, i)) for i in range(len(answers(sample)))]
        assert list(result.turn_scores) == pytest.approx(cuts, abs=ATOL), sample.id


def test_a_score_head_the_model_pools_itself_gives_scores_only(checkpoints, caplog):
    """text-rm pools a head that is not a plain linear layer through the model's own forward,
    which returns the last token's logits only."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from models.value_head.text_rm import DEFAULTS, TextRewardModel

    model = AutoModelForSequenceClassification.from_pretrained(checkpoints["llama"])
    model.score = torch.nn.Sequential(model.score)
    tokenizer = AutoTokenizer.from_pretrained(checkpoints["llama"])
    with caplog.at_level(logging.WARNING, logger="models.value_head.text_rm"):
        backend = TextRewardModel(model, tokenizer, dict(DEFAULTS))
    assert not backend.packed and backend.turn_ends is None
    assert any("no turn scores" in r.getMessage() for r in caplog.records)
    samples = samples_for("llama")
    reference = load("llama", checkpoints["llama"], packing=False).score(samples)
    results = backend.score(samples)
    assert all(type(result) is float for result in results)
    assert results == pytest.approx([r.score for r in reference], abs=ATOL)
