"""The console's home page: per role, the counts of what waits for it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any

from flask import url_for
from flask_admin import expose
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import ColumnElement, Integer, and_, cast, func, select, text

import deadlines
import permissions
from admin_views.base import RoleIndexView
from admin_views.domains import domain_cards
from admin_views.labels import ROLE_LABELS
from extensions import cached, db
from models import (
    Application,
    ApplicationState,
    AuditEvent,
    Entity,
    FilingStatus,
    IpAllocation,
    IpBlock,
    IpFinding,
    IpSelfBrought,
    IspVerification,
    MessageStatus,
    OutboxMessage,
    PreapprovalItem,
    Province,
    ReviewState,
    RevocationRequest,
    Role,
    User,
    UserStatus,
    utcnow,
)
from permissions import Action


@dataclass(frozen=True)
class Card:
    title: str
    count: int
    url: str | None = None


def _count_users(*criteria: object) -> int:
    return db.session.scalar(
        select(func.count()).select_from(User).where(permissions.user_scope(current_user), *criteria)
    ) or 0


def _user_list_url(endpoint: str, **filters: str) -> str:
    return url_for(f"{endpoint}.index_view", **filters)


def _audit_today() -> int:
    """Events since midnight Beijing time (stored times are UTC)."""
    beijing = timezone(timedelta(hours=8))
    midnight = datetime.combine(datetime.now(beijing).date(), time.min, tzinfo=beijing)
    start = midnight.astimezone(UTC).replace(tzinfo=None)
    return db.session.scalar(
        select(func.count()).select_from(AuditEvent)
        .where(and_(permissions.audit_scope(current_user), AuditEvent.at >= start))
    ) or 0


def _count(model: type, *criteria: object) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*criteria)) or 0


def _queue_cards(user: User) -> list[Card]:
    """The filing queues of the role (SPEC §4)."""
    cards = []
    if permissions.can(user, Action.FILING_VERIFY):
        waiting = select(IspVerification.application_id).where(
            IspVerification.isp_id == user.id, IspVerification.state == ReviewState.PENDING)
        cards.append(Card(str(_l("Awaiting my verification")), _count(
            Application, Application.state == ApplicationState.ISP_REVIEW, Application.id.in_(waiting)),
            url_for("isp_queue.index_view")))
    if permissions.can(user, Action.FILING_AUDIT):
        cards.append(Card(str(_l("Awaiting audit")), _count(
            Application, Application.province_code == user.province_code,
            Application.state == ApplicationState.BUREAU_REVIEW), url_for("bureau_queue.index_view")))
    if permissions.can(user, Action.PREAPPROVAL_REVIEW):  # the queue's own scope, pending items only
        cards.append(Card(str(_l("Pre-approval items")), _count(
            PreapprovalItem, permissions.preapproval_scope(user), PreapprovalItem.state == ReviewState.PENDING),
            url_for("preapproval_queue.index_view", flt0_0=ReviewState.PENDING.value)))
    if permissions.can(user, Action.REVOCATION_PROCESS):
        cards.append(Card(str(_l("Revocation requests to process")), _count(
            RevocationRequest, permissions.revocation_queue_scope(user)), url_for("revocation_queue.index_view")))
    if user.role == Role.ICP:
        mine = select(Entity.id).where(Entity.owner_id == user.id)
        cards.append(Card(str(_l("My applications to edit or submit")), _count(
            Application, Application.state == ApplicationState.DRAFT, Application.entity_id.in_(mine)),
            url_for("applications.index_view")))
    return cards


def cards_for(user: User) -> list[Card]:
    """What the dashboard counts for this role: its queues first."""
    cards: list[Card] = _queue_cards(user)
    if permissions.can(user, Action.USER_LIST):
        cards += [
            Card(str(_l("ISP accounts")), _count_users(User.role == Role.ISP),
                 _user_list_url("filing_users")),
            Card(str(_l("ISPs holding the import right")),
                 _count_users(User.role == Role.ISP, User.can_import.is_(True)),
                 _user_list_url("filing_users")),
            Card(str(_l("Disabled accounts")), _count_users(User.status == UserStatus.DISABLED),
                 _user_list_url("management_users")),
        ]
    if user.role == Role.MIIT:
        cards += [
            Card(str(_l("Bureau accounts")), _count_users(User.role == Role.BUREAU),
                 _user_list_url("management_users")),
            Card(str(_l("ICP accounts awaiting confirmation")),
                 _count_users(User.role == Role.ICP, User.status == UserStatus.PENDING),
                 _user_list_url("filing_users")),
        ]
    if permissions.can(user, Action.OUTBOX_LIST):
        failed = db.session.scalar(select(func.count()).select_from(OutboxMessage)
                                   .where(OutboxMessage.status == MessageStatus.FAILED)) or 0
        cards.append(Card(str(_l("Messages that failed to send")), failed,
                          url_for("outbox.index_view", flt0_0=MessageStatus.FAILED.value)))
    if permissions.can(user, Action.AUDIT_LIST):
        cards.append(Card(str(_l("Audit events today")), _audit_today(),
                          url_for("audit_log.index_view")))
    return cards + _ip_cards(user) + [Card(*card) for card in domain_cards(user)]


def _ip_cards(user: User) -> list[Card]:
    """IP地址备案: a reporting unit's records and findings; the units and findings a bureau or MIIT oversees."""
    findings = Card(str(_l("Audit findings")), _count(IpFinding, permissions.ip_finding_scope(user)),
                    url_for("ip_findings.index_view"))
    if permissions.can(user, Action.IP_REPORT):
        return [Card(str(_l("Source blocks")), _count(IpBlock, IpBlock.unit_id == user.id),
                     url_for("ip_blocks.index_view")),
                Card(str(_l("Allocations")), _count(IpAllocation, IpAllocation.unit_id == user.id),
                     url_for("ip_allocations.index_view")),
                Card(str(_l("Self-brought IP")), _count(IpSelfBrought, IpSelfBrought.unit_id == user.id),
                     url_for("ip_self_brought.index_view")), findings]
    if permissions.can(user, Action.IP_LIST):
        return [Card(str(_l("IP reporting units")), _count(User, permissions.ip_unit_scope(user)),
                     url_for("ip_units.index_view")), findings]
    return []


# --- statistics for MIIT (the nation) and a bureau (its province) --------------------------------------

WINDOW_DAYS = 90  # processing times and the chart look back this far
#: the statistics of a scope are computed at most this often per process (the nation's take seconds at 1M filings)
CACHE_SECONDS = 120
CHART_WIDTH, CHART_HEIGHT = 720, 160


@dataclass(frozen=True)
class Bar:
    day: date
    count: int
    x: float
    y: float
    height: float


@dataclass(frozen=True)
class Chart:
    """Applications submitted per Beijing day, drawn as SVG bars by the template (no script, no style)."""

    bars: list[Bar]
    peak: int
    width: int = CHART_WIDTH
    height: int = CHART_HEIGHT
    bar_width: float = CHART_WIDTH / WINDOW_DAYS


@dataclass(frozen=True)
class Statistics:
    at: datetime  # when they were computed (stored time, UTC)
    in_force: int
    isp_review: int
    bureau_review: int
    overdue: int
    due_soon: int
    approved_week: int
    approved_month: int
    decided: int  # decisions (approved or rejected) in the window
    average_days: float | None
    p90_days: float | None
    chart: Chart


def _scope_provinces(user: User) -> list[str]:
    """A bureau's province, or every province for MIIT: an explicit list, so that each query seeks the
    (province_code, …) indexes instead of scanning them."""
    if user.role == Role.BUREAU:
        return [user.province_code]
    return list(db.session.scalars(select(Province.code).order_by(Province.code)))


def _day_start(day: date) -> datetime:
    """Midnight starting a Beijing day, as a stored (naive UTC) time."""
    return deadlines.end_of_day(day - timedelta(days=1))


def _hours(start: ColumnElement[datetime], end: ColumnElement[datetime]) -> tuple[ColumnElement, ColumnElement]:
    """The hours from start to end, and the whole hours (a histogram bucket), in the database's dialect."""
    if db.session.get_bind().dialect.name == "sqlite":
        hours = (func.julianday(end) - func.julianday(start)) * 24.0
        return hours, cast(hours, Integer)
    hours = func.extract("epoch", end - start) / 3600.0
    return hours, cast(func.floor(hours), Integer)


def _processing(provinces: list[str], since: datetime) -> tuple[int, float | None, float | None]:
    """Decisions since `since`: how many, the average and the 90th percentile (nearest rank, to the hour) of
    submission → decision in days. One grouped query on the ix_applications_decided index."""
    hours, bucket = _hours(Application.submitted_at, Application.decided_at)
    rows = db.session.execute(select(bucket, func.count(), func.sum(hours)).where(
        Application.province_code.in_(provinces),
        Application.state.in_((ApplicationState.APPROVED, ApplicationState.REJECTED)),
        Application.decided_at >= since, Application.submitted_at.is_not(None)).group_by(bucket)).all()
    total = sum(count for _b, count, _s in rows)
    if not total:
        return 0, None, None
    return total, sum(s for _b, _c, s in rows) / total / 24, _percentile_hours(rows, total, 0.9) / 24


def _percentile_hours(rows: list[Any], total: int, share: float) -> int:
    """The nearest-rank percentile of a histogram of whole hours, rounded up to the next whole hour."""
    rank, seen = math.ceil(share * total), 0
    for whole_hours, count, _s in sorted(rows, key=lambda row: row[0]):
        seen += count
        if seen >= rank:
            return whole_hours + 1
    raise AssertionError("the counts add up to the total")


def _per_day(provinces: list[str], today: date) -> Chart:
    """Applications submitted per Beijing day over the last WINDOW_DAYS days (today included)."""
    first = today - timedelta(days=WINDOW_DAYS - 1)
    day = func.date(Application.submitted_at, "+8 hours") if db.session.get_bind().dialect.name == "sqlite" \
        else func.date(Application.submitted_at + text("interval '8 hours'"))
    counts = {str(d): n for d, n in db.session.execute(select(day, func.count()).where(
        Application.province_code.in_(provinces), Application.submitted_at >= _day_start(first)).group_by(day))}
    days = [first + timedelta(days=i) for i in range(WINDOW_DAYS)]
    peak = max([counts.get(str(d), 0) for d in days] + [1])
    bar_width = CHART_WIDTH / WINDOW_DAYS
    heights = [CHART_HEIGHT * counts.get(str(d), 0) / peak for d in days]
    return Chart(bars=[Bar(d, counts.get(str(d), 0), i * bar_width, CHART_HEIGHT - h, h)
                       for i, (d, h) in enumerate(zip(days, heights, strict=True))], peak=peak)


def statistics_for(user: User, now: datetime | None = None) -> Statistics:
    """What a manager asks (issue 12): the filings in force, the queues, the deadlines, the throughput and the
    processing times of the user's scope, each an aggregate bounded by an index."""
    now = now or utcnow()
    today, provinces = deadlines.beijing_date(now), _scope_provinces(user)
    in_scope = Application.province_code.in_(provinces)
    waiting = dict(db.session.execute(select(Application.state, func.count()).where(
        in_scope, Application.state.in_((ApplicationState.ISP_REVIEW, ApplicationState.BUREAU_REVIEW)))
        .group_by(Application.state)).all())
    in_bureau = and_(in_scope, Application.state == ApplicationState.BUREAU_REVIEW)
    approved = and_(in_scope, Application.state == ApplicationState.APPROVED)
    decided, average, p90 = _processing(provinces, now - timedelta(days=WINDOW_DAYS))
    return Statistics(
        at=now,
        in_force=_count(Entity, Entity.province_code.in_(provinces), Entity.status == FilingStatus.ACTIVE),
        isp_review=waiting.get(ApplicationState.ISP_REVIEW, 0),
        bureau_review=waiting.get(ApplicationState.BUREAU_REVIEW, 0),
        overdue=_count(Application, in_bureau, Application.due_at < now),
        due_soon=_count(Application, in_bureau, Application.due_at >= now,
                        Application.due_at <= deadlines.due_soon_until(today)),
        approved_week=_count(Application, approved,
                             Application.decided_at >= _day_start(today - timedelta(days=today.weekday()))),
        approved_month=_count(Application, approved, Application.decided_at >= _day_start(today.replace(day=1))),
        decided=decided, average_days=average, p90_days=p90, chart=_per_day(provinces, today))


def cached_statistics(user: User) -> Statistics:
    """`statistics_for`, kept CACHE_SECONDS per scope (the nation, or a province) in the configured cache: this
    process's, or the one every node shares (`extensions.cache`)."""
    scope = "nation" if user.role == Role.MIIT else user.province_code
    return cached(f"dashboard_statistics:{scope}", CACHE_SECONDS, lambda: statistics_for(user))


class DashboardView(RoleIndexView):
    access_action = Action.DASHBOARD

    @expose("/")
    def index(self) -> str:
        statistics = cached_statistics(current_user) if current_user.role in (Role.MIIT, Role.BUREAU) else None
        return self.render("admin/dashboard.html", cards=cards_for(current_user), statistics=statistics,
                           role_label=ROLE_LABELS[current_user.role])
