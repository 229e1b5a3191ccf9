"""Does any page the app renders, for any role, carry an inline script, an on*= handler or a javascript: URL?

The CSP forbids them (no 'unsafe-inline'), so such code would silently not run. Every GET address of the URL map is
fetched by every role (and signed out), with real ids, and every same-site link of the pages is followed.
"""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest
from flask import Flask

from tests.console_world import World, build_world
from tests.page_scan import report, scan

URL_ATTRIBUTES = ("href", "src", "action", "formaction", "data", "poster")

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"


class InlineCodeFinder(HTMLParser):
    """Collects inline <script> elements, on*= attributes and javascript: URLs, and the page's links."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "script" and not values.get("src"):
            self._problem("inline <script>")
        for name, value in attrs:
            if name.startswith("on"):
                self._problem(f"{name}= handler")
            if name in URL_ATTRIBUTES and value and value.strip().lower().startswith("javascript:"):
                self._problem(f"javascript: URL in {name}=")
        if tag == "a" and values.get("href"):
            self.links.append(values["href"])

    def _problem(self, kind: str) -> None:
        self.problems.append(f"{kind}: {' '.join((self.get_starttag_text() or '').split())[:120]}")


def inline_code(html: str) -> InlineCodeFinder:
    finder = InlineCodeFinder()
    finder.feed(html)
    finder.close()
    return finder


@pytest.mark.parametrize(("html", "problem"), [
    ("<script>alert(1)</script>", "inline <script>"),
    ('<script type="module">x()</script>', "inline <script>"),
    ('<button onclick="go()">x</button>', "onclick"),
    ('<body onload="x()">', "onload"),
    ('<a href="javascript:void(0)">x</a>', "javascript:"),
    ('<form action=" JavaScript:x()">', "javascript:"),
])
def test_the_finder_sees_each_kind_of_inline_code(html: str, problem: str) -> None:
    assert problem in " ".join(inline_code(html).problems)


def test_the_finder_accepts_external_scripts_and_data_attributes() -> None:
    page = ('<script src="/static/js/console.js"></script><a href="/admin/" data-confirm="确定？">x</a>'
            '<form data-onsubmit="x" action="/admin/"></form>')
    assert inline_code(page).problems == []


@pytest.fixture
def world(app, users, as_user) -> World:
    return build_world(app, users, as_user)


def _inline_code_and_links(html: str) -> tuple[list[str], list[str]]:
    finder = inline_code(html)
    return finder.problems, finder.links


def _loaded_templates(app: Flask) -> set[str]:
    """Every template the scan loaded: rendered, extended, included or imported."""
    return {name for _loader, name in app.jinja_env.cache}


def test_no_page_of_any_role_has_inline_code(app, users, world) -> None:
    """Every GET page of the URL map and every page linked from it, for every role and signed out."""
    problems = scan(app, users, world, _inline_code_and_links)
    assert problems == {}, report(problems)
    ours = {str(path.relative_to(TEMPLATES_DIR)) for path in TEMPLATES_DIR.rglob("*.html")}
    never_loaded = sorted(ours - _loaded_templates(app))
    assert never_loaded == [], f"templates of ours that no page loaded: {never_loaded}"
