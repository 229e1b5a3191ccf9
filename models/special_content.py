"""专项内容管理 (issue 17 §2): the special filing of a website declaring special content (电子公告服务 and the
网站服务内容 codes that need one), its history, and the forbidden words of website names."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Boolean, DateTime, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from extensions import db
from models.base import BigId, str_enum, utcnow

if TYPE_CHECKING:
    from models import Entity, User, Website


class SpecialState(enum.StrEnum):
    PENDING = "pending"  # 待确认
    CONFIRMED = "confirmed"  # 已确认
    REFUSED = "refused"  # 不予确认 (blocks approval; the reason is shown to the bureau and the applicant)


class SpecialContentItem(db.Model):
    """One website's special filing: what it declared (a snapshot) and the content department's decision.

    One row per website; a new declaration re-opens it (`workflow.special_content.open_items`)."""

    __tablename__ = "special_content_items"
    __table_args__ = (Index("ix_special_content_items_queue", "province_code", "state", "id"),
                      Index("ix_special_content_items_state", "state", "id"),
                      Index("ix_special_content_items_entity_id", "entity_id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    #: the import that wrote this row; hidden from every query while that import is staging (workflow.imports)
    import_job_id: Mapped[int | None] = mapped_column(Integer)
    website_id: Mapped[int] = mapped_column(ForeignKey("websites.id", ondelete="CASCADE"), unique=True)
    entity_id: Mapped[int] = mapped_column(ForeignKey("entities.id", ondelete="CASCADE"))
    province_code: Mapped[str] = mapped_column(ForeignKey("provinces.code"))
    #: the declaration confirmed or refused: 电子公告 (with its sections) and the special service content code
    bbs: Mapped[bool] = mapped_column(Boolean, default=False)
    bbs_sections: Mapped[str] = mapped_column(String(255), default="")
    service_content: Mapped[str] = mapped_column(String(16), default="")
    state: Mapped[SpecialState] = mapped_column(str_enum(SpecialState, "special_state"), default=SpecialState.PENDING)
    reason: Mapped[str] = mapped_column(String(500), default="")
    reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime)
    opened_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    website: Mapped[Website] = relationship(back_populates="special_item")
    entity: Mapped[Entity] = relationship()
    reviewer: Mapped[User | None] = relationship()


class SpecialContentEvent(db.Model):
    """The history of a website's special filing: opened, re-opened, confirmed, refused. Kept when the website's
    draft row is replaced (a re-saved draft), hence the website's name and id as plain values."""

    __tablename__ = "special_content_events"
    __table_args__ = (Index("ix_special_content_events_entity", "entity_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    import_job_id: Mapped[int | None] = mapped_column(Integer)
    entity_id: Mapped[int] = mapped_column(ForeignKey("entities.id", ondelete="CASCADE"))
    website_id: Mapped[int] = mapped_column(BigId)
    website_name: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(16))  # opened / reopened / confirmed / refused
    declaration: Mapped[str] = mapped_column(String(500), default="")
    reason: Mapped[str] = mapped_column(String(500), default="")
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    actor: Mapped[User | None] = relationship()


class ForbiddenWord(db.Model):
    """A word no website name may contain: national (province None, kept by a content admin MIIT created) or
    of one province (its filings only)."""

    __tablename__ = "forbidden_words"
    __table_args__ = (UniqueConstraint("word", name="uq_forbidden_words_word"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    word: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(500), default="")
    province_code: Mapped[str | None] = mapped_column(ForeignKey("provinces.code"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


def forbidden_word_in(name: str, words: Iterable[str]) -> str | None:
    """The first of `words` the name contains (letters compared case-insensitively), or None."""
    folded = name.casefold()
    return next((word for word in words if word.casefold() in folded), None)
