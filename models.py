"""Every SQLAlchemy model, with the enums for roles and states."""

from __future__ import annotations

import enum
from datetime import UTC, datetime

from flask_login import UserMixin
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from extensions import db

BigId = BigInteger().with_variant(Integer, "sqlite")


def utcnow() -> datetime:
    """Naive UTC, the one time representation stored (identical on SQLite and PostgreSQL)."""
    return datetime.now(UTC).replace(tzinfo=None)


def built_on(dialect: str, obj: object) -> bool:
    """False for schema objects declared only for another database (`.ddl_if(dialect=...)`)."""
    condition = getattr(obj, "_ddl_if", None)
    return condition is None or condition.dialect in (None, dialect)


def str_enum(enum_class: type[enum.Enum], name: str) -> Enum:
    """A portable enum column: VARCHAR + CHECK constraint, storing the values."""
    return Enum(
        enum_class,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=32,
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )


class Role(enum.StrEnum):
    ICP = "icp"
    ISP = "isp"
    IP_REPORTER = "ip_reporter"
    DOMAIN_REPORTER = "domain_reporter"
    MIIT = "miit"
    BUREAU = "bureau"
    PREAPPROVAL = "preapproval"
    CONTENT_ADMIN = "content_admin"
    SPECIAL_QUERY = "special_query"


#: 报备用户 (FAQ 29) and 管理用户 (FAQ 30)
FILING_ROLES = (Role.ICP, Role.ISP, Role.IP_REPORTER, Role.DOMAIN_REPORTER)
MANAGEMENT_ROLES = (
    Role.MIIT,
    Role.BUREAU,
    Role.PREAPPROVAL,
    Role.CONTENT_ADMIN,
    Role.SPECIAL_QUERY,
)
#: roles whose accounts must belong to one province (others: optional, MIIT: none)
PROVINCIAL_ROLES = frozenset({Role.BUREAU, Role.ISP, Role.IP_REPORTER, Role.DOMAIN_REPORTER})


class UserStatus(enum.StrEnum):
    ACTIVE = "active"
    PENDING = "pending"
    DISABLED = "disabled"


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


class User(UserMixin, db.Model):
    __tablename__ = "users"
    __table_args__ = (
        Index("ix_users_role_province", "role", "province_code"),
        Index("ix_users_status_role", "status", "role"),
        Index("ix_users_created_by_id", "created_by_id"),
        Index("ix_users_username_pattern", "username",
              postgresql_ops={"username": "varchar_pattern_ops"}).ddl_if(dialect="postgresql"),
        CheckConstraint("role != 'bureau' OR province_code IS NOT NULL", name="bureau_province"),
        CheckConstraint("can_import = false OR role = 'isp'", name="import_only_isp"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(str_enum(Role, "role"))
    province_code: Mapped[str | None] = mapped_column(ForeignKey("provinces.code"))
    organisation: Mapped[str] = mapped_column(String(128), default="")
    contact_name: Mapped[str] = mapped_column(String(64), default="")
    mobile: Mapped[str] = mapped_column(String(20), default="")
    email: Mapped[str] = mapped_column(String(254), default="")
    status: Mapped[UserStatus] = mapped_column(
        str_enum(UserStatus, "user_status"), default=UserStatus.ACTIVE
    )
    can_import: Mapped[bool] = mapped_column(Boolean, default=False)
    preapproval_category: Mapped[str | None] = mapped_column(String(16))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime)
    session_epoch: Mapped[int] = mapped_column(Integer, default=0)

    province: Mapped[Province | None] = relationship(lazy="joined")
    created_by: Mapped[User | None] = relationship(remote_side=[id])

    @validates("username")
    def _username_is_immutable(self, _key: str, value: str) -> str:
        if self.username is not None and value != self.username:
            raise ValueError("username is immutable")
        return value

    @property
    def is_active(self) -> bool:  # Flask-Login: disabled users cannot hold a session
        return self.status != UserStatus.DISABLED

    def get_id(self) -> str:
        """Session identity: id plus epoch, so a bumped epoch ends every session of the user."""
        return f"{self.id}:{self.session_epoch}"

    def __str__(self) -> str:
        return self.username


class AuditEvent(db.Model):
    """Append-only log (SPEC §12); `hash` chains each row to the one before."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_province_id", "province_code", "id"),  # a bureau's list, newest first
        Index("ix_audit_events_province_at", "province_code", "at"),  # a bureau's date ranges
        Index("ix_audit_events_object", "object_id", "object_type"),
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
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditHead(db.Model):
    """A single row holding the chain's last hash; locked while an event is appended."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_hash: Mapped[str] = mapped_column(String(64))
    last_event_id: Mapped[int | None] = mapped_column(BigId)


class CodePurpose(enum.StrEnum):
    REGISTER_MOBILE = "register_mobile"
    REGISTER_EMAIL = "register_email"
    CHANGE_MOBILE = "change_mobile"
    CHANGE_EMAIL = "change_email"


class VerificationCode(db.Model):
    """A 6-digit code sent by SMS or e-mail; only its keyed hash is stored."""

    __tablename__ = "verification_codes"
    __table_args__ = (Index("ix_verification_codes_user_purpose", "user_id", "purpose", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    purpose: Mapped[CodePurpose] = mapped_column(str_enum(CodePurpose, "code_purpose"))
    target: Mapped[str] = mapped_column(String(254))
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    used_at: Mapped[datetime | None] = mapped_column(DateTime)


class Captcha(db.Model):
    """An image captcha's answer, kept on the server; the browser only holds the random id."""

    __tablename__ = "captchas"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    answer_hash: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    used_at: Mapped[datetime | None] = mapped_column(DateTime)


class PasswordResetToken(db.Model):
    """A single-use reset link; the table holds the token's hash, the e-mail the token."""

    __tablename__ = "password_reset_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    used_at: Mapped[datetime | None] = mapped_column(DateTime)


class Throttle(db.Model):
    """Failed attempts per key ("account:<name>" or "address:<ip>") and the lock they earned."""

    __tablename__ = "throttles"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime)


class MessageChannel(enum.StrEnum):
    EMAIL = "email"
    SMS = "sms"


class MessageStatus(enum.StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class OutboxMessage(db.Model):
    """SPEC §13: written in the transaction of the change, delivered by `flask outbox run`."""

    __tablename__ = "outbox_messages"
    __table_args__ = (Index("ix_outbox_messages_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    channel: Mapped[MessageChannel] = mapped_column(str_enum(MessageChannel, "message_channel"))
    recipient: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(255), default="")
    body: Mapped[str] = mapped_column(Text)
    attachment_name: Mapped[str | None] = mapped_column(String(255))
    attachment: Mapped[bytes | None] = mapped_column(LargeBinary)
    sensitive: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[MessageStatus] = mapped_column(
        str_enum(MessageStatus, "message_status"), default=MessageStatus.QUEUED
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime)
