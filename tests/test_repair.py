"""`repair: truncate` through the real pipeline: the good prefix of a conversation whose later
turns scored low goes to clean/, its original to review/, and every count still adds up.

The model is a plug-in that reads a reward per assistant turn (`TurnAnswerLengthModel`: an
answer holding 'bad' scores -5 at its turn, others by their length), so which turn is low is
known in advance.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.config import SourceConfig
from pipelines.jobs.clean import run
from pipelines.jobs.export import export_run
from tests.helpers import TURN_TEST_MODEL, jpeg_bytes, tiny_config, write_json
from transforms.report.summary import CountsNotConservedError, check_conservation
from transforms.shards.shard_index import index_path, iter_index
from transforms.shards.stored_samples import iter_stored_samples

GOOD = "A fine answer about it."


def _conversation(*answers: str, image_in_turn: int = 0) -> list[dict]:
    turns = []
    for number, answer in enumerate(answers):
        placeholder = "<image>\n" if number == image_in_turn else ""
        turns += [
            {"from": "human", "value": f"{placeholder}Question {number + 1}?"},
            {"from": "gpt", "value": answer},
        ]
    return turns


CONVERSATIONS = {
    "all-good": _conversation(GOOD, GOOD, GOOD),
    "bad-last": _conversation(GOOD, GOOD, "bad"),
    "bad-middle": _conversation(GOOD, "bad", GOOD),
    "bad-first": _conversation("bad", GOOD),
    "single-bad": _conversation("bad"),
    # Its image placeholder is in the turn that would be cut: the prefix would lose it.
    "image-later": _conversation(GOOD, "bad", image_in_turn=1),
}
# Clean single-turn samples of different scores, so a percentile has a spread to cut.
FILLERS = {f"filler-{n}": _conversation(" ".join(["word"] * n)) for n in range(1, 8)}


def _dataset(root: Path) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "images" / "a.jpg").write_bytes(jpeg_bytes())
    records = [
        {"id": sid, "image": "images/a.jpg", "conversations": turns, "note": sid}
        for sid, turns in {**CONVERSATIONS, **FILLERS}.items()
    ]
    write_json(root / "multi.json", records)
    return root


def _config(root: Path, out: Path, repair: str | None = "truncate", **overrides):
    return tiny_config(
        root,
        out,
        model=TURN_TEST_MODEL,
        repair=repair,
        sources=(SourceConfig("multi", ("multi.json",)),),
        **overrides,
    )


def _stored(prefix: Path, folder: str) -> dict:
    import fsspec

    fs = fsspec.filesystem("file")
    return {
        sample.id: sample
        for shard in sorted((prefix / folder).glob("part-*"))
        for _, sample in iter_stored_samples(fs, str(shard))
    }


@pytest.mark.slow
@pytest.mark.parametrize(
    "file_format, cut", [("parquet", {"threshold": -2.0}), ("webdataset", {"percentile": 45.0})]
)
def test_good_prefixes_go_to_clean_and_the_originals_to_review(tmp_path, file_format, cut):
    out = tmp_path / "out"
    summary = run(_config(_dataset(tmp_path / "data"), out, format=file_format, **cut))
    counts = summary["counts"]["per_source"]["multi"]
    # 13 conversations: 2 repaired (counted as clean), 3 only in review.
    assert counts == {
        "input": 13, "clean": 10, "review": 3, "errors": 0, "repaired": 2,
        "repaired_originals": 2,
    }  # fmt: skip
    assert summary["repair"] == {"mode": "truncate", "repaired": 2, "turns_dropped": 3}
    # The percentile cuts the routing scores (lowest turn): the filler scoring -1 is the cut.
    assert summary["cuts"]["multi"] == (-2.0 if "threshold" in cut else pytest.approx(-1.0))
    clean, review = _stored(out, "clean"), _stored(out, "review")
    assert set(review) == {"bad-last", "bad-middle", "bad-first", "single-bad", "image-later"}
    assert set(clean) == {"all-good", "bad-last", "bad-middle", *FILLERS}

    prefix, original = clean["bad-last"], review["bad-last"]
    assert prefix.conversations == CONVERSATIONS["bad-last"][:4]
    assert prefix.turn_scores == original.turn_scores[:2] and prefix.score == prefix.turn_scores[1]
    assert prefix.repaired_from == {
        "messages": 6, "turns": 3, "score": -5.0, "dropped_turn_scores": [-5.0],
    }  # fmt: skip
    assert prefix.reason is None and prefix.media[0].data == jpeg_bytes()
    assert original.conversations == CONVERSATIONS["bad-last"]
    assert original.repaired_prefix == {"messages": 4, "turns": 2}
    assert original.reason == "low_score_turn"
    assert original.detail.startswith("assistant turn 3 of 3 scored -5.000, ")
    assert original.detail.endswith("'bad'; repaired: its first 2 turn(s) are in clean/")
    middle = clean["bad-middle"]
    assert middle.conversations == CONVERSATIONS["bad-middle"][:2]
    assert middle.repaired_from["dropped_turn_scores"] == [-5.0, pytest.approx(0.609, abs=1e-3)]
    for sid in ("bad-first", "image-later"):
        assert review[sid].reason == "low_score_turn" and review[sid].repaired_prefix is None
    assert review["single-bad"].reason in ("low_score", "low_percentile")
    assert clean["all-good"].turn_scores == [pytest.approx(0.609, abs=1e-3)] * 3

    # The index knows which is which without reading a shard; flagged rows name the turn.
    repairs = {
        (folder, row["id"]): row["repair"]
        for folder in ("clean", "review")
        for row in iter_index(index_path(str(out), folder))
        if row["repair"]
    }
    assert repairs == {
        ("clean", "bad-last"): "repaired", ("clean", "bad-middle"): "repaired",
        ("review", "bad-last"): "original", ("review", "bad-middle"): "original",
    }  # fmt: skip
    flagged = {
        row["id"]: row
        for row in map(json.loads, (out / "report" / "flagged.jsonl").read_text().splitlines())
    }
    assert set(flagged) == set(review)
    assert flagged["bad-middle"]["low_score_turn"] == 1
    assert flagged["bad-middle"]["question"] == "Question 2?"
    assert flagged["bad-middle"]["answer"] == "bad"
    assert flagged["bad-middle"]["repaired_prefix_turns"] == 1
    assert flagged["bad-middle"]["turn_scores"] == review["bad-middle"].turn_scores
    assert flagged["bad-first"]["repaired_prefix_turns"] is None
    csv_header = (out / "report" / "flagged.csv").read_text().splitlines()[0].split(",")
    assert csv_header[-3:] == ["turn_scores", "low_score_turn", "repaired_prefix_turns"]

    # Export gives the repaired records as the dataset would hold them: the kept turns only.
    exported = tmp_path / "export"
    export_run(str(out), str(exported))
    records = {r["id"]: r for r in json.loads((exported / "multi.json").read_text())}
    assert set(records) == set(clean)
    assert records["bad-last"] == {
        "id": "bad-last",
        "image": "images/a.jpg",
        "conversations": CONVERSATIONS["bad-last"][:4],
        "note": "bad-last",
    }


@pytest.mark.slow
def test_without_repair_nothing_is_truncated(tmp_path):
    out = tmp_path / "out"
    summary = run(_config(_dataset(tmp_path / "data"), out, repair=None, threshold=-2.0))
    assert summary["counts"]["per_source"]["multi"] == {
        "input": 13, "clean": 8, "review": 5, "errors": 0
    }  # fmt: skip
    assert summary["repair"] is None
    assert all(s.repaired_from is None for s in _stored(out, "clean").values())


def test_a_prefix_without_its_original_fails_the_count_check():
    counts = {"input": 3, "clean": 2, "review": 1, "errors": 0}
    summary = {"counts": {"per_source": {"s": {**counts, "repaired": 1, "repaired_originals": 0}}}}
    with pytest.raises(CountsNotConservedError, match="1 repaired prefixes in clean/ but 0"):
        check_conservation(summary)
    summary["counts"]["per_source"]["s"]["repaired_originals"] = 1
    check_conservation(summary)


def _decision(summary: dict, sample_id: str, verdict: str, by_origin: bool = True) -> dict:
    from transforms.core.run_identity import run_id

    line = {"run": run_id(summary), "id": sample_id, "source": "multi", "decision": verdict}
    if by_origin:
        line["origin"] = f"{summary['input']}/multi.json[{list(CONVERSATIONS).index(sample_id)}]"
    return line


@pytest.mark.slow
def test_apply_review_on_a_repaired_run_keeps_whole_or_keeps_the_repair(tmp_path):
    from pipelines.jobs.apply_review import apply_review

    out = tmp_path / "out"
    summary = run(_config(_dataset(tmp_path / "data"), out, threshold=-2.0))
    decisions = tmp_path / "decisions.jsonl"
    lines = [
        _decision(summary, "bad-last", "keep"),  # the whole conversation after all
        _decision(summary, "bad-middle", "drop", by_origin=False),  # the repair stands
        _decision(summary, "bad-first", "drop"),
    ]
    decisions.write_text("".join(json.dumps(line) + "\n" for line in lines))
    reviewed = apply_review(str(out), [str(decisions)], str(tmp_path / "reviewed"))
    assert reviewed["counts"]["per_source"]["multi"] == {
        "input": 13, "clean": 10, "review": 2, "dropped": 1, "errors": 0, "repaired": 1,
        "repaired_originals": 1,
    }  # fmt: skip
    assert reviewed["repair"] == {"mode": "truncate", "repaired": 1, "restored": 1}
    assert reviewed["review"]["decisions"] == {"keep": 1, "drop": 2}
    new = tmp_path / "reviewed"
    clean, dropped = _stored(new, "clean"), _stored(new, "dropped")
    # Kept whole: the original replaced its prefix in clean/.
    assert clean["bad-last"].conversations == CONVERSATIONS["bad-last"]
    assert clean["bad-last"].review_decision == "keep" and clean["bad-last"].repaired_prefix is None
    # Dropped: the original is in dropped/, its prefix still in clean/.
    assert clean["bad-middle"].conversations == CONVERSATIONS["bad-middle"][:2]
    assert dropped["bad-middle"].repaired_prefix == {"messages": 2, "turns": 1}
    assert set(dropped) == {"bad-middle", "bad-first"}
    assert set(_stored(new, "review")) == {"single-bad", "image-later"}
    roles = {
        (folder, row["id"]): row["repair"]
        for folder in ("clean", "review", "dropped")
        for row in iter_index(index_path(str(new), folder))
        if row["repair"]
    }
    assert roles == {("clean", "bad-middle"): "repaired", ("dropped", "bad-middle"): "original"}

    # Nobody decided: under --undecided keep the repairs stand and the originals are dropped.
    decisions.write_text(json.dumps(_decision(summary, "bad-first", "keep")) + "\n")
    policy = apply_review(str(out), [str(decisions)], str(tmp_path / "kept"), undecided="keep")
    # The originals in dropped/ are counted with their prefixes, in clean.
    assert policy["counts"]["per_source"]["multi"] == {
        "input": 13, "clean": 13, "review": 0, "dropped": 0, "errors": 0, "repaired": 2,
        "repaired_originals": 2,
    }  # fmt: skip
    kept = _stored(tmp_path / "kept", "clean")
    assert kept["bad-last"].conversations == CONVERSATIONS["bad-last"][:4]
    policy_dropped = _stored(tmp_path / "kept", "dropped")
    assert set(policy_dropped) == {"bad-last", "bad-middle"}
    assert policy_dropped["bad-last"].review_decision == "undecided"
