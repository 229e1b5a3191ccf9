"""The IP reports in the console (issue 13): who opens which page, the scope of each list, the forms both ways
with their result codes, the search by address or range, the tree, the address lookup, the findings."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from sqlalchemy import func, select, text

import ipindex
from extensions import db
from models import AuditEvent, FindingKind, IpAllocation, IpBlock, IpFinding, IpSelfBrought, Role, User
from tests.helpers import BEIJING, TIANJIN, csrf_token, make_user, post, user_named
from tests.ip_factories import USER_UNIT, allocation, block, reporter, self_brought

ALL = {"miit", "bureau", "isp", "icp", "ip_reporter", "domain_reporter", "preapproval", "content_admin",
       "special_query"}
OVERSIGHT = {"miit", "bureau"}

#: every IP page → the roles that may open it
MATRIX: dict[str, set[str]] = {
    "/admin/ip_blocks/": {"ip_reporter"},
    "/admin/ip_blocks/new/": {"ip_reporter"},
    "/admin/ip_allocations/": {"ip_reporter"},
    "/admin/ip_allocations/new/": {"ip_reporter"},
    "/admin/ip_allocations/divisions/?parent=120000": {"ip_reporter"},
    "/admin/ip_self_brought/": {"ip_reporter"},
    "/admin/ip_self_brought/new/": {"ip_reporter"},
    "/admin/ip_units/": OVERSIGHT,
    "/admin/ip_all_blocks/": OVERSIGHT,
    "/admin/ip_all_allocations/": OVERSIGHT,
    "/admin/ip_all_self_brought/": OVERSIGHT,
    "/admin/ip_all_blocks/new/": set(),
    "/admin/ip_all_allocations/new/": set(),
    "/admin/ip-lookup/": {"miit", "bureau"},
    "/admin/ip_findings/": {"miit", "bureau", "ip_reporter"},
    "/admin/ip-statistics/": OVERSIGHT,
}


@pytest.mark.parametrize("path", sorted(MATRIX))
def test_each_ip_page_opens_for_its_roles_only(as_user, path: str) -> None:
    """Allowed roles get the page (200); every other role gets 403."""
    for role in sorted(ALL):
        expected = 200 if role in MATRIX[path] else 403
        assert as_user(role).get(path).status_code == expected, (role, path)


def test_signed_out_users_are_sent_to_sign_in(client) -> None:
    for path in MATRIX:
        response = client.get(path)
        assert response.status_code == 302 and response.headers["Location"].startswith("/login"), path


def test_the_menu_names_the_ip_pages_in_chinese(as_user) -> None:
    reporter_menu = _menu(as_user("ip_reporter"))
    assert reporter_menu[:5] == ["工作台", "IP地址备案", "来源信息", "分配及使用信息", "自带IP"]
    assert "核查结果" in reporter_menu and "地址查询" not in reporter_menu and "IP报备单位" not in reporter_menu
    bureau_menu = _menu(as_user("bureau"))
    assert {"IP地址备案", "IP报备单位", "来源信息", "地址查询", "核查结果"} <= set(bureau_menu)
    assert "地址查询" not in _menu(as_user("special_query")) and "来源信息" not in _menu(as_user("special_query"))
    assert "IP地址备案" not in _menu(as_user("isp"))


def _menu(client) -> list[str]:
    body = client.get("/admin/").get_data(as_text=True)
    aside = body[body.index("console-sidebar"):body.index("</aside>")]
    return [re.sub(r"<[^>]+>", "", item).strip() for item in re.findall(r"<li[^>]*>(.*?)</li>", aside, re.S)]


# --- a small world: two 天津 units (one re-allocating to the other), a 北京 unit ----------------------------------


@pytest.fixture
def ipw(app: Flask, users: dict[str, str]) -> dict[str, int]:
    """tj_ipreport: 203.0.113.0/24 (APNIC) with /28 allocated to a user unit and .64/26 re-allocated to tj_second,
    which allocated .64/28 further; a self-brought block; bj_ipreport (北京): 198.51.100.0/24."""
    with app.app_context():
        unit = user_named(users["ip_reporter"])
        second = reporter("tj_second", organisation="天津第二数据中心")
        beijing = reporter("bj_ipreport", BEIJING, organisation="北京某运营商")
        ids = {"block": block(unit, "203.0.113.0", "203.0.113.255").id,
               "allocation": allocation(unit, "203.0.113.0", "203.0.113.15").id,
               "reallocation": allocation(unit, "203.0.113.64", "203.0.113.127", method="2",
                                          target_unit="tj_second").id,
               "second_allocation": allocation(second, "203.0.113.64", "203.0.113.79",
                                               user_name="天津下级用户有限公司").id,
               "self_brought": self_brought(unit, "192.0.2.0", "192.0.2.255", source_name="某客户").id,
               "beijing_block": block(beijing, "198.51.100.0", "198.51.100.255").id,
               "beijing_allocation": allocation(beijing, "198.51.100.0", "198.51.100.7",
                                                province_code=TIANJIN).id}
        ids["received"] = db.session.scalar(select(IpBlock.id).where(IpBlock.allocation_id == ids["reallocation"]))
        return ids


def _counts(app: Flask) -> tuple[int, int, int]:
    with app.app_context():
        return tuple(db.session.scalar(select(func.count()).select_from(model))  # type: ignore[return-value]
                     for model in (IpBlock, IpAllocation, IpSelfBrought))


def _body(response) -> str:
    return response.get_data(as_text=True)


# --- scope ------------------------------------------------------------------------------------------------


def test_a_reporter_lists_only_its_own_records(as_user, ipw) -> None:
    client = as_user("ip_reporter")
    blocks = _body(client.get("/admin/ip_blocks/"))
    assert "203.0.113.0/24" in blocks and "198.51.100.0/24" not in blocks and "共 1 条" in blocks
    allocations = _body(client.get("/admin/ip_allocations/"))
    assert "203.0.113.0/28" in allocations and "203.0.113.64/26" in allocations
    assert "203.0.113.64/28" not in allocations and "天津下级用户有限公司" not in allocations
    assert "192.0.2.0/24" in _body(client.get("/admin/ip_self_brought/"))


def test_a_reporter_never_opens_or_changes_another_units_record_by_url(app, as_user, ipw) -> None:
    """Another unit's id is 404 on every page of the record, and a forged delete changes nothing."""
    client = as_user("ip_reporter")
    for path in (f"/admin/ip_blocks/edit/?id={ipw['beijing_block']}",
                 f"/admin/ip_blocks/details/?id={ipw['beijing_block']}",
                 f"/admin/ip_blocks/tree/?id={ipw['beijing_block']}",
                 f"/admin/ip_allocations/edit/?id={ipw['second_allocation']}",
                 f"/admin/ip_allocations/details/?id={ipw['beijing_allocation']}",
                 "/admin/ip_blocks/edit/?id=999999", "/admin/ip_blocks/edit/?id=not-a-number"):
        assert client.get(path).status_code == 404, path
    before = _counts(app)
    for path, record in (("/admin/ip_blocks/delete/", ipw["beijing_block"]),
                         ("/admin/ip_allocations/delete/", ipw["second_allocation"])):
        assert post(client, path, {"id": record, "url": "/admin/"}).status_code == 404
    edited = post(client, f"/admin/ip_allocations/edit/?id={ipw['second_allocation']}",
                  {"start": "203.0.113.64", "end": "203.0.113.70", "method": "4"})
    assert edited.status_code == 404 and _counts(app) == before


def test_a_bureau_sees_its_provinces_units_only_and_miit_all(as_user, ipw) -> None:
    bureau = as_user("bureau")
    blocks = _body(bureau.get("/admin/ip_all_blocks/"))
    assert "203.0.113.0/24" in blocks and "203.0.113.64/26" in blocks and "198.51.100.0/24" not in blocks
    units = _body(bureau.get("/admin/ip_units/"))
    assert "tj_ipreport" in units and "tj_second" in units and "bj_ipreport" not in units
    assert bureau.get(f"/admin/ip_all_blocks/details/?id={ipw['beijing_block']}").status_code == 404
    assert bureau.get(f"/admin/ip_all_blocks/tree/?id={ipw['beijing_block']}").status_code == 404
    assert bureau.get(f"/admin/ip_all_allocations/details/?id={ipw['beijing_allocation']}").status_code == 404
    assert "198.51.100.0/24" in _body(as_user("bureau_bj").get("/admin/ip_all_blocks/"))
    miit = _body(as_user("miit").get("/admin/ip_all_blocks/"))
    assert "198.51.100.0/24" in miit and "203.0.113.0/24" in miit


def test_the_bureau_lists_are_read_only(app, as_user, ipw) -> None:
    bureau = as_user("bureau")
    body = _body(bureau.get("/admin/ip_all_allocations/"))
    assert "/admin/ip_all_allocations/edit/" not in body and "/admin/ip_all_allocations/new/" not in body
    before = _counts(app)
    assert post(bureau, "/admin/ip_all_allocations/delete/", {"id": ipw["allocation"]}).status_code == 403
    assert post(bureau, f"/admin/ip_all_allocations/edit/?id={ipw['allocation']}", {"method": "4"}).status_code == 403
    assert _counts(app) == before


def test_the_unit_filter_narrows_the_bureaus_list_and_refuses_an_unknown_unit(as_user, ipw) -> None:
    bureau = as_user("bureau")
    mine = _body(bureau.get("/admin/ip_all_allocations/?flt0_0=tj_second"))
    assert "203.0.113.64/28" in mine and "203.0.113.0/28" not in mine and "共 1 条" in mine
    forged = _body(bureau.get("/admin/ip_all_allocations/?flt0_0=bj_ipreport"))  # not a unit of its province
    assert "198.51.100.0/29" not in forged
    units = _body(bureau.get("/admin/ip_units/"))
    assert 'href="/admin/ip_all_blocks/?flt0_0=tj_second"' in units


# --- search ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("term", "found", "not_found"), [
    ("203.0.113.5", ["203.0.113.0/28"], ["203.0.113.64/26"]),  # an address finds the record holding it
    ("203.0.113.64/27", ["203.0.113.64/26"], ["203.0.113.0/28"]),  # a prefix: the records sharing an address
    ("203.0.113.10-203.0.113.70", ["203.0.113.0/28", "203.0.113.64/26"], []),  # a range
    ("::ffff:203.0.113.1", ["203.0.113.0/28"], []),  # IPv4-mapped is IPv4
    ("203.0.113.32", [], ["203.0.113.0/28", "203.0.113.64/26"]),  # held by no allocation
])
def test_a_reporter_searches_its_allocations_by_address_or_range(as_user, ipw, term, found, not_found) -> None:
    body = _body(as_user("ip_reporter").get("/admin/ip_allocations/", query_string={"search": term}))
    assert all(text in body for text in found), body
    assert not any(text in body for text in not_found)


def test_a_bad_search_term_says_what_to_type_and_finds_nothing(as_user, ipw) -> None:
    body = _body(as_user("ip_reporter").get("/admin/ip_allocations/", query_string={"search": "天津某科技"}))
    assert "请输入IP地址" in body and "203.0.113.0/28" not in body


def test_the_bureau_search_finds_every_unit_holding_the_address(as_user, ipw) -> None:
    """203.0.113.70 is in the giver's re-allocation and in the receiver's allocation."""
    body = _body(as_user("bureau").get("/admin/ip_all_allocations/", query_string={"search": "203.0.113.70"}))
    assert "203.0.113.64/26" in body and "203.0.113.64/28" in body and "203.0.113.0/28" not in body
    blocks = _body(as_user("bureau").get("/admin/ip_all_blocks/", query_string={"search": "203.0.113.70"}))
    assert blocks.count("203.0.113.64/26") == 1 and "203.0.113.0/24" in blocks


@pytest.mark.parametrize("term", ["203.0.113.70", "203.0.113.0/25"])
@pytest.mark.parametrize("who", ["reporter", "bureau", "miit"])
def test_the_search_reads_index_ranges_and_ids_never_a_units_records(app, ipw, who: str, term: str) -> None:
    """SQLite's plan of a search as each list runs it: ranges of (unit_id, start_key) and lookups by id — never
    every record of a unit or of the scope (`unit_id=?` alone), never LIKE."""
    from admin_views.ip import overlapping, search_range

    with app.app_context():
        if db.engine.dialect.name != "sqlite":
            pytest.skip("the plan is SQLite's")
        unit = user_named("tj_ipreport")
        province = (User.role == Role.IP_REPORTER) & (User.province_code == TIANJIN)
        scope, units, own = {
            "reporter": (IpAllocation.unit_id == unit.id, User.id == unit.id, unit.id),
            "bureau": (IpAllocation.unit_id.in_(select(User.id).where(province)), province, None),
            "miit": (IpAllocation.id.is_not(None), User.role == Role.IP_REPORTER, None)}[who]
        order = (IpAllocation.start_key,) if own else (IpAllocation.start_key, IpAllocation.unit_id)
        statement = (select(IpAllocation.id).where(scope, overlapping(IpAllocation, search_range(term), units, own))
                     .order_by(*order).limit(50))
        compiled = str(statement.compile(db.engine, compile_kwargs={"literal_binds": True}))
        plan = [row[-1] for row in db.session.execute(text(f"EXPLAIN QUERY PLAN {compiled}"))]
        reads = [step for step in plan if "ip_allocations" in step]
        assert reads and all("PRIMARY KEY" in step or "start_key>?" in step for step in reads), plan
        assert "LIKE" not in compiled


# --- the forms, both ways ----------------------------------------------------------------------------------


def test_a_reporter_adds_a_block_and_an_overlap_is_refused_with_its_code(app, as_user, ipw) -> None:
    client = as_user("ip_reporter")
    form = _body(client.get("/admin/ip_blocks/new/"))
    assert 'name="csrf_token"' in form and "起始地址" in form and "互联网地址注册机构" in form
    ipv6 = {"start": "2001:db8::", "end": "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "origin": "registry",
            "registry_code": "CNNIC", "remark": "IPv6"}
    added = post(client, "/admin/ip_blocks/new/", ipv6, follow_redirects=True)
    assert "2001:db8::/32" in _body(added)
    before = _counts(app)
    refused = _body(post(client, "/admin/ip_blocks/new/", {"start": "198.51.100.128", "end": "198.51.100.130",
                                                           "origin": "registry", "registry_code": "APNIC"}))
    assert "结果代码 2056" in refused and "北京某运营商" in refused and 'value="198.51.100.128"' in refused
    assert "2056" in _error_beside(refused, "start")
    assert _counts(app) == before


def test_every_error_stands_beside_its_field(app, as_user, ipw) -> None:
    """分配方式 1 without its user-unit fields: each required field says so; nothing is saved."""
    before = _counts(app)
    body = _body(post(as_user("ip_reporter"), "/admin/ip_allocations/new/",
                      {"start": "203.0.113.200", "end": "203.0.113.210", "method": "1", "contact_email": "not-mail"}))
    for name in ("usage", "allocated_on", "user_name", "user_nature", "province_code", "city_code", "address",
                 "contact_name", "contact_phone"):
        assert _error_beside(body, name), name
    assert "电子邮件" in _error_beside(body, "contact_email") and _counts(app) == before


def _error_beside(body: str, name: str) -> str:
    """The error messages shown in the form group of the field `name`."""
    group = body[body.index(f'id="{name}"'):]
    group = group[:group.find('class="form-group') % len(group)]
    return " ".join(re.findall(r'<div class="invalid-feedback d-block">([^<]*)</div>', group))


def test_a_reporter_allocates_to_a_user_unit(app, as_user, ipw) -> None:
    data = {"start": "203.0.113.16", "end": "203.0.113.31", "method": "1", **_form_values(USER_UNIT)}
    response = post(as_user("ip_reporter"), "/admin/ip_allocations/new/", data, follow_redirects=True)
    assert "203.0.113.16/28" in _body(response)
    with app.app_context():
        made = db.session.scalar(select(IpAllocation).where(IpAllocation.user_name == USER_UNIT["user_name"])
                                 .order_by(IpAllocation.id.desc()))
        assert made.city_code == "120100" and made.usage == "1"


def test_only_the_fields_of_the_chosen_method_are_saved(app, as_user, ipw) -> None:
    """自用 (3) keeps usage and date; the user-unit fields left in the form are not saved."""
    data = {"start": "203.0.113.32", "end": "203.0.113.47", "method": "3", **_form_values(USER_UNIT)}
    post(as_user("ip_reporter"), "/admin/ip_allocations/new/", data)
    with app.app_context():
        made = db.session.scalar(select(IpAllocation).where(IpAllocation.method == "3"))
        assert made.usage == "1" and made.user_name == "" and made.city_code is None


def test_a_reallocation_to_oneself_is_refused_with_2050(app, as_user, ipw) -> None:
    before = _counts(app)
    body = _body(post(as_user("ip_reporter"), "/admin/ip_allocations/new/",
                      {"start": "203.0.113.128", "end": "203.0.113.191", "method": "2", "target_unit": "tj_ipreport"}))
    assert "结果代码 2050" in body and _counts(app) == before


def test_a_reporter_edits_and_deletes_an_allocation(app, as_user, ipw) -> None:
    client = as_user("ip_reporter")
    form = _body(client.get(f"/admin/ip_allocations/edit/?id={ipw['allocation']}"))
    assert 'value="203.0.113.0"' in form and 'value="天津某科技有限公司"' in form
    assert '<option selected value="120100">' in form  # the city menu filled from the province
    data = {"start": "203.0.113.0", "end": "203.0.113.7", "method": "1", **_form_values(USER_UNIT)}
    post(client, f"/admin/ip_allocations/edit/?id={ipw['allocation']}", data)
    with app.app_context():
        assert ipindex.address_text(db.session.get(IpAllocation, ipw["allocation"]).end_key) == "203.0.113.7"
    response = post(client, "/admin/ip_allocations/delete/", {"id": ipw["allocation"], "url": "/admin/ip_allocations/"},
                    follow_redirects=True)
    assert "203.0.113.0/29" not in _body(response)
    with app.app_context():
        assert db.session.get(IpAllocation, ipw["allocation"]) is None


def test_a_block_holding_allocations_is_not_deleted_and_says_why(app, as_user, ipw) -> None:
    before = _counts(app)
    response = post(as_user("ip_reporter"), "/admin/ip_blocks/delete/",
                    {"id": ipw["block"], "url": "/admin/ip_blocks/"}, follow_redirects=True)
    assert "结果代码 2005" in _body(response) and "203.0.113.0/28" in _body(response)
    assert _counts(app) == before


def test_a_reallocation_the_receiver_allocated_further_is_not_deleted(app, as_user, ipw) -> None:
    before = _counts(app)
    response = post(as_user("ip_reporter"), "/admin/ip_allocations/delete/", {"id": ipw["reallocation"]},
                    follow_redirects=True)
    assert "天津第二数据中心" in _body(response) and "结果代码 2005" in _body(response)
    assert _counts(app) == before


def test_a_received_block_is_listed_read_only_with_its_giver(app, ipw) -> None:
    client = app.test_client()
    from tests.helpers import sign_in

    assert sign_in(client, "tj_second").status_code == 302
    body = _body(client.get("/admin/ip_blocks/"))
    assert "203.0.113.64/26" in body and "由 " in body and "tj_ipreport" in body
    assert f"/admin/ip_blocks/edit/?id={ipw['received']}" not in body
    assert client.get(f"/admin/ip_blocks/edit/?id={ipw['received']}").status_code == 404
    before = _counts(app)
    response = post(client, "/admin/ip_blocks/delete/", {"id": ipw["received"]}, follow_redirects=True)
    assert "结果代码 2054" in _body(response) and _counts(app) == before


def test_a_reporter_adds_changes_and_deletes_a_self_brought_block(app, as_user, ipw) -> None:
    client = as_user("ip_reporter")
    data = {"start": "100.64.0.0", "end": "100.64.0.255", "source_name": "客户自有", **_form_values(USER_UNIT)}
    post(client, "/admin/ip_self_brought/new/", data)
    refused = _body(post(client, "/admin/ip_self_brought/new/", {**data, "start": "100.64.0.128"}))
    assert "结果代码 2003" in refused
    with app.app_context():
        made = db.session.scalar(select(IpSelfBrought).where(IpSelfBrought.source_name == "客户自有"))
    post(client, f"/admin/ip_self_brought/edit/?id={made.id}", {**data, "source_name": "客户自有地址"})
    with app.app_context():
        assert db.session.get(IpSelfBrought, made.id).source_name == "客户自有地址"
    post(client, "/admin/ip_self_brought/delete/", {"id": made.id})
    with app.app_context():
        assert db.session.get(IpSelfBrought, made.id) is None


def test_there_is_no_batch_delete(app, as_user, ipw) -> None:
    """Records are deleted one at a time (each deletion checked, and refused with its code when it must be)."""
    client = as_user("ip_reporter")
    assert "action_form" not in _body(client.get("/admin/ip_allocations/"))
    before = _counts(app)
    post(client, "/admin/ip_allocations/action/", {"action": "delete", "rowid": [ipw["allocation"]]})
    assert _counts(app) == before


def test_a_post_without_the_csrf_token_changes_nothing(app, as_user, ipw) -> None:
    client = as_user("ip_reporter")
    before = _counts(app)
    for path, data in (("/admin/ip_blocks/new/", {"start": "10.0.0.0", "end": "10.0.0.255", "origin": "registry",
                                                   "registry_code": "APNIC"}),
                       ("/admin/ip_allocations/delete/", {"id": ipw["allocation"]})):
        response = client.post(path, data=data)
        assert response.status_code == 400 and "表单已过期" in _body(response)
    assert _counts(app) == before
    assert csrf_token(client)


def _form_values(values: dict) -> dict[str, str]:
    return {name: value.isoformat() if hasattr(value, "isoformat") else value for name, value in values.items()}


# --- the dependent menus ------------------------------------------------------------------------------------


def test_the_division_menus_are_served_as_json(as_user) -> None:
    client = as_user("ip_reporter")
    cities = client.get("/admin/ip_allocations/divisions/?parent=120000").get_json()["divisions"]
    assert ["120100", "市辖区"] in cities
    assert client.get("/admin/ip_allocations/divisions/?parent=x' OR 1=1").get_json() == {"divisions": []}


# --- the tree ------------------------------------------------------------------------------------------------


def test_the_tree_shows_the_chain_below_a_block(as_user, ipw) -> None:
    body = _body(as_user("ip_reporter").get(f"/admin/ip_blocks/tree/?id={ipw['block']}"))
    for shown in ("203.0.113.0/24", "203.0.113.0/28", "天津某科技有限公司", "203.0.113.64/26", "天津第二数据中心",
                  "203.0.113.64/28", "天津下级用户有限公司"):
        assert shown in body, shown
    assert body.index("203.0.113.64/26") < body.index("天津下级用户有限公司")


def test_the_tree_is_bounded_in_depth(app, as_user, ipw, monkeypatch) -> None:
    import admin_views.ip_records as records

    monkeypatch.setattr(records, "TREE_DEPTH", 1)
    body = _body(as_user("bureau").get(f"/admin/ip_all_blocks/tree/?id={ipw['block']}"))
    assert "203.0.113.64/26" in body and "天津下级用户有限公司" not in body and "树状图到此为止" in body


# --- the address lookup ------------------------------------------------------------------------------------


def test_a_clerk_looks_up_an_address_and_sees_the_chain(app, as_user, ipw) -> None:
    body = _body(post(as_user("miit"), "/admin/ip-lookup/", {"address": "203.0.113.70"}))
    chain = body[body.index("<tbody>"):]
    order = [chain.index(text) for text in ("203.0.113.0/24", "203.0.113.64/26", "天津第二数据中心", "203.0.113.64/28",
                                            "天津下级用户有限公司")]
    assert order == sorted(order)
    assert "由 天津下级用户有限公司 使用" in body
    with app.app_context():
        event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "ip.lookup"))
        assert event is not None and event.actor_username == "miitadmin" and "203.0.113.70" in event.changes


@pytest.mark.parametrize(("address", "message"), [
    ("203.0.113.999", "不是有效的IPv4或IPv6地址"), ("", "请输入IPv4或IPv6地址"),
    ("10.9.9.9", "不在任何已报备的地址段内"), ("x" * 500, "不是有效的IPv4或IPv6地址"),
])
def test_a_bad_or_unheld_address_gets_a_clear_message(as_user, ipw, address: str, message: str) -> None:
    body = _body(post(as_user("bureau"), "/admin/ip-lookup/", {"address": address}))
    assert message in body and "<tbody>" not in body


# --- the findings ------------------------------------------------------------------------------------------


@pytest.fixture
def findings(app: Flask, ipw: dict[str, int]) -> None:
    with app.app_context():
        for username, kind, detail in (("tj_ipreport", FindingKind.CONFLICT, "天津冲突说明"),
                                       ("tj_second", FindingKind.OUT_OF_BOUNDS, "天津越界说明"),
                                       ("bj_ipreport", FindingKind.UNREPORTED, "北京未报备说明")):
            unit = user_named(username)
            db.session.add(IpFinding(kind=kind, code="2056", unit_id=unit.id, province_code=unit.province_code,
                                     record_kind="block", detail=detail, family=4,
                                     start_key=ipindex.hex_key(ipindex.address_key("203.0.113.0")),
                                     end_key=ipindex.hex_key(ipindex.address_key("203.0.113.255"))))
        db.session.commit()


def test_each_sees_the_findings_of_its_scope(as_user, findings) -> None:
    mine = _body(as_user("ip_reporter").get("/admin/ip_findings/"))
    assert "天津冲突说明" in mine and "天津越界说明" not in mine and "北京未报备说明" not in mine and "冲突" in mine
    province = _body(as_user("bureau").get("/admin/ip_findings/"))
    assert "天津冲突说明" in province and "天津越界说明" in province and "北京未报备说明" not in province
    nation = _body(as_user("miit").get("/admin/ip_findings/"))
    assert all(text in nation for text in ("天津冲突说明", "天津越界说明", "北京未报备说明"))
    by_kind = _body(as_user("miit").get("/admin/ip_findings/?flt0_0=unreported"))
    assert "北京未报备说明" in by_kind and "天津冲突说明" not in by_kind


def test_the_units_list_links_each_units_findings(as_user, findings) -> None:
    bureau = as_user("bureau")
    assert 'href="/admin/ip_findings/?flt0_1=tj_second"' in _body(bureau.get("/admin/ip_units/"))
    body = _body(bureau.get("/admin/ip_findings/?flt0_1=tj_second"))
    assert "天津越界说明" in body and "天津冲突说明" not in body


# --- the statistics -------------------------------------------------------------------------------------------


def test_the_statistics_count_a_bureaus_province_and_the_nation(as_user, ipw) -> None:
    bureau = _body(as_user("bureau").get("/admin/ip-statistics/"))
    assert "天津市" in bureau and "tj_second" in bureau and "bj_ipreport" not in bureau and "北京市" not in bureau
    assert re.search(r"天津市 <span[^>]*>2 个单位</span></td>\s*<td[^>]*>256</td>", bureau)  # reported, not received
    nation = _body(as_user("miit").get("/admin/ip-statistics/"))
    assert "北京市" in nation and "bj_ipreport" in nation and "合计" in nation


# --- the dashboard and the accounts ---------------------------------------------------------------------------


def test_the_reporters_dashboard_counts_its_records_and_findings(as_user, findings) -> None:
    body = _body(as_user("ip_reporter").get("/admin/"))
    for title, count in (("来源信息", 1), ("分配及使用信息", 2), ("自带IP", 1), ("核查结果", 1)):
        assert re.search(rf'>{count}</div>\s*<div class="console-card-title">{title}<', body), title


def test_a_bureau_gives_a_new_reporter_an_access_provider_of_its_province(app, as_user, users) -> None:
    bureau = as_user("bureau")
    form = _body(bureau.get("/admin/filing_users/new/"))
    assert 'value="tj_isp"' in form and 'value="bj_isp"' not in form
    account = {"username": "tj_ipnew", "password": "Secret-pass-1", "role": "ip_reporter", "province_code": TIANJIN,
               "organisation": "天津新报备单位", "contact_name": "赵六", "mobile": "13912345670",
               "email": "ipnew@example.cn"}
    refused = _body(post(bureau, "/admin/filing_users/new/", {**account, "isp_account": "bj_isp"}))
    assert "请选择本省（区、市）的接入服务商" in refused
    wrong_role = _body(post(bureau, "/admin/filing_users/new/", {**account, "role": "isp", "isp_account": "tj_isp"}))
    assert "只有IP报备用户才能指定接入服务商账号" in wrong_role
    with app.app_context():
        assert db.session.scalar(select(User).where(User.username == "tj_ipnew")) is None
    post(bureau, "/admin/filing_users/new/", {**account, "isp_account": "tj_isp"})
    with app.app_context():
        assert user_named("tj_ipnew").isp_account.username == "tj_isp"


def test_miit_changes_a_reporters_access_provider(app, as_user, users) -> None:
    with app.app_context():
        target = make_user("tj_iprep2", Role.IP_REPORTER, TIANJIN)
        target_id = target.id
    client = as_user("miit")
    form = _body(client.get(f"/admin/filing_users/edit/?id={target_id}"))
    assert 'value="bj_isp"' in form
    post(client, f"/admin/filing_users/edit/?id={target_id}", {
        "province_code": TIANJIN, "organisation": "", "contact_name": "测试联系人", "mobile": "13912345678",
        "email": "tj_iprep2@example.cn", "isp_account": "bj_isp"})
    with app.app_context():
        assert user_named("tj_iprep2").isp_account.username == "bj_isp"
    isp_form = _body(client.get(f"/admin/filing_users/edit/?id={_id_of(app, 'tj_isp')}"))
    assert 'name="isp_account"' not in isp_form


def _id_of(app: Flask, username: str) -> int:
    with app.app_context():
        return user_named(username).id
