"""网站备案检查 (issue 18): inspection runs and their results per website, the open findings, rectification
notices (整改通知) with the ISPs' answers, and the unfiled websites (未备案网站) reported by ISPs and bureaus."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import TYPE_CHECKING

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from extensions import db
from models.base import BigId, str_enum, utcnow

if TYPE_CHECKING:
    from models import User, Website


class InspectionScope(enum.StrEnum):
    ALL = "all"  # every website in force (the bureau's province, or the nation for MIIT)
    ISP = "isp"  # the websites one ISP serves (a live access)
    LIST = "list"  # a list of filing numbers or domains
    SCHEDULE = "schedule"  # the rolling pass: websites not inspected for INSPECTION_CYCLE_DAYS


class RunState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class CheckCode(enum.StrEnum):
    """The checks of one website (issue 18 §2), in the order they are shown."""

    DNS = "dns"  # 域名解析: every domain resolves
    ALIVE = "alive"  # 首页访问: the home page answers (alive / dead / error)
    NUMBER = "number"  # 备案号展示: the page shows the website's (or the entity's) filing number
    LINK = "link"  # 备案号链接: the number links to the registry's public site
    CERT = "cert"  # 电子验证标识: /cert/bazs.cert present, valid, its own, current
    ACCESS = "access"  # 接入地址: resolved addresses inside the filed access ranges (under-/over-reported)


class InspectionRun(db.Model):
    """One inspection: who started it, over what, and how far it got. Claimed by a worker under a lease (FOR UPDATE
    SKIP LOCKED on PostgreSQL), resumed after `cursor` by another worker when the lease runs out."""

    __tablename__ = "inspection_runs"
    __table_args__ = (Index("ix_inspection_runs_state", "state", "id"),
                      Index("ix_inspection_runs_province", "province_code", "id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: the bureau's province; None for a national run (MIIT)
    province_code: Mapped[str | None] = mapped_column(ForeignKey("provinces.code"))
    scope: Mapped[InspectionScope] = mapped_column(str_enum(InspectionScope, "inspection_scope"))
    isp_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # scope ISP
    #: scope LIST: the filing numbers and domains asked for, one per line
    targets: Mapped[str] = mapped_column(Text, default="")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # None: the schedule
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    state: Mapped[RunState] = mapped_column(str_enum(RunState, "inspection_run_state"), default=RunState.QUEUED)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime)
    #: claims so far, one higher per claim: the claim's fencing token
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: claims of a run whose worker died (its lease ran out; a slice handed back is not counted): past a few the
    #: run is failed rather than taken over forever
    takeovers: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    #: websites in the run (counted when it starts), inspected so far, and failing at least one check
    total: Mapped[int] = mapped_column(Integer, default=0)
    checked: Mapped[int] = mapped_column(Integer, default=0)
    failing: Mapped[int] = mapped_column(Integer, default=0)
    #: the last website id inspected (runs go in website id order): where a resumed run goes on
    cursor: Mapped[int] = mapped_column(BigInteger, default=0)
    #: seconds spent inspecting websites (summed per website): the metrics' duration
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    error: Mapped[str] = mapped_column(String(500), default="")


class InspectionResult(db.Model):
    """One website inspected in one run: which checks failed, and the evidence of every check (JSON: per check
    its outcome, message, and what was fetched — URL, address, time, status, excerpt)."""

    __tablename__ = "inspection_results"
    __table_args__ = (UniqueConstraint("run_id", "website_id", name="uq_inspection_results_run_website"),
                      Index("ix_inspection_results_website", "website_id", "id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("inspection_runs.id", ondelete="CASCADE"))
    website_id: Mapped[int] = mapped_column(ForeignKey("websites.id", ondelete="CASCADE"))
    entity_id: Mapped[int] = mapped_column(ForeignKey("entities.id", ondelete="CASCADE"))
    province_code: Mapped[str] = mapped_column(ForeignKey("provinces.code"))
    checked_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    passed: Mapped[bool] = mapped_column(Boolean, default=True)
    #: the failing checks' codes (CheckCode), comma separated; "" when every check passed
    failing: Mapped[str] = mapped_column(String(64), default="")
    evidence: Mapped[str] = mapped_column(Text, default="{}")
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)


class InspectionFinding(db.Model):
    """A check a website fails now: opened by the first failing inspection, its `last_seen` moved by each later
    one, deleted by the first inspection in which the check passes (the results keep the history)."""

    __tablename__ = "inspection_findings"
    __table_args__ = (Index("ix_inspection_findings_province", "province_code", "check", "first_seen"),
                      Index("ix_inspection_findings_check", "check", "first_seen"),
                      Index("ix_inspection_findings_entity_id", "entity_id"))

    website_id: Mapped[int] = mapped_column(ForeignKey("websites.id", ondelete="CASCADE"), primary_key=True)
    check: Mapped[CheckCode] = mapped_column(str_enum(CheckCode, "inspection_check"), primary_key=True)
    entity_id: Mapped[int] = mapped_column(ForeignKey("entities.id", ondelete="CASCADE"))
    province_code: Mapped[str] = mapped_column(ForeignKey("provinces.code"))
    #: the check's outcome code (e.g. "absent", "revoked", "outside") and its message, from the last inspection
    outcome: Mapped[str] = mapped_column(String(32), default="")
    message: Mapped[str] = mapped_column(String(500), default="")
    first_seen: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_result_id: Mapped[int | None] = mapped_column(BigInteger)


class NoticeState(enum.StrEnum):
    OPEN = "open"  # 待处理: no ISP has answered yet
    ANSWERED = "answered"  # 已反馈: an ISP recorded its handling result
    CLOSED = "closed"  # 已结案: the bureau closed it


class RectificationNotice(db.Model):
    """整改通知: sent by a bureau (or MIIT) to a website's owner and the ISPs serving it, with a deadline; the ISPs
    record their handling results (`RectificationAnswer`). Overdue: open past its deadline."""

    __tablename__ = "rectification_notices"
    __table_args__ = (Index("ix_rectification_notices_province", "province_code", "state", "deadline"),
                      Index("ix_rectification_notices_website", "website_id", "id"),
                      Index("ix_rectification_notices_state_deadline", "state", "deadline"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    website_id: Mapped[int] = mapped_column(ForeignKey("websites.id", ondelete="CASCADE"))
    entity_id: Mapped[int] = mapped_column(ForeignKey("entities.id", ondelete="CASCADE"))
    province_code: Mapped[str] = mapped_column(ForeignKey("provinces.code"))
    #: the checks the notice is about (CheckCode, comma separated) and the bureau's text
    checks: Mapped[str] = mapped_column(String(64), default="")
    message: Mapped[str] = mapped_column(Text, default="")
    deadline: Mapped[date] = mapped_column(Date)
    issued_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    issued_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    state: Mapped[NoticeState] = mapped_column(str_enum(NoticeState, "rectification_state"), default=NoticeState.OPEN)
    closed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime)

    website: Mapped[Website] = relationship()
    #: newest first: the list shows the latest
    answers: Mapped[list[RectificationAnswer]] = relationship(order_by="RectificationAnswer.id.desc()",
                                                              viewonly=True)


class HandlingResult(enum.StrEnum):
    """The ISP's handling result (处理结果) of a rectification notice."""

    RECTIFIED = "rectified"  # 已整改
    ACCESS_STOPPED = "access_stopped"  # 已停止接入
    FILING_UPDATED = "filing_updated"  # 已变更备案信息
    DISPUTED = "disputed"  # 核实无问题（申辩）


class RectificationAnswer(db.Model):
    """One ISP's handling result of a notice; an ISP may answer again (the newest counts, all are kept)."""

    __tablename__ = "rectification_answers"
    __table_args__ = (Index("ix_rectification_answers_notice", "notice_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    notice_id: Mapped[int] = mapped_column(ForeignKey("rectification_notices.id", ondelete="CASCADE"))
    isp_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    result: Mapped[HandlingResult] = mapped_column(str_enum(HandlingResult, "handling_result"))
    detail: Mapped[str] = mapped_column(String(500), default="")
    answered_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    answered_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    isp: Mapped[User] = relationship(foreign_keys=[isp_id])


class UnfiledSighting(db.Model):
    """未备案网站: a domain or address an ISP or a bureau saw on its network that matched no filing in force when it
    was reported; reported again, `last_seen` and `times` move (the exchange specification's first/last detection)."""

    __tablename__ = "unfiled_sightings"
    __table_args__ = (UniqueConstraint("reporter_id", "value", name="uq_unfiled_sightings_reporter_value"),
                      Index("ix_unfiled_sightings_province", "province_code", "last_seen"),
                      Index("ix_unfiled_sightings_value", "value"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    reporter_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    #: the reporter's province (an ISP's, a bureau's); None for a national reporter
    province_code: Mapped[str | None] = mapped_column(ForeignKey("provinces.code"))
    kind: Mapped[str] = mapped_column(String(8))  # "domain" or "ip"
    value: Mapped[str] = mapped_column(String(253))  # the normalised domain or address
    first_seen: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    times: Mapped[int] = mapped_column(Integer, default=1)

    reporter: Mapped[User] = relationship()
