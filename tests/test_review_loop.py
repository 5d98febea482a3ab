"""The whole review loop as a reviewer lives it, in a real headless Chromium.

Generate the sample dataset, clean part of it with the bundled demo model, open the run's page
from disk, Keep two flagged samples and Drop one (a button and the keys), reload and find the
decisions still there, download them, apply them with `rmclean apply-review`, and read the new
prefix back with pandas or webdataset.

`RMCLEAN_REFRESH_DOCS=1` also saves the page, with those decisions on it, as
docs/review-page.png (the README's screenshot); nothing else is written outside tmp_path.
"""

from __future__ import annotations

import glob
import json
import os
from pathlib import Path

import pandas as pd
import pytest
import webdataset as wds
import yaml

from pipelines.cli import main
from tests.browser import requested_urls, wait_for_download

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("allava_vflan_instruct", "llava_video_caption")  # images and videos, 90 samples
DOCS_SCREENSHOT = REPO / "docs" / "review-page.png"


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("sample") / "data"
    assert main(["sample", "--output", str(target)]) == 0
    return target


def _clean(sample_dir: Path, tmp_path: Path, file_format: str) -> Path:
    config = yaml.safe_load((REPO / "configs" / "sample.yaml").read_text())
    config["sources"] = [s for s in config["sources"] if s["name"] in SOURCES]
    config_file = tmp_path / "sample-part.yaml"
    config_file.write_text(yaml.safe_dump(config))
    output = tmp_path / "run"
    argv = ["clean", "--config", str(config_file), "--input", str(sample_dir)]
    argv += ["--output", str(output), "--format", file_format]
    assert main(argv) == 0
    return output


def _read(folder: Path, file_format: str) -> list[dict]:
    if file_format == "parquet":
        frame = pd.read_parquet(folder)
        return frame.astype(object).where(frame.notna(), None).to_dict("records")
    shards = sorted(glob.glob(str(folder / "*.tar")))
    dataset = wds.WebDataset(shards, shardshuffle=False, empty_check=False)
    return [{**json.loads(s["json"]), "__media": [k for k in s if k != "json"]} for s in dataset]


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize("file_format", ["parquet", "webdataset"])
def test_review_in_the_page_then_apply(chromium, sample_dir, tmp_path, file_format, capsys):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    run_prefix = _clean(sample_dir, tmp_path, file_format)
    index = (run_prefix / "report" / "index.html").resolve()
    chromium.get(index.as_uri())
    rows = chromium.find_elements(By.CSS_SELECTOR, "tr.sample.flagged")
    assert len(rows) >= 3
    chosen = [(row.get_attribute("data-id"), row.get_attribute("data-origin")) for row in rows[:3]]
    rows[0].find_element(By.CSS_SELECTOR, "button.keep").click()
    ActionChains(chromium).send_keys("j").send_keys("k").send_keys("d").perform()
    note = rows[2].find_element(By.CSS_SELECTOR, "input.decision-note")
    note.send_keys("answer contradicts the picture\n")

    chromium.refresh()
    decided = {
        row.get_attribute("data-origin"): row.get_attribute("data-decision")
        for row in chromium.find_elements(By.CSS_SELECTOR, "tr.sample.flagged")
    }
    assert [decided[origin] for _, origin in chosen] == ["keep", "keep", "drop"]
    counters = [e.text for e in chromium.find_elements(By.CSS_SELECTOR, ".counter")]
    assert sum(int(text.split(" of ")[0]) for text in counters) == 3
    requested = requested_urls(chromium, index.as_uri())
    assert all(url.startswith(("file://", "data:")) for url in requested), requested
    if os.environ.get("RMCLEAN_REFRESH_DOCS") == "1" and file_format == "parquet":
        chromium.execute_script("document.querySelector('h2 + p.muted').scrollIntoView()")
        chromium.set_window_size(1400, 1300)
        chromium.save_screenshot(str(DOCS_SCREENSHOT))

    chromium.find_element(By.ID, "download").click()
    decisions = wait_for_download(chromium.download_dir, "decisions.jsonl")
    lines = [json.loads(line) for line in decisions.read_text().splitlines()]
    assert sorted((d["origin"], d["decision"]) for d in lines) == sorted(
        [(chosen[0][1], "keep"), (chosen[1][1], "keep"), (chosen[2][1], "drop")]
    )
    for line in lines:
        assert {"id", "source", "decision", "note", "score", "reason"} <= set(line)

    new = tmp_path / "reviewed"
    argv = ["apply-review", str(run_prefix), "--decisions", str(decisions), "--output", str(new)]
    assert main(argv) == 0
    assert "2 kept, 1 dropped" in capsys.readouterr().out

    before = json.loads((run_prefix / "report" / "summary.json").read_text())["counts"]["total"]
    clean, review = _read(new / "clean", file_format), _read(new / "review", file_format)
    dropped = _read(new / "dropped", file_format)
    by_origin = {row["origin"]: row for row in clean}
    for _, origin in chosen[:2]:
        assert by_origin[origin]["review_decision"] == "keep"
    assert [(row["origin"], row["review_decision"], row["review_note"]) for row in dropped] == [
        (chosen[2][1], "drop", "answer contradicts the picture")
    ]
    assert not {origin for _, origin in chosen} & {row["origin"] for row in review}
    assert len(clean) == before["clean"] + 2 and len(review) == before["review"] - 3
    assert len(clean) + len(review) + len(dropped) + before["errors"] == before["input"]
    if file_format == "webdataset":
        assert all(row["__media"] for row in dropped)  # media travelled with the sample
    else:
        assert all(len(row["images"]) + len(row["videos"]) for row in dropped)
    assert (new / "_SUCCESS").exists()

    # Three decisions are no basis for a cut: the reviewed page says so, with the counts.
    chromium.get((new / "report" / "index.html").resolve().as_uri())
    evidence = chromium.find_element(By.CSS_SELECTOR, "table.evidence")
    headers = [th.text for th in evidence.find_elements(By.CSS_SELECTOR, "tr:first-child th")]
    assert headers[-2:] == ["decisions", "kept share (95% interval)"]
    sources = evidence.find_elements(By.CSS_SELECTOR, "tr.evidence-source")
    assert sources and all("not enough decisions yet" in s.text for s in sources)
    assert "dropped at least half" not in evidence.text
