"""The console's home page: per role, the counts of what waits for it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, timezone

from flask import current_app, url_for
from flask_admin import expose
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import func, literal, select

import dashboard_statistics
import permissions
import workflow.inspections as inspections
from admin_views.base import RoleIndexView
from admin_views.domains import domain_cards
from admin_views.labels import ROLE_LABELS
from extensions import db
from models import (
    Application,
    ApplicationState,
    AuditEvent,
    Entity,
    InspectionFinding,
    IpAllocation,
    IpBlock,
    IpFinding,
    IpSelfBrought,
    IspVerification,
    MessageStatus,
    NoticeState,
    OutboxMessage,
    PreapprovalItem,
    RectificationNotice,
    ReviewState,
    RevocationRequest,
    Role,
    SpecialContentItem,
    SpecialState,
    User,
    UserStatus,
)
from permissions import Action

#: a card counts up to this many rows and then says "more than" (超过 10,000): its count stays a bounded index read
#: however large the registry grows (an unbounded count of a busy day's audit events took 375 ms at 5,000,000)
CARD_CAP = 10_000


@dataclass(frozen=True)
class Card:
    title: str
    count: int
    url: str | None = None

    @property
    def more(self) -> bool:
        """The count reached the cap: there are more than CARD_CAP."""
        return self.count > CARD_CAP


def _count(model: type, *criteria: object) -> int:
    """The rows matching, counted up to CARD_CAP + 1 (a LIMIT under the count: stops reading there)."""
    capped = select(literal(1)).select_from(model).where(*criteria).limit(CARD_CAP + 1).subquery()
    return db.session.scalar(select(func.count()).select_from(capped)) or 0


def _count_users(*criteria: object) -> int:
    return _count(User, permissions.user_scope(current_user), *criteria)


def _user_list_url(endpoint: str, **filters: str) -> str:
    return url_for(f"{endpoint}.index_view", **filters)


def _audit_today() -> int:
    """Events since midnight Beijing time (stored times are UTC)."""
    beijing = timezone(timedelta(hours=8))
    midnight = datetime.combine(datetime.now(beijing).date(), time.min, tzinfo=beijing)
    start = midnight.astimezone(UTC).replace(tzinfo=None)
    return _count(AuditEvent, permissions.audit_scope(current_user), AuditEvent.at >= start)


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
    if permissions.can(user, Action.SPECIAL_CONTENT_REVIEW):  # 专项备案 waiting for the content department
        cards.append(Card(str(_l("Special filings to confirm")), _count(
            SpecialContentItem, permissions.special_content_scope(user),
            SpecialContentItem.state == SpecialState.PENDING),
            url_for("special_content.index_view", flt0_0=SpecialState.PENDING.value)))
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
        cards.append(Card(str(_l("Messages that failed to send")),
                          _count(OutboxMessage, OutboxMessage.status == MessageStatus.FAILED),
                          url_for("outbox.index_view", flt0_0=MessageStatus.FAILED.value)))
    if permissions.can(user, Action.AUDIT_LIST):
        cards.append(Card(str(_l("Audit events today")), _audit_today(),
                          url_for("audit_log.index_view")))
    return cards + _ip_cards(user) + [Card(*card) for card in domain_cards(user)] + _inspection_cards(user)


def _inspection_cards(user: User) -> list[Card]:
    """网站检查: the open findings and the overdue rectification notices a bureau or MIIT oversees; the notices an ISP
    has to answer for the websites it serves now; the notices not yet closed of an owner's websites."""
    cards = []
    if permissions.can(user, Action.INSPECTION_LIST):
        cards.append(Card(str(_l("Open inspection findings")),
                          _count(InspectionFinding, permissions.inspection_finding_scope(user)),
                          url_for("inspection_findings.index")))
    notices = permissions.rectification_scope(user)
    if permissions.can(user, Action.RECTIFY):
        cards.append(Card(str(_l("Overdue rectification notices")),
                          _count(RectificationNotice, notices, inspections.overdue_condition()),
                          url_for("rectification_notices.index_view", flt0_1="1")))  # the notices' second filter
    elif permissions.can(user, Action.NOTICE_ANSWER):
        cards.append(Card(str(_l("Rectification notices to answer")),
                          _count(RectificationNotice, notices, RectificationNotice.state == NoticeState.OPEN),
                          url_for("rectification_notices.index_view", flt0_0=NoticeState.OPEN.value)))
    elif permissions.can(user, Action.NOTICE_VIEW):
        cards.append(Card(str(_l("Rectification notices of my websites")),
                          _count(RectificationNotice, notices, RectificationNotice.state != NoticeState.CLOSED),
                          url_for("rectification_notices.index_view", flt0_3=NoticeState.CLOSED.value)))  # ≠ closed
    return cards


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


class DashboardView(RoleIndexView):
    access_action = Action.DASHBOARD

    @expose("/")
    def index(self) -> str:
        statistics = dashboard_statistics.stored_statistics(dashboard_statistics.scope_of(current_user)) \
            if current_user.role in (Role.MIIT, Role.BUREAU) else None
        return self.render("admin/dashboard.html", cards=cards_for(current_user), statistics=statistics,
                           refresh_seconds=current_app.config["DASHBOARD_STATISTICS_SECONDS"], card_cap=CARD_CAP,
                           role_label=ROLE_LABELS[current_user.role])
