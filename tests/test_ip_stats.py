"""Issue 13 item 6: the IP address statistics per province and per unit (IPv4 count, IPv6 in /32 and /48
units, allocations per 分配方式) on a small known dataset; and the 行政区划 cities and counties they rest on."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from extensions import db
from models import Division, Role
from seed_data import seed_divisions
from tests.helpers import BEIJING, TIANJIN, make_user
from tests.ip_factories import allocation, block, reporter, self_brought
from workflow import ip_stats
from workflow.errors import WorkflowError


@pytest.fixture
def reports(ctx):
    """天津 a: 10.0.0.0/24 and 2001:db8::/32, allocating by every method (a /25 re-allocated to b);
    天津 b: allocates 8 of what it received, one self-brought /28; 北京 d: 2400::/31 and one address."""
    a, b, d = reporter("st_a"), reporter("st_b"), reporter("st_d", BEIJING)
    block(a, "10.0.0.0", "10.0.0.255")
    block(a, "2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff")
    allocation(a, "10.0.0.0", "10.0.0.15")
    allocation(a, "2001:db8:2::", "2001:db8:3:ffff:ffff:ffff:ffff:ffff")  # a /47: two /48s
    allocation(a, "10.0.0.128", "10.0.0.255", method="2", target_unit=b.username)
    allocation(a, "10.0.0.16", "10.0.0.19", method="3")
    allocation(a, "2001:db8::", "2001:db8:0:ffff:ffff:ffff:ffff:ffff", method="4")
    allocation(b, "10.0.0.128", "10.0.0.135")
    self_brought(b, "192.0.2.0", "192.0.2.15", source_name="某客户")
    block(d, "2400::", "2400:1:ffff:ffff:ffff:ffff:ffff:ffff")
    block(d, "1.2.3.4", "1.2.3.4")
    return {"a": a, "b": b, "d": d}


def _methods(row: ip_stats.Figures) -> dict[str, tuple[int, int, str]]:
    return {method: (counted.records, counted.addresses.v4, f"{counted.addresses.v6_48:.2f}")
            for method, counted in row.methods.items()}


def test_unit_figures(reports) -> None:
    rows = {row.code: row for row in ip_stats.unit_statistics(None)}
    a, b, d = rows["st_a"], rows["st_b"], rows["st_d"]
    assert (a.reported.records, a.reported.addresses.v4, a.reported.addresses.v6_32) == (2, 256, 1.0)
    assert f"{a.held.v6_48:.2f}" == "65536.00" and a.received.records == 0
    assert _methods(a) == {"1": (2, 16, "2.00"), "2": (1, 128, "0.00"), "3": (1, 4, "0.00"), "4": (1, 0, "1.00")}
    assert f"{a.methods['4'].addresses.v6_32:.2f}" == "0.00" and a.methods["4"].addresses.v6_32 == 1 / 65536
    assert (b.received.records, b.received.addresses.v4, b.held.v4, b.reported.records) == (1, 128, 128, 0)
    assert _methods(b)["1"] == (1, 8, "0.00") and (b.self_brought.records, b.self_brought.addresses.v4) == (1, 16)
    assert (d.held.v4, f"{d.held.v6_32:.2f}", d.province_code) == (1, "2.00", BEIJING)
    assert a.name == "st_a 网络公司" and a.units == 1


def test_province_figures_for_miit(reports) -> None:
    rows = ip_stats.province_statistics(None)
    assert len(rows) == 31 and rows[0].code == "110000"  # every province, in the code table's order
    by_code = {row.code: row for row in rows}
    tianjin, beijing = by_code[TIANJIN], by_code[BEIJING]
    assert (tianjin.units, tianjin.reported.addresses.v4, tianjin.received.addresses.v4, tianjin.held.v4) == (
        2, 256, 128, 384)
    assert _methods(tianjin) == {"1": (3, 24, "2.00"), "2": (1, 128, "0.00"), "3": (1, 4, "0.00"),
                                 "4": (1, 0, "1.00")}
    assert (beijing.units, beijing.held.v4, beijing.held.v6_32) == (1, 1, 2.0)
    assert by_code["440000"].units == 0 and by_code["440000"].held.v4 == 0
    summed = ip_stats.total(rows)
    assert (summed.units, summed.held.v4, f"{summed.held.v6_32:.2f}", summed.self_brought.records) == (
        3, 385, "3.00", 1)


def test_a_bureau_sees_its_province_only(reports) -> None:
    bureau = make_user("st_bureau", Role.BUREAU, TIANJIN)
    scope = ip_stats.scope_of(bureau)
    assert scope == TIANJIN
    assert [row.code for row in ip_stats.province_statistics(scope)] == [TIANJIN]
    assert [row.code for row in ip_stats.unit_statistics(scope)] == ["st_a", "st_b"]
    assert ip_stats.province_statistics(scope)[0].held.v4 == 384


def test_only_miit_and_bureaus_have_a_scope(reports) -> None:
    assert ip_stats.scope_of(make_user("st_miit", Role.MIIT)) is None
    for role in (Role.ISP, Role.IP_REPORTER, Role.SPECIAL_QUERY):
        with pytest.raises(WorkflowError, match="只有工业和信息化部和通信管理局"):
            ip_stats.scope_of(make_user(f"st_{role.value}", role, TIANJIN if role != Role.SPECIAL_QUERY else None))


def test_a_unit_without_a_province_has_a_row_of_its_own(ctx) -> None:
    """The workflow gives every reporting unit a province; older data may lack it, and is not lost."""
    unit = reporter("st_nowhere")
    block(unit, "10.1.0.0", "10.1.0.255")
    unit.province_code = None
    db.session.commit()
    rows = ip_stats.province_statistics(None)
    assert (rows[-1].code, rows[-1].name, rows[-1].held.v4) == ("", "未指定省份", 256) and len(rows) == 32


def test_no_reports_give_zero_figures(ctx) -> None:
    assert ip_stats.total(ip_stats.province_statistics(None)).held.v4 == 0
    assert ip_stats.unit_statistics(None) == []


def test_cities_and_counties_are_seeded_once(ctx) -> None:
    """GB/T 2260 below the provinces: 天津 120100 (市辖区) with its districts; seeding again adds nothing."""
    tianjin = db.session.get(Division, "120100")
    assert (tianjin.name, tianjin.parent_code, tianjin.level) == ("市辖区", TIANJIN, 2)
    heping = db.session.get(Division, "120101")
    assert (heping.name, heping.parent_code, heping.level) == ("和平区", "120100", 3)
    assert db.session.get(Division, "441900").level == 2  # 东莞: a city without counties, a city only
    counts = dict(db.session.execute(select(Division.level, func.count()).group_by(Division.level)).all())
    assert counts == {2: 342, 3: 2975}
    assert seed_divisions() == 0
