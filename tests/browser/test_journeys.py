"""The journeys of scripts/walkthrough.py in CI (issue 19 §1): each journey a test, run in the walkthrough's order on
one live registry (the suite's database: SQLite, or PostgreSQL with TEST_DATABASE_URL) and one Chromium page, as
they build on each other (the owner the staff created files, the bureau approves, the public looks it up, …).

Each fails on what tests/browser/watch.py watches for: a JavaScript error, a CSP violation, a failed request for a
page asset, a page slower than 2 s, visible English. The screenshots the walkthrough takes land in pytest's
temporary folder (kept for the last three runs): what a failing journey showed.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.browser.chromium import CHROMIUM, FLAGS, sync_api  # first: skips the module without Chromium
from tests.browser.watch import Watch, watch
from tests.conftest import _empty_tables
from tests.test_chinese_ui import _known_data

#: imported once tests.browser.chromium has skipped the module if Playwright or Chromium is missing
walkthrough = importlib.import_module("scripts.walkthrough")

SPOILED = '<p>Sample sentence</p><img src="/static/img/missing.png" alt=""><script>window.x = 1;</script>'
#: a journey failed: the ones after it, which build on it, are skipped rather than failed again
_failed: list[str] = []


@pytest.fixture(scope="module")
def registry(database_url: str) -> Iterator[walkthrough.Registry]:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    registry = walkthrough.Registry(database_url, prepare=_empty_tables)
    yield registry
    registry.close()


@pytest.fixture(scope="module")
def page(registry: walkthrough.Registry) -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
        yield browser.new_context(viewport=walkthrough.VIEWPORT, locale="zh-CN").new_page()
        browser.close()


@pytest.fixture(scope="module")
def watcher(page, registry: walkthrough.Registry) -> Watch:
    return watch(page, registry.base)


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("walkthrough")


def test_the_watch_sees_each_kind_of_problem(registry, page, watcher: Watch) -> None:
    """The home page served 2.1 s late with an inline script (refused by the CSP), a missing image and an English
    sentence added, and a script error thrown: each is reported."""

    def spoil(route) -> None:
        response = route.fetch()
        time.sleep(2.1)
        route.fulfill(response=response, body=response.text().replace("</body>", SPOILED + "</body>"))

    page.context.route(f"{registry.base}/", spoil)  # the context's: a slow page is loaded again in a tab of its own
    page.goto(f"{registry.base}/")
    page.evaluate("setTimeout(() => { throw new Error('thrown on purpose'); }, 0)")
    found = "\n".join(watcher.problems(_known_data(registry.app)))
    page.context.unroute(f"{registry.base}/")
    for expected in ("CSP violation on /: script-src-elem inline", "HTTP 404: GET /static/img/missing.png",
                     "JavaScript error on /: thrown on purpose", "console error on /", "slow page: / took",
                     "loaded again",
                     "English 'Sample' on /", "English 'sentence' on /"):
        assert expected in found, found


@pytest.mark.parametrize("journey", walkthrough.JOURNEYS, ids=[j.__name__ for j in walkthrough.JOURNEYS])
def test_journey(journey: Callable, registry, page, watcher: Watch, screenshots: Path) -> None:
    if _failed:
        pytest.skip(f"builds on {_failed[0]}, which failed")
    _failed.append(journey.__name__)
    journey(page, registry, screenshots)
    assert watcher.problems(_known_data(registry.app)) == []
    _failed.remove(journey.__name__)
