"""The audit log's rows: events, the sequencer's head, signed tree heads (audit.py keeps them)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    DateTime,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from extensions import db
from models.base import BigId, utcnow


class AuditEvent(db.Model):
    """Append-only log (SPEC §12). A writer inserts an event unchained (`content_hash` only); the sequencer
    (`audit.sequence_pending`) later gives it its place `seq` and chains it: `hash` covers `prev_hash`, `seq`
    and `content_hash`."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_province_id", "province_code", "id"),  # a bureau's list, newest first
        Index("ix_audit_events_province_at", "province_code", "at"),  # a bureau's date ranges
        Index("ix_audit_events_object", "object_id", "object_type"),
        # the events waiting for the sequencer, found without reading the integrated ones
        Index("ix_audit_events_pending", "id", postgresql_where=text("seq IS NULL"),
              sqlite_where=text("seq IS NULL")),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(Integer)
    actor_username: Mapped[str] = mapped_column(String(64), default="", index=True)
    actor_role: Mapped[str] = mapped_column(String(32), default="")
    province_code: Mapped[str | None] = mapped_column(String(6))
    action: Mapped[str] = mapped_column(String(64), index=True)
    object_type: Mapped[str] = mapped_column(String(64), default="")
    object_id: Mapped[str] = mapped_column(String(64), default="")
    changes: Mapped[str] = mapped_column(Text, default="{}")
    ip: Mapped[str] = mapped_column(String(45), default="")
    content_hash: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int | None] = mapped_column(BigId, unique=True)
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    hash: Mapped[str | None] = mapped_column(String(64))


class AuditHead(db.Model):
    """The chain's last place and hash: a single row written only by the sequencer."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigId, default=0)
    last_hash: Mapped[str] = mapped_column(String(64))


class AuditTreeHead(db.Model):
    """A signed tree head: the chain's hash at `tree_size` events, signed (compact JWS, Ed25519) by the
    registry's key ring, so that whoever holds the public keys can tell the history was never rewritten."""

    __tablename__ = "audit_tree_heads"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tree_size: Mapped[int] = mapped_column(BigId, unique=True)
    head_hash: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime)
    kid: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(Text)
