"""The console's home page: per role, the counts of what waits for it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, timezone

from flask import url_for
from flask_admin import expose
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import and_, func, select

import permissions
from admin_views.base import RoleIndexView
from admin_views.labels import ROLE_LABELS
from extensions import db
from models import (
    Application,
    ApplicationState,
    AuditEvent,
    Entity,
    IspVerification,
    MessageStatus,
    OutboxMessage,
    PreapprovalItem,
    ReviewState,
    RevocationRequest,
    Role,
    User,
    UserStatus,
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
    if permissions.can(user, Action.PREAPPROVAL_REVIEW):
        cards.append(Card(str(_l("Pre-approval items")), _count(
            PreapprovalItem, PreapprovalItem.category == user.preapproval_category,
            PreapprovalItem.state == ReviewState.PENDING), url_for("preapproval_queue.index_view")))
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
    return cards


class DashboardView(RoleIndexView):
    access_action = Action.DASHBOARD

    @expose("/")
    def index(self) -> str:
        return self.render("admin/dashboard.html", cards=cards_for(current_user),
                           role_label=ROLE_LABELS[current_user.role])
