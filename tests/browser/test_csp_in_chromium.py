"""In a real browser: an inline script injected into a real page of the app does not run under the app's CSP,
the violation is reported, and the app's own scripts (menus, filters, batch actions, confirmations) do run.

Drives Debian's /usr/bin/chromium headless through Playwright (never `playwright install`); skipped when absent.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from flask import Flask
from werkzeug.serving import make_server

from tests.browser.chromium import launched
from tests.helpers import sign_in

#: registered before any script of the page, so it sees every violation of the page's CSP
WATCH_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", function (event) {
  window.__violations.push(event.effectiveDirective + " " + (event.blockedURI || "inline"));
});
"""
INJECTED = ('<script>window.__injected = "ran";</script>'
            '<img src="/static/img/filing-flow.svg" alt="" onload="window.__handler = \'ran\'">')


@pytest.fixture
def live_url(app: Flask) -> Iterator[str]:
    """The app served by werkzeug on a free port, in a thread, for the test's duration."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()


@pytest.fixture
def browser() -> Iterator[object]:
    with launched() as chromium:
        yield chromium


@pytest.fixture
def signed_in_page(app: Flask, users: dict[str, str], browser, live_url: str):
    """`signed_in_page("bureau")` → a Playwright page whose context holds that account's session cookie."""

    def page_for(who: str):
        client = app.test_client()
        assert sign_in(client, users[who]).status_code == 302
        context = browser.new_context(base_url=live_url, locale="zh-CN")
        context.add_cookies([{"name": "session", "value": client.get_cookie("session").value, "url": live_url}])
        context.add_init_script(WATCH_VIOLATIONS)
        return context.new_page()

    return page_for


def _notice(page) -> None:
    page.goto("/admin/notices/new/")
    page.fill("#title", "浏览器测试通知")
    page.locator("div.rich-text-editor").fill("正文")
    page.click("input[type=submit].btn-primary")
    assert "浏览器测试通知" in page.content()


def test_an_injected_inline_script_does_not_run(signed_in_page) -> None:
    """The real notices page, its real headers (the CSP), with an inline script and handler added to its HTML."""
    page = signed_in_page("bureau")

    def inject(route) -> None:
        response = route.fetch()
        assert "script-src 'self';" in response.headers["content-security-policy"]
        route.fulfill(response=response, body=response.text().replace("</body>", INJECTED + "</body>"))

    page.route("**/admin/notices/", inject)
    page.goto("/admin/notices/")
    page.wait_for_load_state("load")
    assert INJECTED in page.content()
    assert page.evaluate("window.__injected") is None and page.evaluate("window.__handler") is None
    violations = page.evaluate("window.__violations")
    assert any(v.startswith("script-src") and v.endswith("inline") for v in violations), violations
    assert page.evaluate("typeof window.jQuery") == "function"  # the app's own scripts ran
    assert page.evaluate("typeof window.modelActions") == "object"


@pytest.mark.parametrize(("who", "paths"), [
    ("bureau", ["/admin/", "/admin/bureau_queue/", "/admin/notices/", "/admin/notices/new/", "/admin/audit_log/",
                "/admin/filing_users/", "/admin/filing_users/new/", "/admin/revoke/", "/admin/import/"]),
    ("icp", ["/admin/", "/admin/filing/", "/admin/applications/", "/admin/filings/", "/admin/account/"]),
    ("miit", ["/admin/management_users/", "/admin/outbox/", "/admin/code_items/", "/admin/provinces/"]),
])
def test_the_console_runs_without_a_single_violation(signed_in_page, who: str, paths: list[str]) -> None:
    page = signed_in_page(who)
    for path in paths:
        page.goto(path)
        page.wait_for_load_state("load")
        assert page.evaluate("window.__violations") == [], path


def test_public_pages_run_without_a_violation(browser, live_url: str) -> None:
    page = browser.new_context(base_url=live_url).new_page()
    page.add_init_script(WATCH_VIOLATIONS)
    for path in ["/", "/login", "/register", "/notices/", "/disclosure/", "/certificates/verify", "/code-tables/"]:
        page.goto(path)
        assert page.evaluate("window.__violations") == [], path


def test_filters_batch_actions_and_confirmations_work(signed_in_page) -> None:
    """What the removed inline handlers did, now done by the app's scripts."""
    page = signed_in_page("bureau")
    _notice(page)
    page.goto("/admin/notices/")
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

    page.click("li:has(.field-filters) > a.dropdown-toggle")
    page.click(".field-filters a.filter >> nth=0")
    assert page.locator("table.filters tr").count() == 1 and page.url.endswith("/admin/notices/")

    page.check("input.action-checkbox >> nth=0")
    page.click("li:has(a[data-model-action]) > a.dropdown-toggle")
    page.click("a[data-model-action=delete]")
    assert len(dialogs) == 1  # the batch deletion asked first, and was dismissed
    page.click("form[data-confirm] button >> nth=0")
    assert len(dialogs) == 2  # so did the row's delete button
    assert "浏览器测试通知" in page.content() and page.evaluate("window.__violations") == []


def test_the_date_range_picker_speaks_chinese_and_its_range_filters(signed_in_page) -> None:
    """Flask-Admin's date picker is English; static/js/console.js makes it Chinese (labels, weekdays, the
    separator " 至 "), and the filter accepts what it writes."""
    page = signed_in_page("miit")
    page.goto("/admin/audit_log/")
    page.click("li:has(.field-filters) > a.dropdown-toggle")
    page.click(".field-filters a.filter:has-text('日期')")
    page.locator("input.filter-val").first.click()
    picker = page.locator(".daterangepicker:visible")
    assert picker.locator(".applyBtn").inner_text() == "确定" and "六" in picker.inner_text()
    picker.locator(".applyBtn").click()
    assert " 至 " in page.locator("input.filter-val").first.input_value()
    page.click("button:has-text('应用')")
    page.wait_for_load_state()
    assert "%E8%87%B3" in page.url and "无效" not in page.content()
    assert page.evaluate("window.__violations") == []
