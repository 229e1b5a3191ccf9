"""Does any page the app renders, for any role, carry an inline script, an on*= handler or a javascript: URL?

The CSP forbids them (no 'unsafe-inline'), so such code would silently not run. Every GET address of the URL map is
fetched by every role (and signed out), with real ids, and every same-site link of the pages is followed.
"""

from __future__ import annotations

from collections import Counter
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.exceptions import HTTPException

from tests.accounts_helpers import REGISTRATION, register
from tests.console_world import EXTRA_ACCOUNTS, VIEW_RECORDS, World, build_world, get_rules, reset_link, url_for_rule
from tests.helpers import TIANJIN, post, sign_in

PAGES_PER_ENDPOINT = 2
NOT_FOLLOWED = ("/static/", "/admin/static/", "/logout")
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


class Crawler:
    """Fetches seeds then same-site links (at most a few pages per endpoint), checking each HTML page."""

    def __init__(self, app: Flask, client: FlaskClient, who: str) -> None:
        self.adapter = app.url_map.bind("localhost")
        self.client, self.who = client, who
        self.seen: set[str] = set()
        self.per_endpoint: Counter[str] = Counter()
        self.problems: dict[str, str] = {}

    def _endpoint(self, url: str) -> str | None:
        try:
            return self.adapter.match(urlsplit(url).path, "GET")[0]
        except HTTPException:
            return None

    def _wanted(self, url: str) -> bool:
        endpoint = self._endpoint(url)
        return (url not in self.seen and not url.startswith(NOT_FOLLOWED) and endpoint is not None
                and self.per_endpoint[endpoint] < PAGES_PER_ENDPOINT)

    def visit(self, url: str, *, seed: bool = False) -> None:
        """A seed is always fetched (a journey's step may reopen a page in a new state); a link once at most."""
        if not seed and not self._wanted(url):
            return
        self.seen.add(url)
        self.per_endpoint[self._endpoint(url) or url] += 1
        response = self.client.get(url)
        assert response.status_code < 500, (self.who, url)
        if response.mimetype != "text/html":
            return
        finder = inline_code(response.get_data(as_text=True))
        for problem in finder.problems:
            self.problems.setdefault(problem, f"{self.who} {url}")
        for link in finder.links:
            target = urljoin(url, link)
            if target.startswith("/") and not target.startswith("//"):
                self.visit(target.split("#")[0])


def _seeds(app: Flask, world: World) -> list[str]:
    seeds = []
    for rule in get_rules(app):
        path = url_for_rule(rule, world)
        view, _, rest = rule.endpoint.partition(".")
        record = VIEW_RECORDS.get(view)
        seeds.append(path)
        if record and rest not in ("index_view", "export", "ajax_lookup", "create_view"):
            seeds.append(f"{path}?id={world.ids[record]}")
    return [*seeds, f"/admin/provinces/details/?id={TIANJIN}", f"/admin/provinces/edit/?id={TIANJIN}",
            f"/admin/bureau_queue/batch-approve/?ids={world.ids['bureau_application']}",
            f"/admin/isp_queue/batch-approve/?ids={world.ids['isp_application']}",
            f"/admin/revocation_queue/batch/?ids={world.ids['revocation_request']}",
            f"/admin/new-access/?number={world.values['website_number']}",
            f"/?q={world.values['entity_number']}", "/admin/filing/preview/", "/admin/filing/websites/?edit=0"]


@pytest.fixture
def world(app, users, as_user) -> World:
    return build_world(app, users, as_user)


def _anonymous_journeys(app: Flask, crawler: Crawler) -> None:
    """The signed-out pages reached only through a form: registration steps, identity check, reset link."""
    client = crawler.client
    post(client, "/register")
    crawler.visit("/register/flow", seed=True)
    post(client, "/register/flow")
    crawler.visit("/register/form", seed=True)
    register(client)
    crawler.visit("/register/done", seed=True)
    sign_in(client, REGISTRATION["username"], REGISTRATION["password"])
    crawler.visit("/verify", seed=True)
    crawler.visit(reset_link(app, client), seed=True)


def _loaded_templates(app: Flask) -> set[str]:
    """Every template the scan loaded: rendered, extended, included or imported."""
    return {name for _loader, name in app.jinja_env.cache}


def test_no_page_of_any_role_has_inline_code(app, users, world) -> None:
    """Every GET page of the URL map and every page linked from it, for every role and signed out."""
    problems: dict[str, str] = {}
    seeds = _seeds(app, world)
    accounts = {**users, **EXTRA_ACCOUNTS}
    for number, who in enumerate([*accounts, "anonymous"]):
        client = app.test_client()
        client.environ_base["REMOTE_ADDR"] = f"192.0.2.{number + 1}"  # each its own captcha and sign-in limits
        if who != "anonymous":
            assert sign_in(client, accounts[who]).status_code == 302
        crawler = Crawler(app, client, who)
        for seed in seeds:
            crawler.visit(seed, seed=True)
        if who == "anonymous":
            _anonymous_journeys(app, crawler)
        problems = {**crawler.problems, **problems}
    assert problems == {}, "\n".join(f"{problem}  (first on: {where})" for problem, where in sorted(problems.items()))
    ours = {str(path.relative_to(TEMPLATES_DIR)) for path in TEMPLATES_DIR.rglob("*.html")}
    never_loaded = sorted(ours - _loaded_templates(app))
    assert never_loaded == [], f"templates of ours that no page loaded: {never_loaded}"
