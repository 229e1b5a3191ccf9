"""Notices with their attachments, and the public list of cancelled and revoked filings (政务公开)."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from extensions import db
from models.base import BigId, str_enum, utcnow


class NoticeCategory(enum.StrEnum):
    """SPEC §9: the nine categories of notices."""

    BULLETIN = "bulletin"  # 公告栏
    LAWS = "laws"  # 法律法规
    PROCESS = "process"  # 备案流程
    HELP = "help"  # 系统帮助
    STATEMENT = "statement"  # 使用声明
    DOWNLOADS = "downloads"  # 相关下载
    SUPPORT = "support"  # 技术支持
    CONTACT = "contact"  # 联系我们
    DISCLOSURE = "disclosure"  # 政务公开


class Notice(db.Model):
    """A notice of MIIT (province None: national) or of a bureau (its province); public once published."""

    __tablename__ = "notices"
    __table_args__ = (Index("ix_notices_public", "published", "category", "published_at"),
                      Index("ix_notices_province", "province_code", "id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    category: Mapped[NoticeCategory] = mapped_column(str_enum(NoticeCategory, "notice_category"))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="")  # sanitised HTML
    province_code: Mapped[str | None] = mapped_column(ForeignKey("provinces.code"))
    published: Mapped[bool] = mapped_column(Boolean, default=False)
    published_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    attachments: Mapped[list[NoticeAttachment]] = relationship(
        back_populates="notice", cascade="all, delete-orphan", order_by="NoticeAttachment.id")


class NoticeAttachment(db.Model):
    """A file of a notice, stored outside the web root under `stored_name` (generated, never the user's)."""

    __tablename__ = "notice_attachments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    notice_id: Mapped[int] = mapped_column(ForeignKey("notices.id", ondelete="CASCADE"), index=True)
    stored_name: Mapped[str] = mapped_column(String(64), unique=True)
    original_name: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    notice: Mapped[Notice] = relationship(back_populates="attachments")


class DisclosureKind(enum.StrEnum):
    """Why a filing left the registry (FAQ 17): the reason category of the public list."""

    CANCELLED = "cancelled"  # 注销, asked by the owner
    REVOKED = "revoked"  # 撤销
    LICENCE_REVOKED = "licence_revoked"  # 吊销


class DisclosureEntry(db.Model):
    """政务公开: one public line per cancelled or revoked filing (entity or website)."""

    __tablename__ = "disclosures"
    __table_args__ = (Index("ix_disclosures_happened", "happened_at"),
                      Index("ix_disclosures_province", "province_code", "kind"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[DisclosureKind] = mapped_column(str_enum(DisclosureKind, "disclosure_kind"))
    number: Mapped[str] = mapped_column(String(40))
    unit_name: Mapped[str] = mapped_column(String(128))
    province_code: Mapped[str] = mapped_column(ForeignKey("provinces.code"))
    happened_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
