"""核查结果 (issue 13 item 5): the audit findings over the IP reports, recomputed as a whole by the worker.

- 越界 out_of_bounds (2005): an allocation not inside its source block; a re-allocation's received block that
  no longer equals the allocation.
- 冲突 conflict (2056): reported blocks of two units that overlap (the workflow refuses them, older data may
  not); a self-brought block lying in another unit's reported block — unless it lies wholly in a block of
  the reporting unit it names as its source.
- 未报备 unreported (1063): a filed access range of an approved website that lies in no block (source or
  self-brought) of the ISP's reporting units (`User.isp_account_id`).

Every check is a sweep over rows streamed in key order (an index order, or one sort by the database), so
the work is O(n log n) in the records, never a query per record. The reading runs in one read transaction
(SQLite: a snapshot that never blocks a writer); the findings are then replaced in one short write
transaction. Findings are data, written in Chinese for the clerks who read them.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import islice
from typing import Any

from flask import current_app, g
from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

import ipindex
from extensions import db
from models import (
    Access,
    AccessRange,
    FindingKind,
    IpAllocation,
    IpBlock,
    IpFinding,
    IpFindingsRun,
    IpSelfBrought,
    Role,
    User,
    UserStatus,
    Website,
)
from models.base import utcnow
from rawsql import BulkInsert, stream
from workflow import events
from workflow.checks import LIVE_STATUSES

#: the one row of `ip_findings_runs`
RUN_ID = 1
#: a run not finished this long after it started belongs to a dead worker: another may start one
RUN_LEASE = timedelta(minutes=30)
#: findings inserted per statement
CHUNK = 10_000
CODES = {FindingKind.OUT_OF_BOUNDS: "2005", FindingKind.CONFLICT: "2056", FindingKind.UNREPORTED: "1063"}

_INSERT = BulkInsert(IpFinding.__table__, ("kind", "code", "unit_id", "province_code", "other_unit_id",
                                           "record_kind", "record_id", "family", "start_key", "end_key",
                                           "detail", "computed_at"))


@dataclass(frozen=True, slots=True)
class Found:
    """A finding before it is written: the unit that must act, the record, the other unit, the words."""

    kind: FindingKind
    unit_id: int
    record_kind: str
    record_id: int
    start_key: str
    end_key: str
    detail: str
    other_unit_id: int | None = None


@dataclass(frozen=True, slots=True)
class Held:
    """A block or self-brought block in a sweep."""

    start_key: str
    end_key: str
    id: int
    unit_id: int
    derived: bool = False
    source_unit_id: int | None = None

    @property
    def text(self) -> str:
        return ipindex.range_text(self.start_key, self.end_key)


class Units:
    """Labels (as `workflow.ip.unit_label` writes them; not imported, so that workflow.ip can import
    `mark_stale` from here) and provinces of the reporting units and ISPs, loaded once per run."""

    def __init__(self) -> None:
        users = db.session.execute(select(User.id, User.username, User.organisation, User.province_code).where(
            User.role.in_((Role.IP_REPORTER, Role.ISP))))
        self.by_id = {user_id: (f"{organisation or username}（{username}）", province)
                      for user_id, username, organisation, province in users}

    def label(self, unit_id: int | None) -> str:
        return self.by_id[unit_id][0] if unit_id in self.by_id else f"#{unit_id}"

    def province(self, unit_id: int) -> str | None:
        return self.by_id[unit_id][1] if unit_id in self.by_id else None


# --- 越界 ----------------------------------------------------------------------------------------------------


def out_of_bounds(units: Units) -> Iterator[Found]:
    """Allocations outside their block (or in another unit's), and received blocks unlike their allocation."""
    block = IpBlock.__table__.alias("block")
    allocation = IpAllocation.__table__.alias("allocation")
    outside = select(allocation.c.id, allocation.c.unit_id, allocation.c.start_key, allocation.c.end_key,
                     block.c.start_key, block.c.end_key, block.c.unit_id).join(
        block, block.c.id == allocation.c.block_id).where(or_(
            allocation.c.start_key < block.c.start_key, allocation.c.end_key > block.c.end_key,
            allocation.c.unit_id != block.c.unit_id)).order_by(allocation.c.id)
    for record_id, unit_id, start, end, block_start, block_end, holder in stream(outside):
        held = ipindex.range_text(block_start, block_end)
        detail = (f"分配 {ipindex.range_text(start, end)} 不在其来源地址段 {held} 内" if holder == unit_id else
                  f"分配 {ipindex.range_text(start, end)} 所在的来源地址段 {held} 属于 {units.label(holder)}")
        yield Found(FindingKind.OUT_OF_BOUNDS, unit_id, "allocation", record_id, start, end, detail,
                    holder if holder != unit_id else None)
    unlike = select(allocation.c.id, allocation.c.unit_id, allocation.c.start_key, allocation.c.end_key,
                    block.c.start_key, block.c.end_key, block.c.unit_id).join(
        block, block.c.allocation_id == allocation.c.id).where(
            block.c.derived.is_(True),
            or_(block.c.start_key != allocation.c.start_key, block.c.end_key != allocation.c.end_key)
        ).order_by(allocation.c.id)
    for record_id, unit_id, start, end, block_start, block_end, receiver in stream(unlike):
        yield Found(FindingKind.OUT_OF_BOUNDS, unit_id, "allocation", record_id, start, end,
                    f"再分配 {ipindex.range_text(start, end)} 与 {units.label(receiver)} 所得的来源地址段 "
                    f"{ipindex.range_text(block_start, block_end)} 不一致", receiver)


# --- 冲突 ----------------------------------------------------------------------------------------------------


def _blocks_in_order() -> Iterator[Held]:
    query = select(IpBlock.start_key, IpBlock.end_key, IpBlock.id, IpBlock.unit_id, IpBlock.derived).order_by(
        IpBlock.start_key)
    return (Held(start, end, record_id, unit_id, bool(derived)) for start, end, record_id, unit_id, derived
            in stream(query))


def _self_brought_in_order() -> Iterator[Held]:
    query = select(IpSelfBrought.start_key, IpSelfBrought.end_key, IpSelfBrought.id, IpSelfBrought.unit_id,
                   IpSelfBrought.source_unit_id).order_by(IpSelfBrought.start_key)
    return (Held(start, end, record_id, unit_id, False, source) for start, end, record_id, unit_id, source
            in stream(query))


def _expire(active: list[tuple[str, int, Held]], start_key: str) -> None:
    """Drop what ends before `start_key` from a heap ordered by end."""
    while active and active[0][0] < start_key:
        heapq.heappop(active)


class ConflictSweep:
    """One pass over the blocks and self-brought blocks in start order; what is "active" overlaps the
    current start. Blocks nest only a few deep, so the active sets stay small."""

    def __init__(self, units: Units) -> None:
        self.units = units
        self.blocks: list[tuple[str, int, Held]] = []  # every block reaching the current start, by end
        self.pending: list[tuple[str, int, Held]] = []  # self-brought blocks not settled, by end
        self.named: dict[int, set[int]] = {}  # self-brought id → the units already named against it

    def run(self) -> Iterator[Found]:
        blocks = ((held.start_key, 0, held) for held in _blocks_in_order())
        brought = ((held.start_key, 1, held) for held in _self_brought_in_order())
        for start_key, order, held in heapq.merge(blocks, brought, key=lambda item: item[:2]):
            _expire(self.blocks, start_key)
            _expire(self.pending, start_key)
            yield from self._block(held) if order == 0 else self._self_brought(held)

    def _block(self, block: Held) -> Iterator[Found]:
        if not block.derived:
            for _end, _id, other in self.blocks:
                if not other.derived and other.unit_id != block.unit_id:
                    yield self._overlap(block, other)
            for _end, _id, brought in self.pending:
                if (found := self._brought_conflict(brought, block)) is not None:
                    yield found
        heapq.heappush(self.blocks, (block.end_key, block.id, block))

    def _overlap(self, first: Held, second: Held) -> Found:
        """The unit that reported later (the greater id) must act."""
        later, earlier = (first, second) if first.id > second.id else (second, first)
        return Found(FindingKind.CONFLICT, later.unit_id, "block", later.id, later.start_key, later.end_key,
                     f"来源地址段 {later.text} 与 {self.units.label(earlier.unit_id)} 报备的来源地址段 "
                     f"{earlier.text} 重叠", earlier.unit_id)

    def _self_brought(self, brought: Held) -> Iterator[Found]:
        if brought.source_unit_id is not None and any(
                block.unit_id == brought.source_unit_id and block.end_key >= brought.end_key
                for _end, _id, block in self.blocks):
            return  # wholly inside a block its source unit holds: as declared
        for _end, _id, block in self.blocks:
            if not block.derived and (found := self._brought_conflict(brought, block)) is not None:
                yield found
        heapq.heappush(self.pending, (brought.end_key, brought.id, brought))

    def _brought_conflict(self, brought: Held, block: Held) -> Found | None:
        """A self-brought block overlapping a reported block of a unit other than itself and its source."""
        named = self.named.setdefault(brought.id, set())
        if block.unit_id in (brought.unit_id, brought.source_unit_id) or block.unit_id in named:
            return None
        named.add(block.unit_id)
        declared = (f"声明来源为 {self.units.label(brought.source_unit_id)}，但"
                    if brought.source_unit_id is not None else "")
        return Found(FindingKind.CONFLICT, brought.unit_id, "self_brought", brought.id, brought.start_key,
                     brought.end_key, f"自带IP {brought.text} {declared}与 {self.units.label(block.unit_id)} "
                     f"报备的来源地址段 {block.text} 重叠", block.unit_id)


# --- 未报备 (1063) -------------------------------------------------------------------------------------------


def _reporters_of_isps() -> dict[int, int]:
    """ISP id → the reporting unit that answers for its unreported ranges (the first one, by id)."""
    first: dict[int, int] = {}
    for isp_id, unit_id in db.session.execute(select(User.isp_account_id, User.id).where(
            User.isp_account_id.is_not(None), User.role == Role.IP_REPORTER, User.status == UserStatus.ACTIVE)
            .order_by(User.id)):
        first.setdefault(isp_id, unit_id)
    return first


def _isp_blocks_in_order() -> Iterator[tuple[int, str, str, int]]:
    """(ISP id, start, end, unit) of every block of the ISPs' active reporting units, by ISP then start."""
    parts = [select(User.isp_account_id.label("isp_id"), model.start_key, model.end_key, model.unit_id)
             .join(User, User.id == model.unit_id).where(
                 User.isp_account_id.is_not(None), User.role == Role.IP_REPORTER, User.status == UserStatus.ACTIVE)
             for model in (IpBlock, IpSelfBrought)]
    union = parts[0].union_all(parts[1]).subquery()
    return stream(select(union).order_by(union.c.isp_id, union.c.start_key))


def _access_ranges_in_order() -> Iterator[tuple[int, str, str, int, str]]:
    """(ISP id, start, end, access id, website) of the filed ranges of live accesses of approved websites, by
    ISP then start; each range once (the index stores a wide range in up to four buckets)."""
    query = select(Access.isp_id, AccessRange.start_key, AccessRange.end_key, Access.id,
                   Website.number, Website.name).join(Access, Access.id == AccessRange.access_id).join(
        Website, Website.id == Access.website_id).where(Access.live.is_(True), Website.status.in_(LIVE_STATUSES)
    ).order_by(Access.isp_id, AccessRange.start_key, AccessRange.end_key, Access.id)
    previous = None
    for isp_id, start, end, access_id, number, name in stream(query):
        if (isp_id, start, end, access_id) != previous:
            previous = (isp_id, start, end, access_id)
            yield isp_id, start, end, access_id, number or name


def unreported(units: Units) -> Iterator[Found]:
    """Both streams in (ISP, start) order: a range is covered when the greatest end among its ISP's blocks
    that start at or before it reaches its end (that block then holds it whole)."""
    answering = _reporters_of_isps()
    blocks = _isp_blocks_in_order()
    pending = next(blocks, None)
    state_isp, reach = None, ""
    for isp_id, start, end, access_id, website in _access_ranges_in_order():
        while pending is not None and (pending[0], pending[1]) <= (isp_id, start):
            if pending[0] != state_isp:
                state_isp, reach = pending[0], ""
            reach = max(reach, pending[2])
            pending = next(blocks, None)
        if state_isp == isp_id and reach >= end:
            continue
        unit_id = answering.get(isp_id, isp_id)
        missing = "" if isp_id in answering else "（该接入商尚无IP地址备案单位）"
        yield Found(FindingKind.UNREPORTED, unit_id, "access", access_id, start, end,
                    f"网站 {website} 的接入地址段 {ipindex.range_text(start, end)} 不在接入商 "
                    f"{units.label(isp_id)} 报备的IP地址段内{missing}", isp_id if unit_id != isp_id else None)


# --- the run -------------------------------------------------------------------------------------------------


@contextmanager
def _intent(write: bool) -> Iterator[None]:
    """SQLite: a read transaction (BEGIN) for the sweeps, the write lock up front (BEGIN IMMEDIATE) for the
    short transactions that write; the transaction before is ended first."""
    db.session.commit()
    previous = g.get("write_intent")
    g.write_intent = write
    try:
        yield
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    finally:
        g.write_intent = previous


def _findings(units: Units) -> list[Found]:
    found = list(out_of_bounds(units))
    found += ConflictSweep(units).run()
    found += unreported(units)
    return found


def _rows(found: Iterable[Found], units: Units, now: datetime) -> Iterator[dict[str, Any]]:
    for item in found:
        yield {"kind": item.kind, "code": CODES[item.kind], "unit_id": item.unit_id,
               "province_code": units.province(item.unit_id), "other_unit_id": item.other_unit_id,
               "record_kind": item.record_kind, "record_id": item.record_id,
               "family": ipindex.family_of(int(item.start_key, 16)), "start_key": item.start_key,
               "end_key": item.end_key, "detail": item.detail, "computed_at": now}


def _replace(found: list[Found], units: Units, clock: float) -> float:
    """All findings replaced at once (readers see the old set or the new one, never a mix), and the run
    recorded as finished; the seconds since `clock`."""
    now = utcnow()
    with _intent(write=True):
        followed = events.holders()  # the units whose feed gets the findings opened and resolved
        before = events.finding_keys(followed)
        db.session.execute(delete(IpFinding))
        rows = _rows(found, units, now)
        while chunk := list(islice(rows, CHUNK)):
            _INSERT.run(chunk)
        events.findings_changed(before, found, CODES, followed)
        seconds = time.perf_counter() - clock
        db.session.execute(update(IpFindingsRun).where(IpFindingsRun.id == RUN_ID).values(
            finished_at=utcnow(), findings=len(found), seconds=round(seconds, 3)))
    return seconds


def _figures(found: list[Found], seconds: float) -> dict[str, Any]:
    figures: dict[str, Any] = {str(kind): 0 for kind in FindingKind}
    for item in found:
        figures[str(item.kind)] += 1
    return figures | {"findings": len(found), "seconds": round(seconds, 2)}


def _start(condition: Any = None) -> bool:
    """Mark a run started (the cue `stale` cleared: a change from now on asks for the next run); with a
    condition, only if it holds (a conditional update: two workers never both start)."""
    with _intent(write=True):
        if db.session.get(IpFindingsRun, RUN_ID) is None:
            try:
                with db.session.begin_nested():
                    db.session.execute(insert(IpFindingsRun).values(id=RUN_ID, stale=True, findings=0))
            except IntegrityError:  # another worker made it at the same moment
                pass
        query = update(IpFindingsRun).where(IpFindingsRun.id == RUN_ID)
        if condition is not None:
            query = query.where(condition)
        return bool(db.session.execute(query.values(stale=False, started_at=utcnow())).rowcount)


def _restore_cue() -> None:
    """After a failed run the cue stays set (tried again once the run's lease is over); best effort, the
    database may be what failed."""
    try:
        with _intent(write=True):
            mark_stale()
    except Exception:
        current_app.logger.exception("IP findings: could not mark the run stale again")


def _compute() -> dict[str, Any]:
    clock = time.perf_counter()
    try:
        with _intent(write=False):
            units = Units()
            found = _findings(units)
        seconds = _replace(found, units, clock)
    except Exception:
        _restore_cue()
        raise
    return _figures(found, seconds)


def recompute_findings() -> dict[str, Any]:
    """Recompute every finding now; the counts per kind, the total and the seconds taken."""
    _start()
    return _compute()


def _due(now: datetime, interval: timedelta) -> Any:
    """Stale or older than the interval, and no run in progress (one started within the lease, unfinished)."""
    running = and_(IpFindingsRun.started_at.is_not(None), IpFindingsRun.started_at > now - RUN_LEASE,
                   or_(IpFindingsRun.finished_at.is_(None), IpFindingsRun.finished_at < IpFindingsRun.started_at))
    wanted = or_(IpFindingsRun.stale.is_(True), IpFindingsRun.finished_at.is_(None),
                 IpFindingsRun.finished_at < now - interval)
    return and_(wanted, ~running)


def run_if_due(now: datetime | None = None) -> dict[str, Any] | None:
    """The worker's step: recompute when the IP records changed (`stale`) or the last run is older than
    IP_FINDINGS_INTERVAL_MINUTES; the figures, or None when not due."""
    interval = timedelta(minutes=current_app.config["IP_FINDINGS_INTERVAL_MINUTES"])
    return _compute() if _start(_due(now or utcnow(), interval)) else None


def mark_stale() -> None:
    """Ask the worker for a new run (after a change to the IP reports or to the filed access ranges); runs in
    the caller's transaction. Without the run's row yet, the first run is due anyway."""
    db.session.execute(update(IpFindingsRun).where(IpFindingsRun.id == RUN_ID, IpFindingsRun.stale.is_(False))
                       .values(stale=True))  # already stale: no row written, no lock taken
