"""IP地址备案 (SPEC §11, MIIT Order No. 34): source blocks, allocations and self-brought blocks of the
reporting units (`ip_reporter` accounts), and the audit findings the worker recomputes.

Addresses are 128-bit keys (IPv4 as IPv4-mapped IPv6) written as 32 hex digits (`ipindex.hex_key`): text
order is numeric order on SQLite and PostgreSQL alike, so "the block with the greatest start ≤ x" is one
probe of a B-tree index. On PostgreSQL an exclusion constraint (migration b13e0001a1b0) also refuses
overlapping source blocks and overlapping allocations of one unit in the database itself.
"""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import Boolean, CheckConstraint, Date, DateTime, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from extensions import db
from models.base import BigId, str_enum, utcnow


class IpOrigin(enum.StrEnum):
    """Where a source block came from."""

    REGISTRY = "registry"  # an Internet registry (APNIC, CNNIC …; code table ip_registry)
    UNIT = "unit"  # another reporting unit, reported by the receiver itself
    ALLOCATION = "allocation"  # another unit's re-allocation (分配方式 2): made and kept by the workflow


class AllocationMethod(enum.StrEnum):
    """分配方式 of the data-exchange specification."""

    ALLOCATED = "1"  # 分配并使用: to a user unit that uses it
    REALLOCATED = "2"  # 再分配: to another reporting unit, which receives it as a source block
    SELF_USE = "3"  # 自用
    RESERVED = "4"  # 预留


class UsageMethod(enum.StrEnum):
    """使用方式."""

    STATIC = "1"
    DYNAMIC = "2"
    UNKNOWN = "3"


class FindingKind(enum.StrEnum):
    """核查结果."""

    OUT_OF_BOUNDS = "out_of_bounds"  # 越界: an allocation outside its source block
    CONFLICT = "conflict"  # 冲突: addresses claimed by two units
    UNREPORTED = "unreported"  # 未报备 (1063): an ICP access range in no block reported for its ISP


class IpRange:
    """The address columns every kind of IP record has."""

    family: Mapped[int] = mapped_column(Integer)  # 4 or 6
    start_key: Mapped[str] = mapped_column(String(32))
    end_key: Mapped[str] = mapped_column(String(32))


class IpUserUnit:
    """The user unit of an allocation (分配方式 1) or of a self-brought block, as the specification lists it."""

    user_name: Mapped[str] = mapped_column(String(128), default="")
    user_nature: Mapped[str] = mapped_column(String(16), default="")  # code table unit_nature
    user_category: Mapped[str] = mapped_column(String(16), default="")  # code table unit_class
    user_industry: Mapped[str] = mapped_column(String(16), default="")  # code table industry
    province_code: Mapped[str | None] = mapped_column(String(6))
    city_code: Mapped[str | None] = mapped_column(String(6))
    county_code: Mapped[str | None] = mapped_column(String(6))
    address: Mapped[str] = mapped_column(String(255), default="")
    contact_name: Mapped[str] = mapped_column(String(64), default="")
    contact_phone: Mapped[str] = mapped_column(String(32), default="")
    contact_email: Mapped[str] = mapped_column(String(254), default="")
    usage: Mapped[str | None] = mapped_column(String(1))  # UsageMethod
    allocated_on: Mapped[date | None] = mapped_column(Date)
    gateway_ip: Mapped[str] = mapped_column(String(45), default="")
    gateway_location: Mapped[str] = mapped_column(String(255), default="")
    redirect_server: Mapped[bool] = mapped_column(Boolean, default=False)  # 是否用作域名跳转服务器
    remark: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class IpBlock(IpRange, db.Model):
    """来源信息: a block a unit holds. Manually reported blocks (`derived` false) never overlap each other;
    a block made by a re-allocation (`allocation_id`) lies inside the giver's block."""

    __tablename__ = "ip_blocks"
    __table_args__ = (
        Index("ix_ip_blocks_derived_start", "derived", "start_key"),
        Index("ix_ip_blocks_unit_start", "unit_id", "start_key"),
        Index("ix_ip_blocks_source_unit_id", "source_unit_id"),
        CheckConstraint("start_key <= end_key", name="start_before_end"),
        CheckConstraint("(origin = 'allocation') = (allocation_id IS NOT NULL)", name="derived_has_allocation"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    origin: Mapped[IpOrigin] = mapped_column(str_enum(IpOrigin, "ip_origin"))
    derived: Mapped[bool] = mapped_column(Boolean, default=False)  # origin == allocation, as an index column
    registry_code: Mapped[str | None] = mapped_column(String(16))  # code table ip_registry
    source_unit_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    allocation_id: Mapped[int | None] = mapped_column(
        ForeignKey("ip_allocations.id", ondelete="CASCADE", use_alter=True), unique=True)
    remark: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    unit = relationship("User", foreign_keys=[unit_id])
    source_unit = relationship("User", foreign_keys=[source_unit_id])
    allocation: Mapped[IpAllocation | None] = relationship(foreign_keys=[allocation_id])


class IpAllocation(IpRange, IpUserUnit, db.Model):
    """分配及使用信息: a part of one of the reporter's source blocks; one reporter's never overlap."""

    __tablename__ = "ip_allocations"
    __table_args__ = (
        Index("ix_ip_allocations_unit_start", "unit_id", "start_key"),
        Index("ix_ip_allocations_block_start", "block_id", "start_key"),
        Index("ix_ip_allocations_target_unit_id", "target_unit_id"),
        CheckConstraint("start_key <= end_key", name="start_before_end"),
        CheckConstraint("(method = '2') = (target_unit_id IS NOT NULL)", name="target_iff_reallocated"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    block_id: Mapped[int] = mapped_column(ForeignKey("ip_blocks.id"))
    method: Mapped[str] = mapped_column(String(1))  # AllocationMethod
    target_unit_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    unit = relationship("User", foreign_keys=[unit_id])
    target_unit = relationship("User", foreign_keys=[target_unit_id])
    block: Mapped[IpBlock] = relationship(foreign_keys=[block_id])


class IpSelfBrought(IpRange, IpUserUnit, db.Model):
    """自带IP: a customer's own block brought to the reporter's network; one reporter's never overlap."""

    __tablename__ = "ip_self_brought"
    __table_args__ = (
        Index("ix_ip_self_brought_unit_start", "unit_id", "start_key"),
        Index("ix_ip_self_brought_start", "start_key"),
        CheckConstraint("start_key <= end_key", name="start_before_end"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    source_unit_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # a reporting unit of the registry
    source_name: Mapped[str] = mapped_column(String(128), default="")  # … or the name of where it came from

    unit = relationship("User", foreign_keys=[unit_id])
    source_unit = relationship("User", foreign_keys=[source_unit_id])


class IpFinding(IpRange, db.Model):
    """核查结果, recomputed as a whole by the worker (`workflow.ip_findings`)."""

    __tablename__ = "ip_findings"
    __table_args__ = (Index("ix_ip_findings_unit", "unit_id", "kind", "id"),
                      Index("ix_ip_findings_province", "province_code", "kind", "id"),
                      Index("ix_ip_findings_kind", "kind", "id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[FindingKind] = mapped_column(str_enum(FindingKind, "ip_finding_kind"))
    code: Mapped[str] = mapped_column(String(8), default="")  # the specification's result code (1063 …)
    unit_id: Mapped[int] = mapped_column(ForeignKey("users.id"))  # the unit that must act
    province_code: Mapped[str | None] = mapped_column(String(6))  # the unit's, for the bureau's scope
    other_unit_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    record_kind: Mapped[str] = mapped_column(String(16), default="")  # block / allocation / self_brought / access
    record_id: Mapped[int | None] = mapped_column(BigId)
    detail: Mapped[str] = mapped_column(Text, default="")
    computed_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    unit = relationship("User", foreign_keys=[unit_id])
    other_unit = relationship("User", foreign_keys=[other_unit_id])


class IpFindingsRun(db.Model):
    """When the findings were last recomputed, and whether the IP records changed since (the worker's cue)."""

    __tablename__ = "ip_findings_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    stale: Mapped[bool] = mapped_column(Boolean, default=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    findings: Mapped[int] = mapped_column(Integer, default=0)
    seconds: Mapped[float | None] = mapped_column(Float)
