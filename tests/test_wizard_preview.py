"""The wizard's preview (names, not codes), duplicate domains refused where typed, IDN shown in Unicode with
the punycode beside, and the one separator rule of domain lists."""

from __future__ import annotations

import io
import re

import openpyxl
import pytest

import importer
from extensions import db
from models import FilingDraft
from tests.filing_factories import credit_code, filed_by_isp
from tests.helpers import TIANJIN, post, user_named
from validators import display_domain, split_domains

ENTITY = {"province_code": TIANJIN, "unit_name": "天津预览科技有限公司", "unit_nature": "4", "certificate_type": "1",
          "certificate_number": credit_code(960), "address": "天津市河西区某路8号", "responsible_name": "周八",
          "responsible_id_number": "11010519491231002X", "responsible_mobile": "13611112222",
          "responsible_email": "owner@example.cn", "commercial": "y"}
WIZARD = "/admin/filing/"


def _website(name: str, domains: str, **extra: str) -> dict[str, str]:
    first = split_domains(domains)[0]
    return {"name": name, "domains": domains, "home_url": f"http://{first}/", "service_content": "4",
            "languages": "3", "preapproval_category": "", "preapproval_document": "", "bbs_sections": "", **extra}


@pytest.fixture
def owner(app, as_user):
    client = as_user("icp")
    assert post(client, WIZARD, ENTITY).status_code == 302
    return client


def _text(body: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body))


def test_preview_shows_labels_and_names_not_codes(app, owner, users) -> None:
    post(owner, WIZARD + "websites/", _website("甲网", "www.jia960.cn", preapproval_category="1",
                                               preapproval_document="津新闻[2026]009号"))
    with app.app_context():
        isp_id = user_named(users["isp"]).id
    assert post(owner, WIZARD + "access/", {"q": "网络", "website": 0, "isp_id": isp_id, "method": "2",
                                            "server_province_code": "110000", "ip_start": "203.0.113.5",
                                            "ip_end": "203.0.113.9"}).status_code == 302
    text = _text(owner.get(WIZARD + "preview/").get_data(as_text=True))
    for shown in ("天津市", "企业", "统一社会信用代码证书", "是",  # province, nature, certificate type, commercial
                  "网络新闻", "英语", "新闻 津新闻[2026]009号",  # service content, language, pre-approval item
                  "天津某网络公司", "主机托管", "北京市", "203.0.113.5 – 203.0.113.9"):  # the access
        assert shown in text, shown
    for raw in ("province_code", "unit_nature", "certificate_type", "commercial", "True", "120000"):
        assert raw not in text.replace(ENTITY["certificate_number"], ""), raw


def test_preview_of_a_website_without_access_says_so(app, owner) -> None:
    post(owner, WIZARD + "websites/", _website("乙网", "www.yi960.cn"))
    assert "尚未" in owner.get(WIZARD + "preview/").get_data(as_text=True)


def test_duplicate_domain_in_the_filing_refused_at_step_2_naming_it(app, owner) -> None:
    assert post(owner, WIZARD + "websites/", _website("甲网", "www.dup960.cn\ndup960.cn")).status_code == 302
    body = post(owner, WIZARD + "websites/", _website("甲网副本", "WWW.dup960.cn")).get_data(as_text=True)
    assert "www.dup960.cn" in body and "甲网" in body and "invalid-feedback" in body
    with app.app_context():
        draft = db.session.query(FilingDraft).one()
        assert "甲网副本" not in draft.data  # the second website was not saved


def test_domain_repeated_within_one_website_refused_naming_it(app, owner) -> None:
    body = post(owner, WIZARD + "websites/", _website("甲网", "www.twice960.cn\nwww.twice960.cn")
                ).get_data(as_text=True)
    assert "www.twice960.cn 重复" in body


def test_editing_a_website_keeps_its_own_domains(app, owner) -> None:
    post(owner, WIZARD + "websites/", _website("甲网", "www.own960.cn"))
    assert post(owner, WIZARD + "websites/?edit=0", _website("甲网改名", "www.own960.cn")).status_code == 302


def test_domain_of_another_filing_refused_naming_it(app, owner, users) -> None:
    with app.app_context():
        filed_by_isp(user_named(users["isp"]), 961)
        db.session.commit()
    body = post(owner, WIZARD + "websites/", _website("丙网", "www.site961.cn")).get_data(as_text=True)
    assert "域名 www.site961.cn 已在其他网站备案" in body


def test_idn_in_unicode_with_punycode_beside(app, owner) -> None:
    assert post(owner, WIZARD + "websites/", _website("中文网", "例子.中国", home_url="http://例子.中国/")
                ).status_code == 302
    expected = "例子.中国 (xn--fsqu00a.xn--fiqs8s)"
    assert expected in owner.get(WIZARD + "websites/").get_data(as_text=True)
    assert expected in owner.get(WIZARD + "preview/").get_data(as_text=True)


@pytest.mark.parametrize(("name", "shown"), [
    ("xn--fsqu00a.xn--fiqs8s", "例子.中国 (xn--fsqu00a.xn--fiqs8s)"),
    ("www.example.cn", "www.example.cn"), ("203.0.113.5", "203.0.113.5"),
    ("xn--broken-.cn", "xn--broken-.cn")])
def test_display_domain(name: str, shown: str) -> None:
    assert display_domain(name) == shown


# --- the separator rule -----------------------------------------------------------------------------

@pytest.mark.parametrize("typed", ["a.cn\nb.cn\nc.cn", "a.cn, b.cn，c.cn", "a.cn、b.cn；c.cn", "a.cn;b.cn\r\n\nc.cn "])
def test_one_domain_per_line_and_pasted_separators(typed: str) -> None:
    assert split_domains(typed) == ["a.cn", "b.cn", "c.cn"]


def test_wizard_accepts_pasted_commas(app, owner) -> None:
    assert post(owner, WIZARD + "websites/", _website("丁网", "www.ding960.cn，ding960.cn")).status_code == 302
    assert "www.ding960.cn, ding960.cn" in owner.get(WIZARD + "websites/").get_data(as_text=True)


def test_import_template_documents_the_rule(app) -> None:
    with app.app_context():
        workbook = openpyxl.load_workbook(io.BytesIO(importer.template_bytes()))
    guide = " ".join(str(cell.value) for row in workbook[importer.GUIDE_SHEET].iter_rows() for cell in row
                     if cell.value)
    assert "一个域名占一行" in guide and "每行一个" in guide
