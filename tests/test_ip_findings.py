"""Issue 13 item 5: the audit findings (核查结果) — out of bounds, conflicts, unreported access ranges — on
constructed cases (rows the workflow would refuse are written directly), and the worker's step."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

import ipindex
import workflow
from extensions import db
from models import FindingKind, IpBlock, IpFinding, IpFindingsRun, User, Website
from models.base import utcnow
from tests.filing_factories import entity_data, website_data
from tests.helpers import BEIJING, TIANJIN, user_named
from tests.ip_factories import allocation, block, reporter, self_brought
from workflow import ip_findings


def _key(address: str) -> str:
    return ipindex.hex_key(ipindex.address_key(address))


def _move(record: object, start: str, end: str) -> None:
    """Give a record another range, bypassing the workflow (data from before its checks)."""
    record.start_key, record.end_key = _key(start), _key(end)
    db.session.commit()


def _out_of_bounds(unit: User) -> None:
    """One allocation of the unit moved out of its block: a finding on any database."""
    block(unit, "10.0.0.0", "10.0.0.255")
    _move(allocation(unit, "10.0.0.0", "10.0.0.15"), "10.0.0.250", "10.0.1.5")


def _overlapping_blocks_possible() -> None:
    if db.engine.dialect.name == "postgresql":
        pytest.skip("PostgreSQL's exclusion constraint refuses overlapping reported blocks: no such data there")


def _findings(kind: FindingKind | None = None) -> list[IpFinding]:
    query = select(IpFinding).order_by(IpFinding.id)
    return list(db.session.scalars(query.where(IpFinding.kind == kind) if kind else query))


@pytest.fixture
def units(ctx):
    """Three reporting units in 天津 (a, b, c) and one in 北京 (d)."""
    return {name: reporter(f"ipr_{name}", BEIJING if name == "d" else TIANJIN) for name in "abcd"}


# --- 越界 ------------------------------------------------------------------------------------------------------


def test_consistent_reports_have_no_findings(units) -> None:
    """Does a clean hierarchy (blocks, allocations, a re-allocation and one further) give nothing?"""
    a, b = units["a"], units["b"]
    block(a, "10.0.0.0", "10.0.0.255")
    block(a, "2001:db8::", "2001:db8::ffff")
    allocation(a, "10.0.0.0", "10.0.0.15")
    allocation(a, "10.0.0.128", "10.0.0.255", method="2", target_unit=b.username)
    allocation(b, "10.0.0.128", "10.0.0.131")
    allocation(a, "2001:db8::", "2001:db8::ff", method="4")
    figures = ip_findings.recompute_findings()
    assert figures["findings"] == 0 and _findings() == []
    assert figures | {"seconds": 0} == {"out_of_bounds": 0, "conflict": 0, "unreported": 0, "findings": 0,
                                        "seconds": 0}


def test_an_allocation_outside_its_block_is_out_of_bounds(units) -> None:
    a = units["a"]
    block(a, "10.0.0.0", "10.0.0.255")
    inside = allocation(a, "10.0.0.32", "10.0.0.47")
    outside = allocation(a, "10.0.0.16", "10.0.0.31")
    _move(outside, "10.0.0.250", "10.0.1.5")
    assert ip_findings.recompute_findings()["out_of_bounds"] == 1
    (found,) = _findings()
    assert (found.kind, found.code, found.unit_id, found.province_code, found.record_kind, found.record_id) == (
        FindingKind.OUT_OF_BOUNDS, "2005", a.id, TIANJIN, "allocation", outside.id)
    assert found.family == 4 and found.other_unit_id is None
    assert "10.0.0.250–10.0.1.5" in found.detail and "10.0.0.0/24" in found.detail
    assert inside.id != found.record_id


def test_an_allocation_in_another_units_block_names_that_unit(units) -> None:
    a, b = units["a"], units["b"]
    block(a, "10.0.0.0", "10.0.0.255")
    theirs = block(b, "10.0.1.0", "10.0.1.255")
    moved = allocation(a, "10.0.0.0", "10.0.0.15")
    moved.block_id = theirs.id
    _move(moved, "10.0.1.0", "10.0.1.15")
    ip_findings.recompute_findings()
    (found,) = _findings()
    assert (found.unit_id, found.other_unit_id) == (a.id, b.id) and "ipr_b" in found.detail


def test_a_received_block_unlike_its_reallocation_is_out_of_bounds(units) -> None:
    """IPv6: the allocating unit must act (only it changes the received block)."""
    a, b = units["a"], units["b"]
    block(a, "2001:db8::", "2001:db8::ffff")
    given = allocation(a, "2001:db8::100", "2001:db8::1ff", method="2", target_unit=b.username)
    received = db.session.scalar(select(IpBlock).where(IpBlock.allocation_id == given.id))
    _move(received, "2001:db8::100", "2001:db8::2ff")
    ip_findings.recompute_findings()
    (found,) = _findings()
    assert (found.kind, found.unit_id, found.other_unit_id, found.record_id, found.family) == (
        FindingKind.OUT_OF_BOUNDS, a.id, b.id, given.id, 6)
    assert "2001:db8::100–2001:db8::2ff" in found.detail


# --- 冲突 ------------------------------------------------------------------------------------------------------


def test_overlapping_blocks_of_two_units_conflict_and_the_later_one_acts(units) -> None:
    _overlapping_blocks_possible()
    a, b, d = units["a"], units["b"], units["d"]
    first = block(a, "10.0.0.0", "10.0.0.255")
    later = block(b, "10.0.2.0", "10.0.2.255")
    block(d, "10.0.1.0", "10.0.1.255")  # adjacent to both: allowed
    _move(later, "10.0.0.128", "10.0.0.255")
    ip_findings.recompute_findings()
    (found,) = _findings()
    assert (found.kind, found.code, found.unit_id, found.other_unit_id, found.record_kind, found.record_id) == (
        FindingKind.CONFLICT, "2056", b.id, a.id, "block", later.id)
    assert found.province_code == TIANJIN and first.id < later.id


def test_a_conflict_is_found_across_a_long_block_and_in_a_bureaus_province(units) -> None:
    """A wide block overlapping a later small one several blocks further on is still found (the sweep keeps
    every block reaching the current address), and the finding carries the acting unit's province."""
    _overlapping_blocks_possible()
    a, b, d = units["a"], units["b"], units["d"]
    wide = block(a, "10.0.0.0", "10.0.0.127")
    block(b, "10.0.1.0", "10.0.1.255")
    late = block(d, "10.0.2.0", "10.0.2.255")
    _move(wide, "10.0.0.0", "10.0.3.255")  # now over b's block and d's
    ip_findings.recompute_findings()
    found = _findings(FindingKind.CONFLICT)
    assert {(f.unit_id, f.other_unit_id) for f in found} == {(d.id, a.id), (b.id, a.id)}
    assert {f.province_code for f in found if f.unit_id == d.id} == {BEIJING}
    assert late.id in {f.record_id for f in found}


def test_self_brought_block_in_another_units_block_conflicts(units) -> None:
    """Without a source unit: any reported block of another unit; the unit's own block is no conflict."""
    a, c = units["a"], units["c"]
    block(a, "10.0.0.0", "10.0.0.255")
    block(c, "10.9.0.0", "10.9.0.255")
    brought = self_brought(c, "10.0.0.250", "10.0.1.3", source_name="某境外公司")
    self_brought(c, "10.9.0.1", "10.9.0.2", source_name="某境外公司")  # inside its own block
    self_brought(c, "10.20.0.0", "10.20.0.255", source_name="某境外公司")  # in nobody's block
    ip_findings.recompute_findings()
    (found,) = _findings()
    assert (found.kind, found.unit_id, found.other_unit_id, found.record_kind, found.record_id) == (
        FindingKind.CONFLICT, c.id, a.id, "self_brought", brought.id)
    assert "自带IP" in found.detail and "声明来源" not in found.detail


def test_self_brought_block_from_its_declared_source_is_no_conflict(units) -> None:
    """Inside a block the declared source holds — a reported one, or one it received by re-allocation."""
    a, b, c = units["a"], units["b"], units["c"]
    block(a, "10.0.0.0", "10.0.0.255")
    allocation(a, "10.0.0.128", "10.0.0.255", method="2", target_unit=b.username)
    self_brought(c, "10.0.0.1", "10.0.0.9", source_unit=a.username)
    self_brought(c, "10.0.0.130", "10.0.0.140", source_unit=b.username)
    ip_findings.recompute_findings()
    assert _findings() == []


def test_self_brought_block_outside_its_declared_source_conflicts(units) -> None:
    """Declared from b, but lying in a's part of a's block (not the part a re-allocated to b)."""
    a, b, c = units["a"], units["b"], units["c"]
    block(a, "2001:db8::", "2001:db8::ffff")
    allocation(a, "2001:db8::8000", "2001:db8::ffff", method="2", target_unit=b.username)
    brought = self_brought(c, "2001:db8::10", "2001:db8::1f", source_unit=b.username)
    ip_findings.recompute_findings()
    (found,) = _findings()
    assert (found.unit_id, found.other_unit_id, found.record_id, found.family) == (c.id, a.id, brought.id, 6)
    assert "声明来源为 ipr_b" in found.detail


# --- 未报备 (1063) ----------------------------------------------------------------------------------------------


def _approved_filing(n: int, isp: User, bureau: User, ranges: list[tuple[str, str]], approve: bool = True) -> None:
    site = website_data(f"ipf{n}", [isp.id])
    site.accesses[0].ip_ranges = ranges
    application = workflow.save_filing_draft(isp, entity_data(n, unit_name=f"天津核查{n}科技有限公司"), [site])
    workflow.submit_application(isp, application)
    if approve:
        workflow.approve(bureau, application)
    db.session.commit()


@pytest.fixture
def isp_world(ctx, people):
    """The 天津 ISP with a reporting unit (its block 198.51.100.0/24 and 2001:db8:1::/48, a self-brought
    192.0.2.0/28); the second 天津 ISP with none."""
    isp, isp2 = user_named(people["isp"]), user_named(people["isp2"])
    unit = reporter("ipr_isp")
    unit.isp_account_id = isp.id
    db.session.commit()
    block(unit, "198.51.100.0", "198.51.100.255")
    block(unit, "198.51.101.0", "198.51.101.255")
    block(unit, "2001:db8:1::", "2001:db8:1:ffff:ffff:ffff:ffff:ffff")
    self_brought(unit, "192.0.2.0", "192.0.2.15", source_name="某客户")
    return {"isp": isp, "isp2": isp2, "unit": unit, "bureau": user_named(people["bureau"])}


def test_access_ranges_inside_the_isps_blocks_are_reported(isp_world) -> None:
    world = isp_world
    _approved_filing(701, world["isp"], world["bureau"], [
        ("198.51.100.10", "198.51.100.20"), ("2001:db8:1::1", "2001:db8:1::ff"), ("192.0.2.1", "192.0.2.15")])
    assert ip_findings.recompute_findings()["unreported"] == 0


def test_access_ranges_outside_the_isps_blocks_are_unreported(isp_world) -> None:
    """Outside every block; straddling two adjacent blocks (in no single one); in another ISP's unit's
    block; each once although the index stores a wide range in several buckets."""
    world = isp_world
    other = reporter("ipr_other")
    block(other, "203.0.113.0", "203.0.113.255")
    _approved_filing(702, world["isp"], world["bureau"], [
        ("198.51.100.10", "198.51.100.20"), ("198.51.100.250", "198.51.101.5"), ("203.0.113.1", "203.0.113.9"),
        ("10.0.0.0", "10.3.255.255"), ("2001:db8:2::1", "2001:db8:2::1")])
    ip_findings.recompute_findings()
    found = _findings(FindingKind.UNREPORTED)
    assert sorted(ipindex.range_text(f.start_key, f.end_key) for f in found) == [
        "10.0.0.0/14", "198.51.100.250–198.51.101.5", "2001:db8:2::1", "203.0.113.1–203.0.113.9"]
    assert {(f.code, f.unit_id, f.other_unit_id, f.province_code, f.record_kind) for f in found} == {
        ("1063", world["unit"].id, world["isp"].id, TIANJIN, "access")}
    assert all("津ICP备" in f.detail and "天津某网络公司" in f.detail for f in found)


def test_an_isp_without_a_reporting_unit_must_act_itself(isp_world) -> None:
    world = isp_world
    _approved_filing(703, world["isp2"], world["bureau"], [("198.51.100.10", "198.51.100.20")])
    ip_findings.recompute_findings()
    (found,) = _findings()
    assert (found.unit_id, found.other_unit_id, found.code) == (world["isp2"].id, None, "1063")
    assert "尚无IP地址备案单位" in found.detail


def test_ranges_of_filings_not_approved_or_cancelled_are_not_checked(isp_world) -> None:
    world = isp_world
    _approved_filing(704, world["isp2"], world["bureau"], [("10.0.0.1", "10.0.0.2")], approve=False)
    _approved_filing(705, world["isp2"], world["bureau"], [("10.0.1.1", "10.0.1.2")])
    ip_findings.recompute_findings()
    assert len(_findings()) == 1  # the approved one only
    site = db.session.scalar(select(Website).where(Website.name == "ipf705网站"))
    application = workflow.cancel_access(world["isp2"], site)
    workflow.approve(world["bureau"], application)
    db.session.commit()
    ip_findings.recompute_findings()
    assert _findings() == []


# --- the run, the worker and the command -----------------------------------------------------------------


def test_a_run_replaces_the_findings_and_records_itself(units) -> None:
    a = units["a"]
    block(a, "10.0.0.0", "10.0.0.255")
    moved = allocation(a, "10.0.0.0", "10.0.0.15")
    _move(moved, "10.0.0.250", "10.0.1.5")
    ip_findings.recompute_findings()
    ip_findings.recompute_findings()
    assert len(_findings()) == 1
    _move(moved, "10.0.0.0", "10.0.0.15")
    ip_findings.recompute_findings()
    assert _findings() == []
    run = db.session.get(IpFindingsRun, ip_findings.RUN_ID)
    assert not run.stale and run.findings == 0 and run.finished_at >= run.started_at and run.seconds >= 0


def test_the_worker_step_runs_when_stale_or_old_and_not_otherwise(units) -> None:
    assert ip_findings.run_if_due() is not None  # never run yet
    assert ip_findings.run_if_due() is None  # fresh, nothing changed
    ip_findings.mark_stale()
    db.session.commit()
    assert ip_findings.run_if_due() is not None
    assert ip_findings.run_if_due(utcnow() + timedelta(minutes=59)) is None
    assert ip_findings.run_if_due(utcnow() + timedelta(minutes=61)) is not None


def test_a_run_in_progress_is_not_started_twice_until_its_lease_ends(units) -> None:
    ip_findings.recompute_findings()
    run = db.session.get(IpFindingsRun, ip_findings.RUN_ID)
    run.started_at, run.stale = utcnow() + timedelta(seconds=1), True  # another worker has started one
    db.session.commit()
    assert ip_findings.run_if_due() is None
    assert ip_findings.run_if_due(utcnow() + ip_findings.RUN_LEASE + timedelta(minutes=1)) is not None


def test_a_failed_run_keeps_the_old_findings_and_the_cue(units, monkeypatch) -> None:
    _out_of_bounds(units["a"])
    ip_findings.recompute_findings()

    def broken(_units: object) -> list[object]:
        raise RuntimeError("disk full")

    monkeypatch.setattr(ip_findings, "_findings", broken)
    with pytest.raises(RuntimeError):
        ip_findings.recompute_findings()
    assert len(_findings()) == 1 and db.session.get(IpFindingsRun, ip_findings.RUN_ID).stale


def test_the_worker_outlives_a_failing_findings_step(app, monkeypatch) -> None:
    def broken() -> None:
        raise RuntimeError("database gone")

    monkeypatch.setattr(ip_findings, "run_if_due", broken)
    result = app.test_cli_runner().invoke(args=["outbox", "run", "--once"])
    assert result.exit_code == 0, result.output
    counts = json.loads(result.output.strip().splitlines()[-1])
    assert counts["ip_findings"] == "failed"
    assert all(counts[name] != "failed" for name in ("outbox", "imports", "reminders", "purged"))


def test_the_worker_runs_the_findings(app) -> None:
    result = app.test_cli_runner().invoke(args=["outbox", "run", "--once"])
    counts = json.loads(result.output.strip().splitlines()[-1])
    assert counts["ip_findings"]["findings"] == 0
    again = app.test_cli_runner().invoke(args=["outbox", "run", "--once"])
    assert json.loads(again.output.strip().splitlines()[-1])["ip_findings"] is None


def test_the_command_recomputes_and_prints_the_figures(app) -> None:
    with app.app_context():
        _out_of_bounds(reporter("ipr_cli"))
    result = app.test_cli_runner().invoke(args=["ip-findings"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    assert (figures["out_of_bounds"], figures["findings"]) == (1, 1) and figures["seconds"] >= 0
