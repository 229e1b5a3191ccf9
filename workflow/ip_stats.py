"""IP地址备案统计 (issue 13 item 6) for MIIT (the nation) and a bureau (its province): per province and per
reporting unit, the addresses in its source blocks — IPv4 as a count, IPv6 in /32 and /48 units — and its
allocations per 分配方式 with the addresses in each.

Addresses are 32-hex-digit keys, which neither database sums as numbers; the rows (unit, family, start, end)
are streamed and summed here, one pass per table (measured in the README: about a second per 1,000,000 rows).
Reads only.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from extensions import db
from models import AllocationMethod, IpAllocation, IpBlock, IpSelfBrought, Province, Role, User
from rawsql import stream
from workflow.errors import WorkflowError

V6_32 = 1 << 96  # addresses in an IPv6 /32
V6_48 = 1 << 80  # … in a /48


@dataclass
class Addresses:
    """How many addresses: IPv4 as a count, IPv6 as a count too, read in /32 or /48 units."""

    v4: int = 0
    v6: int = 0

    def add(self, family: int, count: int) -> None:
        if family == 4:
            self.v4 += count
        else:
            self.v6 += count

    def __iadd__(self, other: Addresses) -> Addresses:
        self.v4 += other.v4
        self.v6 += other.v6
        return self

    @property
    def v6_32(self) -> float:
        """IPv6 in /32 units (fractions allowed; show them to two decimals)."""
        return self.v6 / V6_32

    @property
    def v6_48(self) -> float:
        return self.v6 / V6_48


@dataclass
class Counted:
    """Records of one kind and the addresses in them."""

    records: int = 0
    addresses: Addresses = field(default_factory=Addresses)

    def add(self, family: int, count: int) -> None:
        self.records += 1
        self.addresses.add(family, count)

    def __iadd__(self, other: Counted) -> Counted:
        self.records += other.records
        self.addresses += other.addresses
        return self


@dataclass
class Figures:
    """One row of the statistics: a province (`code` its GB/T 2260 code) or a unit (`code` its account name)."""

    code: str
    name: str
    province_code: str | None
    units: int = 0  # reporting units counted in the row
    reported: Counted = field(default_factory=Counted)  # source blocks it reported (registry or another unit)
    received: Counted = field(default_factory=Counted)  # source blocks made by other units' re-allocations
    self_brought: Counted = field(default_factory=Counted)
    #: 分配方式 "1".."4" → its allocations
    methods: dict[str, Counted] = field(default_factory=lambda: {str(m): Counted() for m in AllocationMethod})

    @property
    def held(self) -> Addresses:
        """Every address in its source blocks, reported and received."""
        total = Addresses()
        total += self.reported.addresses
        total += self.received.addresses
        return total

    def __iadd__(self, other: Figures) -> Figures:
        self.units += other.units
        self.reported += other.reported
        self.received += other.received
        self.self_brought += other.self_brought
        for method, counted in other.methods.items():
            self.methods[method] += counted
        return self


def scope_of(user: User) -> str | None:
    """The province a bureau sees, None for MIIT (every province); WorkflowError for anyone else."""
    if user.role == Role.MIIT:
        return None
    if user.role == Role.BUREAU and user.province_code:
        return user.province_code
    raise WorkflowError(_l("Only MIIT and the bureaus see the IP address statistics."))


def _size(start: str, end: str) -> int:
    return int(end, 16) - int(start, 16) + 1


def _rows(columns: tuple[Any, ...], model: Any, scope: str | None) -> Iterator[tuple[Any, ...]]:
    query = select(*columns)
    if scope is not None:
        query = query.join(User, User.id == model.unit_id).where(User.province_code == scope)
    return stream(query)


class _Units(dict[int, Figures]):
    """The reporting units of the scope by id; a record of any other account (not made by the workflow) gets
    a row of its own rather than being lost."""

    def __missing__(self, unit_id: int) -> Figures:
        self[unit_id] = Figures(f"#{unit_id}", f"#{unit_id}", None, units=1)
        return self[unit_id]


def _units(scope: str | None) -> _Units:
    query = select(User).where(User.role == Role.IP_REPORTER).order_by(User.province_code, User.username)
    if scope is not None:
        query = query.where(User.province_code == scope)
    return _Units({unit.id: Figures(unit.username, unit.organisation or unit.username, unit.province_code, units=1)
                   for unit in db.session.scalars(query)})


def unit_statistics(scope: str | None) -> list[Figures]:
    """One row per reporting unit of the scope (a province code, or None for all), by province and name."""
    units = _units(scope)
    for unit_id, family, derived, start, end in _rows(
            (IpBlock.unit_id, IpBlock.family, IpBlock.derived, IpBlock.start_key, IpBlock.end_key), IpBlock, scope):
        (units[unit_id].received if derived else units[unit_id].reported).add(family, _size(start, end))
    for unit_id, method, family, start, end in _rows(
            (IpAllocation.unit_id, IpAllocation.method, IpAllocation.family, IpAllocation.start_key,
             IpAllocation.end_key), IpAllocation, scope):
        units[unit_id].methods[method].add(family, _size(start, end))
    for unit_id, family, start, end in _rows(
            (IpSelfBrought.unit_id, IpSelfBrought.family, IpSelfBrought.start_key, IpSelfBrought.end_key),
            IpSelfBrought, scope):
        units[unit_id].self_brought.add(family, _size(start, end))
    return list(units.values())


def province_statistics(scope: str | None) -> list[Figures]:
    """One row per province of the scope (every province for None, in code order), each the sum of its
    units; units without a province come last in a row of their own (code "") if there are any."""
    provinces = select(Province).order_by(Province.sort_order, Province.code)
    if scope is not None:
        provinces = provinces.where(Province.code == scope)
    rows = {p.code: Figures(p.code, p.name, p.code) for p in db.session.scalars(provinces)}
    for unit in unit_statistics(scope):
        key = unit.province_code or ""
        if key not in rows:
            rows[key] = Figures(key, "未指定省份", unit.province_code)
        rows[key] += unit
    return list(rows.values())


def total(rows: list[Figures]) -> Figures:
    """The sum of some rows (合计)."""
    summed = Figures("", "合计", None)
    for row in rows:
        summed += row
    return summed
