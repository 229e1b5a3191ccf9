"""What a browser test fails on, whatever it clicks (issue 19 §1): a JavaScript error, a CSP violation, a failed
request for an asset of the app (the favicon included), a page slower than 2 s, and visible English in the
Chinese UI (the allow-list and the reading of tests/test_chinese_ui.py).

A `Watch` listens to a Playwright page while a journey runs and keeps every page it loaded (its address, its load
time from the navigation's start — the POST of a form included — and its HTML as rendered, scripts run); `problems`
then says what went wrong, each with the page it happened on.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from tests.test_chinese_ui import english_words, visible_text

#: the issue's budget for a page, from the navigation's start to its load event; a developer's machine busy with
#: other work may raise it (BROWSER_SLOW_PAGE_MS=5000), CI keeps it
SLOW_PAGE_MS = int(os.environ.get("BROWSER_SLOW_PAGE_MS", "2000"))
#: Chromium's word for a request the page gave up itself: an asset a navigation left behind, a download
ABORTED = "net::ERR_ABORTED"

#: in every document before its scripts: reports CSP violations and, once loaded, the load time and the HTML
WATCH_SCRIPT = """
(() => {
  if (window.top !== window) return;
  document.addEventListener("securitypolicyviolation", (event) => {
    window.__watch("csp", event.effectiveDirective + " " + (event.blockedURI || "inline"), location.href);
  });
  window.addEventListener("load", () => setTimeout(() => {
    const navigation = performance.getEntriesByType("navigation")[0];
    const ms = navigation ? navigation.loadEventEnd - navigation.startTime : 0;
    const server = navigation ? navigation.responseStart - navigation.requestStart : 0;
    window.__watch("load", JSON.stringify({ms: ms, server: server, html: document.documentElement.outerHTML}),
                   location.href);
  }, 0));
})();
"""


@dataclass
class LoadedPage:
    url: str
    ms: float
    server_ms: float  # from the request to the answer's first byte: the server's part of `ms`
    html: str


@dataclass
class Watch:
    """Attach to a page with `watch(page, origin)`; read `problems(known)` after each step of a test."""

    origin: str
    page: object = None
    events: list[str] = field(default_factory=list)
    pages: list[LoadedPage] = field(default_factory=list)

    def _path(self, url: str) -> str:
        parts = urlsplit(url)
        return parts.path + (f"?{parts.query}" if parts.query else "")

    def _ours(self, url: str) -> bool:
        return url.startswith(self.origin + "/") or url == self.origin

    def _report(self, kind: str, detail: str, url: str) -> None:
        if kind == "load":
            loaded = json.loads(detail)
            self.pages.append(LoadedPage(url, loaded["ms"], loaded["server"], loaded["html"]))
        else:
            self.events.append(f"CSP violation on {self._path(url)}: {detail}")

    def _console(self, message) -> None:
        if message.type == "error":
            self.events.append(f"console error on {self._path(message.page.url if message.page else '')}: "
                               f"{message.text}")

    def _failed(self, request) -> None:
        if self._ours(request.url) and request.failure != ABORTED:
            self.events.append(f"request failed: {request.method} {self._path(request.url)} ({request.failure})")

    def _response(self, response) -> None:
        if self._ours(response.url) and response.status >= 400:
            self.events.append(f"HTTP {response.status}: {response.request.method} {self._path(response.url)}")

    def attach(self, page) -> None:
        self.page = page
        page.expose_function("__watch", self._report)
        page.add_init_script(WATCH_SCRIPT)
        page.on("pageerror", lambda error: self.events.append(f"JavaScript error on {self._path(page.url)}: {error}"))
        page.on("console", self._console)
        page.on("requestfailed", self._failed)
        page.on("response", self._response)

    def problems(self, known: set[str]) -> list[str]:
        """Every problem since the last call (then forgotten): events, slow pages, English words. Waits first for
        the page's load and its report (sent just after the load event)."""
        self.page.wait_for_load_state("load")
        self.page.evaluate("new Promise((done) => setTimeout(done, 50))")
        found = list(self.events)
        for loaded in self.pages:
            where = self._path(loaded.url)
            if loaded.ms > SLOW_PAGE_MS and (again := self._timed_again(loaded.url)) > SLOW_PAGE_MS:
                found.append(f"slow page: {where} took {loaded.ms:.0f} ms (the server {loaded.server_ms:.0f} ms), "
                             f"and {again:.0f} ms loaded again")
            found.extend(f"English {word!r} on {where} in {' '.join(piece.split())[:80]!r}"
                         for piece in visible_text(loaded.html).pieces for word in english_words(piece, known))
        self.events.clear()
        self.pages.clear()
        return found


    def _timed_again(self, url: str) -> float:
        """A slow page loaded once more, in a tab of its own (the journey's page stays as it is): slow twice is slow;
        once is a machine busy with something else for a moment (the two suites of CI share its cores)."""
        tab = self.page.context.new_page()
        try:
            tab.goto(url, wait_until="load")
            return float(tab.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd"))
        finally:
            tab.close()


def watch(page, origin: str) -> Watch:
    watcher = Watch(origin)
    watcher.attach(page)
    return watcher
