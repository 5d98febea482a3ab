"""Per-source figures: a weak source shows up on its own row instead of vanishing in totals."""

from __future__ import annotations

import json

from bench.sample_quality import quality
from synth.scorecard import Scorecard


def _card() -> Scorecard:
    card = Scorecard()
    for i in range(38):
        card.add("allava_text", None, flagged=i < 4)
    for i in range(5):
        card.add("allava_text", "mismatched", flagged=i < 4)
    for _ in range(72):
        card.add("allava_laion_caption", None, flagged=False)
    for _ in range(3):
        card.add("allava_laion_caption", "wrong_count", flagged=True)
        card.add("allava_laion_caption", "mismatched", flagged=True)
    return card


def test_summary_keeps_each_source_apart():
    summary = _card().summary()
    assert summary["clean_flagged"] == 4 and summary["clean_total"] == 110
    assert summary["clean_flagged_fraction"] == round(4 / 110, 4)
    assert summary["recall"] == {"mismatched": 0.875, "wrong_count": 1.0}
    text = summary["sources"]["allava_text"]
    assert (text["clean_flagged"], text["clean_total"]) == (4, 38)
    assert text["clean_flagged_fraction"] == round(4 / 38, 4)
    # A class that does not occur in a source has no recall there (not 0, not 1).
    assert text["recall"] == {"mismatched": 0.8} and text["defects"] == {"mismatched": 5}
    laion = summary["sources"]["allava_laion_caption"]
    assert laion["clean_flagged"] == 0
    assert laion["recall"] == {"mismatched": 1.0, "wrong_count": 1.0}


def test_merge_adds_counts():
    total = Scorecard()
    total.merge(_card())
    total.merge(_card())
    assert total.cell("allava_text", "faithful") == (8, 76)
    assert total.cell(None, "mismatched") == (14, 16)


def test_table_has_a_row_per_source_and_dashes_for_absent_classes():
    lines = _card().table().splitlines()
    assert lines[0].split() == ["source", "faithful", "flagged", "mismatched", "wrong_count"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:]}
    assert rows["allava_text"] == ["4/38", "(10.5%)", "4/5", "-"]
    assert rows["allava_laion_caption"] == ["0/72", "(0.0%)", "3/3", "3/3"]
    assert rows["recall"] == ["0.875", "1.000"]


def test_quality_reads_labels_and_the_runs_flagged_list(tmp_path):
    labels = tmp_path / "labels.jsonl"
    rows = [
        {"id": "t0", "source": "allava_text", "defect": None},
        {"id": "t1", "source": "allava_text", "defect": None},
        {"id": "t2", "source": "allava_text", "defect": "off_topic"},
        {"id": "v0", "source": "llava_video_caption", "defect": "wrong_motion"},
    ]
    labels.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "run" / "report").mkdir(parents=True)
    flagged = [{"id": "t1"}, {"id": "t2"}]
    (tmp_path / "run" / "report" / "flagged.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in flagged)
    )
    measured = quality(str(labels), str(tmp_path / "run"))
    assert measured["recall"] == {"off_topic": 1.0, "wrong_motion": 0.0}
    assert measured["sources"]["allava_text"]["clean_flagged"] == 1
    assert measured["sources"]["llava_video_caption"]["clean_total"] == 0


def test_turn_quality_checks_the_found_turn_and_what_repair_kept(tmp_path):
    from bench.sample_quality import turn_quality
    from transforms.core.record import Sample
    from transforms.shards.shard_formats import ParquetShard

    def turns(n):
        return [
            {"from": role, "value": f"{role} {i}"} for i in range(n) for role in ("human", "gpt")
        ]

    source = "multi"
    labels = [
        ("found", "wrong_count", 2),  # found at its turn, the two turns before kept
        ("early", "wrong_colour", 1),  # a false alarm at turn 0 flagged it: nothing kept
        ("missed", "off_topic", 0),  # never flagged: in clean whole, planted turn and all
        ("fine", None, None),
        ("false-alarm", None, None),
    ]
    (tmp_path / "labels.jsonl").write_text(
        "".join(
            json.dumps({"id": i, "source": source, "defect": d, "turn": t}) + "\n"
            for i, d, t in labels
        )
        + json.dumps({"id": "single", "source": "other", "defect": None})
        + "\n"
    )
    run = tmp_path / "run"
    (run / "report").mkdir(parents=True)
    flagged = [
        {"id": "found", "source": source, "low_score_turn": 2, "repaired_prefix_turns": 2},
        {"id": "early", "source": source, "low_score_turn": 0, "repaired_prefix_turns": None},
        {"id": "false-alarm", "source": source, "low_score_turn": 1, "repaired_prefix_turns": 1},
    ]
    (run / "report" / "flagged.jsonl").write_text("".join(json.dumps(r) + "\n" for r in flagged))
    (run / "clean").mkdir()
    with open(run / "clean" / "part-00000-of-00001.parquet", "wb") as handle:
        shard = ParquetShard(handle)
        for sid, n in (("found", 2), ("missed", 3), ("fine", 4), ("false-alarm", 1)):
            shard.write(Sample(sid, source, turns(n)))
        shard.close()
    measured = turn_quality(str(tmp_path / "labels.jsonl"), str(run))
    assert measured == {
        source: {
            "defective": 3, "first_low_turn_is_planted": 1, "planted_turn_in_clean": 1,
            "with_good_prefix": 2, "good_prefix_kept_whole": 1, "planted_turn_in_a_repair": 0,
            "faithful": 2, "faithful_flagged": 1, "faithful_cut_short": 1,
            "first_low_turn_is_planted_share": 0.3333, "faithful_flagged_share": 0.5,
            "good_prefix_kept_whole_share": 0.5,
        }
    }  # fmt: skip
