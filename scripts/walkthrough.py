"""Walk through the registry as its users would, in headless Chromium, taking screenshots.

    python scripts/walkthrough.py screenshots/

Starts the app on a free local port with a fresh database in a temporary folder (TESTING, with a
known captcha answer so that a script can type it), delivers the outbox between steps, reads the
codes and links where the README tells a developer to look (instance/sms.log, instance/mail/*.eml).
Needs `pip install playwright` and Debian's chromium (never `playwright install`).
"""

from __future__ import annotations

import email
import json
import logging
import re
import sys
import tempfile
import threading
from collections.abc import Callable
from datetime import date, timedelta
from email import policy
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright
from sqlalchemy import func, select, update
from werkzeug.serving import make_server

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import demo
import notify
import workflow
from app import create_app, ensure_first_miit_account
from extensions import db
from models import (
    Application,
    ApplicationState,
    Certificate,
    CertificateStatus,
    Entity,
    IspVerification,
    PreapprovalItem,
    ReviewState,
    User,
    utcnow,
)
from seed_data import seed_code_tables, seed_divisions
from tests.filing_factories import credit_code
from workflow import domain_reconcile, registrant

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
CAPTCHA = "WALK"
YY = f"{utcnow().year % 100:02d}"  # the year in the filing numbers given now
DEMO_PASSWORD = "Demo-pass-2026"
MIIT_PASSWORD = "Miit-pass-2026"
CODE_RE = re.compile(r"验证码为 (\d{6})")


class Registry:
    """The app served in a thread, plus what a developer reads from its instance folder."""

    def __init__(self, database_url: str | None = None, prepare: Callable[[], None] | None = None) -> None:
        """A new SQLite file in a temporary folder; or `database_url`, the test suite's database (tests/browser),
        which `prepare` empties first (in the app's context)."""
        self.folder = Path(tempfile.mkdtemp(prefix="beian-walk-"))
        self.app = create_app({"TESTING": True, "CAPTCHA_FIXED_ANSWER": CAPTCHA, "INSTANCE_PATH": str(self.folder),
                               "SQLALCHEMY_DATABASE_URI": database_url or f"sqlite:///{self.folder / 'beian.db'}",
                               "MIIT_ADMIN_PASSWORD": MIIT_PASSWORD,
                               "CAPTCHA_RATE_LIMIT_PER_MINUTE": 1000})  # one script signs in many times a minute
        with self.app.app_context():
            from flask_migrate import upgrade

            from app import MIGRATIONS_DIR

            upgrade(directory=MIGRATIONS_DIR)
            if prepare:
                prepare()
            seed_code_tables()
            seed_divisions()
            ensure_first_miit_account()
            db.session.commit()
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        self.app.config["PUBLIC_BASE_URL"] = self.base  # links in e-mails come from configuration
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        with self.app.app_context():
            db.engine.dispose()

    def deliver(self) -> None:
        with self.app.app_context():
            notify.deliver_due()

    def run_jobs(self) -> None:
        """What the worker does every few seconds: run the queued imports."""
        with self.app.app_context():
            workflow.run_import_jobs()

    def sms_code(self, mobile: str) -> str:
        lines = (self.folder / "sms.log").read_text(encoding="utf-8").splitlines()
        return [CODE_RE.search(json.loads(x)["text"]).group(1) for x in lines if json.loads(x)["to"] == mobile][-1]

    def last_mail(self, recipient: str) -> str:
        for path in sorted((self.folder / "mail").glob("*.eml"), reverse=True):
            message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
            if message["To"] == recipient:
                return message.get_body(preferencelist=("plain",)).get_content()
        raise AssertionError(f"no mail to {recipient}")


def sign_in(page: Page, base: str, username: str, password: str, expect_console: bool = True) -> None:
    page.goto(f"{base}/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.fill("#captcha", CAPTCHA)
    page.click("button[type=submit].btn-danger")
    if expect_console:
        expect(page.locator(".console-whoami")).to_contain_text(username)


def sign_out(page: Page) -> None:
    page.click("text=退出")
    expect(page.locator("#username")).to_be_visible()


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


def staff_journey(page: Page, registry: Registry, out: Path) -> None:
    """Issue #2: MIIT creates a 天津 bureau, which creates an ISP with the import right."""
    base = registry.base
    page.goto(f"{base}/login")
    page.screenshot(path=out / "01-sign-in.png")
    sign_in(page, base, "miit", MIIT_PASSWORD)
    page.screenshot(path=out / "02-miit-dashboard.png")
    create_user(page, base, "management_users", {
        "username": "tj_bureau", "password": "Tianjin-2026", "role": "bureau", "province_code": "120000",
        "organisation": "天津市通信管理局", "contact_name": "王主任", "mobile": "13820000001",
        "email": "bureau@tj.example.cn"}, import_right=False)
    page.screenshot(path=out / "03-miit-management-users.png", full_page=True)
    sign_out(page)
    sign_in(page, base, "tj_bureau", "Tianjin-2026")
    page.screenshot(path=out / "04-bureau-dashboard.png")
    page.goto(f"{base}/admin/filing_users/new/")
    page.screenshot(path=out / "05-bureau-new-isp-form.png", full_page=True)
    create_user(page, base, "filing_users", {
        "username": "tj_isp", "password": "Isp-pass-2026", "role": "isp", "province_code": "120000",
        "organisation": "天津某数据中心有限公司", "contact_name": "李经理", "mobile": "13820000002",
        "email": "isp@tj.example.cn"}, import_right=True)
    page.screenshot(path=out / "06-bureau-filing-users.png", full_page=True)
    sign_out(page)
    sign_in(page, base, "tj_isp", "Isp-pass-2026")
    page.screenshot(path=out / "07-isp-dashboard.png")
    menu = page.locator(".console-sidebar").inner_text()
    assert "用户管理" not in menu and "审计日志" not in menu, menu
    page.goto(f"{base}/admin/code_items/")
    page.screenshot(path=out / "08-isp-code-tables.png", full_page=True)
    sign_out(page)
    sign_in(page, base, "miit", MIIT_PASSWORD)
    page.goto(f"{base}/admin/audit_log/")
    page.screenshot(path=out / "09-miit-audit-log.png", full_page=True)
    sign_out(page)


def owner_journey(page: Page, registry: Registry, out: Path) -> None:
    """Issue #3: register, identity check, change password, sign out, recover the password."""
    base = registry.base
    page.goto(f"{base}/login")
    page.click("text=新网站主办者用户请注册")
    page.screenshot(path=out / "10-register-statement.png", full_page=True)
    page.click("button:has-text('接受')")
    page.screenshot(path=out / "11-register-flow-chart.png", full_page=True)
    page.click("button:has-text('接受')")
    for name, value in {"username": "zhousite", "contact_name": "周八", "password": "Site-owner-7",
                        "confirm": "Site-owner-7", "mobile": "13611112222", "email": "zhou@example.cn",
                        "organisation": "某某科技有限公司", "captcha": CAPTCHA}.items():
        page.fill(f"#{name}", value)
    page.screenshot(path=out / "12-register-form.png", full_page=True)
    page.click("button:has-text('注册')")
    expect(page.locator("h5.card-title")).to_contain_text("注册成功")
    page.screenshot(path=out / "13-register-done.png")
    registry.deliver()
    mobile_code = registry.sms_code("13611112222")
    email_code = CODE_RE.search(registry.last_mail("zhou@example.cn")).group(1)
    sign_in(page, base, "zhousite", "Site-owner-7", expect_console=False)
    expect(page.locator("h5.card-title")).to_contain_text("身份验证")
    page.fill("#mobile_code", mobile_code)
    page.fill("#email_code", email_code)
    page.screenshot(path=out / "14-identity-check.png")
    page.click("button:has-text('确认')")
    expect(page.locator(".console-whoami")).to_contain_text("zhousite")
    page.screenshot(path=out / "15-icp-dashboard.png")
    page.goto(f"{base}/admin/password/")
    page.fill("#old_password", "Site-owner-7")
    page.fill("#new_password", "Changed-pass-8")
    page.fill("#confirm", "Changed-pass-8")
    page.screenshot(path=out / "16-change-password.png")
    page.click("button:has-text('保存')")
    expect(page.locator(".alert-success")).to_contain_text("密码已修改")
    sign_out(page)
    page.click("text=找回密码")
    for name, value in {"username": "zhousite", "contact_name": "周八", "email": "zhou@example.cn",
                        "captcha": CAPTCHA}.items():
        page.fill(f"#{name}", value)
    page.screenshot(path=out / "17-forgot-password.png")
    page.click("button:has-text('提交')")
    expect(page.locator(".alert-info")).to_be_visible()
    registry.deliver()
    link = re.search(r"http://\S+/password/reset/\S+", registry.last_mail("zhou@example.cn")).group(0)
    page.goto(link)
    page.fill("#new_password", "Recovered-pass-9")
    page.fill("#confirm", "Recovered-pass-9")
    page.screenshot(path=out / "18-reset-password.png")
    page.click("button:has-text('保存')")
    expect(page.locator(".alert-success")).to_contain_text("请使用新密码登录")
    sign_in(page, base, "zhousite", "Recovered-pass-9")
    page.goto(f"{base}/admin/account/")
    page.screenshot(path=out / "19-personal-information.png")
    sign_out(page)


def keep_only_those_that_can(page: Page) -> None:
    """On a batch page: leave out the applications the registrant check (or anything else) stops, if any."""
    keep = page.locator("a:has-text('只保留可以办理的')")
    if keep.count():
        keep.click()
        expect(page.locator("a:has-text('只保留可以办理的')")).to_have_count(0)


REGISTRAR_PASSWORD = "Registrar-2026"


def report_domain(page: Page, base: str, domain: str, registrant_name: str, number: str,
                  screenshot: Path | None = None) -> None:
    """The registrar (signed in) reports a domain through the console's form."""
    page.goto(f"{base}/admin/domain_reports/new/")
    page.fill("#domain", domain)
    page.select_option("#domain_type", "3" if not domain.isascii() else "2")
    page.fill("#registered_on", str(date.today() - timedelta(days=200)))
    page.fill("#expires_on", str(date.today() + timedelta(days=3 * 365)))
    page.fill("#registrar_name", "中国某域名注册服务有限公司")
    page.fill("#name_servers", "ns1.cndns.example.cn\nns2.cndns.example.cn")
    fill_registrant(page, registrant_name, number)
    contact = {"admin_name": "郑十", "admin_email": "hostmaster@cndns.example.cn", "admin_phone": "13820000021"}
    for name, value in contact.items():
        page.fill(f"#{name}", value)
    if screenshot:
        page.screenshot(path=screenshot, full_page=True)
    page.click("input[type=submit][value='保存']")
    expect(page.locator(".alert-success")).to_be_visible()


def fill_registrant(page: Page, name: str, number: str) -> None:
    page.fill("#registrant_name", name)
    page.fill("#registrant_organisation", name)
    page.select_option("#registrant_certificate_type", "1")
    page.fill("#registrant_certificate_number", number)
    page.select_option("#registrant_province_code", "120000")
    page.fill("#registrant_email", "dns@cndns.example.cn")
    page.fill("#registrant_phone", "022-23456789")


def registrar_journey(page: Page, registry: Registry, out: Path) -> None:
    """Issue 14: MIIT creates a national registrar (no province), which reports the domains the owner is about to
    file, in the owner's name (264号: the registrant must be the filing entity), with the subdomain added later."""
    base = registry.base
    sign_in(page, base, "miit", MIIT_PASSWORD)
    page.goto(f"{base}/admin/filing_users/new/")
    create_user(page, base, "filing_users", {
        "username": "cn_registrar", "password": REGISTRAR_PASSWORD, "role": "domain_reporter", "province_code": "",
        "organisation": "中国某域名注册服务有限公司", "contact_name": "郑经理", "mobile": "13820000020",
        "email": "registrar@cndns.example.cn"}, import_right=False)
    sign_out(page)
    sign_in(page, base, "cn_registrar", REGISTRAR_PASSWORD)
    page.screenshot(path=out / "80-registrar-dashboard.png", full_page=True)
    for index, domain in enumerate(("zhouba.cn", "zhouba.com.cn")):  # registered domains (www. lies under them)
        report_domain(page, base, domain, "天津周八科技有限公司", "91350100M000100Y43",
                      out / "81-registrar-report-form.png" if index == 0 else None)
    expect(page.locator("table.model-list")).to_contain_text("zhouba.com.cn")
    page.screenshot(path=out / "82-registrar-reports.png", full_page=True)
    sign_out(page)


def filing_journey(page: Page, registry: Registry, out: Path) -> None:
    """Issue #4: the owner files through the wizard (a mistake first), the ISP verifies, the bureau
    batch-approves its queue (50 seeded applications and the owner's), the owner downloads bazs.cert."""
    base = registry.base
    with registry.app.app_context():
        demo.seed(50, DEMO_PASSWORD, ApplicationState.BUREAU_REVIEW, "120000")
        db.session.execute(update(PreapprovalItem).values(state=ReviewState.CONFIRMED))  # the authority agreed
        db.session.commit()
    sign_in(page, base, "zhousite", "Recovered-pass-9")
    page.goto(f"{base}/admin/filing/")
    entity = {"unit_name": "天津周八科技有限公司", "certificate_number": "91350100M000100Y44",
              "address": "天津市河西区某路8号", "responsible_name": "周八",
              "responsible_id_number": "11010519491231002X",
              "responsible_mobile": "13611112222", "responsible_email": "zhou@example.cn"}
    page.select_option("#province_code", "120000")
    page.select_option("#unit_nature", "4")
    page.select_option("#certificate_type", "1")
    for name, value in entity.items():
        page.fill(f"#{name}", value)
    page.click("button:has-text('下一步')")
    expect(page.locator(".invalid-feedback").first).to_contain_text("校验码不正确")
    page.screenshot(path=out / "20-wizard-entity-mistake.png", full_page=True)
    page.fill("#certificate_number", "91350100M000100Y43")
    page.click("button:has-text('下一步')")
    for name, value in {"name": "周八科技官网", "domains": "www.zhouba.cn\nzhouba.cn",
                        "home_url": "http://www.zhouba.cn/"}.items():
        page.fill(f"#{name}", value)
    page.click("button:has-text('保存网站')")
    expect(page.locator(".alert-success")).to_be_visible()
    page.screenshot(path=out / "21-wizard-websites.png", full_page=True)
    page.goto(f"{base}/admin/filing/access/?q=数据中心")
    page.select_option("#isp_id", label="天津某数据中心有限公司")
    page.select_option("#method", "2")
    page.select_option("#server_province_code", "120000")
    page.fill("#ip_start", "203.0.113.10")
    page.fill("#ip_end", "203.0.113.20")
    page.screenshot(path=out / "22-wizard-access.png", full_page=True)
    page.click("button:has-text('添加')")
    page.goto(f"{base}/admin/filing/preview/")
    page.screenshot(path=out / "23-wizard-preview.png", full_page=True)
    page.click("button:has-text('提交')")
    expect(page.locator(".alert-success")).to_contain_text("已提交")
    page.screenshot(path=out / "24-application-progress.png", full_page=True)
    sign_out(page)
    sign_in(page, base, "tj_isp", "Isp-pass-2026")
    page.goto(f"{base}/admin/isp_queue/")
    page.screenshot(path=out / "25-isp-queue.png", full_page=True)
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("form.row-action button:has-text('核实')")
    expect(page.locator(".alert-success")).to_be_visible()
    sign_out(page)
    sign_in(page, base, "tj_bureau", "Tianjin-2026")
    page.goto(f"{base}/admin/bureau_queue/")
    page.screenshot(path=out / "26-bureau-queue.png", full_page=True)
    for search in ("", "天津周八"):  # the queue runs by deadline: the first page, then the new one, found by name
        page.fill("input[name=search]", search)
        with page.expect_navigation():
            page.press("input[name=search]", "Enter")
        page.check("input.action-rowtoggle")
        page.evaluate("modelActions.execute('approve')")
        expect(page.locator("h4.console-title")).to_contain_text("自动审核")
        if not search:  # the first page of the queue: a few demo filings wait for their registrar
            page.screenshot(path=out / "27-batch-confirmation.png", full_page=True)
        keep_only_those_that_can(page)
        page.click("button:has-text('全部审核通过')")
        expect(page.locator(".alert-success")).to_contain_text("条申请")
        expect(page.locator("h4.console-title")).to_contain_text("审核结果")  # what was approved, with numbers
        if not search:
            page.screenshot(path=out / "28-batch-approved.png", full_page=True)
        page.goto(f"{base}/admin/bureau_queue/")
    sign_out(page)
    sign_in(page, base, "zhousite", "Recovered-pass-9")
    page.goto(f"{base}/admin/filings/")
    page.screenshot(path=out / "29-owner-filings.png", full_page=True)
    with page.expect_download() as download:
        page.click("a:has-text('备案/许可证下载')")
    assert download.value.suggested_filename == "bazs.cert"
    page.click("a[title='查看'], a .fa-eye >> xpath=..")
    page.screenshot(path=out / "30-certificate-decoded.png", full_page=True)
    sign_out(page)


def public_journey(page: Page, registry: Registry, out: Path) -> None:
    """Issue #5 (part): anyone looks up a domain, a number and a unit name, and verifies a certificate."""
    base = registry.base
    page.goto(f"{base}/")
    page.screenshot(path=out / "31-public-home.png")
    with registry.app.app_context():
        number = db.session.scalar(select(Entity.number).where(Entity.unit_name == "天津周八科技有限公司"))
    for index, query in enumerate(("WWW.ZhouBa.CN", number, "天津周八")):
        page.fill("input[name=q]", query)
        page.click("button:has-text('查询')")
        expect(page.locator(".card-header b")).to_contain_text("天津周八科技有限公司")
        page.screenshot(path=out / f"{32 + index}-public-lookup.png", full_page=True)
    with registry.app.app_context():
        token = db.session.scalar(select(Certificate.token).join(Entity).where(
            Entity.unit_name == "天津周八科技有限公司", Certificate.status == CertificateStatus.CURRENT))
    page.goto(f"{base}/certificates/verify")
    page.fill("#certificate", token)
    page.click("button:has-text('验证证书')")
    expect(page.locator(".alert-success")).to_contain_text("有效")
    page.screenshot(path=out / "35-public-certificate-verified.png", full_page=True)


PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def notices_journey(page: Page, registry: Registry, out: Path) -> None:
    """Issue #5: a bureau writes a notice with the editor and a Chinese-named attachment, publishes it;
    the public reads it on the home page, opens it, downloads the attachment; 政务公开."""
    base = registry.base
    sign_in(page, base, "tj_bureau", "Tianjin-2026")
    page.goto(f"{base}/admin/notices/new/")
    page.select_option("#category", "bulletin")
    page.fill("#title", "关于2026年度备案信息核查工作的通知")
    page.click(".rich-text-editor")
    page.keyboard.type("各接入服务单位：请于12月31日前完成备案信息核查。")
    page.set_input_files("#new_attachments", files=[
        {"name": "备案核查工作指引（2026年版）.pdf", "mimeType": "application/pdf", "buffer": PDF}])
    page.screenshot(path=out / "36-notice-editor.png", full_page=True)
    page.click("input[type=submit][value='保存']")
    expect(page.locator(".alert-success")).to_be_visible()
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("form.row-action button:has-text('发布')")
    expect(page.locator(".alert-success")).to_contain_text("公告已发布")
    page.screenshot(path=out / "37-notices-console.png", full_page=True)
    sign_out(page)
    page.goto(f"{base}/")
    expect(page.locator(".notice-links")).to_contain_text("备案信息核查")
    page.screenshot(path=out / "38-public-home-notices.png", full_page=True)
    page.click("a:has-text('关于2026年度备案信息核查工作的通知')")
    page.screenshot(path=out / "39-public-notice.png", full_page=True)
    with page.expect_download() as download:
        page.click("a:has-text('备案核查工作指引')")
    assert download.value.suggested_filename == "备案核查工作指引（2026年版）.pdf", download.value.suggested_filename


def after_approval_journey(page: Page, registry: Registry, out: Path) -> None:
    """Issue #6: the owner's ISP adds a domain, the bureau approves, the owner downloads the new
    certificate; the owner asks to cancel, the bureau approves, the public list shows it."""
    base = registry.base
    sign_in(page, base, "tj_isp", "Isp-pass-2026")
    page.goto(f"{base}/admin/filings/?flt0_0=120000")
    page.click("tr:has-text('天津周八科技有限公司') a:has-text('变更')")
    page.fill("form:has(input[value=add_domains]) textarea[name=domains]", "shop.zhouba.cn")
    page.screenshot(path=out / "40-isp-change-page.png", full_page=True)
    page.click("form:has(input[value=add_domains]) button")
    expect(page.locator(".alert-success")).to_contain_text("变更申请已提交")
    sign_out(page)
    sign_in(page, base, "tj_bureau", "Tianjin-2026")
    page.goto(f"{base}/admin/bureau_queue/?search=天津周八")  # the queue runs by deadline: search for it
    page.click("tr:has-text('天津周八科技有限公司') a .fa-eye >> xpath=..")
    expect(page.locator("body")).to_contain_text("shop.zhouba.cn")
    page.screenshot(path=out / "41-bureau-change-details.png", full_page=True)
    page.goto(f"{base}/admin/bureau_queue/?search=天津周八")
    page.click("tr:has-text('天津周八科技有限公司') a:has-text('审核通过')")
    page.click("button:has-text('审核通过')")
    expect(page.locator(".alert-success")).to_be_visible()
    sign_out(page)
    sign_in(page, base, "zhousite", "Recovered-pass-9")
    page.goto(f"{base}/admin/filings/")
    page.click("a[title='查看'], a .fa-eye >> xpath=..")
    expect(page.locator("body")).to_contain_text("shop.zhouba.cn")
    page.screenshot(path=out / "42-owner-new-certificate.png", full_page=True)
    page.goto(f"{base}/admin/filings/")
    page.click("a:has-text('注销')")
    page.fill("#reason", "公司业务调整，网站不再运营")
    page.screenshot(path=out / "43-owner-cancellation.png", full_page=True)
    page.click("button:has-text('提交注销申请')")
    expect(page.locator(".alert-success")).to_contain_text("注销申请已提交")
    sign_out(page)
    sign_in(page, base, "tj_bureau", "Tianjin-2026")
    page.goto(f"{base}/admin/bureau_queue/?search=天津周八")
    page.click("tr:has-text('天津周八科技有限公司') a:has-text('审核通过')")
    page.screenshot(path=out / "44-bureau-cancellation.png", full_page=True)
    page.click("button:has-text('审核通过')")
    expect(page.locator(".alert-success")).to_be_visible()
    page.goto(f"{base}/admin/revoke/")
    page.fill("#number", f"津ICP备{YY}000001号")
    page.fill("#reason", "提供虚假备案材料")
    page.click("button:has-text('查看将被撤销的内容')")
    expect(page.locator(".alert-danger")).to_contain_text("将被撤销")
    page.screenshot(path=out / "45-bureau-revoke-confirmation.png", full_page=True)
    page.click("button:has-text('确认撤销')")
    expect(page.locator(".alert-success")).to_contain_text("已撤销")
    sign_out(page)
    page.goto(f"{base}/disclosure/")
    expect(page.locator("table").first).to_contain_text("天津周八科技有限公司")
    page.screenshot(path=out / "46-public-disclosure.png", full_page=True)


def upload_rows(page: Page, template: Path, rows: list[list[str]]) -> None:
    """Type the rows into the downloaded template (as a person would in Excel) and upload it."""
    import io

    from openpyxl import load_workbook

    workbook = load_workbook(template)
    for row in rows:
        workbook["备案数据"].append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    page.set_input_files("input[name=file]", files=[{
        "name": "十二月备案.xlsx", "mimeType": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "buffer": buffer.getvalue()}])
    page.click("button:has-text('上传并检查')")


def import_journey(page: Page, registry: Registry, out: Path) -> None:
    """Issue #7: the ISP with the import right downloads the template (rendered by LibreOffice to look at),
    fills rows, uploads a file with a mistake, reads the errors, fixes it, uploads again; the bureau sees
    the applications."""
    import shutil
    import subprocess

    from tests.import_files import valid_row

    base = registry.base
    sign_in(page, base, "tj_isp", "Isp-pass-2026")
    page.goto(f"{base}/admin/import/")
    page.screenshot(path=out / "47-import-page.png", full_page=True)
    with page.expect_download() as download:
        page.click("a:has-text('备案导入模板.xlsx')")
    assert download.value.suggested_filename == "备案导入模板.xlsx", download.value.suggested_filename
    template = out / "备案导入模板.xlsx"
    download.value.save_as(template)
    if shutil.which("soffice") and shutil.which("pdftoppm"):  # Debian: libreoffice-calc-nogui, poppler-utils
        subprocess.run(["soffice", "--headless", "--convert-to", "pdf", "--outdir", str(out), str(template)],
                       check=True, capture_output=True, timeout=180)
        subprocess.run(["pdftoppm", "-png", "-r", "110", "-f", "1", "-l", "1", str(out / "备案导入模板.pdf"),
                        str(out / "48-template-in-libreoffice")], check=True, timeout=60)
    rows = [valid_row(n) for n in (71, 72, 73)]
    rows[1][8] = "1391234567"  # a mobile number one digit short
    upload_rows(page, template, rows)
    expect(page.locator("#import-job")).to_be_visible()
    page.screenshot(path=out / "49-import-queued.png", full_page=True)
    registry.run_jobs()
    expect(page.locator(".alert-danger")).to_contain_text("未导入任何数据", timeout=10_000)
    page.screenshot(path=out / "50-import-errors.png", full_page=True)
    with page.expect_download() as marked:
        page.click("a:has-text('下载标出错误的文件')")
    assert marked.value.suggested_filename == "十二月备案（错误已标注）.xlsx", marked.value.suggested_filename
    rows[1][8] = "13912345678"
    page.goto(f"{base}/admin/import/")
    upload_rows(page, template, rows)
    registry.run_jobs()
    expect(page.locator(".alert-success")).to_contain_text("已从 3 行数据导入 3 个备案申请", timeout=10_000)
    page.screenshot(path=out / "51-import-done.png", full_page=True)
    sign_out(page)
    sign_in(page, base, "tj_bureau", "Tianjin-2026")
    page.goto(f"{base}/admin/bureau_queue/")
    expect(page.locator("body")).to_contain_text("天津导入科技有限公司73")
    page.screenshot(path=out / "52-bureau-queue-imported.png", full_page=True)


def clerk_journey(page: Page, registry: Registry, out: Path) -> None:
    """Issue 12: a bureau clerk with 2,000 seeded filings finds an application by a fragment of its unit name,
    by its domain and 备案信息 by a partial number, works the queue by deadline, approves from the application's
    page; an ISP verifies 20 applications at once."""
    base = registry.base
    with registry.app.app_context():
        demo.seed(2000, DEMO_PASSWORD)
        demo.seed(30, DEMO_PASSWORD, state=ApplicationState.ISP_REVIEW, province_code="120000")
        target = next(application for application in db.session.scalars(select(Application).where(
            Application.province_code == "120000", Application.state == ApplicationState.BUREAU_REVIEW)
            .order_by(Application.id)) if not any(check.blocking for check in registrant.application_checks(
                application)))  # the demo's few mismatched or unreported domains wait for their registrar
        unit, domain = target.entity.unit_name, target.entity.websites[0].domains[0].name
        busiest = db.session.execute(select(User.username, func.count()).join(
            IspVerification, IspVerification.isp_id == User.id).where(
            IspVerification.state == ReviewState.PENDING, User.province_code == "120000")
            .group_by(User.username).order_by(func.count().desc())).first()[0]
    sign_out(page)  # the import journey ends signed in as the 天津 bureau
    sign_in(page, base, "demo_bureau_12", DEMO_PASSWORD)
    page.screenshot(path=out / "53-bureau-dashboard-statistics.png", full_page=True)
    page.goto(f"{base}/admin/bureau_queue/")
    expect(page.locator("body")).to_contain_text("剩余")
    page.screenshot(path=out / "54-queue-by-deadline.png", full_page=True)
    for term, shot in ((unit[:6], "55-search-name-fragment"), (f"HTTP://{domain.upper()}/", "56-search-domain")):
        page.fill("input[name=search]", term)
        page.press("input[name=search]", "Enter")
        expect(page.locator("table.model-list")).to_contain_text(unit)
        page.screenshot(path=out / f"{shot}.png", full_page=True)
    page.goto(f"{base}/admin/filings/")
    page.fill("input[name=search]", f"津ICP备{YY}")
    page.press("input[name=search]", "Enter")
    expect(page.locator("body")).to_contain_text("共")
    page.screenshot(path=out / "57-filings-number-prefix.png", full_page=True)
    page.goto(f"{base}/admin/applications/details/?id={target.id}")
    page.click(".application-actions a:has-text('审核通过')")
    page.click("button:has-text('审核通过')")
    expect(page.locator("body")).to_contain_text("已通过审核，备案号：津ICP备")
    page.screenshot(path=out / "58-approved-on-its-page.png", full_page=True)
    sign_out(page)
    sign_in(page, base, busiest, DEMO_PASSWORD)
    page.goto(f"{base}/admin/isp_queue/")
    boxes = page.locator("input.action-checkbox")
    for index in range(20):
        boxes.nth(index).check()
    page.evaluate("modelActions.execute('verify')")
    expect(page.locator("h4.console-title")).to_contain_text("批量核实")
    page.screenshot(path=out / "59-isp-batch-verify.png", full_page=True)
    keep_only_those_that_can(page)
    page.click("button:has-text('全部核实')")
    expect(page.locator(".alert-success")).to_contain_text(re.compile(r"已核实 \d+ 个申请"))
    page.screenshot(path=out / "60-isp-verified-20.png", full_page=True)
    sign_out(page)


def fill_user_unit(page: Page, name: str) -> None:
    """The user-unit fields of an allocation (分配方式 1); the city menu follows the province."""
    page.select_option("#usage", "1")
    page.fill("#allocated_on", "2026-01-05")
    page.fill("#user_name", name)
    page.select_option("#user_nature", "4")
    page.select_option("#province_code", "120000")
    page.wait_for_selector("#city_code option[value='120100']", state="attached")
    page.select_option("#city_code", "120100")
    page.wait_for_selector("#county_code option[value='120101']", state="attached")
    page.select_option("#county_code", "120101")
    for field, value in {"address": "天津市和平区南京路1号", "contact_name": "孙七", "contact_phone": "022-23456789",
                         "contact_email": "ip@user.example.cn"}.items():
        page.fill(f"#{field}", value)


def add_allocation(page: Page, base: str, start: str, end: str, method: str, fill: Callable[[], None]) -> None:
    page.goto(f"{base}/admin/ip_allocations/new/")
    page.fill("#start", start)
    page.fill("#end", end)
    page.select_option("#method", method)
    fill()


def ip_journey(page: Page, registry: Registry, out: Path) -> None:
    """Issue 13: the bureau creates two IP reporters (the first with its access provider); the first reports a
    block, allocates a part to a user unit, re-allocates another to the second, which allocates further; the first
    tries an overlapping block and reads the refusal; a clerk looks an address up and sees the chain."""
    base = registry.base
    sign_in(page, base, "tj_bureau", "Tianjin-2026")
    page.goto(f"{base}/admin/filing_users/new/")
    for username, organisation, mobile in (("tj_ip_telecom", "天津某电信运营商", "13820000011"),
                                           ("tj_ip_idc", "天津某数据中心服务商", "13820000012")):
        page.goto(f"{base}/admin/filing_users/new/")
        for name, value in {"username": username, "password": "Ip-pass-2026", "organisation": organisation,
                            "contact_name": "钱经理", "mobile": mobile, "email": f"{username}@tj.example.cn"}.items():
            page.fill(f"#{name}", value)
        page.select_option("#role", "ip_reporter")
        page.select_option("#province_code", "120000")
        if username == "tj_ip_telecom":
            page.select_option("#isp_account", "tj_isp")
            page.screenshot(path=out / "61-bureau-new-ip-reporter.png", full_page=True)
        page.click("input[type=submit][value='保存']")
        expect(page.locator(".alert-success")).to_be_visible()
    sign_out(page)
    sign_in(page, base, "tj_ip_telecom", "Ip-pass-2026")
    page.goto(f"{base}/admin/ip_blocks/new/")
    page.fill("#start", "203.0.113.0")
    page.fill("#end", "203.0.113.255")
    page.select_option("#registry_code", "APNIC")
    page.fill("#remark", "天津城域网")
    page.screenshot(path=out / "62-reporter-new-block.png", full_page=True)
    page.click("input[type=submit][value='保存']")
    expect(page.locator("table.model-list")).to_contain_text("203.0.113.0/24")
    add_allocation(page, base, "203.0.113.0", "203.0.113.15", "1", lambda: fill_user_unit(page, "天津某科技有限公司"))
    page.screenshot(path=out / "63-reporter-allocation-form.png", full_page=True)
    page.click("input[type=submit][value='保存']")
    expect(page.locator("table.model-list")).to_contain_text("天津某科技有限公司")
    add_allocation(page, base, "203.0.113.64", "203.0.113.127", "2",
                   lambda: page.fill("#target_unit", "tj_ip_idc"))
    expect(page.locator("#user_name")).to_be_hidden()  # 再分配 asks only for the receiving unit
    page.screenshot(path=out / "64-reporter-reallocation-form.png", full_page=True)
    page.click("input[type=submit][value='保存']")
    expect(page.locator("table.model-list")).to_contain_text("天津某数据中心服务商")
    page.goto(f"{base}/admin/ip_blocks/new/")
    page.fill("#start", "203.0.113.128")
    page.fill("#end", "203.0.114.127")
    page.select_option("#registry_code", "APNIC")
    page.click("input[type=submit][value='保存']")
    expect(page.locator(".invalid-feedback").first).to_contain_text("结果代码 2003")
    page.screenshot(path=out / "65-reporter-overlap-refused.png", full_page=True)
    sign_out(page)
    sign_in(page, base, "tj_ip_idc", "Ip-pass-2026")
    page.goto(f"{base}/admin/ip_blocks/")
    expect(page.locator("table.model-list")).to_contain_text("由 天津某电信运营商（tj_ip_telecom） 再分配")
    page.screenshot(path=out / "66-second-reporter-received-block.png", full_page=True)
    add_allocation(page, base, "203.0.113.64", "203.0.113.79", "1",
                   lambda: fill_user_unit(page, "天津下游网络有限公司"))
    page.click("input[type=submit][value='保存']")
    expect(page.locator("table.model-list")).to_contain_text("天津下游网络有限公司")
    sign_out(page)
    sign_in(page, base, "tj_ip_telecom", "Ip-pass-2026")
    page.goto(f"{base}/admin/ip_blocks/")
    page.click("a:has-text('树状图')")
    expect(page.locator("body")).to_contain_text("天津下游网络有限公司")
    page.screenshot(path=out / "67-reporter-block-tree.png", full_page=True)
    page.goto(f"{base}/admin/ip_allocations/?search=203.0.113.70")
    page.screenshot(path=out / "68-reporter-search-by-address.png", full_page=True)
    page.goto(f"{base}/admin/")
    page.screenshot(path=out / "69-reporter-dashboard.png", full_page=True)
    sign_out(page)
    sign_in(page, base, "tj_bureau", "Tianjin-2026")
    page.goto(f"{base}/admin/ip-lookup/")
    page.fill("#address", "203.0.113.70")
    page.click("button:has-text('查询')")
    expect(page.locator(".alert-success")).to_contain_text("天津下游网络有限公司")
    page.screenshot(path=out / "70-clerk-address-lookup.png", full_page=True)
    page.goto(f"{base}/admin/ip_units/")
    page.screenshot(path=out / "71-bureau-ip-units.png", full_page=True)
    page.goto(f"{base}/admin/ip-statistics/")
    page.screenshot(path=out / "72-bureau-ip-statistics.png", full_page=True)
    sign_out(page)


WUJIU = {"unit_name": "天津吴九网络科技有限公司", "certificate_number": credit_code(8801),
         "address": "天津市南开区某路9号", "responsible_name": "吴九", "responsible_id_number": "11010519491231002X",
         "responsible_mobile": "13611112222", "responsible_email": "zhou@example.cn"}


def file_wujiu(page: Page, base: str, out: Path) -> None:
    """The owner files a second unit's website through the wizard; the preview checks its domains."""
    sign_in(page, base, "zhousite", "Recovered-pass-9")
    page.goto(f"{base}/admin/filing/")
    page.select_option("#province_code", "120000")
    page.select_option("#unit_nature", "4")
    page.select_option("#certificate_type", "1")
    for name, value in WUJIU.items():
        page.fill(f"#{name}", value)
    page.click("button:has-text('下一步')")
    for name, value in {"name": "吴九网络", "domains": "www.wujiu.cn\nwujiu.cn", "home_url": "http://www.wujiu.cn/"}.items():
        page.fill(f"#{name}", value)
    page.click("button:has-text('保存网站')")
    expect(page.locator(".alert-success")).to_be_visible()
    page.goto(f"{base}/admin/filing/access/?q=数据中心")
    page.select_option("#isp_id", label="天津某数据中心有限公司")
    page.select_option("#method", "2")
    page.select_option("#server_province_code", "120000")
    page.fill("#ip_start", "203.0.113.30")
    page.fill("#ip_end", "203.0.113.40")
    page.click("button:has-text('添加')")
    page.goto(f"{base}/admin/filing/preview/")
    expect(page.locator(".domain-verdicts")).to_contain_text("未报备")
    page.screenshot(path=out / "83-wizard-preview-unreported.png", full_page=True)
    page.click("button:has-text('提交')")
    expect(page.locator(".alert-success")).to_contain_text("已提交")
    sign_out(page)


def correct_registrant(page: Page, base: str, domain: str) -> None:
    """The registrar opens its report of the domain and gives the filing entity as the registrant."""
    page.goto(f"{base}/admin/domain_reports/?search={domain}")
    page.click(f"tr:has(td.col-domain:text-is('{domain}')) a[href*='/edit/']")
    fill_registrant(page, WUJIU["unit_name"], WUJIU["certificate_number"])
    page.click("input[type=submit][value='保存']")
    expect(page.locator(".alert-success")).to_be_visible()


def domain_journey(page: Page, registry: Registry, out: Path) -> None:
    """Issue 14, as the issue tells it (DOMAIN_REGISTRANT_CHECK = block, the default): the owner files a website;
    the registrar reports its domains in another unit's name; the ISP and the bureau see 不一致 and the ISP cannot
    verify; the registrar corrects the registrant; the ISP verifies, the bureau approves. Then an added domain
    nobody reported stops the bureau until the registrar reports it; a deleted report shows in 域名核验异常."""
    base = registry.base
    assert registry.app.config["DOMAIN_REGISTRANT_CHECK"] == "block"
    file_wujiu(page, base, out)
    sign_in(page, base, "cn_registrar", REGISTRAR_PASSWORD)
    for domain in ("wujiu.cn",):
        report_domain(page, base, domain, "天津吴九贸易有限公司", credit_code(8802))
    page.screenshot(path=out / "84-registrar-reports-other-registrant.png", full_page=True)
    sign_out(page)
    sign_in(page, base, "tj_isp", "Isp-pass-2026")
    page.goto(f"{base}/admin/isp_queue/?search=天津吴九")
    page.click("tr:has-text('天津吴九网络科技有限公司') a .fa-eye >> xpath=..")
    expect(page.locator(".domain-verdicts")).to_contain_text("不一致")
    page.screenshot(path=out / "85-isp-sees-inconsistent.png", full_page=True)
    page.once("dialog", lambda dialog: dialog.accept())
    page.click(".application-actions button:has-text('核实')")
    expect(page.locator(".alert-danger")).to_contain_text("不一致")
    page.screenshot(path=out / "86-isp-cannot-verify.png", full_page=True)
    sign_out(page)
    sign_in(page, base, "tj_bureau", "Tianjin-2026")
    page.goto(f"{base}/admin/applications/?search=天津吴九")
    page.click("tr:has-text('天津吴九网络科技有限公司') a .fa-eye >> xpath=..")
    expect(page.locator(".domain-verdicts")).to_contain_text("不一致")
    page.screenshot(path=out / "87-bureau-sees-inconsistent.png", full_page=True)
    sign_out(page)
    sign_in(page, base, "cn_registrar", REGISTRAR_PASSWORD)
    for domain in ("wujiu.cn",):
        correct_registrant(page, base, domain)
    page.goto(f"{base}/admin/domain_reports/?search={WUJIU['unit_name'][:4]}")
    page.screenshot(path=out / "88-registrar-corrected.png", full_page=True)
    sign_out(page)
    sign_in(page, base, "tj_isp", "Isp-pass-2026")
    page.goto(f"{base}/admin/isp_queue/?search=天津吴九")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("tr:has-text('天津吴九网络科技有限公司') form.row-action button:has-text('核实')")
    expect(page.locator(".alert-success")).to_be_visible()
    sign_out(page)
    sign_in(page, base, "tj_bureau", "Tianjin-2026")
    page.goto(f"{base}/admin/bureau_queue/?search=天津吴九")
    page.click("tr:has-text('天津吴九网络科技有限公司') a:has-text('审核通过')")
    expect(page.locator(".domain-verdicts")).to_contain_text("一致")
    page.screenshot(path=out / "89-bureau-approve-consistent.png", full_page=True)
    page.click("button:has-text('审核通过')")
    expect(page.locator(".alert-success")).to_be_visible()
    sign_out(page)
    added_domain_waits_for_its_registrar(page, registry, out)


def added_domain_waits_for_its_registrar(page: Page, registry: Registry, out: Path) -> None:
    """The ISP adds wujiu.com.cn (another registered domain; nobody reported it): told at once; the bureau's
    approval waits until the registrar
    reports it; then the registrar deletes the report by domain and 域名核验异常 shows the website."""
    base = registry.base
    sign_in(page, base, "tj_isp", "Isp-pass-2026")
    page.goto(f"{base}/admin/filings/?search=天津吴九")
    page.click("tr:has-text('天津吴九网络科技有限公司') a:has-text('变更')")
    page.fill("form:has(input[value=add_domains]) textarea[name=domains]", "wujiu.com.cn")
    page.click("form:has(input[value=add_domains]) button")
    expect(page.locator(".alert-warning").first).to_contain_text("wujiu.com.cn")
    page.screenshot(path=out / "90-isp-change-told-unreported.png", full_page=True)
    sign_out(page)
    sign_in(page, base, "tj_bureau", "Tianjin-2026")
    page.goto(f"{base}/admin/bureau_queue/?search=天津吴九")
    page.click("tr:has-text('天津吴九网络科技有限公司') a:has-text('审核通过')")
    expect(page.locator(".alert-warning").first).to_contain_text("wujiu.com.cn")
    expect(page.locator("button:has-text('审核通过')")).to_be_disabled()
    page.screenshot(path=out / "91-bureau-cannot-approve.png", full_page=True)
    sign_out(page)
    sign_in(page, base, "cn_registrar", REGISTRAR_PASSWORD)
    report_domain(page, base, "wujiu.com.cn", WUJIU["unit_name"], WUJIU["certificate_number"])
    sign_out(page)
    sign_in(page, base, "tj_bureau", "Tianjin-2026")
    page.goto(f"{base}/admin/bureau_queue/?search=天津吴九")
    page.click("tr:has-text('天津吴九网络科技有限公司') a:has-text('审核通过')")
    page.click("button:has-text('审核通过')")
    expect(page.locator(".alert-success")).to_be_visible()
    sign_out(page)
    sign_in(page, base, "cn_registrar", REGISTRAR_PASSWORD)
    page.goto(f"{base}/admin/domain_reports/delete-by-domain/")
    page.fill("#domain", "WUJIU.com.cn")
    page.screenshot(path=out / "92-registrar-delete-by-domain.png", full_page=True)
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("button:has-text('删除')")
    expect(page.locator(".alert-success")).to_contain_text("wujiu.com.cn")
    sign_out(page)
    with registry.app.app_context():  # what the worker does every few seconds
        domain_reconcile.reconcile_domain_changes()
    sign_in(page, base, "tj_bureau", "Tianjin-2026")
    page.goto(f"{base}/admin/domain_flags/")
    expect(page.locator("table.model-list")).to_contain_text("wujiu.com.cn")
    page.screenshot(path=out / "93-bureau-domain-flags.png", full_page=True)
    page.goto(f"{base}/admin/domain_overview/")
    page.screenshot(path=out / "94-bureau-domain-reports.png", full_page=True)
    page.goto(f"{base}/admin/")
    page.screenshot(path=out / "95-bureau-dashboard-flags.png", full_page=True)
    sign_out(page)


#: the journeys in the order they build on each other (tests/browser/test_journeys.py runs each as a test)
JOURNEYS: list[Callable[[Page, Registry, Path], None]] = [
    staff_journey, owner_journey, registrar_journey, filing_journey, public_journey, notices_journey,
    after_approval_journey, import_journey, clerk_journey, ip_journey, domain_journey]
VIEWPORT = {"width": 1366, "height": 860}


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    registry = Registry()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport=VIEWPORT, locale="zh-CN")
        for journey in JOURNEYS:
            journey(page, registry, out)
        browser.close()
    registry.close()
    print(f"walkthrough passed; screenshots in {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
