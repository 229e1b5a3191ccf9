"""IP reports (issue 13): every rule of workflow/ip.py both ways, with its result code, for IPv4 and IPv6."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

import workflow.ip as ip
from audit import verify_chain
from extensions import db
from models import AuditEvent, IpAllocation, IpBlock, IpFindingsRun, IpOrigin, IpSelfBrought, Role
from tests.helpers import BEIJING, make_user
from tests.ip_factories import USER_UNIT, allocation, block, reporter, self_brought
from workflow.ip_findings import recompute_findings


def codes(excinfo: pytest.ExceptionInfo) -> list[str]:
    return [code for _field, code, _message in excinfo.value.coded]


def refused(call, *args) -> list[str]:
    with pytest.raises(ip.IpError) as excinfo:
        call(*args)
    db.session.rollback()
    return codes(excinfo)


@pytest.fixture
def units(ctx):
    return reporter("carrier_a"), reporter("carrier_b"), reporter("carrier_c", BEIJING)


# --- ranges ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("start", "end"), [
    ("1.2.3.9", "1.2.3.0"),  # start after end
    ("1.2.3.400", "1.2.3.5"),  # not an address
    ("1.2.3.0", "2001:db8::1"),  # two families
    ("2001:db8::9", "2001:db8::1"),
    ("::", "::ffff:1.2.3.4"),  # IPv6 reaching into the IPv4-mapped space
    ("", ""),
])
def test_a_bad_range_is_refused_with_2002(units, start: str, end: str) -> None:
    a, _b, _c = units
    assert refused(ip.add_block, a, ip.BlockData(start=start, end=end, registry_code="APNIC")) == ["2002"]
    assert db.session.query(IpBlock).count() == 0


@pytest.mark.parametrize(("start", "end", "family", "text"), [
    ("1.2.3.4", "1.2.3.4", 4, "1.2.3.4"),  # a single address
    ("255.255.255.0", "255.255.255.255", 4, "255.255.255.0/24"),  # ending at the last IPv4 address
    ("::ffff:10.0.0.0", "10.0.0.255", 4, "10.0.0.0/24"),  # IPv4-mapped is IPv4
    ("ffff:ffff:ffff:ffff::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 6, "ffff:ffff:ffff:ffff::/64"),
    ("2001:db8::", "2001:db8::", 6, "2001:db8::"),
])
def test_edge_ranges_are_accepted(units, start: str, end: str, family: int, text: str) -> None:
    a, _b, _c = units
    made = block(a, start, end)
    assert made.family == family
    assert ip.KeyRange(family, int(made.start_key, 16), int(made.end_key, 16)).text == text


# --- source blocks -----------------------------------------------------------------------------------------


def test_overlapping_blocks_are_refused_naming_the_other_unit(units) -> None:
    a, b, _c = units
    block(a, "10.0.0.0", "10.0.255.255")
    assert refused(ip.add_block, a, ip.BlockData(start="10.0.255.0", end="10.1.0.255", registry_code="CNNIC")) \
        == ["2003"]
    with pytest.raises(ip.IpError) as excinfo:
        ip.add_block(b, ip.BlockData(start="10.0.0.0", end="10.0.0.0", registry_code="APNIC"))
    db.session.rollback()
    assert codes(excinfo) == ["2056"]
    assert "carrier_a" in excinfo.value.message and "10.0.0.0/16" in excinfo.value.message
    # adjacent but not overlapping: allowed on both sides
    block(b, "10.1.0.0", "10.1.0.255")
    block(b, "9.255.255.255", "9.255.255.255")
    assert db.session.query(IpBlock).count() == 3


def test_ipv6_blocks_overlap_only_ipv6(units) -> None:
    a, b, _c = units
    block(a, "2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff")
    block(b, "0.0.0.0", "255.255.255.255")  # all of IPv4 does not touch any IPv6 block
    assert refused(ip.add_block, b, ip.BlockData(start="2001:db8:1::", end="2001:db8:1::ff",
                                                 registry_code="APNIC")) == ["2056"]
    block(b, "2001:db9::", "2001:db9::ffff")


def test_block_origin_rules(units) -> None:
    a, b, _c = units
    assert refused(ip.add_block, a, ip.BlockData(start="1.0.0.0", end="1.0.0.255", origin="unit",
                                                 source_unit="carrier_a")) == ["2052"]
    assert refused(ip.add_block, a, ip.BlockData(start="1.0.0.0", end="1.0.0.255", origin="unit",
                                                 source_unit="nobody")) == ["2048"]
    assert refused(ip.add_block, a, ip.BlockData(start="1.0.0.0", end="1.0.0.255", origin="unit")) == ["2047"]
    assert refused(ip.add_block, a, ip.BlockData(start="1.0.0.0", end="1.0.0.255", registry_code="XXX")) == [""]
    made = ip.add_block(a, ip.BlockData(start="1.0.0.0", end="1.0.0.255", origin="unit", source_unit="carrier_b"))
    assert made.origin == IpOrigin.UNIT and made.source_unit_id == b.id


def test_only_an_active_ip_reporter_reports(units) -> None:
    isp = make_user("some_isp", Role.ISP, "120000")
    with pytest.raises(ip.WorkflowError):
        ip.add_block(isp, ip.BlockData(start="1.0.0.0", end="1.0.0.255", registry_code="APNIC"))


def test_a_block_holding_allocations_cannot_shrink_or_go(units) -> None:
    a, _b, _c = units
    source = block(a, "20.0.0.0", "20.0.255.255")
    allocation(a, "20.0.200.0", "20.0.200.255", method="4")
    assert refused(ip.change_block, a, source, ip.BlockData(start="20.0.0.0", end="20.0.127.255",
                                                            registry_code="APNIC")) == ["2005"]
    assert refused(ip.delete_block, a, db.session.get(IpBlock, source.id)) == ["2005"]
    ip.change_block(a, db.session.get(IpBlock, source.id),
                    ip.BlockData(start="20.0.128.0", end="20.0.255.255", registry_code="APNIC"))
    db.session.commit()
    assert db.session.get(IpBlock, source.id).start_key.endswith("14008000")


def test_another_units_record_is_2054_and_a_missing_one_2055(units) -> None:
    a, b, _c = units
    source = block(a, "30.0.0.0", "30.0.0.255")
    assert refused(ip.delete_block, b, source) == ["2054"]
    assert refused(ip.delete_block, a, None) == ["2055"]
    made = allocation(a, "30.0.0.0", "30.0.0.15", method="4")
    assert refused(ip.delete_allocation, b, made) == ["2054"]


# --- allocations ---------------------------------------------------------------------------------------------


def test_an_allocation_must_lie_in_one_source_block_of_the_reporter(units) -> None:
    a, b, _c = units
    block(a, "40.0.0.0", "40.0.0.255")
    block(a, "40.0.1.0", "40.0.1.255")
    block(b, "41.0.0.0", "41.0.0.255")
    for start, end in [("40.0.0.128", "40.0.1.10"), ("41.0.0.0", "41.0.0.15"), ("42.0.0.0", "42.0.0.0")]:
        assert refused(ip.add_allocation, a, ip.AllocationData(start=start, end=end, method="4")) == ["2005"]
    allocation(a, "40.0.0.0", "40.0.0.255", method="4")  # the whole block


def test_one_reporters_allocations_never_overlap(units) -> None:
    a, _b, _c = units
    block(a, "50.0.0.0", "50.0.255.255")
    allocation(a, "50.0.1.0", "50.0.1.255", method="3")
    assert refused(ip.add_allocation, a, ip.AllocationData(start="50.0.1.255", end="50.0.2.0", method="4")) \
        == ["2003"]
    allocation(a, "50.0.2.0", "50.0.2.0", method="4")  # adjacent


def test_required_fields_depend_on_the_method(units) -> None:
    a, _b, _c = units
    block(a, "60.0.0.0", "60.0.255.255")
    with pytest.raises(ip.IpError) as excinfo:
        ip.add_allocation(a, ip.AllocationData(start="60.0.0.0", end="60.0.0.255", method="1"))
    db.session.rollback()
    assert {name for name, _code, _message in excinfo.value.coded} == set(ip.ALLOCATED_REQUIRED)
    with pytest.raises(ip.IpError) as excinfo:
        ip.add_allocation(a, ip.AllocationData(start="60.0.0.0", end="60.0.0.255", method="3"))
    db.session.rollback()
    assert {name for name, _code, _message in excinfo.value.coded} == {"usage", "allocated_on"}
    allocation(a, "60.0.0.0", "60.0.0.255", method="4")
    allocation(a, "60.0.1.0", "60.0.1.255", method="3")
    allocation(a, "60.0.2.0", "60.0.2.255", method="1")
    bad = {**USER_UNIT, "contact_email": "not-mail", "contact_phone": "123", "user_nature": "99",
           "allocated_on": date.today() + timedelta(days=3), "gateway_ip": "1.2.3"}
    with pytest.raises(ip.IpError) as excinfo:
        ip.add_allocation(a, ip.AllocationData(start="60.0.3.0", end="60.0.3.255", method="1", **bad))
    db.session.rollback()
    assert {name for name, _code, _message in excinfo.value.coded} == {
        "contact_email", "contact_phone", "user_nature", "allocated_on", "gateway_ip"}
    assert refused(ip.add_allocation, a, ip.AllocationData(start="60.0.3.0", end="60.0.3.255", method="9")) == [""]


def test_reallocation_targets(units) -> None:
    a, _b, _c = units
    block(a, "70.0.0.0", "70.0.255.255")
    data = {"start": "70.0.0.0", "end": "70.0.0.255", "method": "2"}
    assert refused(ip.add_allocation, a, ip.AllocationData(**data)) == ["2047"]
    assert refused(ip.add_allocation, a, ip.AllocationData(**data, target_unit="nobody")) == ["2048"]
    assert refused(ip.add_allocation, a, ip.AllocationData(**data, target_unit="carrier_a")) == ["2050"]
    isp = make_user("not_a_reporter", Role.ISP, "120000")
    assert refused(ip.add_allocation, a, ip.AllocationData(**data, target_unit=isp.username)) == ["2048"]


def test_a_reallocation_becomes_the_receivers_source_block_and_goes_down_the_chain(units) -> None:
    a, b, c = units
    block(a, "80.0.0.0", "80.0.255.255")
    given = allocation(a, "80.0.16.0", "80.0.31.255", method="2", target_unit="carrier_b")
    received = db.session.execute(select(IpBlock).where(IpBlock.allocation_id == given.id)).scalar_one()
    assert (received.unit_id, received.origin, received.derived, received.source_unit_id) == \
        (b.id, IpOrigin.ALLOCATION, True, a.id)
    onward = allocation(b, "80.0.16.0", "80.0.17.255", method="2", target_unit="carrier_c")
    allocation(c, "80.0.16.0", "80.0.16.63", method="1")
    # the receiver cannot edit what it received, nor allocate outside it
    assert refused(ip.delete_block, b, received) == ["2054"]
    assert refused(ip.add_allocation, b, ip.AllocationData(start="80.0.32.0", end="80.0.32.9", method="4")) \
        == ["2005"]
    # the giver cannot take back or shrink what was allocated further
    assert refused(ip.delete_allocation, a, db.session.get(IpAllocation, given.id)) == ["2005"]
    shrink = ip.AllocationData(start="80.0.24.0", end="80.0.31.255", method="2", target_unit="carrier_b")
    assert refused(ip.change_allocation, a, db.session.get(IpAllocation, given.id), shrink) == ["2005"]
    assert refused(ip.delete_allocation, b, db.session.get(IpAllocation, onward.id)) == ["2005"]
    # shrinking around what was allocated further is fine, and the receiver's block follows
    keep = ip.AllocationData(start="80.0.16.0", end="80.0.19.255", method="2", target_unit="carrier_b")
    ip.change_allocation(a, db.session.get(IpAllocation, given.id), keep)
    db.session.commit()
    assert db.session.get(IpBlock, received.id).end_key.endswith("500013ff")


def test_changing_a_reallocation_into_another_method_removes_the_receivers_block(units) -> None:
    a, _b, _c = units
    block(a, "81.0.0.0", "81.0.0.255")
    given = allocation(a, "81.0.0.0", "81.0.0.127", method="2", target_unit="carrier_b")
    ip.change_allocation(a, given, ip.AllocationData(start="81.0.0.0", end="81.0.0.127", method="4"))
    db.session.commit()
    assert db.session.query(IpBlock).filter_by(derived=True).count() == 0
    ip.change_allocation(a, db.session.get(IpAllocation, given.id),
                         ip.AllocationData(start="81.0.0.0", end="81.0.0.63", method="2", target_unit="carrier_c"))
    db.session.commit()
    assert db.session.query(IpBlock).filter_by(derived=True).one().unit.username == "carrier_c"
    ip.delete_allocation(a, db.session.get(IpAllocation, given.id))
    db.session.commit()
    assert db.session.query(IpBlock).filter_by(derived=True).count() == 0
    assert db.session.query(IpAllocation).count() == 0


def test_ipv6_allocations(units) -> None:
    a, b, _c = units
    block(a, "2400:da00::", "2400:da00:ffff:ffff:ffff:ffff:ffff:ffff")
    allocation(a, "2400:da00:1::", "2400:da00:1:ffff:ffff:ffff:ffff:ffff", method="2", target_unit="carrier_b")
    allocation(b, "2400:da00:1::", "2400:da00:1::ffff", method="1")
    assert refused(ip.add_allocation, b, ip.AllocationData(start="2400:da00:2::", end="2400:da00:2::1",
                                                           method="4")) == ["2005"]


# --- self-brought ----------------------------------------------------------------------------------------


def test_self_brought_blocks(units) -> None:
    a, _b, _c = units
    self_brought(a, "90.0.0.0", "90.0.0.255", source_name="某外部单位")
    assert refused(ip.add_self_brought, a, ip.SelfBroughtData(start="90.0.0.128", end="90.0.1.0",
                                                              source_name="x", **USER_UNIT)) == ["2003"]
    assert refused(ip.add_self_brought, a, ip.SelfBroughtData(start="91.0.0.0", end="91.0.0.1",
                                                              source_unit="carrier_a", **USER_UNIT)) == ["2052"]
    assert refused(ip.add_self_brought, a, ip.SelfBroughtData(start="91.0.0.0", end="91.0.0.1",
                                                              source_unit="ghost", **USER_UNIT)) == ["2048"]
    assert refused(ip.add_self_brought, a, ip.SelfBroughtData(start="91.0.0.0", end="91.0.0.1", **USER_UNIT)) \
        == [""]
    made = self_brought(a, "91.0.0.0", "91.0.0.1", source_unit="carrier_b")
    ip.delete_self_brought(a, made)
    db.session.commit()
    assert db.session.query(IpSelfBrought).count() == 1


# --- audit ----------------------------------------------------------------------------------------------------


def test_every_change_is_audited_and_the_chain_holds(units) -> None:
    a, _b, _c = units
    source = block(a, "100.0.0.0", "100.0.0.255")
    made = allocation(a, "100.0.0.0", "100.0.0.15", method="4")
    ip.delete_allocation(a, made)
    ip.delete_block(a, db.session.get(IpBlock, source.id))
    db.session.commit()
    actions = list(db.session.scalars(select(AuditEvent.action).where(AuditEvent.action.like("ip.%"))
                                      .order_by(AuditEvent.id)))
    assert actions == ["ip.block.added", "ip.allocation.added", "ip.allocation.deleted", "ip.block.deleted"]
    assert verify_chain().intact
    assert db.session.scalar(select(func.count()).select_from(IpBlock)) == 0


def test_a_change_cues_the_worker_to_recompute_the_findings(units) -> None:
    a, _b, _c = units
    recompute_findings()
    assert db.session.get(IpFindingsRun, 1).stale is False
    block(a, "110.0.0.0", "110.0.0.255")
    assert db.session.get(IpFindingsRun, 1).stale is True


def test_a_bad_range_and_bad_fields_are_refused_together(units) -> None:
    a, _b, _c = units
    block(a, "120.0.0.0", "120.0.0.255")
    with pytest.raises(ip.IpError) as excinfo:
        ip.add_allocation(a, ip.AllocationData(start="120.0.0.9", end="120.0.0.1", method="1"))
    db.session.rollback()
    assert {name for name, _code, _message in excinfo.value.coded} == {"end", *ip.ALLOCATED_REQUIRED}
    assert refused(ip.add_block, a, ip.BlockData(start="x", end="", origin="unit")) == ["2002", "2047"]
    with pytest.raises(ip.IpError) as excinfo:
        ip.add_self_brought(a, ip.SelfBroughtData(start="1.2.3", end=""))
    db.session.rollback()
    assert {"start", "source_name", "user_name"} <= {name for name, _code, _message in excinfo.value.coded}
