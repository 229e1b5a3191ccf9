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
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import flask_admin
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

import audit
from admin_views.filings import FILING_STATUS_LABELS, STATE_LABELS
from admin_views.labels import OBJECT_TYPE_LABELS, action_label, label, source_label
from extensions import db
from models import ApplicationState, CodeItem, DisclosureKind, FilingStatus, Notice, PreapprovalItem, User
from tests.accounts_helpers import REGISTRATION
from tests.console_world import World, _owner_application_in_isp_review, build_world
from tests.helpers import post
from tests.page_scan import report, scan
from tests.test_filing_console import ENTITY

ROOT = Path(__file__).resolve().parent.parent

#: ASCII words a Chinese page may show, and why.
ALLOWED_WORDS = {
    # the issue's own allow-list: the registry's vocabulary (津ICP备…号, ISP, IP addresses, URLs)
    "ICP", "ISP", "IP", "IPv", "URL",
    # abbreviations inside code-table names (互联网数据中心（IDC）, 内容分发网络（CDN）, 欧洲网络协调中心（RIPE NCC）)
    "IDC", "CDN", "NCC",
    # the language switch names the other language in that language, so that its readers find it
    "English",
    # file formats as the files are called, and the extensions of file names (备案导入模板.xlsx, bazs.cert)
    "Excel", "CSV", "XLSX", "XLS", "PDF", "ZIP", "RAR", "xlsx", "xls", "csv", "pdf", "cert",
    # units of file sizes, written so in Chinese too
    "KB", "MB",
    # the time zone in the footer (北京时间 UTC+8) and the hash algorithm named beside the audit chain
    "UTC", "SHA",
    # the data-exchange API's vocabulary as the engineers who call it say it (个人设置 › 接口凭证, 接口说明)
    "API", "JSON", "NDJSON", "HTTPS", "OpenAPI", "Webhook", "CIDR",
}
VISIBLE_ATTRIBUTES = ("title", "placeholder", "alt", "aria-label")
BUTTON_INPUTS = ("submit", "button", "reset")
HIDDEN_ELEMENTS = ("script", "style", "template")
#: shown as typed or as recorded, not written by us: a text area's content, the audit record's hashed content; and
#: what a machine reads as written (<code>: the API's paths, methods, headers and JSON on 接口说明)
VERBATIM_ELEMENTS = ("textarea", "code")
VERBATIM_CLASSES = ("audit-changes",)
VOID_ELEMENTS = ("area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr")

TOKEN_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._%+\-@:/]*[A-Za-z0-9]|[A-Za-z0-9]")
WORD_RE = re.compile(r"[A-Za-z]+")
EMAIL_RE = re.compile(r"^[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}$")
#: a domain of the data (its top-level domain one the registry's data uses, so that `application.approved` is no domain)
DOMAIN_RE = re.compile(r"^(?:[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?\.)+(?:cn|com|net|org|gov|edu|xn--[a-z0-9\-]+)\.?$")
#: a file name as the registry names its files (the certificate is called bazs.cert, FAQ 33)
FILE_RE = re.compile(r"^[\w\-/]+\.(?:cert|xlsx|xls|csv|pdf)$")
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
        classes = (values.get("class") or "").split()
        if (self._hidden or tag in (*HIDDEN_ELEMENTS, *VERBATIM_ELEMENTS) or "hidden" in values
                or "d-none" in classes or any(name in classes for name in VERBATIM_CLASSES)):
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


def _english_words_and_links(known: set[str]) -> Callable[[str], tuple[list[str], list[str]]]:
    def check(html: str) -> tuple[list[str], list[str]]:
        page = visible_text(html)
        return [f"{word!r} in {' '.join(piece.split())[:80]!r}" for piece in page.pieces
                for word in english_words(piece, known)], page.links
    return check


def _known_data(app: Flask) -> set[str]:
    """Account names (ASCII by rule, the registration's too) and the codes of the code tables (the industry
    classification's are letters, GB/T 4754) are data the console shows."""
    with app.app_context():
        return {*db.session.scalars(select(User.username)), *db.session.scalars(select(CodeItem.code)),
                REGISTRATION["username"]}


@pytest.fixture
def world(app, users, as_user) -> World:
    return build_world(app, users, as_user)


def test_no_page_of_any_role_shows_an_english_word(app, users, world) -> None:
    """Every GET page of the URL map and every page linked from it, for every role and signed out, in Chinese."""
    problems = scan(app, users, world, _english_words_and_links(_known_data(app)),
                    HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9")
    assert problems == {}, report(problems)


# --- the labels behind the pages ------------------------------------------------------------------------------

SOURCES = [path for pattern in ("*.py", "workflow/*.py", "admin_views/*.py") for path in ROOT.glob(pattern)]
#: where the code records an action: audit.record / record_many, and the helpers that call them with the action
#: they are given (accounts._record_attempt, notices._record, users._insert_user); the action literals follow
RECORD_CALL_RE = re.compile(r"(?:audit\.record|audit\.record_many|_record_attempt|\b_record|_insert_user)\(")
ACTION_LITERAL_RE = re.compile(r'"([a-z_]+\.[a-z_]+|export)"')
OBJECT_TYPE_RE = re.compile(r'object_type="([a-z_]+)"|audit_object = "([a-z_]+)"')


def _recorded_actions() -> set[str]:
    found = {action for path in SOURCES for text in [path.read_text()] for call in RECORD_CALL_RE.finditer(text)
             for action in ACTION_LITERAL_RE.findall(text, call.end(), call.end() + 160)}
    return found | {f"filing.{kind.value}" for kind in DisclosureKind}  # the f-string of workflow.end_filing


def test_every_action_and_object_type_the_code_records_has_a_chinese_label(app) -> None:
    actions = _recorded_actions()
    object_types = {a or b for path in SOURCES for a, b in OBJECT_TYPE_RE.findall(path.read_text())}
    assert {"import.done", "filing.revoked", "user.confirmed", "auth.sign_in"} <= actions  # the scan finds them
    with app.test_request_context():
        generic = {f"{kind}.{verb}" for kind in object_types for verb in ("create", "edit", "delete")}
        for action in sorted(actions | generic):
            assert english_words(action_label(action)) == [], action
        for kind in sorted(object_types):
            assert english_words(label(OBJECT_TYPE_LABELS, kind)) == [], kind
        assert source_label("cli") == "命令行"
        assert source_label("192.0.2.1") == "192.0.2.1"


def test_the_audit_log_shows_labels_not_codes(app, as_user) -> None:
    with app.app_context():
        audit.record("import.done", object_type="import", object_id="7", changes={"rows": 1})
        db.session.commit()
    seen = visible_text(as_user("miit").get("/admin/audit_log/").get_data(as_text=True)).pieces
    shown = [piece.strip() for piece in seen]
    assert "导入完成" in shown and "导入任务" in shown and "命令行" in shown
    assert "import.done" not in " ".join(seen) and "cli" not in shown


def test_every_icon_the_pages_use_exists_in_the_bundled_font() -> None:
    css = (Path(flask_admin.__file__).parent / "static/bootstrap/bootstrap4/css/font-awesome.min.css").read_text()
    defined = set(re.findall(r"\.(fa-[a-z0-9-]+):before", css)) | {"fa-spin", "fa-fw", "fa-lg", "fa-2x", "fa-3x"}
    files = [*SOURCES, *ROOT.glob("templates/**/*.html"), *ROOT.glob("static/js/*.js")]
    used = {icon for path in files for icon in re.findall(r"\bfa-[a-z0-9-]+", path.read_text())}
    assert used and used - defined == set()


def test_the_favicon_is_served_and_linked(client) -> None:
    response = client.get("/favicon.ico")
    assert response.status_code == 200 and response.mimetype == "image/x-icon"
    assert response.data[:4] == b"\x00\x00\x01\x00"  # an ICO file
    for page in ("/", "/login"):
        assert '<link rel="icon" href="/favicon.ico">' in client.get(page).get_data(as_text=True)


def _footer(client: FlaskClient) -> str:
    page = client.get("/").get_data(as_text=True)
    return page[page.index('<footer'):]


def test_the_footer_links_its_pages_only_once_written(app, client, as_user) -> None:
    assert "使用声明" not in _footer(client) and "联系我们" not in _footer(client)
    miit = as_user("miit")
    for title in ("使用声明", "第二份声明"):
        post(miit, "/admin/notices/new/", {"category": "statement", "title": title, "body": "<p>本系统……</p>"},
             content_type="multipart/form-data")
        with app.app_context():
            notice_id = db.session.scalar(select(Notice.id).where(Notice.title == title))
        post(miit, "/admin/notices/row-action/publish/", {"id": notice_id})
        if title == "使用声明":  # one notice: the link opens it
            assert f'<a href="/notices/{notice_id}">使用声明</a>' in _footer(client)
    footer = _footer(client)  # two: the link opens the category's list; 联系我们 is still empty, so not linked
    assert '<a href="/notices/?category=statement">使用声明</a>' in footer and "联系我们" not in footer


def test_the_state_labels_read_as_the_issue_asks(app) -> None:
    with app.test_request_context():
        assert [str(STATE_LABELS[s]) for s in ApplicationState] == [
            "草稿", "待ISP核实", "待管局审核", "已审核通过", "已驳回", "已撤回"]
        assert [str(FILING_STATUS_LABELS[s]) for s in FilingStatus] == [
            "尚未备案", "已备案", "无接入", "已注销", "已撤销"]


def test_the_preapproval_queue_names_the_category_and_its_button_matches_the_state(app, people, as_user) -> None:
    with app.app_context():
        _owner_application_in_isp_review(people)
        db.session.commit()
        item_id = db.session.scalar(select(PreapprovalItem.id))
    client = as_user("preapproval")
    page = client.get("/admin/preapproval_queue/").get_data(as_text=True)
    category = re.search(r'<td class="col-category">(.*?)</td>', page, re.S)
    assert category and category.group(1).strip() == "新闻"
    assert "确认" in page and "验证" not in page and "待处理" in page
    post(client, "/admin/preapproval_queue/row-action/confirm/", {"id": item_id})
    assert "已确认" in client.get("/admin/preapproval_queue/").get_data(as_text=True)


def _selected(page: str, name: str) -> str | None:
    """The value the browser submits for a <select>: the selected option's, else the first's."""
    select_html = re.search(rf'<select[^>]*name="{name}"[^>]*>(.*?)</select>', page, re.S)
    assert select_html, name
    options = re.findall(r'<option([^>]*)value="([^"]*)"', select_html.group(1))
    chosen = [value for attributes, value in options if "selected" in attributes]
    return (chosen or [value for _attributes, value in options])[0]


def test_a_new_staff_account_has_no_preselected_role(app, as_user) -> None:
    miit = as_user("miit")
    assert _selected(miit.get("/admin/management_users/new/").get_data(as_text=True), "role") == ""
    refused = post(miit, "/admin/management_users/new/", {
        "username": "no_role", "password": "Init-pass-9", "role": "", "province_code": "",
        "contact_name": "张三", "mobile": "13912345678", "email": "no_role@example.cn"})
    assert "请选择账号的角色。" in refused.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(User.id).where(User.username == "no_role")) is None


def test_the_wizard_has_no_preselected_unit_nature(as_user) -> None:
    owner = as_user("icp")
    page = owner.get("/admin/filing/").get_data(as_text=True)
    assert _selected(page, "unit_nature") == "" and _selected(page, "certificate_type") == ""
    refused = post(owner, "/admin/filing/", {**ENTITY, "unit_nature": "", "certificate_type": ""})
    assert refused.status_code == 200
    text = refused.get_data(as_text=True)
    assert "请选择单位性质。" in text and "请选择证件类型。" in text
