"""Accounts and what guards them: roles, users, verification codes, captchas, reset links, sign-in throttles."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING

from flask_login import UserMixin
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from extensions import db
from models.base import str_enum, utcnow

if TYPE_CHECKING:
    from models.codes import Province


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
#: roles whose accounts must belong to one province (others: optional, MIIT: none); a registrar
#: (domain_reporter) is national when MIIT creates it, of the bureau's province when a bureau does (issue 14)
PROVINCIAL_ROLES = frozenset({Role.BUREAU, Role.ISP, Role.IP_REPORTER})


class UserStatus(enum.StrEnum):
    ACTIVE = "active"
    PENDING = "pending"
    DISABLED = "disabled"


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
    #: an IP reporting unit's access-provider account: the ICP access ranges its blocks must cover (1063)
    isp_account_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime)
    session_epoch: Mapped[int] = mapped_column(Integer, default=0)

    province: Mapped[Province | None] = relationship(lazy="joined")
    created_by: Mapped[User | None] = relationship(remote_side=[id], foreign_keys=[created_by_id])
    isp_account: Mapped[User | None] = relationship(remote_side=[id], foreign_keys=[isp_account_id])

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
    """A single-use reset link; the table holds the token's hash, the e-mail the token.

    `password_fingerprint` binds the link to the password it was issued against: any change of the
    password (a reset by another link, a change, a staff reset) ends every outstanding link."""

    __tablename__ = "password_reset_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    password_fingerprint: Mapped[str] = mapped_column(String(64), server_default="")
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
