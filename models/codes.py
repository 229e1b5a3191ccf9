"""The code tables: provinces, cities and counties, and the values of the 11 tables (SPEC, FAQ)."""

from __future__ import annotations

import enum

from sqlalchemy import (
    Boolean,
    Index,
    Integer,
    String,
    UniqueConstraint,
    select,
)
from sqlalchemy.orm import Mapped, mapped_column

from extensions import db
from models.base import str_enum


class CodeTable(enum.StrEnum):
    """The code tables of SPEC §10 other than 行政区划 (which is `Province`)."""

    UNIT_NATURE = "unit_nature"
    CERTIFICATE_TYPE = "certificate_type"
    SERVICE_CONTENT = "service_content"
    PREAPPROVAL_CATEGORY = "preapproval_category"
    ACCESS_METHOD = "access_method"
    LANGUAGE = "language"
    UNIT_CLASS = "unit_class"
    INDUSTRY = "industry"
    IP_ALLOCATION_METHOD = "ip_allocation_method"
    IP_USAGE_METHOD = "ip_usage_method"
    IP_REGISTRY = "ip_registry"
    DOMAIN_TYPE = "domain_type"


class Province(db.Model):
    """行政区划 (GB/T 2260 province-level codes) with the filing-number abbreviation."""

    __tablename__ = "provinces"

    code: Mapped[str] = mapped_column(String(6), primary_key=True)
    name: Mapped[str] = mapped_column(String(32), unique=True)
    abbr: Mapped[str] = mapped_column(String(2), unique=True)
    sort_order: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    def __str__(self) -> str:
        return self.name


class Division(db.Model):
    """行政区划 below the province (GB/T 2260 cities and counties), for the user units of the IP reports."""

    __tablename__ = "divisions"
    __table_args__ = (Index("ix_divisions_parent", "parent_code", "code"),)

    code: Mapped[str] = mapped_column(String(6), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    parent_code: Mapped[str] = mapped_column(String(6))  # a province's code for a city, a city's for a county
    level: Mapped[int] = mapped_column(Integer)  # 2 city, 3 county

    def __str__(self) -> str:
        return self.name


class CodeItem(db.Model):
    """One value of one code table; `extra` holds a table-specific hint (e.g. allowed natures)."""

    __tablename__ = "code_items"
    __table_args__ = (UniqueConstraint("table", "code", name="uq_code_items_table_code"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    table: Mapped[CodeTable] = mapped_column(str_enum(CodeTable, "code_table"))
    code: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(64))
    extra: Mapped[str | None] = mapped_column(String(255))
    sort_order: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    def __str__(self) -> str:
        return self.name


def code_values(table: CodeTable) -> list[tuple[str, str]]:
    """The (code, name) pairs of a code table that are in use, in their order."""
    return [(code, name) for code, name in db.session.execute(
        select(CodeItem.code, CodeItem.name).where(CodeItem.table == table, CodeItem.active)
        .order_by(CodeItem.sort_order))]
