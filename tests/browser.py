"""Headless Chromium for the report tests: Debian's chromium driven through selenium.

The driver path is given explicitly, so selenium-manager never runs and nothing is downloaded.
Tests skip when the browser is missing unless RMCLEAN_REQUIRE_BROWSER=1 (CI sets it).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

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


def start_chromium(profile_dir: Path, download_dir: Path):
    """A selenium driver whose downloads land in `download_dir` without asking."""
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
    download_dir.mkdir(parents=True, exist_ok=True)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    options.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(download_dir),
            "download.prompt_for_download": False,
        },
    )
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(download_dir)}
    )
    driver.download_dir = download_dir
    return driver


def requested_urls(driver, page_url: str) -> list[str]:
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


def wait_for_download(directory: Path, name: str, timeout_s: float = 20.0) -> Path:
    """The downloaded file once Chromium has finished writing it."""
    path = directory / name
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        partial = list(directory.glob("*.crdownload"))
        if path.exists() and not partial:
            return path
        time.sleep(0.1)
    raise AssertionError(f"{name} was not downloaded into {directory}: {list(directory.iterdir())}")
