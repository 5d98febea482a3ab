import pytest

from transforms.core.record import MediaRef, Sample
from transforms.core.routes import REVIEW
from transforms.samples.route import EXCERPT_CHARS, percentile_cut, route_by_cut, route_by_threshold
from transforms.samples.rules import check_rules
from transforms.samples.turns import first_low_turn


def sample(turns, media=()):
    conversations = [{"from": role, "value": value} for role, value in turns]
    return Sample("s", "src", conversations, list(media))


IMAGE = [MediaRef("image", "a.jpg")]


@pytest.mark.parametrize(
    "turns, media, reason",
    [
        ([("human", "<image>\nQ?"), ("gpt", "Fine answer.")], IMAGE, None),
        ([("human", "Q?"), ("gpt", "  ")], (), "empty_answer"),
        ([("human", "Q?"), ("gpt", "N/A")], (), "empty_answer"),
        ([("human", "<image>\n "), ("gpt", "A red square.")], IMAGE, "empty_question"),
        ([("human", "How many?"), ("gpt", "None.")], (), None),
        ([("gpt", "answer")], (), "missing_turn"),
        ([("human", "Q?")], (), "missing_turn"),
        ([("human", "Q?"), ("gpt", "A"), ("human", "Q2?")], (), "missing_turn"),
        ([("human", "<video>\nQ?"), ("gpt", "A")], IMAGE, "media_reference_without_media"),
        ([("human", "<image>\nQ?"), ("gpt", "A")], (), "media_reference_without_media"),
    ],
)
def test_rules(turns, media, reason):
    result = check_rules(sample(turns, media))
    assert (result[0] if result else None) == reason
    if result:
        assert result[1]  # a human-readable detail


def test_threshold_routes_strictly_below():
    s = sample([("human", "Q"), ("gpt", "A")])
    kept = route_by_threshold(s.replace(score=-2.0), -2.0)
    assert kept.score == -2.0 and kept.reason is None  # passed on: clean
    diverted = route_by_threshold(s.replace(score=-2.01), -2.0)
    assert diverted.tag == REVIEW
    assert diverted.value.reason == "low_score" and "-2.010" in diverted.value.detail


def test_percentile_cut_picks_the_lowest_share():
    quantiles = [float(i) for i in range(1001)]  # min 0 .. max 1000
    assert percentile_cut(quantiles, 10) == 100.0
    s = sample([("human", "Q"), ("gpt", "A")])
    assert route_by_cut(s.replace(score=99.5), 100.0, 10).tag == REVIEW
    assert route_by_cut(s.replace(score=100.0), 100.0, 10).reason is None


CONVERSATION = [
    ("human", "<image>\nWhat colour are the shapes?"),
    ("gpt", "They are red."),
    ("human", "How many are there?"),
    ("gpt", "There are    seven  shapes, all of them drawn in a bright red that fills the frame."),
    ("human", "Which shape?"),
    ("gpt", "Circles."),
]


@pytest.mark.parametrize("cut_kind", ["threshold", "percentile"])
def test_the_first_turn_below_the_cut_is_named_whatever_the_cut(cut_kind):
    s = sample(CONVERSATION, IMAGE)

    def route(scored):
        if cut_kind == "threshold":
            return route_by_threshold(scored, -2.0)
        return route_by_cut(scored, -2.0, 5)

    # The final reward recovered, but turns 2 and 3 scored low: turn 2 is named.
    low = route(s.replace(score=1.0, turn_scores=[0.5, -4.25, -3.0]))
    assert low.tag == REVIEW and low.value.reason == "low_score_turn"
    where = "below the threshold -2" if cut_kind == "threshold" else "in the lowest 5% of src"
    assert low.value.detail == (
        f"assistant turn 2 of 3 scored -4.250, {where}: "
        "'There are seven shapes, all of them drawn in a bright red that fills the frame.'"
    )
    assert first_low_turn(low.value.turn_scores, -2.0) == 1
    # Every turn above the cut: clean, as before.
    assert route(s.replace(score=1.0, turn_scores=[0.5, 0.1, 1.0])).reason is None
    # A single-turn sample (or one without turn scores) is routed by its score, as before.
    one = sample(CONVERSATION[:2], IMAGE).replace(score=-3.0, turn_scores=[-3.0])
    assert route(one).value.reason in ("low_score", "low_percentile")
    assert route(s.replace(score=-3.0)).value.reason in ("low_score", "low_percentile")


def test_a_long_answer_is_cut_in_the_detail():
    long_answer = "word " * 100
    s = sample([("human", "Q"), ("gpt", "fine"), ("human", "Q2"), ("gpt", long_answer)])
    flagged = route_by_threshold(s.replace(score=-5.0, turn_scores=[1.0, -5.0]), -2.0)
    quoted = flagged.value.detail.split(": ", 1)[1]
    assert len(quoted) == EXCERPT_CHARS + 2 and quoted.endswith("…'")


def test_the_routing_score_is_the_lowest_of_the_score_and_the_turn_scores():
    s = sample(CONVERSATION, IMAGE)
    assert s.routing_score is None
    assert s.replace(score=1.0).routing_score == 1.0
    assert s.replace(score=1.0, turn_scores=[0.5, -4.25, 2.0]).routing_score == -4.25
