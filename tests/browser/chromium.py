"""What the browser tests share: Debian's Chromium (the tests skip without it, unless `.ci/run` requires it),
Playwright's sync API, and the browser's flags. Imported at the top of each browser test module."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists() and os.environ.get("REQUIRE_BROWSER_TESTS"):
    pytest.fail("REQUIRE_BROWSER_TESTS is set (.ci/run) but /usr/bin/chromium is missing", pytrace=False)
if not CHROMIUM.exists():
    pytest.skip("the browser tests need Debian's chromium at /usr/bin/chromium (apt-get install chromium)",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -r requirements-dev.txt (playwright)")

FLAGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", "--disable-gpu", "--disable-quic"]


@contextmanager
def launched() -> Iterator[Any]:
    """Debian's Chromium, headless, closed after: each test module's `browser` fixture."""
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
        yield chromium
        chromium.close()
