"""The data-exchange API's state (issue 16): the callers' credentials, the answers of their write calls (the
per-credential sequence numbers and their idempotency), and the event feed."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from extensions import db
from models.base import BigId, utcnow

#: what a credential may be used for: the filing operations, the IP reports, the domain reports, the event feed
SCOPES = ("filings", "ip", "domain", "events")


class ApiCredential(db.Model):
    """A user's credential for the API: the secret is shown once and kept only as its SHA-256 (it is 256 random
    bits, so a plain hash cannot be reversed by guessing); `key_id` is the public half that finds the row."""

    __tablename__ = "api_credentials"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(32), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[str] = mapped_column(String(64))  # comma-separated, of SCOPES
    allowed_networks: Mapped[str] = mapped_column(Text, default="")  # one CIDR a line; empty: any address
    expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_used_ip: Mapped[str] = mapped_column(String(45), default="")
    #: the sequence number the next write call must carry
    next_sequence: Mapped[int] = mapped_column(BigInteger, default=1)
    #: the feed position acknowledged by the caller: events up to it are not delivered again
    acked_event_id: Mapped[int] = mapped_column(BigInteger, default=0)
    webhook_url: Mapped[str | None] = mapped_column(String(2048))
    webhook_secret: Mapped[str | None] = mapped_column(String(64))
    webhook_delivered_id: Mapped[int] = mapped_column(BigInteger, default=0)
    webhook_attempts: Mapped[int] = mapped_column(Integer, default=0)
    webhook_next_at: Mapped[datetime | None] = mapped_column(DateTime)
    webhook_last_error: Mapped[str] = mapped_column(String(255), default="")

    user = relationship("User", lazy="joined")

    @property
    def scope_set(self) -> frozenset[str]:
        return frozenset(filter(None, self.scopes.split(",")))

    @property
    def networks(self) -> list[str]:
        return [line.strip() for line in self.allowed_networks.splitlines() if line.strip()]

    def usable_at(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class ExchangeCall(db.Model):
    """The stored answer of a write call: a repeated sequence number is answered from here, nothing written again."""

    __tablename__ = "exchange_calls"
    __table_args__ = (UniqueConstraint("credential_id", "sequence"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    credential_id: Mapped[int] = mapped_column(ForeignKey("api_credentials.id"))
    sequence: Mapped[int] = mapped_column(BigInteger)
    operation: Mapped[str] = mapped_column(String(64))
    request_digest: Mapped[str] = mapped_column(String(64))
    status: Mapped[int] = mapped_column(Integer)
    response: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ExchangeEvent(db.Model):
    """An outcome that concerns one user (the recipient), in that user's feed. Inserted unsequenced by the
    transaction that made the outcome; `workflow.exchange.sequence_events` later gives it its feed id `seq` in
    commit order, so that a caller who acknowledged up to an id never misses an event committed after it."""

    __tablename__ = "exchange_events"
    __table_args__ = (
        Index("ix_exchange_events_user_seq", "user_id", "seq"),
        Index("ix_exchange_events_pending", "id", postgresql_where=text("seq IS NULL"),
              sqlite_where=text("seq IS NULL")),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    seq: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    user_id: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(48))
    object_type: Mapped[str] = mapped_column(String(32), default="")
    object_id: Mapped[str] = mapped_column(String(64), default="")
    payload: Mapped[str] = mapped_column(Text, default="{}")
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ExchangeFeedHead(db.Model):
    """The feed's last sequence number: one row, locked only by the sequencer for its short transaction."""

    __tablename__ = "exchange_feed_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
