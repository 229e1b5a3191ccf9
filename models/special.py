"""专项查询记录 (issue 17 §1): every query, unmasking and export of a special-query account, with its reason.

The audit log holds the same events (hash-chained); this table is their readable register: MIIT reads all of
it, a bureau the entries of its province's accounts (`province_code` is the account's, copied when written, so
that the register keeps saying where a query came from even if the account later moves)."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from extensions import db
from models.base import BigId, str_enum, utcnow


class SpecialQueryAction(enum.StrEnum):
    SEARCH = "search"  # 查询
    REVEAL = "reveal"  # 显示 (one record's personal data shown whole)
    EXPORT = "export"  # 导出


class SpecialQueryLog(db.Model):
    """One query, unmasking or export: who, what, when, why (案由 and case number), how many results."""

    __tablename__ = "special_query_log"
    __table_args__ = (
        Index("ix_special_query_log_province_id", "province_code", "id"),  # a bureau's register, newest first
        Index("ix_special_query_log_user_id", "user_id", "id"),  # one account's entries
        Index("ix_special_query_log_at", "at"),  # a date range
        Index("ix_special_query_log_case_number", "case_number"),  # every query of one case
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    username: Mapped[str] = mapped_column(String(64))
    #: the account's province (None: a national account)
    province_code: Mapped[str | None] = mapped_column(String(6))
    action: Mapped[SpecialQueryAction] = mapped_column(str_enum(SpecialQueryAction, "special_query_action"))
    kind: Mapped[str] = mapped_column(String(32))  # workflow.special_query.Kind
    term: Mapped[str] = mapped_column(String(253))
    reason: Mapped[str] = mapped_column(String(500))
    case_number: Mapped[str] = mapped_column(String(64))
    results: Mapped[int] = mapped_column(Integer, default=0)
    #: the record shown whole (a reveal): its type and id
    record_type: Mapped[str] = mapped_column(String(32), default="")
    record_id: Mapped[str] = mapped_column(String(64), default="")
    ip: Mapped[str] = mapped_column(String(45), default="")

    user = relationship("User")
