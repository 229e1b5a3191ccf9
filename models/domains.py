"""域名报备 (SPEC §11, 工信部信管〔2017〕264号, MIIT Order No. 43): what registries and registrars
(`domain_reporter` accounts) report of each domain they register, and the registrant check's findings."""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import Date, DateTime, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from extensions import db
from models.base import BigId, str_enum, utcnow


class DomainStatus(enum.StrEnum):
    NORMAL = "normal"  # 正常
    SUSPENDED = "suspended"  # 暂停解析
    EXPIRED = "expired"  # 已过期
    DELETED = "deleted"  # 已删除 (a deleted report stays: the check says 已删除; another registrar may report anew)


class Verdict(enum.StrEnum):
    """The registrant check of one filed domain."""

    CONSISTENT = "consistent"  # 一致
    EXPIRING = "expiring"  # 即将到期 (consistent, expiring within 3 months)
    INCONSISTENT = "inconsistent"  # 不一致
    UNREPORTED = "unreported"  # 未报备
    EXPIRED = "expired"  # 已过期
    DELETED = "deleted"  # 已删除


#: the verdicts that block ISP verification and approval under DOMAIN_REGISTRANT_CHECK = "block"
BLOCKING_VERDICTS = frozenset({Verdict.INCONSISTENT, Verdict.UNREPORTED, Verdict.EXPIRED, Verdict.DELETED})
LIVE_REPORT_SQL = "status != 'deleted'"


CONTACT_FIELDS = ("name", "organisation", "certificate_type", "certificate_number", "address", "province_code",
                  "city", "email", "phone")


class DomainReport(db.Model):
    """One registrar's report of one domain. At most one report per domain is live (not deleted)."""

    __tablename__ = "domain_reports"
    __table_args__ = (
        Index("uq_domain_reports_live_domain", "domain", unique=True, sqlite_where=text(LIVE_REPORT_SQL),
              postgresql_where=text(LIVE_REPORT_SQL)),
        Index("ix_domain_reports_domain", "domain", "id"),
        Index("ix_domain_reports_registrar", "registrar_id", "domain"),
        Index("ix_domain_reports_registrant_name", "registrant_name"),
        Index("ix_domain_reports_registrant_certificate", "registrant_certificate_number"),
        # 专项查询 (workflow.special_query): the registrant's e-mail and telephone, exact
        Index("ix_domain_reports_registrant_email", "registrant_email"),
        Index("ix_domain_reports_registrant_phone", "registrant_phone"),
        Index("ix_domain_reports_expires", "expires_on"),
        # the console's prefix search (LIKE 'x%') on PostgreSQL
        Index("ix_domain_reports_domain_pattern", "domain",
              postgresql_ops={"domain": "varchar_pattern_ops"}).ddl_if(dialect="postgresql"),
        Index("ix_domain_reports_registrant_pattern", "registrant_name",
              postgresql_ops={"registrant_name": "varchar_pattern_ops"}).ddl_if(dialect="postgresql"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    registrar_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    #: normalised as the filings' domains are (`validators.normalise_domain`: lower case, punycode, no trailing dot)
    domain: Mapped[str] = mapped_column(String(253))
    domain_type: Mapped[str] = mapped_column(String(16))  # code table domain_type
    registered_on: Mapped[date] = mapped_column(Date)
    expires_on: Mapped[date] = mapped_column(Date)
    registrar_name: Mapped[str] = mapped_column(String(128), default="")  # the registrar as it names itself
    name_servers: Mapped[str] = mapped_column(Text, default="")  # one per line
    status: Mapped[DomainStatus] = mapped_column(str_enum(DomainStatus, "domain_status"), default=DomainStatus.NORMAL)
    registrant_name: Mapped[str] = mapped_column(String(128), default="")
    registrant_organisation: Mapped[str] = mapped_column(String(128), default="")
    registrant_certificate_type: Mapped[str] = mapped_column(String(16), default="")
    registrant_certificate_number: Mapped[str] = mapped_column(String(64), default="")
    registrant_address: Mapped[str] = mapped_column(String(255), default="")
    registrant_province_code: Mapped[str | None] = mapped_column(String(6))
    registrant_city: Mapped[str] = mapped_column(String(64), default="")
    registrant_email: Mapped[str] = mapped_column(String(254), default="")
    registrant_phone: Mapped[str] = mapped_column(String(32), default="")
    admin_name: Mapped[str] = mapped_column(String(128), default="")
    admin_organisation: Mapped[str] = mapped_column(String(128), default="")
    admin_certificate_type: Mapped[str] = mapped_column(String(16), default="")
    admin_certificate_number: Mapped[str] = mapped_column(String(64), default="")
    admin_address: Mapped[str] = mapped_column(String(255), default="")
    admin_province_code: Mapped[str | None] = mapped_column(String(6))
    admin_city: Mapped[str] = mapped_column(String(64), default="")
    admin_email: Mapped[str] = mapped_column(String(254), default="")
    admin_phone: Mapped[str] = mapped_column(String(32), default="")
    payer_name: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    registrar = relationship("User", foreign_keys=[registrar_id])


class DomainFlag(db.Model):
    """域名核验异常: a filed website whose domain's registrant check fails since a report changed (or since the
    check was introduced). Resolved (`resolved_at`) when the check passes again; the owner and ISPs are
    e-mailed once per flag."""

    __tablename__ = "domain_flags"
    __table_args__ = (
        Index("uq_domain_flags_open", "website_id", "domain", unique=True, sqlite_where=text("resolved_at IS NULL"),
              postgresql_where=text("resolved_at IS NULL")),
        Index("ix_domain_flags_province", "province_code", "resolved_at", "id"),
        Index("ix_domain_flags_domain", "domain"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    website_id: Mapped[int] = mapped_column(ForeignKey("websites.id", ondelete="CASCADE"))
    province_code: Mapped[str] = mapped_column(String(6))
    domain: Mapped[str] = mapped_column(String(253))
    verdict: Mapped[Verdict] = mapped_column(str_enum(Verdict, "domain_verdict"))
    detail: Mapped[str] = mapped_column(Text, default="")  # what changed, in words
    since: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    notified_at: Mapped[datetime | None] = mapped_column(DateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime)

    website = relationship("Website")


class DomainChange(db.Model):
    """A domain whose report changed: the worker's queue for the reconciliation (one row per change)."""

    __tablename__ = "domain_changes"
    __table_args__ = (Index("ix_domain_changes_pending", "processed_at", "id"),
                      Index("ix_domain_changes_domain", "domain", "what"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    domain: Mapped[str] = mapped_column(String(253))
    what: Mapped[str] = mapped_column(String(255), default="")
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(DateTime)
