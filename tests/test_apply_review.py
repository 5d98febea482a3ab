"""`rmclean apply-review`: decisions applied to a finished run, and every bad input refused.

The runs are real pipeline runs of the tiny dataset (conftest) with the known-score test model;
one more `img-bad` record shares its id with the first, as LLaVA-Video's questions share a
video's id, so only the origin tells them apart.
"""

from __future__ import annotations

import glob
import json
import shutil
import subprocess
from pathlib import Path

import fsspec
import pandas as pd
import pytest
import webdataset as wds

from pipelines.cli import main
from pipelines.jobs.clean import run
from tests.conftest import build_tiny_dataset
from tests.helpers import conversation, install_stamp, read_parquet_dir, tiny_config
from transforms.core.run_identity import run_id
from transforms.review.evidence import band_width, source_evidence
from transforms.review.matching import Match
from transforms.shards.shard_index import iter_index
from transforms.shards.stored_samples import iter_stored_samples

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", params=["parquet", "webdataset"])
def finished_run(request, tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp(f"run-{request.param}")
    root = build_tiny_dataset(base)
    records = json.loads((root / "images.json").read_text())
    records.append(
        {
            "id": "img-bad",
            "image": "images/good.jpg",
            "conversations": conversation("What is shown?", "bad again"),
        }
    )
    (root / "images.json").write_text(json.dumps(records))
    run(tiny_config(root, base / "out", format=request.param))
    return base / "out"


def _summary(prefix: Path) -> dict:
    return json.loads((prefix / "report" / "summary.json").read_text())


def _index(prefix: Path, folder: str) -> list[dict]:
    return list(iter_index(str(prefix / "index" / f"{folder}.parquet")))


def _line(prefix: Path, sample_id: str, decision: str, note="", by_origin=True, at=""):
    """A decision line as the page writes it; `at` picks one of several samples by origin."""
    rows = [r for r in _index(prefix, "review") + _index(prefix, "clean") if r["id"] == sample_id]
    row = next(r for r in rows if r["origin"].endswith(at))
    line = {
        "run": run_id(_summary(prefix)),
        "id": sample_id,
        "source": row["source"],
        "decision": decision,
        "note": note,
        "score": row["score"],
        "reason": row["reason"],
    }
    if by_origin:
        line["origin"] = row["origin"]
    return line


def _write(path: Path, lines: list[dict]) -> str:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return str(path)


def _samples(folder: Path, file_format: str) -> dict[str, list[dict]]:
    """id -> the stored rows with that id (as dicts: id, note, decision, origin, score)."""
    found: dict[str, list[dict]] = {}
    if file_format == "parquet":
        frame = read_parquet_dir(folder)
        rows = [
            {k: None if isinstance(v, float) and pd.isna(v) else v for k, v in row.items()}
            for row in frame.to_dict("records")
        ]  # pandas reads a missing string as NaN
    else:
        shards = sorted(glob.glob(str(folder / "*.tar")))
        rows = [
            json.loads(s["json"])
            for s in wds.WebDataset(shards, shardshuffle=False, empty_check=False)
        ]
    for row in rows:
        found.setdefault(row["id"], []).append(row)
    return found


def _apply(run_prefix: Path, new: Path, *files: str, extra=()) -> int:
    argv = ["apply-review", str(run_prefix), "--output", str(new), *extra]
    for path in files:
        argv += ["--decisions", path]
    return main(argv)


@pytest.mark.slow
def test_decisions_route_samples_and_counts_are_conserved(finished_run, tmp_path, capsys):
    file_format = _summary(finished_run)["format"]
    decisions = _write(
        tmp_path / "decisions.jsonl",
        [
            _line(finished_run, "img-bad", "keep", "the picture does show it", at="[6]"),
            _line(finished_run, "vid-bad", "drop", "wrong motion"),
            _line(finished_run, "img-good", "drop", "a near miss, pulled out"),
        ],
    )
    new = tmp_path / "reviewed"
    assert _apply(finished_run, new, decisions) == 0
    assert "1 kept, 2 dropped" in capsys.readouterr().out

    clean, review = _samples(new / "clean", file_format), _samples(new / "review", file_format)
    dropped = _samples(new / "dropped", file_format)
    assert sorted(clean) == ["img-bad", "txt-1", "vid-good"]
    kept = clean["img-bad"][0]
    assert kept["review_decision"] == "keep" and kept["review_note"] == "the picture does show it"
    assert kept["origin"].endswith("images.json[6]") and kept["score"] == -5.0
    assert clean["txt-1"][0]["review_decision"] is None
    assert sorted(review) == ["img-bad", "img-empty"]
    assert review["img-bad"][0]["origin"].endswith("images.json[1]")
    assert review["img-bad"][0]["review_decision"] is None
    assert {i: r[0]["review_decision"] for i, r in dropped.items()} == {
        "vid-bad": "drop",
        "img-good": "drop",
    }
    assert dropped["img-good"][0]["review_note"] == "a near miss, pulled out"
    run_errors = sorted(p.read_bytes() for p in (finished_run / "errors").glob("*.jsonl"))
    assert sorted(p.read_bytes() for p in (new / "errors").glob("*.jsonl")) == run_errors

    summary, before = _summary(new), _summary(finished_run)
    for source, counts in summary["counts"]["per_source"].items():
        assert counts["input"] == before["counts"]["per_source"][source]["input"]
        assert counts["input"] == sum(counts[k] for k in ("clean", "review", "dropped", "errors"))
    assert summary["counts"]["total"] == {
        "input": 10, "clean": 3, "review": 2, "dropped": 2, "errors": 3
    }  # fmt: skip
    assert summary["run_id"] != before["run_id"]
    assert summary["review"]["from_run"] == before["run_id"]
    assert summary["review"]["decisions"] == {"keep": 1, "drop": 2}
    assert set(summary["review"]["threshold_evidence"]) == {"images", "videos"}
    assert (new / "_SUCCESS").exists()

    # The new prefix has its own index, and it points at the samples.
    for folder in ("clean", "review", "dropped"):
        rows = _index(new, folder)
        assert sorted(r["id"] for r in rows) == sorted(
            i for i, found in _samples(new / folder, file_format).items() for _ in found
        )
        for row in rows:
            fs, root = fsspec.core.url_to_fs(str(new / row["shard"]))
            assert dict(iter_stored_samples(fs, root))[row["position"]].id == row["id"]
    flagged = [json.loads(x) for x in (new / "report" / "flagged.jsonl").read_text().splitlines()]
    assert sorted(f["id"] for f in flagged) == ["img-bad", "img-empty"]
    page = (new / "report" / "index.html").read_text()
    assert "Review applied" in page and '<th class="num">dropped</th>' in page


def test_a_reviewed_prefix_can_be_reviewed_again(finished_run, tmp_path):
    first = tmp_path / "first"
    decisions = _write(tmp_path / "a.jsonl", [_line(finished_run, "vid-bad", "drop")])
    assert _apply(finished_run, first, decisions) == 0
    again = _write(tmp_path / "b.jsonl", [_line(first, "img-empty", "keep", "fine after all")])
    second = tmp_path / "second"
    assert _apply(first, second, again) == 0
    counts = _summary(second)["counts"]["total"]
    assert (counts["clean"], counts["review"], counts["dropped"]) == (4, 2, 1)
    # the first round's dropped samples stay dropped; apply-review reads clean/ and review/
    assert (second / "dropped").exists()


@pytest.mark.parametrize(
    ("policy", "where", "marked"),
    [("keep", "clean", "undecided"), ("drop", "dropped", "undecided")],
)
def test_undecided_samples_follow_the_policy(finished_run, tmp_path, policy, where, marked):
    file_format = _summary(finished_run)["format"]
    decisions = _write(tmp_path / "d.jsonl", [_line(finished_run, "vid-bad", "keep")])
    new = tmp_path / "reviewed"
    assert _apply(finished_run, new, decisions, extra=["--undecided", policy]) == 0
    assert _samples(new / "review", file_format) == {}
    landed = _samples(new / where, file_format)
    assert [r["review_decision"] for r in landed["img-bad"]] == [marked, marked]
    assert landed["img-empty"][0]["review_decision"] == marked
    assert (new / "report" / "flagged.jsonl").read_text() == ""


def test_shards_without_decisions_are_copied_whole(finished_run, tmp_path):
    decisions = _write(tmp_path / "d.jsonl", [_line(finished_run, "vid-bad", "drop")])
    new = tmp_path / "reviewed"
    assert _apply(finished_run, new, decisions) == 0
    run_clean = sorted(p.read_bytes() for p in (finished_run / "clean").glob("part-*"))
    assert sorted(p.read_bytes() for p in (new / "clean").glob("part-*")) == run_clean


def test_decisions_by_id_alone_work_when_the_id_is_unique(finished_run, tmp_path):
    line = _line(finished_run, "vid-bad", "drop", by_origin=False)
    new = tmp_path / "reviewed"
    assert _apply(finished_run, new, _write(tmp_path / "d.jsonl", [line])) == 0
    assert _summary(new)["counts"]["total"]["dropped"] == 1


def _refused(finished_run, tmp_path, capsys, files, extra=(), new=None) -> str:
    new = new or tmp_path / "reviewed"
    assert _apply(finished_run, new, *files, extra=extra) == 2
    assert not new.exists()  # nothing written
    err = capsys.readouterr().err
    assert "nothing was written" in err
    return err


def test_unknown_ids_are_refused(finished_run, tmp_path, capsys):
    unknown = {**_line(finished_run, "vid-bad", "drop"), "id": "no-such-id", "origin": ""}
    good = _line(finished_run, "img-empty", "keep")
    err = _refused(finished_run, tmp_path, capsys, [_write(tmp_path / "d.jsonl", [good, unknown])])
    assert "d.jsonl:2: videos sample 'no-such-id' is not in this run's" in err
    assert "unknown id" in err


def test_a_decision_file_from_another_run_is_refused(finished_run, tmp_path, capsys):
    foreign = [{**_line(finished_run, "vid-bad", "drop"), "run": "someone-elses-run"}]
    err = _refused(finished_run, tmp_path, capsys, [_write(tmp_path / "old.jsonl", foreign)])
    assert "1 decision(s) belong to run someone-elses-run, not to this run" in err
    missing = [{k: v for k, v in _line(finished_run, "vid-bad", "drop").items() if k != "run"}]
    err = _refused(finished_run, tmp_path, capsys, [_write(tmp_path / "bare.jsonl", missing)])
    assert "does not say which run it belongs to" in err


def test_conflicting_decisions_across_files_are_refused(finished_run, tmp_path, capsys):
    a = _write(tmp_path / "alice.jsonl", [_line(finished_run, "vid-bad", "keep")])
    b = _write(tmp_path / "bob.jsonl", [_line(finished_run, "vid-bad", "drop", by_origin=False)])
    err = _refused(finished_run, tmp_path, capsys, [a, b])
    assert "conflicting decisions for videos sample 'vid-bad'" in err
    assert "alice.jsonl:1" in err and "bob.jsonl:1" in err
    # The same verdict twice is no conflict; the notes are kept together.
    c = _write(tmp_path / "carol.jsonl", [_line(finished_run, "vid-bad", "keep", "moves right")])
    new = tmp_path / "agreed"
    assert _apply(finished_run, new, a, c) == 0
    file_format = _summary(finished_run)["format"]
    assert _samples(new / "clean", file_format)["vid-bad"][0]["review_note"] == "moves right"


def test_an_id_shared_by_two_samples_needs_its_origin(finished_run, tmp_path, capsys):
    line = _line(finished_run, "img-bad", "drop", by_origin=False)
    err = _refused(finished_run, tmp_path, capsys, [_write(tmp_path / "d.jsonl", [line])])
    assert "names 2 samples that share this id" in err


def test_malformed_lines_are_refused_with_their_place(finished_run, tmp_path, capsys):
    path = tmp_path / "d.jsonl"
    good = json.dumps(_line(finished_run, "vid-bad", "drop"))
    path.write_text(good + "\n{not json\n" + json.dumps({**json.loads(good), "decision": "maybe"}))
    err = _refused(finished_run, tmp_path, capsys, [str(path)])
    assert "d.jsonl:2: not valid JSON" in err and 'd.jsonl:3: "decision" must be' in err


def test_bad_prefixes_are_refused(finished_run, tmp_path, capsys):
    decisions = _write(tmp_path / "d.jsonl", [_line(finished_run, "vid-bad", "drop")])
    assert _apply(finished_run, finished_run / "inside", decisions) == 2
    assert "overlaps the run" in capsys.readouterr().err
    assert not (finished_run / "inside").exists()
    unfinished = tmp_path / "unfinished"
    shutil.copytree(finished_run, unfinished)
    (unfinished / "_SUCCESS").unlink()
    assert _apply(unfinished, tmp_path / "new", decisions) == 2
    assert "did not finish" in capsys.readouterr().err and not (tmp_path / "new").exists()
    done = tmp_path / "done"
    assert _apply(finished_run, done, decisions) == 0
    assert _apply(finished_run, done, decisions) == 2
    assert "already holds a finished run" in capsys.readouterr().err
    assert _apply(finished_run, done, decisions, extra=["--overwrite"]) == 0


def _match(score, verdict, source="s"):
    return Match("review", "x", "0", source, "id", "", score, "low_score", verdict, "")


def test_threshold_evidence_finds_where_reviewers_stop_dropping():
    matches = [_match(-5.2, "drop"), _match(-4.8, "drop"), _match(-4.1, "keep")]
    matches += [_match(-3.7, "drop"), _match(-3.6, "keep"), _match(-2.2, "keep")]
    matches += [_match(-2.4, "keep"), _match(None, "drop")]
    evidence = source_evidence(matches * 10)  # ten reviewers agreeing: every band has >= 10
    assert evidence["band_width"] == 0.5
    bands = [(b["low"], b["high"], b["kept"], b["dropped"]) for b in evidence["bands"]]
    assert bands == [
        (-5.5, -5.0, 0, 10),
        (-5.0, -4.5, 0, 10),
        (-4.5, -4.0, 10, 0),
        (-4.0, -3.5, 10, 10),
        (-2.5, -2.0, 20, 0),
    ]
    # Every band below -4.5 was mostly dropped; [-4.5, -4) was kept: the cut is -4.5.
    assert evidence["half_dropped_below"] == -4.5 and evidence["advice"] == "cut"
    assert evidence["unscored"] == {"kept": 0, "dropped": 10}
    assert (evidence["reviewed"], evidence["kept"], evidence["dropped"]) == (80, 40, 40)
    lowest = evidence["bands"][0]
    assert (lowest["decisions"], lowest["kept_share"]) == (10, 0.0)
    assert lowest["kept_share_interval"] == [0.0, 0.2775]  # Wilson, 95%: 0 of 10
    assert evidence["bands"][3]["kept_share_interval"] == [0.2993, 0.7007]  # 10 of 20
    kept_lowest = source_evidence([_match(1.0, "keep")] * 10)
    assert kept_lowest["half_dropped_below"] is None
    assert kept_lowest["advice"] == "kept_in_lowest_band"
    assert band_width(-60.0, 20.0) == 10.0 and band_width(0.0, 0.0) == 0.1


def test_two_decisions_are_not_enough_to_suggest_a_cut():
    evidence = source_evidence([_match(-5.2, "drop"), _match(-4.8, "drop")])
    assert evidence["half_dropped_below"] is None
    assert evidence["advice"] == "not_enough_decisions"
    assert [b["decisions"] for b in evidence["bands"]] == [1, 1]
    assert evidence["bands"][0]["kept_share_interval"] == [0.0, 0.7935]  # 0 of 1 says little
    # Enough in the lowest band, too few above it: the walk stops where the evidence thins.
    thin_above = [_match(-5.2, "drop")] * 12 + [_match(-3.1, "drop")] * 3
    assert source_evidence(thin_above)["half_dropped_below"] == -5.0


def test_make_apply_review_passes_every_decisions_file():
    dry = subprocess.run(
        ["make", "-s", "-n", "-o", install_stamp(REPO), "apply-review", "OUTPUT=out/run",
         "DECISIONS=a.jsonl b.jsonl"],
        cwd=REPO, capture_output=True, text=True, check=True,
    )  # fmt: skip
    command = " ".join(dry.stdout.replace("\\\n", " ").split())
    assert "run='out/run'" in command
    assert (
        '.venv/bin/rmclean apply-review "$run" --decisions a.jsonl --decisions b.jsonl '
        "--undecided review" in command
    )
    missing = subprocess.run(
        ["make", "-s", "-o", install_stamp(REPO), "apply-review", "OUTPUT=out/run"],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert missing.returncode == 2 and "needs DECISIONS=" in missing.stderr


def test_reads_are_pandas_friendly(finished_run):
    """The index is plain Parquet: a user can look a sample up with pandas too."""
    index = pd.read_parquet(finished_run / "index" / "review.parquet")
    assert set(index["id"]) == {"img-bad", "img-empty", "vid-bad"}
    assert list(index.columns) == [
        "source",
        "id",
        "origin",
        "shard",
        "position",
        "score",
        "reason",
        "content_hash",
        "repair",
    ]
