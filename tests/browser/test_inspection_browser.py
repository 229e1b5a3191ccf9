"""In a real browser (issue 18, "tried as a new user would"): a bureau clerk starts an inspection of its province,
watches the progress (the run's page polls its status and reloads when the run ends), opens a failing website's
evidence, sends the rectification notice; the ISP answers it; the clerk closes it; the ISP reports unfiled websites.
The worker's step runs in the test between the pages, with a stand-in inspector (no HTTP; the inspector's own tests
fetch real loopback sites). No console error, no CSP violation, every page in Chinese.

Drives Debian's /usr/bin/chromium headless through Playwright (never `playwright install`); skipped when absent.
INSPECTION_SCREENSHOTS=<folder> saves each page there to be looked at.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

import workflow.inspections as inspections
from extensions import db
from models import NoticeState, RectificationNotice, Website
from tests.browser.chromium import launched
from tests.helpers import PASSWORD, user_named
from tests.inspection_factories import filed_website
from tests.test_inspection_console import Inspector

SHOTS = os.environ.get("INSPECTION_SCREENSHOTS")


@pytest.fixture
def browser() -> Iterator[Any]:
    with launched() as chromium:
        yield chromium


class Person:
    """One browser context (its own cookies); the console errors and CSP reports it met."""

    def __init__(self, browser: Any, base: str, username: str) -> None:
        self.context = browser.new_context(base_url=base, locale="zh-CN", viewport={"width": 1400, "height": 1000})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda message: self.errors.append(message.text) if message.type == "error" else None)
        self.page.on("dialog", lambda dialog: dialog.accept())  # the confirmations of data-confirm forms
        self.page.goto("/login")
        self.page.fill("#username", username)
        self.page.fill("#password", PASSWORD)
        self.page.fill("#captcha", "TEST")
        self.page.click("form:has(#username) button[type=submit]")
        self.page.wait_for_url("**/admin/**")

    def shot(self, name: str) -> None:
        if SHOTS:
            Path(SHOTS).mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


def test_a_clerk_inspects_sends_a_notice_and_the_isp_answers(app: Flask, people: dict[str, str], live_server: Any,
                                                             browser: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    with app.app_context():
        failing = filed_website(people).id
        passing = filed_website(people).id
        filed_website(people, isps=("isp_bj",), province="110000", bureau="bureau_bj")
    monkeypatch.setattr(inspections, "inspect_sites", Inspector({failing: {"number": "missing", "cert": "absent"}}))
    clerk = Person(browser, live_server.url, people["bureau"])
    page = clerk.page

    page.click("text=网站检查")
    page.click("text=检查任务")
    page.click("text=新建检查")
    clerk.shot("01-new-run")
    page.check("#scope-all")
    page.click("text=开始检查")
    page.wait_for_selector("text=检查任务已创建")
    assert page.inner_text("#run-state") == "排队中" and page.inner_text("#run-total") == "2"
    assert page.eval_on_selector("#run-bar", "bar => bar.style.width") == "0%"
    clerk.shot("02-run-queued")
    with app.app_context():
        while inspections.run_inspection_jobs():
            pass
    page.wait_for_selector("#run-state >> text=已完成", timeout=8000)  # polled, then reloaded
    assert page.inner_text("#run-checked") == "2" and page.inner_text("#run-failing") == "1"
    assert page.eval_on_selector("#run-bar", "bar => bar.style.width") == "100%"
    rows = page.locator("table tbody tr")
    assert "未通过" in rows.nth(0).inner_text() and "备案号展示、电子验证标识" in rows.nth(0).inner_text()
    assert "通过" in rows.nth(1).inner_text()
    clerk.shot("03-run-done")

    page.click("text=检查发现")
    assert page.locator("table tbody tr").count() == 1  # 天津's failing website only
    clerk.shot("04-findings")
    page.click("table tbody tr a >> nth=0")
    page.wait_for_selector("text=检查历史")
    assert page.inner_text("pre code") .startswith("<script>")  # the hostile excerpt as text, not markup
    assert page.is_checked("#check-number") and page.is_checked("#check-cert") and not page.is_checked("#check-dns")
    page.fill("#message", "请在首页底部展示备案号并链接至备案管理系统，放置电子验证标识。")
    clerk.shot("05-website")
    page.click("text=发送整改通知 >> nth=-1")
    page.wait_for_selector("text=整改通知已发送")
    clerk.shot("06-notice-sent")

    isp = Person(browser, live_server.url, people["isp"])
    isp.page.click("text=整改通知")
    isp.shot("07-isp-notices")
    isp.page.click("text=查看 >> nth=0")
    isp.page.select_option("#result", "rectified")
    isp.page.fill("#detail", "已督促网站主办者整改，首页已展示备案号。")
    isp.shot("08-isp-answer")
    isp.page.click("button:has-text('提交')")
    isp.page.wait_for_selector("text=处理结果已提交")
    isp.shot("09-isp-answered")

    page.goto("/admin/rectification/")
    assert "已反馈" in page.inner_text("table tbody")
    clerk.shot("10-clerk-notices")
    page.click("button:has-text('结案')")
    page.wait_for_selector("text=整改通知已结案")
    with app.app_context():
        assert db.session.scalar(select(RectificationNotice.state)) == NoticeState.CLOSED
        overdue = inspections.issue_notice(user_named(people["bureau"]), db.session.get(Website, failing), ["number"],
                                           "请展示备案号。", inspections.beijing_today() + timedelta(days=1))
        overdue.deadline = inspections.beijing_today() - timedelta(days=2)  # two days past its deadline, unanswered
        db.session.commit()
    page.goto("/admin/rectification/")
    assert page.locator("tr:has(.notice-overdue)").count() == 1 and "超期" in page.inner_text("table tbody")
    assert page.eval_on_selector("tr:has(.notice-overdue) td", "cell => getComputedStyle(cell).backgroundColor") \
        == "rgb(253, 236, 234)"
    clerk.shot("11-clerk-overdue")
    page.click("text=检查任务")
    assert page.locator("table tbody tr").count() == 1
    clerk.shot("12-clerk-runs")

    isp.page.click("text=未备案网站")
    isp.page.click("text=上报网内发现的网站")
    isp.page.fill("#values", "unfiled-one.cn\nunfiled-two.cn\n坏 域名")
    isp.page.click("text=与备案信息比对")
    isp.page.wait_for_selector("text=未备案 2 个")
    isp.shot("13-unfiled-result")
    isp.page.goto("/admin/unfiled/")
    assert isp.page.locator("table tbody tr").count() == 2
    isp.shot("14-unfiled-list")
    assert passing and clerk.errors == [] and isp.errors == []
