"""Who holds an address (the chain from the reported block down to the user unit), and whether an ISP's filed
access ranges lie in blocks reported for it. Reads only; every step is one index probe."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, select

import ipindex
from extensions import db
from models import Access, AccessRange, IpAllocation, IpBlock, IpSelfBrought, Role, User, UserStatus


def in_live_access_ranges(address: Any) -> ColumnElement[bool]:
    """The condition on a query joining Access and AccessRange: a live access whose filed ranges hold `address`
    (an ipaddress object) — one index probe per bucket level (`ipindex`). The public lookup and 专项查询 share it."""
    key = ipindex.key_of(address)
    return and_(AccessRange.bucket.in_(ipindex.lookup_buckets(key)), AccessRange.start_key <= ipindex.hex_key(key),
                AccessRange.end_key >= ipindex.hex_key(key), Access.live)

#: a chain longer than this is a cycle in bad data, not a real hierarchy
MAX_DEPTH = 16


@dataclass(frozen=True)
class ChainStep:
    """One record holding the address: a source block of a unit, an allocation in it, or a self-brought block."""

    kind: str  # block / allocation / self_brought
    record: Any
    unit: User

    @property
    def range_text(self) -> str:
        return ipindex.range_text(self.record.start_key, self.record.end_key)

    def as_dict(self) -> dict[str, Any]:
        record = self.record
        step: dict[str, Any] = {"kind": self.kind, "id": record.id, "range": self.range_text,
                                "unit": self.unit.username, "unit_name": self.unit.organisation}
        if self.kind == "block":
            step |= {"origin": str(record.origin), "registry": record.registry_code}
        else:
            step |= {"user_name": record.user_name, "usage": record.usage, "province_code": record.province_code,
                     "city_code": record.city_code, "county_code": record.county_code}
        if self.kind == "allocation":
            step |= {"method": record.method,
                     "target_unit": record.target_unit.username if record.target_unit is not None else None}
        if self.kind == "self_brought":
            step |= {"source_unit": record.source_unit.username if record.source_unit is not None else None,
                     "source_name": record.source_name}
        return step


def _holding(model: Any, key: str, *conditions: Any) -> Any:
    found = db.session.execute(select(model).where(*conditions, model.start_key <= key)
                               .order_by(model.start_key.desc()).limit(1)).scalar_one_or_none()
    return found if found is not None and found.end_key >= key else None


def holder_chain(address: str) -> list[ChainStep]:
    """The records holding `address`, from the reported (registry) block down to the most specific one; a
    self-brought block holding it comes last. ValueError if it is not an address."""
    key = ipindex.hex_key(ipindex.address_key(address))
    chain: list[ChainStep] = []
    block = _holding(IpBlock, key, IpBlock.derived.is_(False))
    while block is not None and len(chain) < MAX_DEPTH:
        chain.append(ChainStep("block", block, block.unit))
        allocation = _holding(IpAllocation, key, IpAllocation.block_id == block.id)
        if allocation is None:
            break
        chain.append(ChainStep("allocation", allocation, allocation.unit))
        block = db.session.execute(select(IpBlock).where(IpBlock.allocation_id == allocation.id)).scalar_one_or_none()
    brought = _holding(IpSelfBrought, key)
    if brought is not None:
        chain.append(ChainStep("self_brought", brought, brought.unit))
    return chain


def reporting_units_of_isp(isp_id: int) -> list[int]:
    """The active IP reporting units that report the addresses of this access provider."""
    return list(db.session.execute(select(User.id).where(
        User.isp_account_id == isp_id, User.role == Role.IP_REPORTER, User.status == UserStatus.ACTIVE)).scalars())


@dataclass(frozen=True)
class Coverage:
    range_text: str
    covered: bool
    unit: User | None = None  # the unit whose block holds the range


def access_coverage(isp_id: int, ip_ranges: str) -> list[Coverage]:
    """For each filed range of an access ("start-end" per line): the reported block of one of the ISP's
    reporting units that holds it whole, if any (code 1063 when none)."""
    units = reporting_units_of_isp(isp_id)
    result = []
    for line in ip_ranges.splitlines():
        start_text, _, end_text = line.partition("-")
        try:
            start, end = ipindex.address_key(start_text), ipindex.address_key(end_text or start_text)
        except ValueError:
            continue
        result.append(_covered(units, start, end))
    return result


def _covered(units: list[int], start: int, end: int) -> Coverage:
    text = ipindex.range_text(start, end)
    start_key, end_key = ipindex.hex_key(start), ipindex.hex_key(end)
    for unit_id in units:
        for model in (IpBlock, IpSelfBrought):
            holder = _holding(model, start_key, model.unit_id == unit_id)
            if holder is not None and holder.end_key >= end_key:
                return Coverage(text, True, holder.unit)
    return Coverage(text, False)
