"""The page scan shared by the CSP test and the Chinese-UI test: every GET address of the URL map, with real
ids, fetched by every role (and signed out), and every same-site link of the pages followed (a few pages per
endpoint); each HTML page handed to a check that returns its problems and its links."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from urllib.parse import urljoin, urlsplit

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.exceptions import HTTPException

from tests.accounts_helpers import REGISTRATION, register
from tests.console_world import EXTRA_ACCOUNTS, KEY_HOLDER, VIEW_RECORDS, World, get_rules, reset_link, url_for_rule
from tests.helpers import TIANJIN, post, sign_in

PAGES_PER_ENDPOINT = 2
NOT_FOLLOWED = ("/static/", "/admin/static/", "/logout")
REDIRECTS = (301, 302, 303, 307, 308)

#: a page's HTML → (its problems, its links)
Check = Callable[[str], tuple[Iterable[str], Iterable[str]]]


class Crawler:
    """Fetches seeds then same-site links (at most a few pages per endpoint), checking each HTML page."""

    def __init__(self, app: Flask, client: FlaskClient, who: str, check: Check) -> None:
        self.adapter = app.url_map.bind("localhost")
        self.client, self.who, self.check = client, who, check
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
        if response.status_code in REDIRECTS:  # its body is never seen: the page it leads to is
            target = urlsplit(urljoin(url, response.headers["Location"]))
            self.visit(f"{target.path}?{target.query}" if target.query else target.path)
            return
        if response.mimetype != "text/html":
            return
        problems, links = self.check(response.get_data(as_text=True))
        for problem in problems:
            self.problems.setdefault(problem, f"{self.who} {url}")
        for link in links:
            target = urljoin(url, link)
            if target.startswith("/") and not target.startswith("//"):
                self.visit(target.split("#")[0])


def seeds(app: Flask, world: World) -> list[str]:
    found = []
    for rule in get_rules(app):
        path = url_for_rule(rule, world)
        view, _, rest = rule.endpoint.partition(".")
        record = VIEW_RECORDS.get(view)
        found.append(path)
        if record and rest not in ("index_view", "export", "ajax_lookup", "create_view"):
            found.append(f"{path}?id={world.ids[record]}")
    return [*found, f"/admin/provinces/details/?id={TIANJIN}", f"/admin/provinces/edit/?id={TIANJIN}",
            f"/admin/bureau_queue/batch-approve/?ids={world.ids['bureau_application']}",
            f"/admin/isp_queue/batch-approve/?ids={world.ids['isp_application']}",
            f"/admin/isp_queue/batch-verify/?ids={world.ids['isp_application']}",
            f"/admin/revocation_queue/batch/?ids={world.ids['revocation_request']}",
            f"/admin/new-access/?number={world.values['website_number']}",
            f"/?q={world.values['entity_number']}", "/admin/filing/preview/", "/admin/filing/websites/?edit=0"]


def anonymous_journeys(app: Flask, crawler: Crawler) -> None:
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
    sign_in(client, KEY_HOLDER)  # the password of an account with a security key: the key step (issue 17 §3)
    crawler.visit("/login/key", seed=True)


def scan(app: Flask, users: dict[str, str], world: World, check: Check, **environ: str) -> dict[str, str]:
    """Every role and signed out: problem → where it was first seen."""
    problems: dict[str, str] = {}
    accounts = {**users, **EXTRA_ACCOUNTS}
    for number, who in enumerate([*accounts, "anonymous"]):
        client = app.test_client()
        client.environ_base.update(REMOTE_ADDR=f"192.0.2.{number + 1}", **environ)  # own captcha, sign-in limits
        if who != "anonymous":
            assert sign_in(client, accounts[who]).status_code == 302
        crawler = Crawler(app, client, who, check)
        for seed in seeds(app, world):
            crawler.visit(seed, seed=True)
        if who == "anonymous":
            anonymous_journeys(app, crawler)
        problems = {**crawler.problems, **problems}
    return problems


def report(problems: dict[str, str]) -> str:
    return "\n".join(f"{problem}  (first on: {where})" for problem, where in sorted(problems.items()))
