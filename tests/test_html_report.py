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
from tests.browser import requested_urls, wait_for_download
from tests.helpers import conversation, jpeg_bytes, mp4_bytes
from transforms.core.record import IMAGE, VIDEO, MediaRef, Sample
from transforms.core.run_identity import run_id
from transforms.report.html import write_html_report
from transforms.report.scan import LowestPicks, Pick, ReportInputError, StreamingHistogram
from transforms.shards.shard_formats import SHARD_TYPES, SUFFIXES

PAYLOAD = "<script>window.__pwned = 1</script>"
MAX_ROWS = 5
# Set to a path to keep the page's screenshot for a person to look at.
SCREENSHOT_COPY = os.environ.get("RMCLEAN_REPORT_SCREENSHOT")


def _sample(sid, source, score, reason, media=(), question="What is shown?", answer="A thing."):
    placeholder = "<video>\n" if source == "videos" else "<image>\n"
    detail = f"score {score} is below the threshold -2" if score is not None else f"{reason} rule"
    return Sample(
        sid,
        source,
        conversation(question, answer, placeholder if media else ""),
        list(media),
        {"url": f"u-{sid}"},
        origin=f"manifests/{source}.json[{sid}]",
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


def _read_page(prefix: Path, name: str = "index.html") -> str:
    return (prefix / "report" / name).read_text(encoding="utf-8")


def _all_pages(prefix: Path) -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in (prefix / "report").glob("*.html")}


def _row_ids(page: str, kind: str = "flagged") -> list[str]:
    return re.findall(rf'<tr class="sample {kind}" data-id="([^"]+)"', page)


def test_dataset_text_is_escaped_and_the_only_script_is_ours(run_prefix):
    write_html_report(str(run_prefix), max_rows_per_source=MAX_ROWS)
    pages = _all_pages(run_prefix)
    assert len(pages) == 4  # the index, two pages of images, one of videos
    xss_page = pages["review-images-2.html"]
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in xss_page
    assert "Is this &lt;b&gt;bold&lt;/b&gt;?" in xss_page
    assert "&lt;img src=x onerror=alert(1)&gt;" in pages["index.html"]
    for page in pages.values():
        assert "window.__pwned = 1</script>" not in page and "<b>bold</b>" not in page
        assert page.count("<script") == 1 and "<img src=x" not in page


def test_every_flagged_sample_is_on_one_review_page_in_order(run_prefix):
    write_html_report(str(run_prefix), max_rows_per_source=MAX_ROWS)
    pages = _all_pages(run_prefix)
    # 9 flagged images do not fit one page of 5: nearest the cut first, the lowest last,
    # rule-flagged (unscored) at the very end.
    assert _row_ids(pages["review-images-1.html"]) == [f"img-low-{i}" for i in range(5)]
    assert _row_ids(pages["review-images-2.html"]) == [
        "img-corrupt", "img-xss", "img-empty-1", "img-empty-2"
    ]  # fmt: skip
    assert 'data-default-sort="nearest"' in pages["review-images-1.html"]
    # 2 flagged videos fit one page: lowest first.
    assert _row_ids(pages["review-videos-1.html"]) == ["vid-low", "vid-broken"]
    assert 'data-default-sort="lowest"' in pages["review-videos-1.html"]
    on_pages = [i for name, page in pages.items() if name != "index.html" for i in _row_ids(page)]
    assert len(on_pages) == len(set(on_pages)) == 11
    index = pages["index.html"]
    # The index shows each source's first page, links every page and says what each holds.
    assert _row_ids(index) == [f"img-low-{i}" for i in range(5)] + ["vid-low", "vid-broken"]
    for name in ("review-images-1.html", "review-images-2.html", "review-videos-1.html"):
        assert f'href="{name}"' in index
    assert "page 2</a>: scores -8 to -9, 2 rule-flagged" in index
    assert "9 flagged on 2 review page(s), nearest the cut first" in index
    assert 'href="flagged.jsonl"' in index and 'href="flagged.csv"' in index
    assert index.count('class="error-row') == 3 and "showing 2 of 2 errors" in index


def test_rows_carry_what_a_decision_needs_and_show_the_origin(run_prefix):
    write_html_report(str(run_prefix), max_rows_per_source=MAX_ROWS)
    page = _read_page(run_prefix, "review-images-2.html")
    row = re.search(r'<tr class="sample flagged" data-id="img-xss"[^>]*>', page).group(0)
    assert 'data-source="images"' in row and 'data-route="review"' in row
    assert 'data-origin="manifests/images.json[img-xss]"' in row and 'data-score="-9.0"' in row
    assert 'data-reason="low_score"' in row and 'data-rank="1"' in row
    empty = re.search(r'<tr class="sample flagged" data-id="img-empty-1"[^>]*>', page).group(0)
    assert 'data-score=""' in empty and 'data-rank="0"' in empty
    assert '<div class="origin">manifests/images.json[img-xss]</div>' in page
    assert page.count(">Keep</button>") == page.count(">Drop</button>") == 4
    assert page.count('class="decision-note"') == 4


def test_near_misses_are_the_clean_samples_just_above_the_cut(run_prefix):
    write_html_report(str(run_prefix), max_rows_per_source=MAX_ROWS)
    index = _read_page(run_prefix)
    assert _row_ids(index, "near-miss") == [f"img-ok-{i}" for i in range(4)] + [
        "vid-ok-0",
        "vid-ok-1",
    ]
    assert 'data-side="above"' in index and 'data-route="clean"' in index


def test_histograms_label_the_count_axis(run_prefix):
    write_html_report(str(run_prefix), max_rows_per_source=MAX_ROWS)
    index = _read_page(run_prefix)
    assert index.count(">samples per bin</text>") == 2 and index.count(">reward score</text>") == 2
    # images: the tallest bin holds 4 of the rule-flagged-free scores at most; ticks from 0.
    labels = re.findall(r'class="count-label"[^>]*>(\d+)</text>', index)
    assert labels and labels[0] == "0" and len(labels) >= 4


def test_thumbnails_are_small_jpegs_and_failures_are_placeholders(run_prefix):
    write_html_report(str(run_prefix), max_rows_per_source=MAX_ROWS)
    pages = _all_pages(run_prefix)
    sources = {src for page in pages.values() for src in re.findall(r'<img src="([^"]+)"', page)}
    # 8 decodable flagged images + a 4-frame strip of one video + 4 near-miss images
    assert len(sources) == 8 + 4 + 4
    for src in sources:
        with Image.open(run_prefix / "report" / src) as image:
            assert image.format == "JPEG" and max(image.size) <= 256
    thumbs = sorted(p.name for p in (run_prefix / "report" / "thumbs").iterdir())
    assert len(thumbs) == len(sources)
    assert "images/corrupt.jpg: could not decode: corrupt_image" in pages["review-images-2.html"]
    assert "v/b.mp4: could not decode: corrupt_video" in pages["index.html"]


def test_pages_are_self_contained(run_prefix):
    write_html_report(str(run_prefix), max_rows_per_source=MAX_ROWS)
    for page in _all_pages(run_prefix).values():
        assert not re.search(r"""(src|href|action)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
        assert not re.search(r"@import|<link|<iframe", page, re.I)
        # CSS url(...) and the script APIs that reach the network (URL.createObjectURL
        # makes the local blob: the download is built from).
        assert not re.search(r"[^.]url\(|fetch\(|XMLHttpRequest|sendBeacon|WebSocket", page)
    assert '<svg class="histogram"' in _read_page(run_prefix) and 'class="cut"' in _read_page(
        run_prefix
    )


def _text_only_run(prefix: Path, flagged: int) -> Path:
    samples = [
        _sample(f"t-{i:05d}", "text", -3 - (i % 20) / 10, "low_score") for i in range(flagged)
    ]
    _write_shard(prefix / "review" / "part-00000-of-00001", samples, "parquet")
    (prefix / "errors").mkdir(parents=True)
    error = {"source": "text", "stage": "read", "reason": "bad", "detail": "x", "id": "e"}
    (prefix / "errors" / "errors-0.jsonl").write_text((json.dumps(error) + "\n") * flagged)
    return prefix


def test_pages_stay_small_as_the_run_grows(tmp_path):
    sizes = []
    for flagged in (20, 400):
        prefix = _text_only_run(tmp_path / f"run{flagged}", flagged)
        write_html_report(str(prefix), summary={"dataset": "t"}, max_rows_per_source=MAX_ROWS)
        pages = _all_pages(prefix)
        index = pages.pop("index.html")
        assert len(pages) == flagged // MAX_ROWS
        assert all(len(_row_ids(page)) == MAX_ROWS for page in pages.values())
        assert sorted(i for page in pages.values() for i in _row_ids(page)) == [
            f"t-{i:05d}" for i in range(flagged)
        ]
        assert len(_row_ids(index)) == MAX_ROWS and index.count('class="error-row') == 5
        assert f"showing 5 of {flagged} errors" in index
        sizes.append((len(index), max(len(page) for page in pages.values())))
    # The index grows only by its list of pages; a review page not at all (its links are a
    # window around it, the index lists them all).
    extra_pages = (400 - 20) // MAX_ROWS
    assert sizes[1][0] - sizes[0][0] < 160 * extra_pages
    assert abs(sizes[1][1] - sizes[0][1]) < 600


def test_report_works_on_a_remote_prefix(tmp_path):
    build_run(tmp_path / "run", "webdataset")
    fs = fsspec.filesystem("memory")
    fs.put(str(tmp_path / "run"), "/remote-run", recursive=True)
    try:
        assert write_html_report("memory://remote-run", max_rows_per_source=MAX_ROWS) == (
            "memory://remote-run/report/index.html"
        )
        page = fs.cat("/remote-run/report/index.html").decode()
        assert len(_row_ids(page)) == 7 and len(fs.ls("/remote-run/report/thumbs")) == 16
        assert fs.exists("/remote-run/report/review-images-2.html")
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
    assert len(_row_ids(_read_page(prefix))) == 3 + 2
    assert (prefix / "report" / "review-images-3.html").exists()
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert "summary.json does not exist" in capsys.readouterr().err


def test_missing_summary_is_a_clear_error(tmp_path):
    with pytest.raises(ReportInputError, match="finished `rmclean clean` run"):
        write_html_report(str(tmp_path))


# ---- real browser ---------------------------------------------------------------------------


def _visible_rows(driver):
    from selenium.webdriver.common.by import By

    rows = driver.find_elements(By.CSS_SELECTOR, "tr.flagged")
    return [row for row in rows if row.is_displayed()]


@pytest.mark.slow
@pytest.mark.browser
def test_page_renders_offline_in_headless_chromium(chromium, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
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
    # page 1 of images (5), a video's 4-frame strip, 4 near-miss images
    assert len(images) == 13 and all(done and width > 0 for done, width in images)
    assert len(chromium.find_elements(By.CSS_SELECTOR, "svg.histogram rect.bar")) > 0
    assert len(chromium.find_elements(By.CSS_SELECTOR, "svg.histogram line.cut")) == 2
    assert len(chromium.find_elements(By.CSS_SELECTOR, "svg.histogram text.count-label")) >= 4
    requested = requested_urls(chromium, page_url)
    assert any(url.endswith(".jpg") for url in requested)
    assert all(url.startswith(("file://", "data:")) for url in requested), requested

    Select(chromium.find_element(By.ID, "filter-source")).select_by_value("videos")
    rows = _visible_rows(chromium)
    assert len(rows) == 2 and {r.get_attribute("data-source") for r in rows} == {"videos"}
    assert chromium.find_element(By.ID, "visible-count").text == "2"
    Select(chromium.find_element(By.ID, "filter-source")).select_by_value("")

    page_2 = (prefix / "report" / "review-images-2.html").resolve().as_uri()
    chromium.get(page_2)
    assert chromium.execute_script("return typeof window.__pwned") == "undefined"
    body = chromium.find_element(By.TAG_NAME, "body").text
    assert PAYLOAD in body and "<b>bold</b>" in body
    assert chromium.execute_script("return document.querySelectorAll('.turn b').length") == 0
    assert all(url.startswith(("file://", "data:")) for url in requested_urls(chromium, page_2))
    Select(chromium.find_element(By.ID, "filter-reason")).select_by_value("empty_answer")
    assert len(_visible_rows(chromium)) == 2
    Select(chromium.find_element(By.ID, "filter-reason")).select_by_value("")
    search = chromium.find_element(By.ID, "filter-text")
    search.send_keys("BOLD")  # case-insensitive, over questions and answers
    assert [r.get_attribute("data-id") for r in _visible_rows(chromium)] == ["img-xss"]
    search.send_keys(Keys.BACKSPACE * 4)  # typing fires the filter; clear() would not
    assert len(_visible_rows(chromium)) == 4

    chromium.get(page_url)
    height = chromium.execute_script("return document.documentElement.scrollHeight")
    chromium.set_window_size(1400, min(height + 150, 6000))  # the whole page in one picture
    screenshot = prefix / "report" / "screenshot.png"
    assert chromium.save_screenshot(str(screenshot))
    with Image.open(io.BytesIO(screenshot.read_bytes())) as shot:
        # The page rendered: the picture is the window's width and not one flat colour.
        assert shot.size[0] >= 1000
        assert len(shot.convert("RGB").getcolors(1 << 20) or ()) > 16
    if SCREENSHOT_COPY:
        shutil.copyfile(screenshot, SCREENSHOT_COPY)


def _row(driver, sample_id):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, f'tr.sample[data-id="{sample_id}"]')


def _decision(driver, sample_id) -> str:
    return _row(driver, sample_id).get_attribute("data-decision")


def _counter(driver, source) -> str:
    from selenium.webdriver.common.by import By

    selector = f'.counter .decided-count[data-source="{source}"]'
    return driver.find_element(By.CSS_SELECTOR, selector).text


@pytest.mark.slow
@pytest.mark.browser
def test_reviewer_decides_with_buttons_and_keys_and_it_persists(chromium, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    prefix = build_run(tmp_path / "run")
    index = Path(write_html_report(str(prefix), max_rows_per_source=MAX_ROWS)).resolve()
    chromium.get(index.as_uri())
    keys = ActionChains(chromium)

    _row(chromium, "img-low-0").find_element(By.CSS_SELECTOR, "button.keep").click()
    keys.send_keys("j").send_keys("k").send_keys("d").perform()  # keep low-1, drop low-2
    assert [_decision(chromium, f"img-low-{i}") for i in range(4)] == ["keep", "keep", "drop", ""]
    ActionChains(chromium).send_keys("u").perform()  # undo the drop
    assert _decision(chromium, "img-low-2") == ""
    ActionChains(chromium).send_keys("d").perform()  # the undone row is current again
    assert _decision(chromium, "img-low-2") == "drop"
    video = _row(chromium, "vid-low")
    video.find_element(By.CSS_SELECTOR, "button.drop").click()
    note = video.find_element(By.CSS_SELECTOR, "input.decision-note")
    note.send_keys("k is a letter, not a key here", Keys.ENTER)  # typing does not decide
    _row(chromium, "img-ok-0").find_element(By.CSS_SELECTOR, "button.drop").click()  # near miss
    assert _counter(chromium, "images") == "3" and _counter(chromium, "videos") == "1"
    assert chromium.find_element(By.ID, "decided-total").text == "5"
    pressed = _row(chromium, "img-low-0").find_element(By.CSS_SELECTOR, "button.keep")
    assert pressed.get_attribute("aria-pressed") == "true"

    chromium.refresh()
    assert [_decision(chromium, f"img-low-{i}") for i in range(4)] == ["keep", "keep", "drop", ""]
    assert _decision(chromium, "vid-low") == "drop" and _decision(chromium, "img-ok-0") == "drop"
    note = _row(chromium, "vid-low").find_element(By.CSS_SELECTOR, "input.decision-note")
    assert note.get_attribute("value") == "k is a letter, not a key here"
    assert _counter(chromium, "images") == "3"
    Select(chromium.find_element(By.ID, "filter-decision")).select_by_value("undecided")
    assert "img-low-0" not in [r.get_attribute("data-id") for r in _visible_rows(chromium)]
    Select(chromium.find_element(By.ID, "filter-decision")).select_by_value("")

    # Another page of the same run shares the decisions; sorting flips the page's order.
    chromium.get((index.parent / "review-images-1.html").as_uri())
    assert _decision(chromium, "img-low-1") == "keep" and _counter(chromium, "images") == "3"
    Select(chromium.find_element(By.ID, "sort")).select_by_value("lowest")
    order = [r.get_attribute("data-id") for r in _visible_rows(chromium)]
    assert order == [f"img-low-{i}" for i in (4, 3, 2, 1, 0)]
    chromium.get((index.parent / "review-images-2.html").as_uri())
    _row(chromium, "img-xss").find_element(By.CSS_SELECTOR, "button.drop").click()
    assert _counter(chromium, "images") == "4"

    chromium.get(index.as_uri())
    chromium.find_element(By.ID, "download").click()
    downloaded = wait_for_download(chromium.download_dir, "decisions.jsonl")
    lines = [json.loads(line) for line in downloaded.read_text().splitlines()]
    summary = json.loads((prefix / "report" / "summary.json").read_text())
    by_id = {line["id"]: line for line in lines}
    decided = ["img-low-0", "img-low-1", "img-low-2", "img-ok-0", "img-xss", "vid-low"]
    assert sorted(by_id) == decided
    assert {line["run"] for line in lines} == {run_id(summary)}
    assert by_id["img-xss"] == {
        "run": run_id(summary),
        "id": "img-xss",
        "source": "images",
        "origin": "manifests/images.json[img-xss]",
        "route": "review",
        "decision": "drop",
        "note": "",
        "score": -9.0,
        "reason": "low_score",
    }
    assert by_id["vid-low"]["note"] == "k is a letter, not a key here"
    assert by_id["img-ok-0"]["route"] == "clean" and by_id["img-ok-0"]["reason"] is None


# ---- multi-turn conversations: the per-turn strip ------------------------------------------


def _turns(*answers: str) -> list[dict]:
    turns = []
    for number, answer in enumerate(answers):
        placeholder = "<image>\n" if number == 0 else ""
        turns += [
            {"from": "human", "value": f"{placeholder}Question {number + 1}?"},
            {"from": "gpt", "value": answer},
        ]
    return turns


def build_turns_run(prefix: Path, file_format: str = "parquet") -> Path:
    """Flagged: a conversation whose turn 2 is low, a repaired original (turn 3 low, turns 1-2
    kept in clean/), a single-turn sample; clean: the repaired prefix and a fine conversation."""
    image = [_image("t", (200, 30, 30))]

    def sample(sid, turns, score, scores, **more):
        return Sample(
            sid, "multi", turns, list(image), origin=f"m.json[{sid}]", score=score,
            turn_scores=scores, **more,
        )  # fmt: skip

    repaired_turns = _turns("Red.", "Three.", "They are purple squares.")
    review = [
        sample(
            "multi-low", _turns("Red.", "There are nine.", "Circles.", "Yes."), 0.5,
            [0.8, -4.2, -3.0, 0.5], reason="low_score_turn",
            detail="assistant turn 2 of 4 scored -4.200, below the threshold -2: 'There are nine.'",
        ),
        sample(
            "multi-repaired", repaired_turns, -6.0, [1.0, 0.9, -6.0], reason="low_score_turn",
            detail="assistant turn 3 of 3 scored -6.000; repaired: its first 2 turn(s) are in "
            "clean/", repaired_prefix={"messages": 4, "turns": 2},
        ),
        sample("single-low", _turns("Nonsense."), -3.0, [-3.0], reason="low_score", detail="x"),
    ]  # fmt: skip
    clean = [
        sample(
            "multi-repaired", repaired_turns[:4], 0.9, [1.0, 0.9],
            repaired_from={"messages": 6, "turns": 3, "score": -6.0, "dropped_turn_scores": [-6.0]},
        ),
        sample("multi-ok", _turns("Red.", "Three."), 0.1, [0.1, 0.2]),
    ]  # fmt: skip
    _write_shard(prefix / "review" / "part-00000-of-00001", review, file_format)
    _write_shard(prefix / "clean" / "part-00000-of-00001", clean, file_format)
    (prefix / "report").mkdir(parents=True)
    counts = {
        "input": 4, "clean": 2, "review": 2, "errors": 0, "repaired": 1, "repaired_originals": 1
    }  # fmt: skip
    summary = {
        "dataset": "turns", "output": str(prefix), "threshold": -2.0, "format": file_format,
        "cuts": {"multi": -2.0}, "repair": {"mode": "truncate", "repaired": 1, "turns_dropped": 1},
        "counts": {"total": counts, "per_source": {"multi": counts}},
    }  # fmt: skip
    (prefix / "report" / "summary.json").write_text(json.dumps(summary))
    return prefix


def _row_html(page: str, sample_id: str) -> str:
    return re.search(rf'<tr class="sample \w+" data-id="{sample_id}".*?</tr>', page, re.S).group(0)


@pytest.mark.parametrize("file_format", ["parquet", "webdataset"])
def test_flagged_conversations_show_a_strip_with_the_bad_turn(tmp_path, file_format):
    prefix = build_turns_run(tmp_path / "run", file_format)
    write_html_report(str(prefix))
    page = _read_page(prefix)
    low = _row_html(page, "multi-low")
    cells = re.findall(r'<span class="(turn-cell[^"]*)" title="([^"]*)">', low)
    assert [c for c, _ in cells] == [
        "turn-cell", "turn-cell low first-low", "turn-cell low", "turn-cell"
    ]  # fmt: skip
    assert cells[1][1] == "assistant turn 2: -4.2, below the cut -2"
    assert re.findall(r'<div class="turn low-turn">.*?</div>', low) == [
        '<div class="turn low-turn"><span class="role">gpt</span>There are nine.</div>'
    ]
    repaired = _row_html(page, "multi-repaired")
    cells = re.findall(r'<span class="(turn-cell[^"]*)"', repaired)
    assert cells == ["turn-cell kept", "turn-cell kept", "turn-cell low first-low"]
    assert "turns 1–2 kept in clean/" in repaired
    # One turn: nothing to tell apart, no strip.
    assert 'class="turn-strip"' not in _row_html(page, "single-low")
    # The kept prefix is not a near miss (its original is flagged above); a fine one is.
    assert _row_ids(page, "near-miss") == ["multi-ok"]
    assert '<th class="num">repaired</th><th class="num">repaired_originals</th>' in page
    assert "<tr><th>repair</th><td>truncate: 1 conversation(s) kept their good start" in page


def test_a_repaired_conversation_counts_once_in_the_histogram(tmp_path):
    from transforms.report.scan import scan_scores

    prefix = build_turns_run(tmp_path / "run")
    fs = fsspec.filesystem("file")
    flagged = []
    histograms, _ = scan_scores(fs, str(prefix), {"multi": -2.0}, lambda *a: flagged.append(a))
    rows = histograms["multi"].rows()
    assert sum(c for *_, c, _ in rows) == 2 and sum(r for *_, r in rows) == 2
    assert len(flagged) == 3  # every flagged row is still on a review page


@pytest.mark.slow
@pytest.mark.browser
def test_the_turn_strip_renders_with_the_bad_turn_highlighted(chromium, tmp_path):
    from selenium.webdriver.common.by import By

    prefix = build_turns_run(tmp_path / "run")
    chromium.get(Path(write_html_report(str(prefix))).resolve().as_uri())
    row = _row(chromium, "multi-low")
    cells = row.find_elements(By.CSS_SELECTOR, ".turn-strip .turn-cell")
    assert [c.is_displayed() for c in cells] == [True] * 4
    assert [c.text.split() for c in cells] == [
        ["1", "0.8"],
        ["2", "-4.2"],
        ["3", "-3"],
        ["4", "0.5"],
    ]
    colour = [c.value_of_css_property("background-color") for c in cells]
    # The first low turn stands out from the low one after it, and both from the good ones.
    assert colour[1] == "rgba(198, 40, 40, 1)" and len({colour[0], colour[1], colour[2]}) == 3
    assert colour[3] == colour[0]
    strip, bad = row.find_element(By.CSS_SELECTOR, ".turn-strip"), cells[1]
    # In a row, in turn order (the outlined cell's thicker border shifts it by a pixel).
    assert bad.rect["x"] > cells[0].rect["x"] and abs(bad.rect["y"] - cells[0].rect["y"]) < 4
    assert strip.rect["height"] < 60  # small: one line above the conversation
    marked = row.find_element(By.CSS_SELECTOR, ".turn.low-turn")
    assert marked.is_displayed() and marked.text.endswith("There are nine.")
    assert marked.value_of_css_property("border-left-color") == "rgba(198, 40, 40, 1)"
    kept = _row(chromium, "multi-repaired").find_elements(By.CSS_SELECTOR, ".turn-cell.kept")
    assert len(kept) == 2 and kept[0].value_of_css_property("text-decoration-line") == "underline"


def test_a_low_turn_past_the_shown_messages_is_still_shown_and_marked():
    from transforms.report.rows import TURNS_SHOWN, row_html

    answers = [f"Answer {i}." for i in range(8)]  # 16 messages, more than are shown
    turns = _turns(*answers)
    assert len(turns) > TURNS_SHOWN
    scores = [1.0] * 7 + [-5.0]
    sample = Sample("long", "multi", turns, origin="m.json[0]", score=-5.0, turn_scores=scores)
    pick = Pick("multi", "long", -5.0, "low_score_turn", "", "s", "0", sample=sample)
    pick.turn_scores, pick.cut = scores, -2.0
    html = row_html(pick)
    assert f"… {len(turns) - TURNS_SHOWN} more turns" in html
    assert html.index("more turns") < html.index("Question 8?") < html.index("Answer 7.")
    assert re.findall(r'<div class="turn low-turn">.*?</div>', html) == [
        '<div class="turn low-turn"><span class="role">gpt</span>Answer 7.</div>'
    ]
