"""A real browser for tests: Debian's headless ``chromium`` driven through Debian's
``chromium-driver`` with Selenium.

Both paths are passed explicitly, so Selenium Manager never runs (it would try to download
a browser or a driver, which cannot be reached here). Locally a missing browser skips the
test; under ``CI=true`` it fails, like the DICOM peers (``.ci/run`` installs them).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.support.peers import IN_CI

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def require_browser() -> tuple[str, str]:
    """(chromium, chromedriver) paths, or skip (locally) / fail (CI) if missing."""
    chromium = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    driver = CHROMEDRIVER if Path(CHROMEDRIVER).exists() else shutil.which("chromedriver")
    missing = [n for n, p in (("chromium", chromium), ("chromium-driver", driver)) if not p]
    if missing:
        message = (
            f"browser not installed: {', '.join(missing)} (apt-get install {' '.join(missing)})"
        )
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    assert chromium and driver
    return chromium, driver


@contextmanager
def chromium(profile: Path, width: int = 1280, height: int = 1000) -> Iterator[Any]:
    """A headless Chromium WebDriver with a fresh profile in ``profile``; quit on exit."""
    browser, driver = require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile.mkdir(parents=True, exist_ok=True)
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    web = webdriver.Chrome(options=options, service=Service(driver))
    try:
        yield web
    finally:
        web.quit()
