"""Filings (SPEC §3–§6): entities, websites, domains, pre-approval items, accesses, applications, verifications,
certificates, numbers, the blacklist, drafts, revocation requests, import jobs."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from extensions import db
from models.accounts import Role
from models.base import BigId, str_enum, utcnow

if TYPE_CHECKING:
    from models.accounts import User
    from models.special_content import SpecialContentItem


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
