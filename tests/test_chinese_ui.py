"""Is every word a Chinese user sees in Chinese? (issue 12, item 5)

Every console page of every role and every public page, signed out, crawled as tests/test_csp_pages.py does (every
GET address of the URL map with real ids, then the same-site links), in Chinese. Of each page only what a reader
sees is kept: the text outside <script>, <style> and <template>, the <title>, and the attributes a browser shows
(title, placeholder, alt, aria-label, the value of a button-like <input>). What is left must hold no ASCII word
but those of the allow-list below; data (domains, e-mail addresses, addresses, numbers, user names) is recognised
by its shape or taken from the database.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections import Counter
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.exceptions import HTTPException

from extensions import db
from models import User
from tests.accounts_helpers import REGISTRATION
from tests.console_world import EXTRA_ACCOUNTS, World, build_world
from tests.helpers import sign_in
from tests.test_csp_pages import NOT_FOLLOWED, PAGES_PER_ENDPOINT, _anonymous_journeys, _seeds

#: ASCII words a Chinese page may show, and why.
ALLOWED_WORDS = {
    # the issue's own allow-list: the registry's vocabulary (津ICP备…号, ISP, IP addresses, URLs)
    "ICP", "ISP", "IP", "IPv", "URL",
    # the language switch names the other language in that language, so that its readers find it
    "English",
    # file formats as the files are called, and the extensions of file names (备案导入模板.xlsx, bazs.cert)
    "Excel", "CSV", "XLSX", "XLS", "PDF", "ZIP", "xlsx", "xls", "csv", "pdf", "cert",
    # the time zone in the footer (北京时间 UTC+8) and the hash algorithm named beside the audit chain
    "UTC", "SHA",
}
VISIBLE_ATTRIBUTES = ("title", "placeholder", "alt", "aria-label")
BUTTON_INPUTS = ("submit", "button", "reset")
REDIRECTS = (301, 302, 303, 307, 308)
HIDDEN_ELEMENTS = ("script", "style", "template")
VOID_ELEMENTS = ("area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr")

TOKEN_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._%+\-@:/]*[A-Za-z0-9]|[A-Za-z0-9]")
WORD_RE = re.compile(r"[A-Za-z]+")
EMAIL_RE = re.compile(r"^[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}$")
#: a domain of the data (its top-level domain one the registry's data uses, so that `application.approved` is no domain)
DOMAIN_RE = re.compile(r"^(?:[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?\.)+(?:cn|com|net|org|gov|edu|xn--[a-z0-9\-]+)\.?$")
#: a file name as the registry names its files (the certificate is called bazs.cert, FAQ 33)
FILE_RE = re.compile(r"^[\w\-]+\.(?:cert|xlsx|xls|csv|pdf)$")
URL_RE = re.compile(r"^https?://\S+$")
#: an identifier of the data (letters with digits): a credit code, an ID card number, a hash, a test site's name
IDENTIFIER_RE = re.compile(r"^(?=[A-Za-z0-9_\-]*[0-9])[A-Za-z0-9_\-]+$")


class VisibleText(HTMLParser):
    """The text a reader sees of a page, in pieces.

    Elements hidden by `hidden` or Bootstrap's `d-none` are skipped, but for the filters' data that the list's
    script turns into menus (Flask-Admin's `filter-groups-data`): its group names, operations and option labels."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.pieces: list[str] = []
        self.links: list[str] = []
        self._hidden: list[str] = []  # the open elements from the outermost hidden one
        self._filter_data = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if self._hidden or tag in HIDDEN_ELEMENTS or "hidden" in values or "d-none" in (values.get("class") or "").split():
            self._filter_data = self._filter_data or values.get("id") == "filter-groups-data"
            if tag not in VOID_ELEMENTS:
                self._hidden.append(tag)
            return
        self.pieces.extend(value for name, value in attrs if name in VISIBLE_ATTRIBUTES and value)
        if tag == "input" and values.get("type") in BUTTON_INPUTS and values.get("value"):
            self.pieces.append(values["value"] or "")
        if tag == "a" and values.get("href"):
            self.links.append(values["href"] or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._hidden:
            del self._hidden[len(self._hidden) - 1 - self._hidden[::-1].index(tag):]
            self._filter_data = self._filter_data and bool(self._hidden)

    def handle_data(self, data: str) -> None:
        if self._filter_data:
            self.pieces.extend(_filter_labels(json.loads(data)))
        elif not self._hidden and data.strip():
            self.pieces.append(data)


def _filter_labels(groups: dict[str, list[dict]]) -> list[str]:
    """What the filter menus show: each group's name, each filter's operation and option labels."""
    labels = list(groups)
    for filters in groups.values():
        for one in filters:
            labels.append(one["operation"])
            labels.extend(str(option_label) for _value, option_label in one.get("options") or ())
    return labels


def visible_text(html: str) -> VisibleText:
    parser = VisibleText()
    parser.feed(html)
    parser.close()
    return parser


def _is_address(token: str) -> bool:
    try:
        ipaddress.ip_network(token.strip("[]"), strict=False)
    except ValueError:
        return False
    return True


def _is_data(token: str, known: set[str]) -> bool:
    lowered = token.lower().rstrip(".:/")
    return (token in known or bool(EMAIL_RE.match(token) or URL_RE.match(token) or DOMAIN_RE.match(lowered)
                                   or FILE_RE.match(token)
                                   or IDENTIFIER_RE.match(token)) or _is_address(token))


def english_words(text: str, known: set[str] = frozenset()) -> list[str]:
    """The ASCII words of a text that are neither allowed nor data."""
    words = []
    for token in TOKEN_RE.findall(text):
        if not _is_data(token, known):
            words.extend(word for word in WORD_RE.findall(token) if word not in ALLOWED_WORDS)
    return words


@pytest.mark.parametrize(("text", "words"), [
    ("共 20 条 · 每页 50 条", []),
    ("津ICP备26000001号-1 · ISP · IPv4 · IPv6 · URL", []),
    ("www.example.cn · 例子.中国 · xn--fsqu00a.xn--fiqs8s · owner@example.cn · https://www.example.cn/a", []),
    ("192.0.2.1 · 2001:db8::1 · 192.0.2.0/24 · 91120000MA05ABCD1X · 12010119900307123X", []),
    ("20 items", ["items"]),
    ("FAQ 2 · 审核通过 (application.approved)", ["FAQ", "application", "approved"]),
    ("cli · JWS 签名", ["cli", "JWS"]),
])
def test_the_scan_tells_english_from_data(text: str, words: list[str]) -> None:
    assert english_words(text) == words


def test_the_scan_reads_only_what_is_visible() -> None:
    page = ('<title>首页</title><style>.a{color:red}</style><script src="x.js"></script>'
            '<a href="/x" class="btn" data-x="hidden words" title="Edit record">编辑</a>'
            '<input type="text" name="q" value="typed" placeholder="Search"><input type="submit" value="Save">'
            '<img src="a.png" alt="logo"><i class="fa fa-pencil" aria-label="Pencil"></i>')
    found = visible_text(page)
    assert found.pieces == ["首页", "Edit record", "编辑", "Search", "Save", "logo", "Pencil"]
    assert found.links == ["/x"]


class TextCrawler:
    """Fetches seeds then same-site links (a few pages per endpoint), noting the English words of each page."""

    def __init__(self, app: Flask, client: FlaskClient, who: str, known: set[str]) -> None:
        self.adapter = app.url_map.bind("localhost")
        self.client, self.who, self.known = client, who, known
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
        page = visible_text(response.get_data(as_text=True))
        for piece in page.pieces:
            for word in english_words(piece, self.known):
                self.problems.setdefault(f"{word!r} in {' '.join(piece.split())[:80]!r}", f"{self.who} {url}")
        for link in page.links:
            target = urljoin(url, link)
            if target.startswith("/") and not target.startswith("//"):
                self.visit(target.split("#")[0])


def _usernames(app: Flask) -> set[str]:
    """Account names are data the console shows (ASCII by rule); so is the registration's."""
    with app.app_context():
        return {*db.session.scalars(select(User.username)), REGISTRATION["username"]}


@pytest.fixture
def world(app, users, as_user) -> World:
    return build_world(app, users, as_user)


def test_no_page_of_any_role_shows_an_english_word(app, users, world) -> None:
    """Every GET page of the URL map and every page linked from it, for every role and signed out, in Chinese."""
    problems: dict[str, str] = {}
    seeds = _seeds(app, world)
    accounts = {**users, **EXTRA_ACCOUNTS}
    known = _usernames(app)
    for number, who in enumerate([*accounts, "anonymous"]):
        client = app.test_client()
        client.environ_base.update(REMOTE_ADDR=f"192.0.2.{number + 1}", HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9")
        if who != "anonymous":
            assert sign_in(client, accounts[who]).status_code == 302
        crawler = TextCrawler(app, client, who, known)
        for seed in seeds:
            crawler.visit(seed, seed=True)
        if who == "anonymous":
            _anonymous_journeys(app, crawler)
        problems = {**crawler.problems, **problems}
    assert problems == {}, "\n".join(f"{problem}  (first on: {where})" for problem, where in sorted(problems.items()))
