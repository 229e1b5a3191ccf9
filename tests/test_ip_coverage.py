"""Issue 13 item 5: the ISP's verification page and the bureau's audit pages of an ICP application show, for
each access range, whether it lies inside blocks reported for that ISP (已报备 / 未报备 1063)."""

from __future__ import annotations

import re

import pytest

import workflow
from extensions import db
from models import Application, Role
from tests.filing_factories import entity_data, website_data
from tests.helpers import TIANJIN, make_user, sign_in, user_named
from tests.ip_factories import block, reporter, self_brought


def _visible(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]*>", " ", html))


def _card(html: str) -> str:
    """The text of the coverage card alone ("" when the page has none)."""
    found = re.search(r'ip-coverage">(.*?)</ul></div>', html, re.S)
    return _visible(found.group(1)) if found else ""


@pytest.fixture
def application_id(app, people) -> int:
    """An owner's filing in ISP review with two accesses: the 天津 ISP (a reporting unit with 198.51.100.0/24,
    2001:db8:5::/48 and a self-brought 192.0.2.0/28) and the second ISP (no reporting unit)."""
    with app.app_context():
        isp, isp2 = user_named(people["isp"]), user_named(people["isp2"])
        unit = reporter("ipr_cov", organisation="天津覆盖数据中心")
        unit.isp_account_id = isp.id
        db.session.commit()
        block(unit, "198.51.100.0", "198.51.100.255")
        block(unit, "2001:db8:5::", "2001:db8:5:ffff:ffff:ffff:ffff:ffff")
        self_brought(unit, "192.0.2.0", "192.0.2.15", source_name="某客户")
        site = website_data("cover", [isp.id, isp2.id])
        site.accesses[0].ip_ranges = [("198.51.100.10", "198.51.100.20"), ("2001:db8:5::1", "2001:db8:5::ff"),
                                      ("192.0.2.1", "192.0.2.15"), ("203.0.113.1", "203.0.113.20")]
        site.accesses[1].ip_ranges = [("198.51.100.30", "198.51.100.40")]
        owner = user_named(people["icp"])
        application = workflow.save_filing_draft(owner, entity_data(801), [site])
        workflow.submit_application(owner, application)
        db.session.commit()
        return application.id


def _client(app, username: str):
    client = app.test_client()
    assert sign_in(client, username).status_code == 302
    return client


def test_the_isp_sees_which_of_its_ranges_are_reported(app, people, application_id) -> None:
    card = _card(_client(app, people["isp"]).get(f"/admin/isp_queue/details/?id={application_id}").get_data(
        as_text=True))
    assert "接入IP地址段报备情况" in card
    assert "198.51.100.10–198.51.100.20 已报备（天津覆盖数据中心）" in card
    assert "2001:db8:5::1–2001:db8:5::ff 已报备（天津覆盖数据中心）" in card
    assert "192.0.2.1–192.0.2.15 已报备（天津覆盖数据中心）" in card  # its self-brought block
    assert "203.0.113.1–203.0.113.20 未报备（1063）" in card
    assert "198.51.100.30" not in card  # the other ISP's access is not this ISP's to check


def test_an_isp_without_a_reporting_unit_sees_every_range_unreported(app, people, application_id) -> None:
    """Covered by another ISP's unit's block is no cover: the block must be reported for this ISP."""
    card = _card(_client(app, people["isp2"]).get(f"/admin/isp_queue/details/?id={application_id}").get_data(
        as_text=True))
    assert "该接入商尚无IP地址备案单位" in card and "198.51.100.30–198.51.100.40 未报备（1063）" in card
    assert "已报备" not in card


def test_the_bureau_sees_every_access_on_the_audit_pages(app, people, application_id) -> None:
    with app.app_context():
        application = db.session.get(Application, application_id)
        for key in ("isp", "isp2"):
            workflow.isp_verify(user_named(people[key]), application)
        db.session.commit()
    bureau = _client(app, people["bureau"])
    for path in (f"/admin/bureau_queue/details/?id={application_id}",
                 f"/admin/bureau_queue/approve/?id={application_id}"):
        card = _card(bureau.get(path).get_data(as_text=True))
        assert "198.51.100.10–198.51.100.20 已报备（天津覆盖数据中心）" in card, path
        assert "203.0.113.1–203.0.113.20 未报备（1063）" in card
        assert "198.51.100.30–198.51.100.40 未报备（1063）" in card and "尚无IP地址备案单位" in card


def test_the_owner_sees_no_coverage(app, people, application_id) -> None:
    page = _client(app, people["icp"]).get(f"/admin/applications/details/?id={application_id}")
    assert page.status_code == 200 and "接入IP地址段报备情况" not in page.get_data(as_text=True)


def test_a_new_access_application_shows_the_asked_ranges(app, people, application_id) -> None:
    """The access a new-access application asks for is not a row yet: its ranges come from the proposal."""
    with app.app_context():
        bureau = user_named(people["bureau"])
        application = db.session.get(Application, application_id)
        for key in ("isp", "isp2"):
            workflow.isp_verify(user_named(people[key]), application)
        workflow.approve(bureau, application)
        third = make_user("tj_isp3", Role.ISP, TIANJIN, organisation="天津第三网络公司")
        unit = reporter("ipr_third")
        unit.isp_account_id = third.id
        db.session.commit()
        block(unit, "198.18.0.0", "198.18.0.255")
        website = application.entity.websites[0]
        code = workflow.owner_access_code(user_named(people["icp"]), application.entity)
        asked = workflow.add_access(third, website, workflow.AccessData(
            isp_id=third.id, method="2", server_province_code=TIANJIN,
            ip_ranges=[("198.18.0.1", "198.18.0.9"), ("198.19.0.1", "198.19.0.9")]), code)
        db.session.commit()
        asked_id = asked.id
    isp_card = _card(_client(app, people["isp"]).get(f"/admin/applications/details/?id={asked_id}").get_data(
        as_text=True))
    assert "198.51.100.10–198.51.100.20 已报备" in isp_card and "198.18.0.1" not in isp_card
    card = _card(_client(app, "tj_isp3").get(f"/admin/applications/details/?id={asked_id}").get_data(as_text=True))
    assert "198.18.0.1–198.18.0.9 已报备（ipr_third 网络公司）" in card
    assert "198.19.0.1–198.19.0.9 未报备（1063）" in card
