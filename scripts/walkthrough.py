"""Walk through the console as a new user would, in headless Chromium, taking screenshots.

Usage (with the app served by `make run`, MIIT password known):
    python scripts/walkthrough.py http://127.0.0.1:5000 MIIT_PASSWORD screenshots/
Needs `pip install playwright` and Debian's chromium (never `playwright install`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def sign_in(page: Page, base: str, username: str, password: str) -> None:
    page.goto(f"{base}/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit].btn-danger")
    expect(page.locator(".console-whoami")).to_contain_text(username)


def sign_out(page: Page) -> None:
    page.click("text=退出")
    expect(page.locator("h5.card-title")).to_be_visible()


def create_user(page: Page, base: str, list_name: str, fields: dict[str, str], import_right: bool) -> None:
    page.goto(f"{base}/admin/{list_name}/new/")
    for name, value in fields.items():
        if name in ("role", "province_code"):
            page.select_option(f"#{name}", value)
        else:
            page.fill(f"#{name}", value)
    if import_right:
        page.check("#can_import")
    page.click("input[type=submit][value='保存']")
    expect(page.locator(".alert-success")).to_be_visible()


def main(base: str, miit_password: str, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1366, "height": 860}, locale="zh-CN")
        page.goto(f"{base}/login")
        page.screenshot(path=out / "01-sign-in.png")
        sign_in(page, base, "miit", miit_password)
        page.screenshot(path=out / "02-miit-dashboard.png")
        create_user(page, base, "management_users", {
            "username": "tj_bureau", "password": "Tianjin-2026", "role": "bureau",
            "province_code": "120000", "organisation": "天津市通信管理局", "contact_name": "王主任",
            "mobile": "13820000001", "email": "bureau@tj.example.cn"}, import_right=False)
        page.screenshot(path=out / "03-miit-management-users.png", full_page=True)
        sign_out(page)
        sign_in(page, base, "tj_bureau", "Tianjin-2026")
        page.screenshot(path=out / "04-bureau-dashboard.png")
        page.goto(f"{base}/admin/filing_users/new/")
        page.screenshot(path=out / "05-bureau-new-isp-form.png", full_page=True)
        create_user(page, base, "filing_users", {
            "username": "tj_isp", "password": "Isp-pass-2026", "role": "isp",
            "province_code": "120000", "organisation": "天津某数据中心有限公司", "contact_name": "李经理",
            "mobile": "13820000002", "email": "isp@tj.example.cn"}, import_right=True)
        page.screenshot(path=out / "06-bureau-filing-users.png", full_page=True)
        sign_out(page)
        sign_in(page, base, "tj_isp", "Isp-pass-2026")
        page.screenshot(path=out / "07-isp-dashboard.png")
        menu = page.locator(".console-sidebar").inner_text()
        assert "用户管理" not in menu and "审计日志" not in menu, menu
        page.goto(f"{base}/admin/code_items/")
        page.screenshot(path=out / "08-isp-code-tables.png", full_page=True)
        sign_out(page)
        sign_in(page, base, "miit", miit_password)
        page.goto(f"{base}/admin/audit_log/")
        page.screenshot(path=out / "09-miit-audit-log.png", full_page=True)
        browser.close()
    print(f"walkthrough passed; screenshots in {out}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], Path(sys.argv[3]))
