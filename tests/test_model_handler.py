import math

import pytest
from apache_beam.ml.inference.base import PredictionResult

from models.base import Reward, ScoreOutcome, score_isolating_failures
from models.handler import RewardModelHandler
from models.registry import loader_for
from pipelines.reward_handlers import scored_sample
from tests.helpers import TurnAnswerLengthModel
from transforms.core.record import Sample


def samples(*answers):
    return [
        Sample(f"s{i}", "src", [{"from": "human", "value": "Q"}, {"from": "gpt", "value": a}])
        for i, a in enumerate(answers)
    ]


class PoisonModel:
    """Fails any batch that contains the answer 'poison'; counts calls."""

    name = "poison"

    def __init__(self):
        self.calls = 0

    def score(self, batch):
        self.calls += 1
        answers = [s.assistant_turns()[-1] for s in batch]
        if "poison" in answers:
            raise RuntimeError("CUDA out of memory (simulated)")
        return [math.inf if a == "inf" else float(len(a)) for a in answers]


def test_one_bad_sample_fails_alone_and_scores_stay_paired():
    batch = samples("a", "bb", "poison", "dddd", "inf", "ffffff", "g", "hh")
    outcomes = score_isolating_failures(PoisonModel(), batch)
    assert [o.score for o in outcomes] == [1.0, 2.0, None, 4.0, None, 6.0, 1.0, 2.0]
    assert "out of memory" in outcomes[2].error
    assert "non-finite" in outcomes[4].error


def test_halving_costs_log_calls_not_one_per_sample():
    model = PoisonModel()
    score_isolating_failures(model, samples(*(["ok"] * 15 + ["poison"])))
    assert model.calls <= 2 * 4 + 1


def test_handler_loads_in_load_model_and_scores_a_batch_as_score_ahead_calls_it():
    """What `ScoreAhead` calls: `load_model` once, then `score_batch(batch, pool)` per batch,
    `estimate_tokens` per sample, `model_name` for the predictions it makes itself."""
    loaded = []
    handler = RewardModelHandler(
        lambda device: loaded.append(device) or PoisonModel(),
        "poison",
        devices=["cpu"],
        estimate_tokens=lambda sample: len(sample.assistant_turns()[-1]),
        max_batch_size=4,
    )
    assert loaded == []  # nothing loads before a worker asks (the handler is pickled to it)
    assert handler.batch_elements_kwargs()["max_batch_size"] == 4
    pool = handler.load_model()
    assert loaded == ["cpu"]
    batch = samples("abc", "poison")
    predictions, scored = handler.score_batch(batch, pool)
    assert [p.example.id for p in predictions] == ["s0", "s1"]
    assert [p.inference.score for p in predictions] == [3.0, None]
    assert "out of memory" in predictions[1].inference.error
    assert {p.model_id for p in predictions} == {"poison"} and handler.model_name == "poison"
    assert [p.inference for p in predictions] == scored.outcomes and scored.device == "cpu"
    assert [handler.estimate_tokens(s) for s in batch] == [3, 6]


def test_unknown_model_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="demo"):
        loader_for("nope")


def test_factories_load_by_import_path():
    model = loader_for("tests.helpers:AnswerLengthModel")()
    assert model.name == "answer-length"
    with pytest.raises(ValueError, match="cannot load"):
        loader_for("tests.helpers:NoSuchModel")


def test_turn_scores_travel_with_the_score_and_are_checked():
    two_turns = [
        {"from": "human", "value": "Q"},
        {"from": "gpt", "value": "a fine answer"},
        {"from": "human", "value": "Q2"},
        {"from": "gpt", "value": "bad"},
    ]
    batch = [samples("one two")[0], Sample("t", "src", two_turns)]
    outcomes = score_isolating_failures(TurnAnswerLengthModel(), batch)
    assert outcomes[0].turn_scores == (outcomes[0].score,)
    assert outcomes[1].turn_scores == (pytest.approx(math.log(3) - 1), -5.0)
    assert outcomes[1].score == -5.0
    scored = scored_sample(PredictionResult(batch[1], outcomes[1]))
    assert scored.turn_scores == list(outcomes[1].turn_scores) and scored.score == -5.0

    class NanTurn:
        name = "nan-turn"

        def score(self, batch):
            return [Reward(1.0, (float("nan"),)) for _ in batch]

    (broken,) = score_isolating_failures(NanTurn(), samples("x"))
    assert broken.score is None and "non-finite turn score" in broken.error
    # A backend that returns a turn score too few or too many costs that sample, with a reason.
    wrong = scored_sample(PredictionResult(batch[1], ScoreOutcome(1.0, turn_scores=(1.0,))))
    assert wrong.stage == "score" and wrong.reason == "turn_scores_mismatch"
    assert "1 turn scores for 2 assistant turns" in wrong.detail


def test_the_handler_plugs_into_beams_own_run_inference():
    """The pipeline scores through `ScoreAhead`, but the handler is a Beam `ModelHandler`: a
    user's own Beam job can hand it to `RunInference` and get the same outcomes, bad samples
    isolated, as `score_batch` gives."""
    import apache_beam as beam
    from apache_beam.ml.inference.base import RunInference
    from apache_beam.testing.util import assert_that, equal_to

    handler = RewardModelHandler(lambda device: PoisonModel(), "poison", devices=["cpu"])
    batch = samples("abc", "poison", "de")
    with beam.Pipeline() as pipeline:
        scored = (
            pipeline
            | beam.Create(batch)
            | RunInference(handler)
            | beam.Map(lambda p: (p.example.id, p.inference.score, p.model_id))
        )
        assert_that(
            scored, equal_to([("s0", 3.0, "poison"), ("s1", None, "poison"), ("s2", 2.0, "poison")])
        )
