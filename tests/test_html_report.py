"""report/index.html: escaped, bounded, self-contained, and usable in a real headless Chromium.

A fake run prefix is built inside each test with the project's own shard writers. Browser tests
(`-m browser`) drive Debian's chromium through selenium with an explicit chromedriver path, so
nothing is downloaded; they skip when the browser is missing unless RMCLEAN_REQUIRE_BROWSER=1.
"""

from __future__ import annotations

import io
import json
import os
import random
import re
import shutil
from pathlib import Path

import fsspec
import pytest
from PIL import Image

from pipelines.cli import main
from tests.helpers import conversation, jpeg_bytes, mp4_bytes
from transforms.html_report import write_html_report
from transforms.record import IMAGE, VIDEO, MediaRef, Sample
from transforms.report_scan import LowestPicks, Pick, ReportInputError, StreamingHistogram
from transforms.write_shards import SHARD_TYPES, SUFFIXES

PAYLOAD = "<script>window.__pwned = 1</script>"
MAX_ROWS = 5
SCREENSHOT_COPY = Path("/tmp/rmclean-report.png")


def _sample(sid, source, score, reason, media=(), question="What is shown?", answer="A thing."):
    placeholder = "<video>\n" if source == "videos" else "<image>\n"
    detail = f"score {score} is below the threshold -2" if score is not None else f"{reason} rule"
    return Sample(
        sid,
        source,
        conversation(question, answer, placeholder if media else ""),
        list(media),
        {"url": f"u-{sid}"},
        score=score,
        reason=reason,
        detail=detail if reason else None,
    )


def _image(name, colour, size=(64, 48)):
    return MediaRef(IMAGE, f"images/{name}.jpg", jpeg_bytes(colour, size))


def _write_shard(path: Path, samples: list[Sample], file_format: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(SUFFIXES[file_format]), "wb") as handle:
        shard = SHARD_TYPES[file_format](handle)
        for sample in samples:
            shard.write(sample)
        shard.close()


def build_run(prefix: Path, file_format: str = "parquet") -> Path:
    """9 flagged images (2 rule-flagged), 2 flagged videos, clean samples, 3 errors."""
    review_images = [
        _sample(
            "img-xss",
            "images",
            -9.0,
            "low_score",
            [_image("xss", (250, 0, 0), (400, 300))],
            question="Is this <b>bold</b>?",
            answer=f"{PAYLOAD} see https://example.com/x.png",
        ),
        _sample("img-empty-1", "images", None, "empty_answer", [_image("e1", (0, 160, 0))]),
        _sample("img-empty-2", "images", None, "empty_answer", [_image("e2", (0, 0, 160))]),
        _sample(
            "img-corrupt",
            "images",
            -8.0,
            "low_score",
            [MediaRef(IMAGE, "images/corrupt.jpg", jpeg_bytes()[:150])],
        ),
    ] + [
        _sample(
            f"img-low-{i}", "images", -2.5 - i / 10, "low_score", [_image(f"l{i}", (i * 40,) * 3)]
        )
        for i in range(5)
    ]
    review_videos = [
        _sample(
            "vid-low", "videos", -6.0, "low_score", [MediaRef(VIDEO, "v/low.mp4", mp4_bytes())]
        ),
        _sample("vid-broken", "videos", -5.0, "low_score", [MediaRef(VIDEO, "v/b.mp4", b"no")]),
    ]
    clean = [
        _sample(f"img-ok-{i}", "images", 0.5 * i, None, [_image("ok", (9, 9, 9))]) for i in range(4)
    ]
    clean += [_sample(f"vid-ok-{i}", "videos", 1.0 + i, None) for i in range(2)]
    _write_shard(prefix / "review" / "part-00000-of-00002", review_images[:5], file_format)
    _write_shard(
        prefix / "review" / "part-00001-of-00002", review_images[5:] + review_videos, file_format
    )
    _write_shard(prefix / "clean" / "part-00000-of-00001", clean, file_format)
    errors = [
        {"source": "images", "stage": "decode", "reason": "corrupt_image",
         "detail": "image '<img src=x onerror=alert(1)>' is truncated", "origin": "a.json",
         "id": "img-bad", "record": {"id": "img-bad"}},
        {"source": "images", "stage": "fetch", "reason": "missing_media", "detail": "not found",
         "origin": "a.json", "id": "img-gone", "record": None},
        {"source": "videos", "stage": "score", "reason": "model_error", "detail": "boom",
         "origin": "v.json", "id": "vid-err", "record": None},
    ]  # fmt: skip
    (prefix / "errors").mkdir(parents=True)
    lines = "".join(json.dumps(e) + "\n" for e in errors)
    (prefix / "errors" / "errors-00000-of-00001.jsonl").write_text(lines)
    summary = {
        "dataset": "fake",
        "input": "data/fake",
        "output": str(prefix),
        "model": "answer-length",
        "threshold": -2.0,
        "percentile": None,
        "format": file_format,
        "runner": "DirectRunner",
        "cuts": {"images": -2.0, "videos": -2.0},
        "counts": {
            "total": {"input": 22, "clean": 6, "review": 11, "errors": 3},
            "per_source": {
                "images": {"input": 15, "clean": 4, "review": 9, "errors": 2},
                "videos": {"input": 5, "clean": 2, "review": 2, "errors": 1},
            },
        },
        "errors_by_reason": {"decode/corrupt_image": 1, "fetch/missing_media": 1},
        "durations": {"wall_seconds": 12.5, "stage_seconds": {}},
    }
    (prefix / "report").mkdir()
    (prefix / "report" / "summary.json").write_text(json.dumps(summary))
    return prefix


@pytest.fixture(params=["parquet", "webdataset"])
def run_prefix(request, tmp_path: Path) -> Path:
    return build_run(tmp_path / "run", request.param)


def _read_page(prefix: Path) -> str:
    return (prefix / "report" / "index.html").read_text(encoding="utf-8")


def test_dataset_text_is_escaped_and_the_only_script_is_ours(run_prefix):
    write_html_report(str(run_prefix), max_rows_per_source=MAX_ROWS)
    page = _read_page(run_prefix)
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in page
    assert "Is this &lt;b&gt;bold&lt;/b&gt;?" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "window.__pwned = 1</script>" not in page and "<b>bold</b>" not in page
    assert page.count("<script") == 1 and "<img src=x" not in page


def test_rows_are_bounded_lowest_first_and_the_page_says_so(run_prefix):
    write_html_report(str(run_prefix), max_rows_per_source=MAX_ROWS)
    page = _read_page(run_prefix)
    rows = re.findall(r'<tr class="flagged" data-source="(\w+)"', page)
    assert rows.count("images") == MAX_ROWS and rows.count("videos") == 2
    assert "images: showing 5 of 9 flagged samples" in page
    assert "videos: showing 2 of 2 flagged samples" in page
    assert 'href="flagged.jsonl"' in page and 'href="flagged.csv"' in page
    # rule-flagged first, then lowest score first; -2.5 .. -2.9 only the lowest one fits
    order = [page.index(i) for i in ("img-empty-1", "img-xss", "img-corrupt", "img-low-4")]
    assert order == sorted(order) and "img-low-0" not in page
    assert page.count('class="error-row"') == 3 and "showing 2 of 2 errors" in page


def test_thumbnails_are_small_jpegs_and_failures_are_placeholders(run_prefix):
    write_html_report(str(run_prefix), max_rows_per_source=MAX_ROWS)
    page = _read_page(run_prefix)
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert len(sources) == 4 + 4  # four images shown + a 4-frame strip of one video
    for src in sources:
        with Image.open(run_prefix / "report" / src) as image:
            assert image.format == "JPEG" and max(image.size) <= 256
    thumbs = sorted(p.name for p in (run_prefix / "report" / "thumbs").iterdir())
    assert len(thumbs) == len(sources)
    assert "images/corrupt.jpg: could not decode: corrupt_image" in page
    assert "v/b.mp4: could not decode: corrupt_video" in page


def test_page_is_self_contained(run_prefix):
    write_html_report(str(run_prefix), max_rows_per_source=MAX_ROWS)
    page = _read_page(run_prefix)
    assert not re.search(r"""(src|href|action)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert not re.search(r"url\(|@import|<link|<iframe", page, re.I)
    assert '<svg class="histogram"' in page and 'class="cut"' in page


def _text_only_run(prefix: Path, flagged: int) -> Path:
    samples = [
        _sample(f"t-{i:05d}", "text", -3 - (i % 20) / 10, "low_score") for i in range(flagged)
    ]
    _write_shard(prefix / "review" / "part-00000-of-00001", samples, "parquet")
    (prefix / "errors").mkdir(parents=True)
    error = {"source": "text", "stage": "read", "reason": "bad", "detail": "x", "id": "e"}
    (prefix / "errors" / "errors-0.jsonl").write_text((json.dumps(error) + "\n") * flagged)
    return prefix


def test_page_size_does_not_grow_with_the_run(tmp_path):
    sizes = []
    for flagged in (20, 400):
        prefix = _text_only_run(tmp_path / f"run{flagged}", flagged)
        write_html_report(str(prefix), summary={"dataset": "t"}, max_rows_per_source=MAX_ROWS)
        page = _read_page(prefix)
        assert page.count('class="flagged"') == MAX_ROWS and page.count('class="error-row"') == 5
        assert (
            f"showing 5 of {flagged} flagged" in page and f"showing 5 of {flagged} errors" in page
        )
        sizes.append(len(page))
    assert abs(sizes[0] - sizes[1]) < 300


def test_report_works_on_a_remote_prefix(tmp_path):
    build_run(tmp_path / "run", "webdataset")
    fs = fsspec.filesystem("memory")
    fs.put(str(tmp_path / "run"), "/remote-run", recursive=True)
    try:
        assert write_html_report("memory://remote-run", max_rows_per_source=MAX_ROWS) == (
            "memory://remote-run/report/index.html"
        )
        page = fs.cat("/remote-run/report/index.html").decode()
        assert page.count('class="flagged"') == 7 and len(fs.ls("/remote-run/report/thumbs")) == 8
    finally:
        fs.rm("/remote-run", recursive=True)


def test_lowest_picks_keeps_the_k_lowest_unscored_first():
    rng = random.Random(3)
    scores = [rng.uniform(-5, 5) for _ in range(300)] + [None] * 3
    rng.shuffle(scores)
    heap = LowestPicks(10)
    for i, score in enumerate(scores):
        heap.offer(Pick("s", str(i), score, "r", "", "shard", i))
    chosen = sorted(heap.picks(), key=lambda p: p.order)
    expected = sorted(s for s in scores if s is not None)[:7]
    assert [p.score for p in chosen] == [None] * 3 + expected and heap.total == 303


def test_streaming_histogram_stays_bounded_and_counts_everything():
    histogram = StreamingHistogram(max_bins=16)
    values = [0.001 * i for i in range(100)] + [-40.0, 75.5, None, float("nan")]
    for value in values:
        histogram.add(value, "clean")
    rows = histogram.rows()
    assert len(rows) <= 16 and sum(c for _, _, c, _ in rows) == 102 and histogram.unscored == 2
    assert rows[0][0] <= -40.0 and rows[-1][1] > 75.5


def test_cli_report_rebuilds_the_page(tmp_path, capsys):
    prefix = build_run(tmp_path / "run")
    assert main(["report", str(prefix), "--max-rows", "3"]) == 0
    assert capsys.readouterr().out.strip() == f"{prefix}/report/index.html"
    assert _read_page(prefix).count('class="flagged"') == 3 + 2
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert "summary.json does not exist" in capsys.readouterr().err


def test_missing_summary_is_a_clear_error(tmp_path):
    with pytest.raises(ReportInputError, match="finished `rmclean clean` run"):
        write_html_report(str(tmp_path))


# ---- real browser ---------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,2200",
)


@pytest.fixture()
def chromium(tmp_path):
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(path)]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing.append("the selenium Python package")
    if missing:
        message = f"headless Chromium is not available: missing {', '.join(missing)}"
        if os.environ.get("RMCLEAN_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM  # with the driver path below, selenium-manager never runs
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _requested_urls(driver, page_url: str) -> list[str]:
    """Every URL the page (not the browser's own new-tab page) asked for, from Chromium's log."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        params = message.get("params", {})
        if message.get("method") == "Network.requestWillBeSent" and (
            params.get("documentURL") == page_url
        ):
            urls.append(params["request"]["url"])
    return urls


def _visible_rows(driver):
    from selenium.webdriver.common.by import By

    rows = driver.find_elements(By.CSS_SELECTOR, "tr.flagged")
    return [row for row in rows if row.is_displayed()]


@pytest.mark.browser
def test_page_renders_offline_in_headless_chromium(chromium, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    prefix = build_run(tmp_path / "run")
    index = Path(write_html_report(str(prefix), max_rows_per_source=MAX_ROWS))
    page_url = index.resolve().as_uri()
    chromium.get(page_url)

    assert len(_visible_rows(chromium)) == MAX_ROWS + 2
    assert chromium.find_element(By.ID, "visible-count").text == "7"
    images = chromium.execute_script(
        "return Array.from(document.images).map(i => [i.complete, i.naturalWidth]);"
    )
    assert len(images) == 8 and all(done and width > 0 for done, width in images)
    assert len(chromium.find_elements(By.CSS_SELECTOR, "svg.histogram rect.bar")) > 0
    assert len(chromium.find_elements(By.CSS_SELECTOR, "svg.histogram line.cut")) == 2
    assert chromium.execute_script("return typeof window.__pwned") == "undefined"
    body = chromium.find_element(By.TAG_NAME, "body").text
    assert PAYLOAD in body and "<b>bold</b>" in body
    assert chromium.execute_script("return document.querySelectorAll('.turn b').length") == 0
    requested = _requested_urls(chromium, page_url)
    assert any(url.endswith(".jpg") for url in requested)
    assert all(url.startswith(("file://", "data:")) for url in requested), requested

    Select(chromium.find_element(By.ID, "filter-source")).select_by_value("videos")
    rows = _visible_rows(chromium)
    assert len(rows) == 2 and {r.get_attribute("data-source") for r in rows} == {"videos"}
    assert chromium.find_element(By.ID, "visible-count").text == "2"
    Select(chromium.find_element(By.ID, "filter-source")).select_by_value("")
    Select(chromium.find_element(By.ID, "filter-reason")).select_by_value("empty_answer")
    assert len(_visible_rows(chromium)) == 2
    Select(chromium.find_element(By.ID, "filter-reason")).select_by_value("")

    height = chromium.execute_script("return document.documentElement.scrollHeight")
    chromium.set_window_size(1400, min(height + 150, 6000))  # the whole page in one picture
    screenshot = prefix / "report" / "screenshot.png"
    assert chromium.save_screenshot(str(screenshot))
    with Image.open(io.BytesIO(screenshot.read_bytes())) as shot:
        assert shot.size[0] > 0
    try:
        shutil.copyfile(screenshot, SCREENSHOT_COPY)
    except OSError:
        pass  # the copy is only a convenience for a person looking at the page
