"""The IP reports as a state machine: random blocks, allocations, re-allocations down the chain, changes and
deletions by three units in a small address space (so that they collide), with the registry's invariants
checked after every step — no overlap between reported blocks, every allocation inside its block, one unit's
allocations disjoint, every re-allocation mirrored by exactly one received block of the same range."""

from __future__ import annotations

from collections import Counter
from datetime import date
from itertools import pairwise

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import select

import workflow
import workflow.ip as ip
from extensions import db
from models import AllocationMethod, IpAllocation, IpBlock, User
from tests.ip_factories import reporter

UNITS = ("sm_ip_a", "sm_ip_b", "sm_ip_c")
KEPT_TABLES = {"users", "provinces", "code_items", "audit_head", "divisions"}
#: ranges inside 10.9.0.0/24 and 2001:db8::/120, on a grid of 16 so that they overlap often
CELL = st.integers(min_value=0, max_value=15)
SIZE = st.integers(min_value=1, max_value=6)
FAMILY = st.sampled_from((4, 6))
UNIT = st.sampled_from(UNITS)
PICK = st.integers(min_value=0, max_value=60)
OUTCOMES: Counter[tuple[str, str]] = Counter()


def address(family: int, value: int) -> str:
    return f"10.9.0.{value}" if family == 4 else f"2001:db8::{value:x}"


def span(family: int, cell: int, size: int) -> tuple[str, str]:
    start = cell * 16
    return address(family, start), address(family, min(255, start + size * 16 - 1))


class IpMachine(RuleBasedStateMachine):
    units: dict[str, int] = {}

    def teardown(self) -> None:
        db.session.rollback()
        for table in reversed(db.metadata.sorted_tables):
            if table.name not in KEPT_TABLES:
                db.session.execute(table.delete())
        db.session.commit()

    def unit(self, name: str) -> User:
        return db.session.get(User, self.units[name])

    def step(self, name: str, change) -> None:
        try:
            change()
            db.session.commit()
        except workflow.WorkflowError:
            db.session.rollback()
            OUTCOMES[name, "refused"] += 1

        else:
            OUTCOMES[name, "done"] += 1

    def pick(self, model, index: int, *criteria):
        rows = db.session.scalars(select(model).where(*criteria).order_by(model.id)).all()
        return rows[index % len(rows)] if rows else None

    def allocation_data(self, family: int, cell: int, size: int, method: str, target: str) -> ip.AllocationData:
        start, end = span(family, cell, size)
        extra = {"target_unit": target} if method == AllocationMethod.REALLOCATED else {}
        return ip.AllocationData(start=start, end=end, method=method, **extra)

    @rule(who=UNIT, family=FAMILY, cell=CELL, size=SIZE)
    def add_block(self, who: str, family: int, cell: int, size: int) -> None:
        start, end = span(family, cell, size)
        self.step("add_block", lambda: ip.add_block(self.unit(who), ip.BlockData(start=start, end=end,
                                                                                   registry_code="APNIC")))

    def cell_in(self, block: IpBlock, offset: int) -> int:
        first, last = ((int(key, 16) & 0xFF) // 16 for key in (block.start_key, block.end_key))
        return first + offset % (last - first + 1)

    @rule(index=PICK, offset=st.integers(0, 5), size=SIZE, method=st.sampled_from(("2", "2", "3", "4")),
          receiver=UNIT, stray=st.booleans())
    def allocate(self, index: int, offset: int, size: int, method: str, receiver: str, stray: bool) -> None:
        """Mostly a part of one of the unit's blocks (often overlapping its earlier allocations), else anywhere."""
        block = self.pick(IpBlock, index)
        if block is None:
            return
        cell = offset if stray else self.cell_in(block, offset)
        data = self.allocation_data(block.family, cell, size if stray else 1, method, receiver)
        if method == "3":
            data.usage, data.allocated_on = "1", date(2026, 1, 1)
        owner = db.session.get(User, block.unit_id)
        self.step("allocate", lambda: ip.add_allocation(owner, data))

    @rule(index=PICK, offset=st.integers(0, 5), method=st.sampled_from(("2", "4")), receiver=UNIT)
    def change_allocation(self, index: int, offset: int, method: str, receiver: str) -> None:
        """Move an allocation to another cell of its block, or change its method or receiver."""
        record = self.pick(IpAllocation, index)
        if record is not None:
            owner = db.session.get(User, record.unit_id)
            data = self.allocation_data(record.family, self.cell_in(record.block, offset), 1, method, receiver)
            self.step("change_allocation", lambda: ip.change_allocation(owner, record, data))

    @rule(index=PICK, who=st.one_of(st.none(), UNIT))
    def delete_allocation(self, index: int, who: str | None) -> None:
        """By its unit (None), or by any unit (another's is refused)."""
        record = self.pick(IpAllocation, index)
        if record is not None:
            actor = db.session.get(User, record.unit_id) if who is None else self.unit(who)
            self.step("delete_allocation", lambda: ip.delete_allocation(actor, record))

    @rule(index=PICK, family=FAMILY, cell=CELL, size=SIZE)
    def change_block(self, index: int, family: int, cell: int, size: int) -> None:
        record = self.pick(IpBlock, index)
        if record is not None:
            start, end = span(family, cell, size)
            data = ip.BlockData(start=start, end=end, registry_code="CNNIC")
            self.step("change_block", lambda: ip.change_block(db.session.get(User, record.unit_id), record, data))

    @rule(index=PICK, who=UNIT)
    def delete_block(self, index: int, who: str) -> None:
        record = self.pick(IpBlock, index)
        if record is not None:
            self.step("delete_block", lambda: ip.delete_block(self.unit(who), record))

    @invariant()
    def reported_blocks_never_overlap(self) -> None:
        blocks = db.session.scalars(select(IpBlock).where(IpBlock.derived.is_(False))
                                    .order_by(IpBlock.start_key)).all()
        assert all(earlier.end_key < later.start_key for earlier, later in pairwise(blocks))

    @invariant()
    def allocations_lie_in_their_block_and_never_overlap(self) -> None:
        for unit_id in self.units.values():
            allocations = db.session.scalars(select(IpAllocation).where(IpAllocation.unit_id == unit_id)
                                             .order_by(IpAllocation.start_key)).all()
            assert all(earlier.end_key < later.start_key for earlier, later in pairwise(allocations))
            for allocation in allocations:
                assert allocation.block.unit_id == unit_id
                assert allocation.block.start_key <= allocation.start_key <= allocation.end_key \
                    <= allocation.block.end_key

    @invariant()
    def every_reallocation_is_one_received_block(self) -> None:
        received = {block.allocation_id: block for block in db.session.scalars(
            select(IpBlock).where(IpBlock.derived.is_(True)))}
        given = db.session.scalars(select(IpAllocation).where(IpAllocation.method == "2")).all()
        assert set(received) == {allocation.id for allocation in given}
        for allocation in given:
            block = received[allocation.id]
            assert (block.unit_id, block.start_key, block.end_key, block.source_unit_id) == (
                allocation.target_unit_id, allocation.start_key, allocation.end_key, allocation.unit_id)
            assert block.unit_id != allocation.unit_id


def test_ip_state_machine(ctx) -> None:
    IpMachine.units = {name: reporter(name).id for name in UNITS}
    try:
        run_state_machine_as_test(IpMachine, settings=settings(
            max_examples=50, stateful_step_count=40, deadline=None, derandomize=True,
            suppress_health_check=list(HealthCheck)))
    finally:
        db.session.rollback()
    done = {name for (name, outcome), count in OUTCOMES.items() if outcome == "done" and count}
    refused = {name for (name, outcome), count in OUTCOMES.items() if outcome == "refused" and count}
    rules = {"add_block", "allocate", "change_allocation", "delete_allocation", "change_block", "delete_block"}
    assert rules <= done and rules <= refused, sorted(OUTCOMES.items())
