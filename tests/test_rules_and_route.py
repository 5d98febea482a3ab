import pytest

from transforms.core.record import MediaRef, Sample
from transforms.samples.route import REVIEW, percentile_cut, route_by_cut, route_by_threshold
from transforms.samples.rules import check_rules


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
