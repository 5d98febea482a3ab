"""The report page's "since the last run" section, in a real headless Chromium."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.indexed_runs import FakeRun, generated_samples, write_run
from pipelines.cli import main


@pytest.mark.slow
@pytest.mark.browser
def test_the_page_shows_setting_changes_first_and_both_histograms(chromium, tmp_path):
    from selenium.webdriver.common.by import By

    sources = {"images": 400, "<b>texts</b>": 400}
    old = write_run(
        tmp_path / "runs" / "a",
        FakeRun(samples=generated_samples(sources, seed=1)),
        "run-a",
        "2025-01-06T00:00:00Z",
    )
    new = write_run(
        tmp_path / "runs" / "b",
        FakeRun(samples=generated_samples(sources, seed=2, shift={"images": -3}), threshold=-1),
        "run-b",
        "2025-01-13T00:00:00Z",
    )
    assert main(["compare", str(old), str(new)]) == 0
    page = (Path(new) / "report" / "index.html").resolve()
    chromium.get(page.as_uri())

    section = chromium.find_element(By.ID, "since-last-run")
    assert section.text == "Since an earlier run"  # run-a was never recorded as b's previous
    note = chromium.find_element(By.CSS_SELECTOR, ".setting-changes")
    table = chromium.find_element(By.CSS_SELECTOR, "table.since")
    assert "threshold: -2.0 → -1" in note.text
    assert note.location["y"] < table.location["y"]  # settings first
    rows = chromium.find_elements(By.CSS_SELECTOR, "tr.since-source")
    assert [r.get_attribute("data-source") for r in rows] == ["<b>texts</b>", "images"]
    assert chromium.execute_script("return document.querySelectorAll('table.since b').length") == 0
    charts = chromium.find_elements(By.CSS_SELECTOR, "svg.histogram.overlay")
    assert len(charts) == 2
    for chart in charts:
        assert chart.find_elements(By.CSS_SELECTOR, "rect.bar.before")
        assert chart.find_elements(By.CSS_SELECTOR, "rect.bar.after")
    link = chromium.find_element(By.LINK_TEXT, "route_changes.jsonl").get_attribute("href")
    assert Path(link.removeprefix("file://")).is_file()
