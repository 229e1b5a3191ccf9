"""What a person with a screen reader or only a keyboard meets (issue 19 §2): axe-core on the sign-in, the
registration's steps, the identity check, each step of the filing wizard, every queue, the public lookup and the
certificate verification — no violation of impact serious or critical, every form control labelled — and the
sign-in and the public lookup completed with the keyboard alone.

One world (tests/console_world.py: a record of every kind, made through the workflow) on the live test server;
each role's pages in a browser context holding that role's session.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy import select

from extensions import db
from models import Certificate, CertificateStatus
from tests.accounts_helpers import REGISTRATION
from tests.browser.axe import by_impact, forbidden, violations
from tests.browser.chromium import launched
from tests.console_world import EXTRA_ACCOUNTS, World, build_world
from tests.helpers import CAPTCHA, PASSWORD, sign_in

#: role → the console pages axe reads (a `{name}` is one of the world's ids)
CONSOLE_PAGES = {
    "icp": ["/admin/filing/", "/admin/filing/websites/", "/admin/filing/access/", "/admin/filing/preview/",
            "/admin/filings/"],
    "isp": ["/admin/isp_queue/", "/admin/isp_queue/batch-verify/?ids={isp_application}",
            "/admin/applications/details/?id={isp_application}"],
    "importer": ["/admin/import/"],
    "bureau": ["/admin/", "/admin/bureau_queue/", "/admin/bureau_queue/batch-approve/?ids={bureau_application}",
               "/admin/bureau_queue/approve/?id={bureau_application}", "/admin/revocation_queue/",
               "/admin/domain_flags/", "/admin/ip_findings/", "/admin/ip-lookup/"],
    "preapproval": ["/admin/preapproval_queue/"],
    "content_admin": ["/admin/special_content/"],
}
#: the sign-in through the keyboard: Tab until the field has the focus, type; never more presses than this
MAX_TABS = 40


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with launched() as chromium:
        yield chromium


@pytest.fixture
def world(app, users, as_user) -> World:
    return build_world(app, users, as_user)


def _context(browser, app: Flask, base: str, username: str | None = None):
    """A browser context, signed in as `username` (the session cookie of a test client's sign-in) or signed out."""
    context = browser.new_context(base_url=base, locale="zh-CN")
    if username:
        client = app.test_client()
        assert sign_in(client, username).status_code == 302
        context.add_cookies([{"name": "session", "value": client.get_cookie("session").value, "url": base}])
    return context


class Audit:
    """axe's findings page by page: the counts by impact, and what the test refuses."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.refused: list[str] = []
        self.pages = 0

    def read(self, page, name: str) -> None:
        found = violations(page)
        self.pages += 1
        self.counts.update(by_impact(found))
        self.refused.extend(f"{name}: {problem}" for problem in forbidden(found))


def _signed_out_pages(page, audit: Audit, world: World, token: str) -> None:
    """The sign-in, the registration's four steps, the identity check, the public lookup, the verification."""
    page.goto("/password/forgot")
    audit.read(page, "找回密码")
    page.goto("/login")
    audit.read(page, "登录")
    page.click("text=新网站主办者用户请注册")
    audit.read(page, "注册：使用声明")
    page.click("button:has-text('接受')")
    audit.read(page, "注册：流程")
    page.click("button:has-text('接受')")
    audit.read(page, "注册：表单")
    for name, value in {**REGISTRATION, "captcha": CAPTCHA}.items():
        page.fill(f"#{name}", value)
    page.click("button:has-text('注册')")
    audit.read(page, "注册：完成")
    _type_sign_in(page, REGISTRATION["username"], REGISTRATION["password"])
    audit.read(page, "身份验证")
    page.context.clear_cookies()
    for path, name in (("/", "首页"), (f"/?q={world.values['entity_number']}", "公开查询结果"),
                       ("/certificates/verify", "证书验证")):
        page.goto(path)
        audit.read(page, name)
    page.fill("#certificate", token)
    page.click("button:has-text('验证证书')")
    audit.read(page, "证书验证结果")


def _type_sign_in(page, username: str, password: str) -> None:
    page.goto("/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.fill("#captcha", CAPTCHA)
    page.click("button[type=submit].btn-danger")


def test_no_page_has_a_serious_or_critical_violation(app, users, world, live_server, browser) -> None:
    with app.app_context():
        token = db.session.scalar(select(Certificate.token).where(Certificate.status == CertificateStatus.CURRENT))
    audit = Audit()
    signed_out = _context(browser, app, live_server.url)
    _signed_out_pages(signed_out.new_page(), audit, world, token)
    accounts = {**users, **EXTRA_ACCOUNTS}
    for who, paths in CONSOLE_PAGES.items():
        page = _context(browser, app, live_server.url, accounts[who]).new_page()
        for path in paths:
            response = page.goto(path.format(**world.ids))
            assert response.ok, (who, path, response.status)
            audit.read(page, f"{who} {path}")
    print(f"axe: {audit.pages} pages, violations by impact {dict(audit.counts)}")  # the README's figures (-s)
    assert audit.refused == []


def _tab_to(page, selector: str) -> None:
    """Press Tab until the element has the focus, as a keyboard user would."""
    for _ in range(MAX_TABS):
        page.keyboard.press("Tab")
        if page.evaluate("(selector) => document.activeElement.matches(selector)", selector):
            return
    raise AssertionError(f"{selector} not reached in {MAX_TABS} presses of Tab")


def test_signing_in_with_the_keyboard_alone(app, users, live_server, browser) -> None:
    """Tab to each field, type, Enter: signed in (the captcha's answer is the test configuration's fixed one)."""
    page = _context(browser, app, live_server.url).new_page()
    page.goto("/login")
    for selector, value in (("#username", users["bureau"]), ("#password", PASSWORD), ("#captcha", CAPTCHA)):
        _tab_to(page, selector)
        page.keyboard.type(value)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert users["bureau"] in page.locator(".console-whoami").inner_text()


def test_the_public_lookup_with_the_keyboard_alone(app, users, world, live_server, browser) -> None:
    """Tab to the search box, type a filing number, Enter: the unit's record; Tab reaches its links."""
    page = _context(browser, app, live_server.url).new_page()
    page.goto("/")
    _tab_to(page, "input[name=q]")
    page.keyboard.type(world.values["entity_number"])
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert world.values["entity_number"] in page.locator(".card-header").first.inner_text()
