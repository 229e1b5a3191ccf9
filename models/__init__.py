"""Every SQLAlchemy model, with the enums for roles and states."""

from __future__ import annotations

import enum
from datetime import date, datetime

from flask_login import UserMixin
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    select,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from extensions import db
from models.base import MAX_ID as MAX_ID
from models.base import MAX_INTEGER_ID as MAX_INTEGER_ID
from models.base import BigId, str_enum
from models.base import built_on as built_on  # re-exported: models is the one import for all of them
from models.base import starts_with as starts_with
from models.base import utcnow as utcnow


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


class DeadlineReminder(db.Model):
    """The daily deadline reminder of a province's bureau, queued once per Beijing day (workflow.deadlines)."""

    __tablename__ = "deadline_reminders"
    __table_args__ = (UniqueConstraint("province_code", "day", name="uq_deadline_reminders_day"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    province_code: Mapped[str] = mapped_column(ForeignKey("provinces.code"))
    day: Mapped[date] = mapped_column(Date)
    applications: Mapped[int] = mapped_column(Integer)  # how many were listed
    recipients: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


# --- filings (SPEC §3–§6) ---------------------------------------------------------------------

class FilingStatus(enum.StrEnum):
    """Of an entity or a website."""

    DRAFT = "draft"  # never approved yet
    ACTIVE = "active"  # approved, holds a number
    NO_ACCESS = "no_access"  # its last access was cancelled (FAQ 69): frozen
    CANCELLED = "cancelled"
    REVOKED = "revoked"


#: statuses in which a certificate number / domain is taken (a cancelled or revoked filing frees it)
TAKEN_STATUSES = ("draft", "active", "no_access")


class ApplicationKind(enum.StrEnum):
    NEW_FILING = "new_filing"
    NEW_WEBSITE = "new_website"
    NEW_ACCESS = "new_access"
    CHANGE = "change"
    CANCEL_WEBSITE = "cancel_website"
    CANCEL_ENTITY = "cancel_entity"
    CANCEL_ACCESS = "cancel_access"


class ApplicationState(enum.StrEnum):
    DRAFT = "draft"  # a new filing: editable (new, returned by an ISP, or rejected by the bureau)
    ISP_REVIEW = "isp_review"
    BUREAU_REVIEW = "bureau_review"
    APPROVED = "approved"
    REJECTED = "rejected"  # a later application (change, access, cancellation) the bureau refused: ended
    WITHDRAWN = "withdrawn"  # a later application its submitter withdrew, or left open on an ended filing


#: the states in which an application is over: it blocks nothing (one open application per entity)
CLOSED_APPLICATION_STATES = (ApplicationState.APPROVED, ApplicationState.REJECTED, ApplicationState.WITHDRAWN)


class ReviewState(enum.StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"  # an ISP verified / a pre-approval authority confirmed
    RETURNED = "returned"  # an ISP returned / a pre-approval authority disputed


class Entity(db.Model):
    """主体: the unit (or person) that files; one active filing per certificate number (FAQ 62)."""

    __tablename__ = "entities"
    __table_args__ = (
        Index("uq_entities_certificate_taken", "certificate_number", unique=True,
              sqlite_where=text("status IN ('draft', 'active', 'no_access')"),
              postgresql_where=text("status IN ('draft', 'active', 'no_access')")),
        Index("ix_entities_province_status", "province_code", "status", "id"),
        # a province's list newest first, its filters checked in the index (no table row read for a miss)
        Index("ix_entities_province_id_filters", "province_code", "id", "status", "unit_nature", "approved_at"),
        Index("ix_entities_unit_name", "unit_name"),
        Index("ix_entities_unit_name_pattern", "unit_name",
              postgresql_ops={"unit_name": "varchar_pattern_ops"}).ddl_if(dialect="postgresql"),
        Index("ix_entities_owner_id", "owner_id"),
        # the console's search box and filters (admin_views/search.py)
        Index("ix_entities_certificate_number", "certificate_number",
              postgresql_ops={"certificate_number": "varchar_pattern_ops"}),
        Index("ix_entities_province_unit_name", "province_code", "unit_name"),
        Index("ix_entities_province_approved_filters", "province_code", "approved_at", "status", "unit_nature"),
        Index("ix_entities_approved_at", "approved_at"),
        Index("ix_entities_province_nature", "province_code", "unit_nature", "id"),
        # a bureau's number-prefix search, with the status filter checked in the index
        Index("ix_entities_province_number_status", "province_code", "number", "status"),
        Index("ix_entities_number_pattern", "number",
              postgresql_ops={"number": "varchar_pattern_ops"}).ddl_if(dialect="postgresql"),
        Index("ix_entities_licence_number_pattern", "licence_number",
              postgresql_ops={"licence_number": "varchar_pattern_ops"}).ddl_if(dialect="postgresql"),
        # 专项查询 (workflow.special_query): the responsible person, exact — nationally, or in one province (a
        # provincial account's query is one seek, however many filings of other provinces share the value)
        Index("ix_entities_responsible_name", "responsible_name", "province_code"),
        Index("ix_entities_responsible_id_number", "responsible_id_number", "province_code"),
        Index("ix_entities_responsible_mobile", "responsible_mobile", "province_code"),
        Index("ix_entities_responsible_email", "responsible_email", "province_code"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    #: the import that wrote this row; hidden from every query while that import is staging (workflow.imports)
    import_job_id: Mapped[int | None] = mapped_column(Integer)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    province_code: Mapped[str] = mapped_column(ForeignKey("provinces.code"))
    unit_name: Mapped[str] = mapped_column(String(128))
    unit_nature: Mapped[str] = mapped_column(String(16))
    certificate_type: Mapped[str] = mapped_column(String(16))
    certificate_number: Mapped[str] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(String(255), default="")
    responsible_name: Mapped[str] = mapped_column(String(64), default="")
    responsible_id_number: Mapped[str] = mapped_column(String(64), default="")
    responsible_mobile: Mapped[str] = mapped_column(String(20), default="")
    responsible_email: Mapped[str] = mapped_column(String(254), default="")
    commercial: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[FilingStatus] = mapped_column(str_enum(FilingStatus, "filing_status"), default=FilingStatus.DRAFT)
    number: Mapped[str | None] = mapped_column(String(32), unique=True)
    licence_number: Mapped[str | None] = mapped_column(String(32), unique=True)
    website_seq: Mapped[int] = mapped_column(Integer, default=0)  # last "-n" given; never reused
    approved_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    websites: Mapped[list[Website]] = relationship(back_populates="entity", order_by="Website.id")


class Website(db.Model):
    __tablename__ = "websites"
    # a filing's websites from the index alone, with the staged-rows criterion (workflow.imports) it is read with
    __table_args__ = (Index("ix_websites_entity_covering", "entity_id", "id", "import_job_id"),
                      Index("ix_websites_number_pattern", "number",
                            postgresql_ops={"number": "varchar_pattern_ops"}).ddl_if(dialect="postgresql"),
                      # 专项查询 (workflow.special_query): the website's responsible person, exact
                      Index("ix_websites_responsible_name", "responsible_name"),
                      Index("ix_websites_responsible_mobile", "responsible_mobile"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    #: the import that wrote this row; hidden from every query while that import is staging (workflow.imports)
    import_job_id: Mapped[int | None] = mapped_column(Integer)
    entity_id: Mapped[int] = mapped_column(ForeignKey("entities.id"))
    name: Mapped[str] = mapped_column(String(128))
    home_url: Mapped[str] = mapped_column(String(512), default="")
    service_content: Mapped[str] = mapped_column(String(16), default="")
    languages: Mapped[str] = mapped_column(String(64), default="1")  # code-table codes, comma separated
    responsible_name: Mapped[str] = mapped_column(String(64), default="")
    responsible_mobile: Mapped[str] = mapped_column(String(20), default="")
    bbs: Mapped[bool] = mapped_column(Boolean, default=False)  # 电子公告 special filing (FAQ 12–13)
    bbs_sections: Mapped[str] = mapped_column(String(255), default="")
    status: Mapped[FilingStatus] = mapped_column(str_enum(FilingStatus, "filing_status"), default=FilingStatus.DRAFT)
    number: Mapped[str | None] = mapped_column(String(40), unique=True)
    approved_at: Mapped[datetime | None] = mapped_column(DateTime)

    entity: Mapped[Entity] = relationship(back_populates="websites")
    domains: Mapped[list[Domain]] = relationship(back_populates="website", order_by="Domain.id",
                                                 cascade="all, delete-orphan")
    preapprovals: Mapped[list[PreapprovalItem]] = relationship(back_populates="website",
                                                              order_by="PreapprovalItem.id",
                                                              cascade="all, delete-orphan")
    accesses: Mapped[list[Access]] = relationship(back_populates="website", order_by="Access.id",
                                                  cascade="all, delete-orphan")
    #: its special filing (专项内容, issue 17 §2), when it declares special content
    special_item: Mapped[SpecialContentItem | None] = relationship(back_populates="website",
                                                                   cascade="all, delete-orphan")


class Domain(db.Model):
    """A normalised domain (or bare IP, FAQ 7); on at most one live website in the registry."""

    __tablename__ = "domains"
    __table_args__ = (
        Index("uq_domains_live_name", "name", unique=True, sqlite_where=text("live"),
              postgresql_where=text("live")),
        Index("ix_domains_name", "name"),
        Index("ix_domains_website_id", "website_id"),
        Index("ix_domains_registered", "registered"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    website_id: Mapped[int] = mapped_column(ForeignKey("websites.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(253))
    live: Mapped[bool] = mapped_column(Boolean, default=True)  # false once its website is cancelled/revoked
    #: the registered domain it lies under (`validators.registered_domain`): what a registrar reports (issue 14)
    registered: Mapped[str] = mapped_column(String(253), default="")

    website: Mapped[Website] = relationship(back_populates="domains")


class PreapprovalItem(db.Model):
    """前置审批 (FAQ 11, 59): confirmed by the pre-approval user of its category before approval."""

    __tablename__ = "preapproval_items"
    __table_args__ = (Index("ix_preapproval_items_queue", "category", "state", "id"),
                      Index("ix_preapproval_items_website_category", "website_id", "category"),
                      # a province's filings with an item of a category, from the index alone with the staged-rows
                      # criterion (workflow.imports): the bureau queue's filter
                      Index("ix_preapproval_items_category_province_entity", "category", "province_code", "entity_id",
                            "import_job_id"),
                      # the foreign key's: a deleted entity (a staged import removed) finds its items without a scan
                      Index("ix_preapproval_items_entity_id", "entity_id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    #: the import that wrote this row; hidden from every query while that import is staging (workflow.imports)
    import_job_id: Mapped[int | None] = mapped_column(Integer)
    website_id: Mapped[int] = mapped_column(ForeignKey("websites.id", ondelete="CASCADE"))
    #: the website's entity and the entity's province, copied by `website_row` (a website never changes entity; an
    #: entity's province is set only by `save_filing_draft`, which writes its websites anew): the queue's filter
    entity_id: Mapped[int] = mapped_column(ForeignKey("entities.id", ondelete="CASCADE"))
    province_code: Mapped[str] = mapped_column(ForeignKey("provinces.code"))
    category: Mapped[str] = mapped_column(String(16))
    document_number: Mapped[str] = mapped_column(String(64))
    state: Mapped[ReviewState] = mapped_column(str_enum(ReviewState, "review_state"), default=ReviewState.PENDING)
    reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reason: Mapped[str] = mapped_column(String(500), default="")
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime)

    website: Mapped[Website] = relationship(back_populates="preapprovals")
    entity: Mapped[Entity] = relationship()


class Access(db.Model):
    """接入 (FAQ 55, 65): which ISP serves the website, how, from which province, on which addresses."""

    __tablename__ = "accesses"
    __table_args__ = (Index("ix_accesses_isp_id", "isp_id", "website_id"),
                      Index("ix_accesses_website_id", "website_id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    #: the import that wrote this row; hidden from every query while that import is staging (workflow.imports)
    import_job_id: Mapped[int | None] = mapped_column(Integer)
    website_id: Mapped[int] = mapped_column(ForeignKey("websites.id", ondelete="CASCADE"))
    isp_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    method: Mapped[str] = mapped_column(String(16))
    server_province_code: Mapped[str] = mapped_column(ForeignKey("provinces.code"))
    ip_ranges: Mapped[str] = mapped_column(Text, default="")  # "start-end" per line
    live: Mapped[bool] = mapped_column(Boolean, default=True)

    website: Mapped[Website] = relationship(back_populates="accesses")
    isp: Mapped[User] = relationship()


class AccessRange(db.Model):
    """A filed access range of an approved website, as rows of `ipindex` (是否备案查询 by IP address)."""

    __tablename__ = "access_ranges"
    __table_args__ = (Index("ix_access_ranges_bucket", "bucket", "start_key"),
                      Index("ix_access_ranges_access_id", "access_id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    access_id: Mapped[int] = mapped_column(ForeignKey("accesses.id", ondelete="CASCADE"))
    bucket: Mapped[str] = mapped_column(String(40))
    start_key: Mapped[str] = mapped_column(String(32))
    end_key: Mapped[str] = mapped_column(String(32))


OPEN_APPLICATION_SQL = "state NOT IN ('approved', 'rejected', 'withdrawn')"
REVIEW_QUEUE_SQL = "state = 'bureau_review'"


class Application(db.Model):
    """申请: one at a time per entity (SPEC §4)."""

    __tablename__ = "applications"
    __table_args__ = (
        Index("ix_applications_queue", "province_code", "state", "id"),
        Index("ix_applications_province_id", "province_code", "id"),
        Index("ix_applications_entity_id", "entity_id"),
        Index("ix_applications_created_by", "created_by_id", "id"),
        Index("ix_applications_submitted_by", "submitted_by_id", "id"),
        Index("ix_applications_deadline", "province_code", "state", "due_at"),  # the queue by deadline
        # the bureau's queue (待审核) by deadline, its filters checked in the index and counted from it alone
        # (PostgreSQL: SQLite's planner keeps ix_applications_deadline for these, so it would only cost writes)
        Index("ix_applications_review_queue", "province_code", "due_at", "kind", "submitted_by_id", "submitted_at",
              "entity_id", postgresql_where=text(REVIEW_QUEUE_SQL)).ddl_if(dialect="postgresql"),
        Index("ix_applications_decided", "province_code", "state", "decided_at", "submitted_at"),  # dashboard
        Index("ix_applications_submitted", "province_code", "submitted_at"),  # dashboard: per day
        Index("uq_applications_open_per_entity", "entity_id", unique=True,
              sqlite_where=text(OPEN_APPLICATION_SQL), postgresql_where=text(OPEN_APPLICATION_SQL)),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    #: the import that wrote this row; hidden from every query while that import is staging (workflow.imports)
    import_job_id: Mapped[int | None] = mapped_column(Integer)
    entity_id: Mapped[int] = mapped_column(ForeignKey("entities.id"))
    province_code: Mapped[str] = mapped_column(ForeignKey("provinces.code"))
    kind: Mapped[ApplicationKind] = mapped_column(str_enum(ApplicationKind, "application_kind"))
    state: Mapped[ApplicationState] = mapped_column(str_enum(ApplicationState, "application_state"),
                                                    default=ApplicationState.DRAFT)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # the only ISP that may edit it
    submitted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime)
    #: when it last entered bureau review complete (every ISP verified), and the statutory deadline (deadlines.py)
    bureau_since: Mapped[datetime | None] = mapped_column(DateTime)
    due_at: Mapped[datetime | None] = mapped_column(DateTime)
    reasons: Mapped[str] = mapped_column(Text, default="{}")  # JSON: field → reason, from the last return
    # JSON: what a change / access / cancellation application asks for, applied on approval (SPEC §4)
    proposal: Mapped[str] = mapped_column(Text, default="{}")

    entity: Mapped[Entity] = relationship()
    verifications: Mapped[list[IspVerification]] = relationship(back_populates="application",
                                                                order_by="IspVerification.id",
                                                                cascade="all, delete-orphan")


class IspVerification(db.Model):
    """接入商核实: one row per ISP named on the application (FAQ 66–67)."""

    __tablename__ = "isp_verifications"
    __table_args__ = (UniqueConstraint("application_id", "isp_id", name="uq_isp_verifications_pair"),
                      Index("ix_isp_verifications_queue", "isp_id", "state", "application_id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    #: the import that wrote this row; hidden from every query while that import is staging (workflow.imports)
    import_job_id: Mapped[int | None] = mapped_column(Integer)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id", ondelete="CASCADE"))
    isp_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    state: Mapped[ReviewState] = mapped_column(str_enum(ReviewState, "review_state"), default=ReviewState.PENDING)
    reason: Mapped[str] = mapped_column(String(500), default="")
    at: Mapped[datetime | None] = mapped_column(DateTime)

    application: Mapped[Application] = relationship(back_populates="verifications")
    isp: Mapped[User] = relationship()


class AccessAuthorisation(db.Model):
    """接入授权码: the owner's consent to a new access (新增接入) by an ISP that does not serve the filing yet
    (the original interface checks the filing's password). Single use; only a hash is stored."""

    __tablename__ = "access_authorisations"
    __table_args__ = (Index("ix_access_authorisations_entity", "entity_id", "created_at"),
                      Index("ix_access_authorisations_requested_by", "requested_by_id", "created_at"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    entity_id: Mapped[int] = mapped_column(ForeignKey("entities.id"))
    code_hash: Mapped[str] = mapped_column(String(64))
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # the ISP that had it sent
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    used_at: Mapped[datetime | None] = mapped_column(DateTime)
    used_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class CertificateStatus(enum.StrEnum):
    CURRENT = "current"
    SUPERSEDED = "superseded"
    REVOKED = "revoked"


class Certificate(db.Model):
    """An issued bazs.cert; only the entity's newest is current."""

    __tablename__ = "certificates"
    __table_args__ = (Index("ix_certificates_entity", "entity_id", "status"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    entity_id: Mapped[int] = mapped_column(ForeignKey("entities.id"))
    kid: Mapped[str] = mapped_column(String(64))
    token: Mapped[str] = mapped_column(Text)
    status: Mapped[CertificateStatus] = mapped_column(str_enum(CertificateStatus, "certificate_status"),
                                                      default=CertificateStatus.CURRENT)
    issued_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class NumberCounter(db.Model):
    """The last sequence given per (province, year) — or per province for licences (year 0)."""

    __tablename__ = "number_counters"
    __table_args__ = (UniqueConstraint("province_code", "kind", "year", name="uq_number_counters_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    province_code: Mapped[str] = mapped_column(ForeignKey("provinces.code"))
    kind: Mapped[str] = mapped_column(String(8))  # "filing" | "licence"
    year: Mapped[int] = mapped_column(Integer)
    last: Mapped[int] = mapped_column(Integer, default=0)


class BlacklistKind(enum.StrEnum):
    DOMAIN = "domain"
    CERTIFICATE_NUMBER = "certificate_number"
    UNIT_NAME = "unit_name"


class BlacklistEntry(db.Model):
    """Refused at filing and at approval; managed by content-admin users."""

    __tablename__ = "blacklist"
    __table_args__ = (UniqueConstraint("kind", "value", name="uq_blacklist_kind_value"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[BlacklistKind] = mapped_column(str_enum(BlacklistKind, "blacklist_kind"))
    value: Mapped[str] = mapped_column(String(253))
    reason: Mapped[str] = mapped_column(String(500), default="")
    province_code: Mapped[str | None] = mapped_column(ForeignKey("provinces.code"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class FilingDraft(db.Model):
    """The wizard's data between steps and sessions (SPEC §4: drafts are kept), one per user."""

    __tablename__ = "filing_drafts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    application_id: Mapped[int | None] = mapped_column(ForeignKey("applications.id"))
    data: Mapped[str] = mapped_column(Text, default="{}")
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class RequestState(enum.StrEnum):
    PENDING = "pending"
    DONE = "done"  # processed: the filing was revoked
    REFUSED = "refused"


class RevocationRequest(db.Model):
    """撤销申请 (FAQ 35–37): a request to revoke an entity's filing or one website, with a reason.

    `processor_role` says who processes it: MIIT for requests of bureau users, the bureau otherwise."""

    __tablename__ = "revocation_requests"
    __table_args__ = (Index("ix_revocation_requests_queue", "processor_role", "state", "province_code", "id"),
                      Index("ix_revocation_requests_requester", "requester_id", "id"),
                      Index("ix_revocation_requests_entity", "entity_id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    entity_id: Mapped[int] = mapped_column(ForeignKey("entities.id"))
    website_id: Mapped[int | None] = mapped_column(ForeignKey("websites.id"))
    province_code: Mapped[str] = mapped_column(ForeignKey("provinces.code"))
    reason: Mapped[str] = mapped_column(String(500))
    requester_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    processor_role: Mapped[Role] = mapped_column(str_enum(Role, "role"))
    state: Mapped[RequestState] = mapped_column(str_enum(RequestState, "request_state"), default=RequestState.PENDING)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime)
    decision_reason: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    entity: Mapped[Entity] = relationship()
    website: Mapped[Website | None] = relationship()
    requester: Mapped[User] = relationship(foreign_keys=[requester_id])


class JobState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"  # imported
    FAILED = "failed"  # refused: errors listed, nothing imported


class ImportJob(db.Model):
    """批量导入 (SPEC §8, FAQ 45): an uploaded spreadsheet, checked then imported by the worker."""

    __tablename__ = "import_jobs"
    __table_args__ = (Index("ix_import_jobs_user", "user_id", "id"), Index("ix_import_jobs_state", "state", "id"),
                      Index("ix_import_jobs_staging", "staging"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    filename: Mapped[str] = mapped_column(String(255))
    stored_name: Mapped[str] = mapped_column(String(64), unique=True)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    state: Mapped[JobState] = mapped_column(str_enum(JobState, "job_state"), default=JobState.QUEUED)
    phase: Mapped[str] = mapped_column(String(32), default="")  # reading / checking / importing
    total_rows: Mapped[int] = mapped_column(Integer, default=0)
    done_rows: Mapped[int] = mapped_column(Integer, default=0)
    imported: Mapped[int] = mapped_column(Integer, default=0)  # applications created
    errors: Mapped[str] = mapped_column(Text, default="[]")  # JSON: [{row, column, value, message}]
    annotated_name: Mapped[str | None] = mapped_column(String(64))  # the file back, wrong cells marked
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    error_count: Mapped[int] = mapped_column(Integer, default=0)  # all of them; `errors` keeps the first 10,000
    lease_until: Mapped[datetime | None] = mapped_column(DateTime)  # a running job's worker renews it; else taken over
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # runs started (a job that kills its worker stops)
    staging: Mapped[bool] = mapped_column(Boolean, default=False)  # its rows are written but not yet visible
    kind: Mapped[str] = mapped_column(String(16), default="filings")  # filings / ip (what the file reports)


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


def code_values(table: CodeTable) -> list[tuple[str, str]]:
    """The (code, name) pairs of a code table that are in use, in their order."""
    return [(code, name) for code, name in db.session.execute(
        select(CodeItem.code, CodeItem.name).where(CodeItem.table == table, CodeItem.active)
        .order_by(CodeItem.sort_order))]


from models.dashboard import DashboardStatistics as DashboardStatistics  # noqa: E402  (the dashboards' figures)
from models.domains import BLOCKING_VERDICTS as BLOCKING_VERDICTS  # noqa: E402  (domain reports)
from models.domains import DomainChange as DomainChange  # noqa: E402
from models.domains import DomainFlag as DomainFlag  # noqa: E402
from models.domains import DomainReport as DomainReport  # noqa: E402
from models.domains import DomainStatus as DomainStatus  # noqa: E402
from models.domains import Verdict as Verdict  # noqa: E402
from models.exchange import SCOPES as SCOPES  # noqa: E402  (the data-exchange API, issue 16)
from models.exchange import ApiCredential as ApiCredential  # noqa: E402
from models.exchange import ExchangeCall as ExchangeCall  # noqa: E402
from models.exchange import ExchangeEvent as ExchangeEvent  # noqa: E402
from models.exchange import ExchangeFeedHead as ExchangeFeedHead  # noqa: E402
from models.inspections import CheckCode as CheckCode  # noqa: E402  (website inspection, issue 18)
from models.inspections import HandlingResult as HandlingResult  # noqa: E402
from models.inspections import InspectionFinding as InspectionFinding  # noqa: E402
from models.inspections import InspectionResult as InspectionResult  # noqa: E402
from models.inspections import InspectionRun as InspectionRun  # noqa: E402
from models.inspections import InspectionScope as InspectionScope  # noqa: E402
from models.inspections import NoticeState as NoticeState  # noqa: E402
from models.inspections import RectificationAnswer as RectificationAnswer  # noqa: E402
from models.inspections import RectificationNotice as RectificationNotice  # noqa: E402
from models.inspections import RunState as RunState  # noqa: E402
from models.inspections import UnfiledSighting as UnfiledSighting  # noqa: E402
from models.ip import (  # noqa: E402  (the IP reports, re-exported so that `models` names every model)
    AllocationMethod as AllocationMethod,
)
from models.ip import FindingKind as FindingKind  # noqa: E402
from models.ip import IpAllocation as IpAllocation  # noqa: E402
from models.ip import IpBlock as IpBlock  # noqa: E402
from models.ip import IpFinding as IpFinding  # noqa: E402
from models.ip import IpFindingsRun as IpFindingsRun  # noqa: E402
from models.ip import IpOrigin as IpOrigin  # noqa: E402
from models.ip import IpSelfBrought as IpSelfBrought  # noqa: E402
from models.ip import UsageMethod as UsageMethod  # noqa: E402
from models.keys import SigningKey as SigningKey  # noqa: E402  (signing keys shared by the nodes, issue 15)
from models.public import PublicRecord as PublicRecord  # noqa: E402  (the public lookup's records, issue 15)
from models.public import PublicRecordRebuild as PublicRecordRebuild  # noqa: E402
from models.security_keys import SecurityKey as SecurityKey  # noqa: E402  (security keys, issue 17 §3)
from models.security_keys import WebAuthnChallenge as WebAuthnChallenge  # noqa: E402
from models.special import SpecialQueryAction as SpecialQueryAction  # noqa: E402  (专项查询, issue 17)
from models.special import SpecialQueryLog as SpecialQueryLog  # noqa: E402
from models.special_content import ForbiddenWord as ForbiddenWord  # noqa: E402  (special content, issue 17 §2)
from models.special_content import SpecialContentEvent as SpecialContentEvent  # noqa: E402
from models.special_content import SpecialContentItem as SpecialContentItem  # noqa: E402
from models.special_content import SpecialState as SpecialState  # noqa: E402
from models.special_content import forbidden_word_in as forbidden_word_in  # noqa: E402
from models.storage import StoredFile as StoredFile  # noqa: E402  (files in the database, issue 15)
from models.storage import StoredFileChunk as StoredFileChunk  # noqa: E402
from models.workers import WorkerLease as WorkerLease  # noqa: E402  (the workers' step leases)
