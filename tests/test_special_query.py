"""Issue 17 §1, 专项查询: each search kind finds exactly its records; personal data masked until 显示; reason and
case number required; every query, unmasking and export recorded (audit log and 专项查询记录); a provincial account
never finds another province's data; every role without the action is refused."""

from __future__ import annotations

import io
import json
import re
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

import workflow
from extensions import db
from models import AuditEvent, DomainReport, Entity, IpAllocation, Role, SpecialQueryLog
from permissions import ALLOWED, Action
from tests.domain_factories import registrar, report
from tests.filing_factories import credit_code, entity_data, website_data
from tests.helpers import BEIJING, PASSWORD, TIANJIN, post, sign_in, user_named
from tests.ip_factories import allocation, block, reporter
from validators import id_card_check_char
from workflow import special_query as sq

PAGE, RECORD, EXPORT, LOG = ("/admin/special-query/", "/admin/special-query/record", "/admin/special-query/export",
                             "/admin/special_query_log/")
WHY = {"reason": "涉嫌网络诈骗", "case_number": "津公网安〔2026〕17号"}


def id_number(body: str) -> str:
    return body + id_card_check_char(body)


ID_A, ID_B = id_number("12010119900101003"), id_number("11010519850202004")


def _filing(isp_key: str, bureau_key: str, people: dict[str, str], n: int, name: str, province: str,
            ranges: list[tuple[str, str]], **entity: Any) -> None:
    """A filing of `province` made by its ISP (no ISP verification then) and approved by its bureau."""
    isp = user_named(people[isp_key])
    site = website_data(name, [isp.id], responsible_name=entity.pop("site_person", "赵六"),
                        responsible_mobile=entity.pop("site_mobile", "13700000000"))
    site.accesses[0].ip_ranges, site.accesses[0].server_province_code = ranges, province
    application = workflow.save_filing_draft(isp, entity_data(n, province, **entity), [site])
    workflow.submit_application(isp, application)
    workflow.approve(user_named(people[bureau_key]), application)


@pytest.fixture
def world(app, people) -> dict[str, str]:
    with app.app_context():
        build_world(people)
    return {**people, "sq_tj": "sq_tj", "sq_bj": "sq_bj"}


def build_world(people: dict[str, str]) -> None:
    """天津: 甲 (a company, person 王小明) and 丙 (an individual); 北京: 乙 (person 李大伟); a domain report and an IP
    allocation in each province; special-query accounts: national (MIIT's), 天津 and 北京 (their bureaus')."""
    _filing("isp", "bureau", people, 701, "jiasite", TIANJIN, [("203.0.113.1", "203.0.113.20")],
            unit_name="天津甲科技有限公司", responsible_name="王小明", responsible_id_number=ID_A,
            responsible_mobile="13911112222", responsible_email="Wang@Example.cn", site_person="孙七",
            site_mobile="13600001111")
    _filing("isp", "bureau", people, 702, "bingsite", TIANJIN, [("203.0.113.100", "203.0.113.110")],
            unit_name="张丙", unit_nature="5", certificate_type="16", certificate_number=ID_B,
            responsible_name="张丙", responsible_id_number=ID_B, responsible_mobile="13500000000",
            responsible_email="bing@example.cn")
    _filing("isp_bj", "bureau_bj", people, 703, "yisite", BEIJING, [("198.51.100.1", "198.51.100.20")],
            unit_name="北京乙信息有限公司", responsible_name="李大伟", responsible_id_number=id_number(
                "11010119800303005"), responsible_mobile="13822223333", responsible_email="li@example.cn")
    report(user_named(people["domain_reporter"]), "jiasite.cn", credit_code(701),
           registrant_name="天津甲科技有限公司", registrant_email="dns@jia.cn", registrant_phone="13911112222")
    report(registrar("bj_domain", BEIJING), "yisite.cn", credit_code(703), registrant_name="北京乙信息有限公司")
    tj_unit, bj_unit = user_named(people["ip_reporter"]), reporter("bj_ipreport", BEIJING)
    block(tj_unit, "203.0.113.0", "203.0.113.255")
    allocation(tj_unit, "203.0.113.0", "203.0.113.63", contact_name="王五", contact_phone="13312345678")
    block(bj_unit, "198.51.100.0", "198.51.100.255")
    allocation(bj_unit, "198.51.100.0", "198.51.100.63", province_code=BEIJING, city_code="110100")
    for username, bureau in (("sq_tj", "bureau"), ("sq_bj", "bureau_bj")):
        creator = user_named(people[bureau])
        workflow.create_user(creator, workflow.UserData(
            username=username, role=Role.SPECIAL_QUERY, password=PASSWORD, province_code=creator.province_code,
            contact_name="调查员", mobile="13912345678", email=f"{username}@example.cn"))
    db.session.commit()


def _found(username: str, kind: str, term: str) -> tuple[set[str], set[str], int]:
    found = sq.search(user_named(username), sq.check_query(kind, term, **WHY))
    return ({entity.unit_name for entity in found.entities}, {r.domain for r in found.reports},
            len(found.ip_records))


JIA, BING, YI = "天津甲科技有限公司", "张丙", "北京乙信息有限公司"
KINDS = [
    ("unit_name", "天津甲", {JIA}, {"jiasite.cn"}, 0),
    ("unit_name", "北京", {YI}, {"yisite.cn"}, 0),
    ("number", "津ICP备", {JIA, BING}, set(), 0),
    ("number", "京icp备", {YI}, set(), 0),
    ("domain", "WWW.JiaSite.cn", {JIA}, {"jiasite.cn"}, 0),
    ("domain", "yisite.cn", {YI}, {"yisite.cn"}, 0),
    ("domain", "nosite.cn", set(), set(), 0),
    ("ip", "203.0.113.5", {JIA}, set(), 2),  # the filed range; the block and its allocation
    ("ip", "203.0.113.105", {BING}, set(), 1),  # the block only (the allocation ends at .63)
    ("ip", "203.0.113.50", set(), set(), 2),
    ("ip", "198.51.100.7", {YI}, set(), 2),
    ("ip", "192.0.2.1", set(), set(), 0),
    ("person_name", "王小明", {JIA}, set(), 0),
    ("person_name", "孙七", {JIA}, set(), 0),  # the website's responsible person
    ("person_name", "王", set(), set(), 0),  # exact, never a part
    ("id_number", ID_A, {JIA}, set(), 0),
    ("id_number", ID_B.lower(), {BING}, set(), 0),  # the individual's certificate number too
    ("mobile", "13911112222", {JIA}, {"jiasite.cn"}, 0),
    ("mobile", "13600001111", {JIA}, set(), 0),
    ("mobile", "1391111222", set(), set(), 0),
    ("email", "Wang@Example.cn", {JIA}, set(), 0),
    ("email", "DNS@jia.cn", set(), {"jiasite.cn"}, 0),  # as typed, or in lower case
    ("email", "dns@jia.cn", set(), {"jiasite.cn"}, 0),
    ("credit_code", credit_code(703), {YI}, {"yisite.cn"}, 0),
]


def test_each_kind_finds_exactly_its_records(app, world) -> None:
    with app.app_context():
        for kind, term, units, domains, ip_records in KINDS:
            assert _found(world["special_query"], kind, term) == (units, domains, ip_records), (kind, term)


def test_a_provincial_account_never_finds_another_provinces_data(app, world) -> None:
    """A 天津 account finds the 天津 part of what the national one finds, a 北京 account the 北京 part; IP reports
    by the reporting unit's province."""
    with app.app_context():
        for kind, term, units, domains, _ip in KINDS:
            for username, mine in (("sq_tj", {JIA, BING}), ("sq_bj", {YI})):
                found_units, found_domains, _found_ip = _found(username, kind, term)
                assert found_units == units & mine, (username, kind, term)
                assert found_domains == {d for d in domains if (d == "yisite.cn") == (username == "sq_bj")}
        assert _found("sq_tj", "ip", "198.51.100.7")[2] == 0
        assert _found("sq_bj", "ip", "198.51.100.7")[2] == 2
        assert _found("sq_bj", "ip", "203.0.113.5")[2] == 0


def test_masking_of_ids_mobiles_e_mails_and_names() -> None:
    assert sq.mask_id("120101199001010030") == "1201**********0030"
    assert sq.mask_phone("13922222222") == "139****2222"
    assert sq.mask_email("wang@example.cn") == "w***@example.cn"
    assert sq.mask_name("王小明") == "王**"
    assert sq.mask_id("") == sq.mask_email("") == sq.mask_name("") == ""


def test_results_are_masked_and_show_whole_reveals_one_record(world, client) -> None:
    sign_in(client, world["special_query"])
    page = post(client, PAGE, {"kind": "unit_name", "term": "天津甲", **WHY}).get_data(as_text=True)
    assert sq.mask_id(ID_A) in page and ID_A not in page
    assert "139****2222" in page and "13911112222" not in page
    assert "W***@Example.cn" in page and "王**" in page and "王小明" not in page
    with client.application.app_context():
        entity_id = db.session.scalar(select(Entity.id).where(Entity.unit_name == JIA))
    shown = post(client, RECORD, {"kind": "unit_name", "term": "天津甲", **WHY, "record_type": "entity",
                                  "record_id": entity_id})
    text = shown.get_data(as_text=True)
    assert shown.status_code == 200 and ID_A in text and "13911112222" in text and "王小明" in text
    page = post(client, PAGE, {"kind": "number", "term": "津ICP备", **WHY}).get_data(as_text=True)
    assert credit_code(701) in page and ID_B not in page and sq.mask_id(ID_B) in page  # an individual's: an ID


def test_reason_and_case_number_are_required(app, world, client) -> None:
    sign_in(client, world["special_query"])
    for missing, message in (("reason", "请填写本次查询的案由"), ("case_number", "请填写本次查询的案号")):
        response = post(client, PAGE, {"kind": "unit_name", "term": "天津甲", **WHY, missing: "  "})
        assert response.status_code == 200 and message in response.get_data(as_text=True)
        assert "天津甲科技有限公司" not in response.get_data(as_text=True)
        for path in (RECORD, EXPORT):
            assert post(client, path, {"kind": "unit_name", "term": "天津甲", **WHY, missing: ""}).status_code == 400
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(SpecialQueryLog)) == 0
        assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action.like("special_query.%"))) == 0


def test_a_bad_term_is_refused_in_chinese(users, client) -> None:
    sign_in(client, users["special_query"])
    for kind, term, message in (("ip", "999.1.1.1", "不是有效的IPv4或IPv6地址"), ("id_number", "123", "身份证号码"),
                                ("unit_name", "天", "至少"), ("number", "ICP备", "省份简称")):
        text = post(client, PAGE, {"kind": kind, "term": term, **WHY}).get_data(as_text=True)
        assert message in text, (kind, term)


def _log(app) -> list[tuple[str, str, str, str, int]]:
    with app.app_context():
        return [(row.action, row.kind, row.reason, row.case_number, row.results) for row in
                db.session.scalars(select(SpecialQueryLog).order_by(SpecialQueryLog.id))]


def _audit(app) -> list[dict[str, Any]]:
    with app.app_context():
        return [{"action": row.action, **json.loads(row.changes)} for row in db.session.scalars(
            select(AuditEvent).where(AuditEvent.action.like("special_query.%")).order_by(AuditEvent.id))]


def test_every_query_unmasking_and_export_is_recorded_with_its_reason(app, world, client) -> None:
    sign_in(client, world["special_query"])
    query = {"kind": "mobile", "term": "13911112222", **WHY}
    post(client, PAGE, query)
    with app.app_context():
        report_id = db.session.scalar(select(DomainReport.id).where(DomainReport.domain == "jiasite.cn"))
    assert post(client, RECORD, {**query, "record_type": "domain_report", "record_id": report_id}).status_code == 200
    assert post(client, EXPORT, query).status_code == 200
    reason, case = WHY["reason"], WHY["case_number"]
    assert _log(app) == [("search", "mobile", reason, case, 2), ("reveal", "mobile", reason, case, 1),
                         ("export", "mobile", reason, case, 2)]
    events = _audit(app)
    assert [event["action"] for event in events] == [
        "special_query.search", "special_query.reveal", "special_query.export"]
    assert all(event["reason"] == reason and event["case_number"] == case and event["term"] == "13911112222"
               for event in events)


def test_export_is_xlsx_headed_by_account_time_and_reason_and_masked(world, client) -> None:
    sign_in(client, world["special_query"])
    response = post(client, EXPORT, {"kind": "number", "term": "津ICP备", **WHY})
    assert response.mimetype.endswith("spreadsheetml.sheet")
    rows = [[cell.value for cell in row] for row in load_workbook(io.BytesIO(response.data)).active.iter_rows()]
    head = {row[0]: row[1] for row in rows[1:7]}
    assert head["账号"] == world["special_query"] and head["案由"] == WHY["reason"]
    assert head["案号"] == WHY["case_number"] and head["导出时间"]
    titles = next(i for i, row in enumerate(rows) if row[0] == "记录")
    data = rows[titles + 1:]
    assert sorted(row[1] for row in data) == sorted([BING, JIA])
    flat = " ".join(str(value) for row in data for value in row if value)
    assert ID_A not in flat and ID_B not in flat and "13911112222" not in flat and sq.mask_id(ID_A) in flat


def test_export_holds_at_most_the_limit(world, client, monkeypatch) -> None:
    monkeypatch.setattr(sq, "EXPORT_LIMIT", 1)
    sign_in(client, world["special_query"])
    response = post(client, EXPORT, {"kind": "number", "term": "津ICP备", **WHY})
    rows = [[cell.value for cell in row] for row in load_workbook(io.BytesIO(response.data)).active.iter_rows()]
    titles = next(i for i, row in enumerate(rows) if row[0] == "记录")
    assert len(rows) - titles - 1 == 1
    assert any("仅导出前1行" in str(row[1]) for row in rows[:titles])


def test_showing_a_record_of_another_province_is_404(app, world, client) -> None:
    with app.app_context():
        yi = db.session.scalar(select(Entity.id).where(Entity.unit_name == YI))
        bj_allocation = db.session.scalar(select(IpAllocation.id).where(IpAllocation.start_key.like("%c6336400")))
    sign_in(client, "sq_tj")
    for record_type, record_id in (("entity", yi), ("ip_allocation", bj_allocation), ("entity", "99999999"),
                                   ("user", "1"), ("entity", "x")):
        response = post(client, RECORD, {"kind": "unit_name", "term": "北京", **WHY, "record_type": record_type,
                                         "record_id": record_id})
        assert response.status_code == 404, (record_type, record_id)
    assert [row[0] for row in _log(app)] == []


def test_a_post_without_the_csrf_token_is_refused(users, client) -> None:
    sign_in(client, users["special_query"])
    for path in (PAGE, RECORD, EXPORT):
        response = client.post(path, data={"kind": "unit_name", "term": "天津甲", **WHY})
        assert response.status_code == 400, path


ROLES = ("miit", "bureau", "isp", "icp", "ip_reporter", "domain_reporter", "preapproval", "content_admin",
         "special_query")  # the fixture accounts' keys are their roles


@pytest.mark.parametrize("role", ROLES)
def test_every_role_without_the_action_is_refused(as_user, role: str) -> None:
    client, allowed = as_user(role), ALLOWED[Role(role)]
    query = {"kind": "unit_name", "term": "天津甲", **WHY}
    for path, action in ((PAGE, Action.SPECIAL_QUERY), (LOG, Action.SPECIAL_QUERY_LOG)):
        assert (client.get(path).status_code == 200) == (action in allowed), path
        if action not in allowed:
            assert client.get(path).status_code == 403, path
    if Action.SPECIAL_QUERY not in allowed:
        for path in (PAGE, RECORD, EXPORT):
            assert post(client, path, {**query, "record_type": "entity", "record_id": "1"}).status_code == 403


def test_the_register_miit_all_a_bureau_its_provinces_accounts(app, world) -> None:
    for username, term in ((world["special_query"], "天津甲"), ("sq_tj", "天津甲"), ("sq_bj", "北京乙")):
        client = app.test_client()
        sign_in(client, username)
        post(client, PAGE, {"kind": "unit_name", "term": term, **WHY})
    seen = {}
    for key in ("miit", "bureau", "bureau_bj"):
        client = app.test_client()
        sign_in(client, world[key])
        page = client.get(LOG).get_data(as_text=True)
        seen[key] = set(re.findall(r'class="col-username">\s*(\S+)\s*<', page))
    assert seen == {"miit": {world["special_query"], "sq_tj", "sq_bj"}, "bureau": {"sq_tj"},
                    "bureau_bj": {"sq_bj"}}


def test_the_register_filters_by_case_number_and_account(app, world) -> None:
    client = app.test_client()
    sign_in(client, "sq_tj")
    post(client, PAGE, {"kind": "unit_name", "term": "天津甲", **WHY})
    post(client, PAGE, {"kind": "unit_name", "term": "天津甲", "reason": "核查", "case_number": "其他案"})
    miit = app.test_client()
    sign_in(miit, world["miit"])
    page = miit.get(LOG, query_string={"flt0_3": "其他案"}).get_data(as_text=True)
    assert "核查" in page and WHY["reason"] not in page
