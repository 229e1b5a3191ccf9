"""IP地址备案 (SPEC §11, MIIT Order No. 34): a reporting unit adds, changes and deletes its source blocks,
allocations and self-brought blocks. Every refusal carries the data-exchange specification's result code.

Every check is one probe of an index: the units' reported blocks never overlap and neither do one unit's
allocations, so among them the one with the greatest start ≤ x is the only one that can hold x. The checks run
inside the write transaction (SQLite: BEGIN IMMEDIATE; PostgreSQL: the unit's row and the source block are
locked, and an exclusion constraint refuses overlapping reported blocks of two racing units).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields
from datetime import date
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError, OperationalError

import audit
import ipindex
import validators
from extensions import db
from models import (
    AllocationMethod,
    CodeItem,
    CodeTable,
    Division,
    IpAllocation,
    IpBlock,
    IpOrigin,
    IpSelfBrought,
    Province,
    Role,
    UsageMethod,
    User,
    UserStatus,
)
from workflow.errors import CodedErrors, CodedProblem, WorkflowError
from workflow.ip_findings import mark_stale

#: how many records a refusal names ("… and 12 more")
NAMED = 5


class IpError(CodedErrors):
    """Refused IP report."""


def _raise(problems: Iterable[CodedProblem]) -> None:
    found = list(problems)
    if found:
        raise IpError(found)


# --- the data of each kind -------------------------------------------------------------------------------


@dataclass
class UserUnitData:
    """The user unit and usage of an allocation (分配方式 1) or of a self-brought block."""

    usage: str = ""
    allocated_on: date | None = None
    user_name: str = ""
    user_nature: str = ""
    user_category: str = ""
    user_industry: str = ""
    province_code: str = ""
    city_code: str = ""
    county_code: str = ""
    address: str = ""
    contact_name: str = ""
    contact_phone: str = ""
    contact_email: str = ""
    gateway_ip: str = ""
    gateway_location: str = ""
    redirect_server: bool = False
    remark: str = ""


@dataclass
class BlockData:
    start: str
    end: str
    origin: str = IpOrigin.REGISTRY
    registry_code: str = ""
    source_unit: str = ""  # the username of the reporting unit it came from (origin unit)
    remark: str = ""


@dataclass
class AllocationData(UserUnitData):
    start: str = ""
    end: str = ""
    method: str = ""
    target_unit: str = ""  # the username of the receiving reporting unit (method 2)


@dataclass
class SelfBroughtData(UserUnitData):
    start: str = ""
    end: str = ""
    source_unit: str = ""  # a reporting unit of the registry …
    source_name: str = ""  # … or the name of where the block came from


USER_UNIT_FIELDS = tuple(item.name for item in fields(UserUnitData))
#: what 分配方式 1 requires (the specification's list); 3 requires usage and date; 4 nothing more
ALLOCATED_REQUIRED = ("usage", "allocated_on", "user_name", "user_nature", "province_code", "city_code",
                      "address", "contact_name", "contact_phone", "contact_email")
SELF_USE_REQUIRED = ("usage", "allocated_on")


@dataclass(frozen=True)
class KeyRange:
    family: int
    start: int
    end: int
    start_key: str = field(init=False)
    end_key: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "start_key", ipindex.hex_key(self.start))
        object.__setattr__(self, "end_key", ipindex.hex_key(self.end))

    @property
    def text(self) -> str:
        return ipindex.range_text(self.start, self.end)


# --- checks shared by every kind -------------------------------------------------------------------------


def parse_range(start: str, end: str) -> KeyRange:
    """The keys of "start"–"end" (an IPv4-mapped IPv6 address counts as IPv4); IpError 2002 if not a range."""
    try:
        first, last = ipindex.address_key(start), ipindex.address_key(end or start)
    except ValueError:
        raise IpError([("start", "2002", _l("This is not a valid IPv4 or IPv6 address."))]) from None
    family = ipindex.family_of(first)
    if family != ipindex.family_of(last):
        raise IpError([("end", "2002", _l("The start and end of a range must both be IPv4 or both IPv6."))])
    if first > last:
        raise IpError([("end", "2002", _l("The start of a range must not be after its end."))])
    if family == 6 and ipindex.is_mapped_span(first, last):
        raise IpError([("end", "2002", _l("An IPv6 range must not include the IPv4-mapped addresses "
                                          "::ffff:0:0/96; report IPv4 addresses as IPv4."))])
    return KeyRange(family, first, last)


def range_and(data: Any, problems: list[CodedProblem]) -> KeyRange:
    """The record's range; if it is none, every problem at once: the range's and those of the other fields."""
    try:
        return parse_range(data.start, data.end)
    except IpError as error:
        raise IpError([*error.coded, *problems]) from None


def require_reporter(actor: User) -> None:
    if actor.role != Role.IP_REPORTER or actor.status != UserStatus.ACTIVE:
        raise WorkflowError(str(_l("Only IP reporting units report IP addresses.")))


def reporting_unit(username: str) -> User | None:
    """An active IP reporting unit by its account name."""
    unit = db.session.execute(select(User).where(User.username == username.strip())).scalar_one_or_none()
    return unit if unit is not None and unit.role == Role.IP_REPORTER and unit.status == UserStatus.ACTIVE else None


def lock_unit(actor: User) -> None:
    """Serialise one unit's writes on PostgreSQL (SQLite's write transactions are serial already)."""
    db.session.execute(select(User.id).where(User.id == actor.id).with_for_update())


def unit_label(unit: User | None) -> str:
    return f"{unit.organisation or unit.username}（{unit.username}）" if unit is not None else ""


def _named(ranges: list[str], total: int) -> str:
    shown = "、".join(ranges[:NAMED])
    return shown if total <= NAMED else str(_l("%(shown)s and %(more)d more", shown=shown, more=total - NAMED))


def _last_at_or_before(model: Any, key: str, *conditions: Any) -> Any:
    """The record with the greatest start ≤ key among the rows matching `conditions` (one index probe)."""
    return db.session.execute(select(model).where(*conditions, model.start_key <= key)
                              .order_by(model.start_key.desc()).limit(1)).scalar_one_or_none()


def _overlapping(model: Any, keys: KeyRange, *conditions: Any, exclude: int | None = None) -> Any:
    """The one record of a non-overlapping set that overlaps `keys`, if any."""
    conditions = (*conditions, model.id != exclude) if exclude is not None else conditions
    found = _last_at_or_before(model, keys.end_key, *conditions)
    return found if found is not None and found.end_key >= keys.start_key else None


def _inside(keys: KeyRange, record: Any) -> bool:
    return record.start_key <= keys.start_key and keys.end_key <= record.end_key


def _code_exists(table: CodeTable, code: str) -> bool:
    return db.session.execute(select(CodeItem.id).where(CodeItem.table == table, CodeItem.code == code,
                                                        CodeItem.active)).first() is not None


def _division_problems(data: UserUnitData) -> Iterator[CodedProblem]:
    if data.province_code and db.session.get(Province, data.province_code) is None:
        yield "province_code", "", str(_l("Unknown province."))
    if data.city_code:
        city = db.session.get(Division, data.city_code)
        if city is None or city.level != 2 or city.parent_code != data.province_code:
            yield "city_code", "", str(_l("This city is not in the chosen province."))
    if data.county_code:
        county = db.session.get(Division, data.county_code)
        if county is None or county.level != 3 or county.parent_code != data.city_code:
            yield "county_code", "", str(_l("This county is not in the chosen city."))


def user_unit_problems(data: UserUnitData, required: tuple[str, ...]) -> Iterator[CodedProblem]:
    """Required fields, then the formats and code-table values of those given."""
    for name in required:
        if getattr(data, name) in ("", None):
            yield name, "", str(_l("This field is required."))
    if data.usage and data.usage not in set(UsageMethod):
        yield "usage", "", str(_l("Unknown usage method."))
    if data.allocated_on and data.allocated_on > date.today():
        yield "allocated_on", "", str(_l("The allocation date must not be in the future."))
    for name, table in (("user_nature", CodeTable.UNIT_NATURE), ("user_category", CodeTable.UNIT_CLASS),
                        ("user_industry", CodeTable.INDUSTRY)):
        if getattr(data, name) and not _code_exists(table, getattr(data, name)):
            yield name, "", str(_l("Unknown code-table value."))
    yield from _division_problems(data)
    if data.contact_phone and (message := validators.phone_error(data.contact_phone)):
        yield "contact_phone", "", message
    if data.contact_email and (message := validators.email_error(data.contact_email)):
        yield "contact_email", "", message
    if data.gateway_ip and (message := validators.ip_address_error(data.gateway_ip)):
        yield "gateway_ip", "", message


def _set_user_unit(record: IpAllocation | IpSelfBrought, data: UserUnitData) -> None:
    for name in USER_UNIT_FIELDS:
        value = getattr(data, name)
        setattr(record, name, (value.strip() if isinstance(value, str) else value)
                if name not in ("province_code", "city_code", "county_code") else (value or None))


def set_range(record: Any, keys: KeyRange) -> None:
    record.family, record.start_key, record.end_key = keys.family, keys.start_key, keys.end_key


def _record(action: str, actor: User, kind: str, record: Any, **changes: Any) -> None:
    """Audit the change, and cue the worker to recompute the findings."""
    mark_stale()
    audit.record(action, object_type=kind, object_id=record.id, province_code=actor.province_code,
                 changes={"range": ipindex.range_text(record.start_key, record.end_key), **changes})


def _own(actor: User, record: Any) -> None:
    """2055 for a record that is not there, 2054 for another unit's."""
    if record is None:
        raise IpError([(None, "2055", _l("Record not found."))])
    if record.unit_id != actor.id:
        raise IpError([(None, "2054", _l("This record belongs to another unit; you may not change or delete it."))])


def _ranges_of(records: list[Any]) -> list[str]:
    return [ipindex.range_text(record.start_key, record.end_key) for record in records]


# --- source blocks (来源信息) -------------------------------------------------------------------------------


def block_origin_problems(actor: User, data: BlockData) -> Iterator[CodedProblem]:
    if data.origin == IpOrigin.REGISTRY:
        if not data.registry_code:
            yield "registry_code", "", str(_l("Choose the Internet registry the block came from."))
        elif not _code_exists(CodeTable.IP_REGISTRY, data.registry_code):
            yield "registry_code", "", str(_l("Unknown Internet registry."))
    elif data.origin == IpOrigin.UNIT:
        if not data.source_unit.strip():
            yield "source_unit", "2047", str(_l("Name the reporting unit the block came from."))
        elif data.source_unit.strip() == actor.username:
            yield "source_unit", "2052", str(_l("The source unit must not be your own unit."))
        elif reporting_unit(data.source_unit) is None:
            yield "source_unit", "2048", str(_l("No IP reporting unit has this account name."))
    else:
        yield "origin", "", str(_l("Choose where the block came from."))


def block_overlap_problem(actor: User, keys: KeyRange, exclude: int | None = None) -> CodedProblem | None:
    other = _overlapping(IpBlock, keys, IpBlock.derived.is_(False), exclude=exclude)
    if other is None:
        return None
    held = ipindex.range_text(other.start_key, other.end_key)
    if other.unit_id == actor.id:
        return "start", "2003", str(_l("The block overlaps your source block %(range)s.", range=held))
    return "start", "2056", str(_l("The block conflicts with the block %(range)s reported by %(unit)s.",
                                   range=held, unit=unit_label(other.unit)))


def refused_as_overlap(error: Exception) -> bool:
    """A racing overlap refused by PostgreSQL's exclusion constraint: a violation, or — two inserts each waiting
    for the other's uncommitted row, which the constraint's check after the insert allows — a deadlock
    (SQLSTATE 40P01) in which PostgreSQL aborts one of them. SQLAlchemy's wrapper or the driver's own error."""
    if isinstance(error, IntegrityError | db.engine.dialect.loaded_dbapi.IntegrityError):
        return True
    return getattr(getattr(error, "orig", error), "sqlstate", None) == "40P01"


def _flush_block(block: IpBlock) -> None:
    """Insert or update in a savepoint: PostgreSQL's exclusion constraint catches a racing overlap."""
    try:
        with db.session.begin_nested():
            db.session.add(block)
            db.session.flush()
    except (IntegrityError, OperationalError) as error:
        if not refused_as_overlap(error):
            raise
        raise IpError([("start", "2056", _l("The block conflicts with a block another unit reported at the "
                                            "same moment."))]) from None


def add_block(actor: User, data: BlockData) -> IpBlock:
    require_reporter(actor)
    problems = list(block_origin_problems(actor, data))
    keys = range_and(data, problems)
    _raise([*problems, *(problem for problem in [block_overlap_problem(actor, keys)] if problem)])
    block = IpBlock(unit_id=actor.id, origin=IpOrigin(data.origin), derived=False, remark=data.remark.strip())
    set_block_origin(block, data)
    set_range(block, keys)
    _flush_block(block)
    _record("ip.block.added", actor, "ip_block", block, origin=str(block.origin))
    return block


def set_block_origin(block: IpBlock, data: BlockData) -> None:
    block.origin = IpOrigin(data.origin)
    block.registry_code = data.registry_code if block.origin == IpOrigin.REGISTRY else None
    source = reporting_unit(data.source_unit) if block.origin == IpOrigin.UNIT else None
    block.source_unit_id = source.id if source is not None else None


def _allocations_outside(block: IpBlock, keys: KeyRange) -> list[IpAllocation]:
    return list(db.session.execute(
        select(IpAllocation).where(IpAllocation.block_id == block.id,
                                   (IpAllocation.start_key < keys.start_key) | (IpAllocation.end_key > keys.end_key))
        .order_by(IpAllocation.start_key).limit(NAMED + 1)).scalars())


def _holding_problem(block: IpBlock, keys: KeyRange | None) -> CodedProblem | None:
    """A block may shrink or go only if no allocation is left outside it (keys None: deleted)."""
    query = select(IpAllocation).where(IpAllocation.block_id == block.id)
    if keys is not None:
        query = query.where((IpAllocation.start_key < keys.start_key) | (IpAllocation.end_key > keys.end_key))
    total = db.session.execute(query.with_only_columns(db.func.count())).scalar_one()
    if not total:
        return None
    held = _ranges_of(list(db.session.execute(query.order_by(IpAllocation.start_key).limit(NAMED)).scalars()))
    return "start", "2005", str(_l("The block still holds these allocations; change or delete them first: "
                                   "%(ranges)s.", ranges=_named(held, total)))


def _editable_block(actor: User, block: IpBlock | None) -> IpBlock:
    require_reporter(actor)
    _own(actor, block)
    assert block is not None
    if block.derived:
        raise IpError([(None, "2054", _l("This block was re-allocated to you; only the unit that allocated it "
                                         "changes or deletes it."))])
    db.session.execute(select(IpBlock.id).where(IpBlock.id == block.id).with_for_update())
    return block


def change_block(actor: User, block: IpBlock | None, data: BlockData) -> IpBlock:
    block = _editable_block(actor, block)
    problems = list(block_origin_problems(actor, data))
    keys = range_and(data, problems)
    _raise([*problems, *(problem for problem in [block_overlap_problem(actor, keys, exclude=block.id),
                                                 _holding_problem(block, keys)] if problem)])
    before = ipindex.range_text(block.start_key, block.end_key)
    set_block_origin(block, data)
    block.remark = data.remark.strip()
    set_range(block, keys)
    _flush_block(block)
    _record("ip.block.changed", actor, "ip_block", block, before=before)
    return block


def delete_block(actor: User, block: IpBlock | None) -> None:
    block = _editable_block(actor, block)
    _raise(problem for problem in [_holding_problem(block, None)] if problem)
    _record("ip.block.deleted", actor, "ip_block", block)
    db.session.delete(block)
    db.session.flush()


# --- allocations (分配及使用信息) ----------------------------------------------------------------------------


def method_problems(actor: User, data: AllocationData) -> Iterator[CodedProblem]:
    if data.method not in set(AllocationMethod):
        yield "method", "", str(_l("Choose the allocation method."))
        return
    if data.method == AllocationMethod.ALLOCATED:
        yield from user_unit_problems(data, ALLOCATED_REQUIRED)
    elif data.method == AllocationMethod.SELF_USE:
        yield from user_unit_problems(data, SELF_USE_REQUIRED)
    elif data.method == AllocationMethod.RESERVED:
        yield from user_unit_problems(data, ())
    elif not data.target_unit.strip():
        yield "target_unit", "2047", str(_l("Name the reporting unit that receives the re-allocation."))
    elif data.target_unit.strip() == actor.username:
        yield "target_unit", "2050", str(_l("You cannot re-allocate addresses to your own unit."))
    elif reporting_unit(data.target_unit) is None:
        yield "target_unit", "2048", str(_l("No IP reporting unit has this account name."))


def source_block(actor: User, keys: KeyRange) -> IpBlock:
    block = _last_at_or_before(IpBlock, keys.start_key, IpBlock.unit_id == actor.id)
    if block is None or not _inside(keys, block):
        raise IpError([("start", "2005", _l("The allocation must lie wholly inside one of your source blocks."))])
    db.session.execute(select(IpBlock.id).where(IpBlock.id == block.id).with_for_update())
    return block


def allocation_overlap(actor: User, keys: KeyRange, exclude: int | None = None) -> CodedProblem | None:
    other = _overlapping(IpAllocation, keys, IpAllocation.unit_id == actor.id, exclude=exclude)
    if other is None:
        return None
    return "start", "2003", str(_l("The allocation overlaps your allocation %(range)s.",
                                   range=ipindex.range_text(other.start_key, other.end_key)))


def _checked_allocation(actor: User, data: AllocationData, exclude: int | None = None) -> tuple[KeyRange, IpBlock]:
    problems = list(method_problems(actor, data))
    keys = range_and(data, problems)
    lock_unit(actor)
    try:
        block = source_block(actor, keys)
    except IpError as error:
        raise IpError([*error.coded, *problems]) from None
    _raise([*(problem for problem in [allocation_overlap(actor, keys, exclude)] if problem), *problems])
    return keys, block


def fill_allocation(allocation: IpAllocation, data: AllocationData, keys: KeyRange, block: IpBlock) -> None:
    target = reporting_unit(data.target_unit) if data.method == AllocationMethod.REALLOCATED else None
    set_range(allocation, keys)
    allocation.block_id, allocation.method = block.id, data.method
    allocation.target_unit_id = target.id if target is not None else None
    _set_user_unit(allocation, data if data.method != AllocationMethod.REALLOCATED else UserUnitData(
        allocated_on=data.allocated_on, remark=data.remark))


def add_allocation(actor: User, data: AllocationData) -> IpAllocation:
    require_reporter(actor)
    keys, block = _checked_allocation(actor, data)
    allocation = IpAllocation(unit_id=actor.id)
    fill_allocation(allocation, data, keys, block)
    db.session.add(allocation)
    db.session.flush()
    if allocation.target_unit_id is not None:
        add_received_block(actor, allocation)
    _record("ip.allocation.added", actor, "ip_allocation", allocation, method=allocation.method)
    return allocation


def add_received_block(actor: User, allocation: IpAllocation) -> None:
    """再分配: the receiving unit holds the range as a source block of its own."""
    received = IpBlock(unit_id=allocation.target_unit_id, origin=IpOrigin.ALLOCATION, derived=True,
                       source_unit_id=actor.id, allocation_id=allocation.id, remark="")
    received.family, received.start_key, received.end_key = allocation.family, allocation.start_key, allocation.end_key
    db.session.add(received)
    db.session.flush()


def _received_block(allocation: IpAllocation) -> IpBlock | None:
    return db.session.execute(select(IpBlock).where(IpBlock.allocation_id == allocation.id)).scalar_one_or_none()


def _received_problem(allocation: IpAllocation, keys: KeyRange | None) -> CodedProblem | None:
    """A re-allocation may shrink, move to another unit or go only if the receiver allocated nothing outside."""
    received = _received_block(allocation)
    if received is None:
        return None
    problem = _holding_problem(received, keys)
    if problem is None:
        return None
    return problem[0], problem[1], str(_l("%(unit)s has allocated from this re-allocation: %(detail)s",
                                          unit=unit_label(received.unit), detail=problem[2]))


def change_allocation(actor: User, allocation: IpAllocation | None, data: AllocationData) -> IpAllocation:
    require_reporter(actor)
    _own(actor, allocation)
    assert allocation is not None
    keys, block = _checked_allocation(actor, data, exclude=allocation.id)
    keeps_receiver = (data.method == AllocationMethod.REALLOCATED and allocation.target_unit is not None
                      and data.target_unit.strip() == allocation.target_unit.username)
    _raise(problem for problem in [_received_problem(allocation, keys if keeps_receiver else None)] if problem)
    before = ipindex.range_text(allocation.start_key, allocation.end_key)
    received = _received_block(allocation)
    fill_allocation(allocation, data, keys, block)
    if received is not None and keeps_receiver:
        set_range(received, keys)
    elif received is not None:
        db.session.delete(received)
    db.session.flush()
    if allocation.target_unit_id is not None and (received is None or not keeps_receiver):
        add_received_block(actor, allocation)
    _record("ip.allocation.changed", actor, "ip_allocation", allocation, before=before, method=allocation.method)
    return allocation


def delete_allocation(actor: User, allocation: IpAllocation | None) -> None:
    require_reporter(actor)
    _own(actor, allocation)
    assert allocation is not None
    lock_unit(actor)
    _raise(problem for problem in [_received_problem(allocation, None)] if problem)
    _record("ip.allocation.deleted", actor, "ip_allocation", allocation, method=allocation.method)
    db.session.execute(delete(IpBlock).where(IpBlock.allocation_id == allocation.id))
    db.session.delete(allocation)
    db.session.flush()


# --- self-brought blocks (自带IP) --------------------------------------------------------------------------


def self_brought_problems(actor: User, data: SelfBroughtData, keys: KeyRange | None,
                           exclude: int | None) -> Iterator[CodedProblem]:
    """Every problem; the overlap only with a range (`keys`)."""
    other = _overlapping(IpSelfBrought, keys, IpSelfBrought.unit_id == actor.id, exclude=exclude) if keys else None
    if other is not None:
        yield "start", "2003", str(_l("The block overlaps your self-brought block %(range)s.",
                                      range=ipindex.range_text(other.start_key, other.end_key)))
    if data.source_unit.strip():
        if data.source_unit.strip() == actor.username:
            yield "source_unit", "2052", str(_l("The source unit must not be your own unit."))
        elif reporting_unit(data.source_unit) is None:
            yield "source_unit", "2048", str(_l("No IP reporting unit has this account name."))
    elif not data.source_name.strip():
        yield "source_name", "", str(_l("Name where the block came from (a reporting unit or an organisation)."))
    yield from user_unit_problems(data, ALLOCATED_REQUIRED)


def fill_self_brought(record: IpSelfBrought, data: SelfBroughtData, keys: KeyRange) -> None:
    source = reporting_unit(data.source_unit) if data.source_unit.strip() else None
    set_range(record, keys)
    record.source_unit_id = source.id if source is not None else None
    record.source_name = data.source_name.strip()
    _set_user_unit(record, data)


def add_self_brought(actor: User, data: SelfBroughtData) -> IpSelfBrought:
    require_reporter(actor)
    keys = range_and(data, list(self_brought_problems(actor, data, None, None)))
    lock_unit(actor)
    _raise(self_brought_problems(actor, data, keys, None))
    record = IpSelfBrought(unit_id=actor.id)
    fill_self_brought(record, data, keys)
    db.session.add(record)
    db.session.flush()
    _record("ip.self_brought.added", actor, "ip_self_brought", record)
    return record


def change_self_brought(actor: User, record: IpSelfBrought | None, data: SelfBroughtData) -> IpSelfBrought:
    require_reporter(actor)
    _own(actor, record)
    assert record is not None
    keys = range_and(data, list(self_brought_problems(actor, data, None, record.id)))
    lock_unit(actor)
    _raise(self_brought_problems(actor, data, keys, record.id))
    before = ipindex.range_text(record.start_key, record.end_key)
    fill_self_brought(record, data, keys)
    db.session.flush()
    _record("ip.self_brought.changed", actor, "ip_self_brought", record, before=before)
    return record


def delete_self_brought(actor: User, record: IpSelfBrought | None) -> None:
    require_reporter(actor)
    _own(actor, record)
    assert record is not None
    _record("ip.self_brought.deleted", actor, "ip_self_brought", record)
    db.session.delete(record)
    db.session.flush()
