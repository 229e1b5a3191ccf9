"""Issue 13 items 7 and 8: the operators' commands (`ip-import`, `ip-whois`, `ip-import-template`) and the demo
data (`seed-demo --ip-blocks N`), whose records must satisfy every rule of `workflow/ip.py`."""

from __future__ import annotations

import json
import random

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

import ipindex
import workflow.ip as ip
from extensions import db
from models import AllocationMethod, IpAllocation, IpBlock, IpOrigin, IpSelfBrought, User
from tests.helpers import user_named
from tests.ip_factories import allocation, block, reporter
from tests.ip_import_files import allocation_row, ip_file


def test_ip_import_imports_a_file_and_prints_a_summary(app, users, tmp_path) -> None:
    path = ip_file(tmp_path / "ok.xlsx", [{"start": "198.18.0.0", "end": "198.18.0.255", "registry_code": "APNIC"}],
                   [allocation_row("198.18.0.0", "198.18.0.15")])
    result = app.test_cli_runner().invoke(args=["ip-import", str(path), "--as", users["ip_reporter"]])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"rows": 2, "imported": 2, "errors": 0}
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(IpAllocation)) == 1


def test_ip_import_prints_each_error_and_exits_non_zero(app, users, tmp_path) -> None:
    with app.app_context():
        block(user_named(users["ip_reporter"]), "198.18.0.0", "198.18.0.255")
    path = ip_file(tmp_path / "bad.xlsx", allocations=[allocation_row("198.18.0.0", "198.18.0.15"),
                                                       allocation_row("198.18.1.0", "198.18.1.3", "预留"),
                                                       allocation_row("198.18.0.8", "198.18.0.9", "预留")])
    result = app.test_cli_runner().invoke(args=["ip-import", str(path), "--as", users["ip_reporter"]])
    assert result.exit_code == 1
    summary, *lines = result.output.splitlines()
    assert json.loads(summary) == {"rows": 3, "imported": 0, "errors": 2}
    assert lines[0].split("\t")[:5] == ["分配及使用信息", "3", "起始IP地址", "198.18.1.0", "2005"]
    assert lines[1].split("\t")[:5] == ["分配及使用信息", "4", "起始IP地址", "198.18.0.8", "2003"]
    assert "第 2 行" in lines[1]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(IpAllocation)) == 0


@pytest.mark.parametrize("username", ["nobody", "tj_isp"])
def test_ip_import_refuses_an_account_that_is_not_a_reporting_unit(app, users, tmp_path, username) -> None:
    result = app.test_cli_runner().invoke(args=["ip-import", str(ip_file(tmp_path / "x.xlsx")), "--as", username])
    assert result.exit_code == 1 and f"{username} is not an active IP reporting unit" in result.output


def test_ip_import_template_writes_the_consoles_template(app, tmp_path) -> None:
    out = tmp_path / "t.xlsx"
    result = app.test_cli_runner().invoke(args=["ip-import-template", str(out)])
    assert result.exit_code == 0 and load_workbook(out).sheetnames[:3] == ["来源信息", "分配及使用信息", "自带IP"]


def test_ip_whois_prints_the_chain_as_json(app, users) -> None:
    with app.app_context():
        carrier, idc = user_named(users["ip_reporter"]), reporter("tj_idc")
        block(carrier, "2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff")
        allocation(carrier, "2001:db8::", "2001:db8:ff:ffff:ffff:ffff:ffff:ffff", method="2", target_unit="tj_idc")
        allocation(idc, "2001:db8::", "2001:db8::ffff")
    runner = app.test_cli_runner()
    result = runner.invoke(args=["ip-whois", "2001:DB8::1"])
    assert result.exit_code == 0, result.output
    chain = json.loads(result.output)
    assert [(step["kind"], step["unit"], step["range"]) for step in chain] == [
        ("block", "tj_ipreport", "2001:db8::/32"), ("allocation", "tj_ipreport", "2001:db8::/40"),
        ("block", "tj_idc", "2001:db8::/40"), ("allocation", "tj_idc", "2001:db8::/112")]
    assert chain[-1]["user_name"] == "天津某科技有限公司"
    assert json.loads(runner.invoke(args=["ip-whois", "192.0.2.1"]).output) == []


@pytest.mark.parametrize("address", ["1.2.3", "2001:db8::g", "example.cn", ""])
def test_ip_whois_refuses_what_is_not_an_address(app, address) -> None:
    result = app.test_cli_runner().invoke(args=["ip-whois", address])
    assert result.exit_code == 1 and "not an IPv4 or IPv6 address" in result.output


# --- seed-demo --ip-blocks ------------------------------------------------------------------------------------

@pytest.fixture
def seeded(app):
    runner = app.test_cli_runner()
    for _ in range(2):  # a second run adds above the first
        result = runner.invoke(args=["seed-demo", "--ip-blocks", "2500", "--password", "Demo-pass-2026"])
        assert result.exit_code == 0, result.output
    return json.loads(result.output)["ip"]


def _sweep(rows: list[tuple[int, str, str]]) -> list[tuple[str, str]]:
    """Overlapping neighbours among (group, start, end) rows sorted by group then start."""
    clashes, previous = [], None
    for row in sorted(rows):
        if previous is not None and previous[0] == row[0] and row[1] <= previous[2]:
            clashes.append((previous[1], row[1]))
        previous = row
    return clashes


def test_seed_demo_ip_blocks_makes_the_hierarchy_the_rules_allow(app, seeded) -> None:
    assert seeded["allocations"] == 2500 and seeded["received_blocks"] == seeded["registry_blocks"]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(IpAllocation)) == 5000
        assert {family for (family,) in db.session.execute(select(IpBlock.family).distinct())} == {4, 6}
        assert set(db.session.scalars(select(IpAllocation.method).distinct())) == set(AllocationMethod)
        reported = db.session.execute(select(IpBlock.derived, IpBlock.start_key, IpBlock.end_key).where(
            IpBlock.derived.is_(False))).all()
        assert _sweep(reported) == []  # no reported blocks overlap, across units and runs
        assert _sweep(db.session.execute(select(IpAllocation.unit_id, IpAllocation.start_key,
                                                IpAllocation.end_key)).all()) == []
        assert _sweep(db.session.execute(select(IpSelfBrought.unit_id, IpSelfBrought.start_key,
                                                IpSelfBrought.end_key)).all()) == []
        outside = db.session.scalar(select(func.count()).select_from(IpAllocation).join(
            IpBlock, IpBlock.id == IpAllocation.block_id).where(
            (IpAllocation.start_key < IpBlock.start_key) | (IpAllocation.end_key > IpBlock.end_key)
            | (IpBlock.unit_id != IpAllocation.unit_id)))
        assert outside == 0
        given = db.session.execute(select(IpAllocation, IpBlock).join(IpBlock, IpBlock.allocation_id == IpAllocation.id)
                                   ).all()
        assert len(given) == db.session.scalar(select(func.count()).select_from(IpAllocation).where(
            IpAllocation.method == "2"))
        for allocation_row_, received in given:
            assert (received.unit_id, received.source_unit_id, received.origin) == (
                allocation_row_.target_unit_id, allocation_row_.unit_id, IpOrigin.ALLOCATION)
            assert (received.start_key, received.end_key) == (allocation_row_.start_key, allocation_row_.end_key)


def test_seed_demo_records_pass_the_workflows_checks(app, seeded) -> None:
    """A sample of the records, each checked by the workflow's own rule functions as if it were new."""
    with app.app_context():
        rng = random.Random(8)
        highest = db.session.scalar(select(func.max(IpAllocation.id)))
        for allocation_id in rng.sample(range(1, highest + 1), 60):
            record = db.session.get(IpAllocation, allocation_id)
            unit = db.session.get(User, record.unit_id)
            keys = ip.KeyRange(record.family, int(record.start_key, 16), int(record.end_key, 16))
            assert ip.allocation_overlap(unit, keys, exclude=record.id) is None
            assert ip._last_at_or_before(IpBlock, keys.start_key, IpBlock.unit_id == unit.id).id == record.block_id
            data = ip.AllocationData(method=record.method, target_unit=record.target_unit.username
                                     if record.target_unit else "",
                                     **{name: getattr(record, name) or "" for name in ip.USER_UNIT_FIELDS
                                        if name not in ("allocated_on", "redirect_server")},
                                     allocated_on=record.allocated_on, redirect_server=record.redirect_server)
            assert list(ip.method_problems(unit, data)) == [], (record.id, record.method)
        for record in db.session.scalars(select(IpBlock).where(IpBlock.derived.is_(False))).all():
            keys = ip.KeyRange(record.family, int(record.start_key, 16), int(record.end_key, 16))
            assert ip.block_overlap_problem(record.unit, keys, exclude=record.id) is None
        for record in db.session.scalars(select(IpSelfBrought)).all():
            data = ip.SelfBroughtData(source_name=record.source_name, **{
                name: getattr(record, name) or "" for name in ip.USER_UNIT_FIELDS
                if name not in ("allocated_on", "redirect_server")}, allocated_on=record.allocated_on)
            keys = ip.KeyRange(record.family, int(record.start_key, 16), int(record.end_key, 16))
            assert list(ip.self_brought_problems(record.unit, data, keys, record.id)) == []


def test_seed_demo_chains_reach_from_the_registry_to_the_user_unit(app, seeded) -> None:
    from workflow.ip_lookup import holder_chain

    with app.app_context():
        rng = random.Random(3)
        further = db.session.scalars(select(IpAllocation).join(IpBlock, IpBlock.id == IpAllocation.block_id).where(
            IpBlock.derived.is_(True), IpAllocation.method == "1")).all()
        for record in rng.sample(further, 20):
            address = ipindex.address_text(int(record.start_key, 16) + 1)
            chain = holder_chain(address)
            assert [step.kind for step in chain] == ["block", "allocation", "block", "allocation"], address
            assert chain[0].record.origin == IpOrigin.REGISTRY and chain[1].record.method == "2"
            assert chain[-1].record.id == record.id and chain[-1].record.user_name
            assert chain[0].unit.username.startswith("demo_ipr_") and chain[2].unit.isp_account_id is not None
