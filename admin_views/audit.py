"""审计日志: MIIT reads everything, a bureau its province; filter and export, never edit."""

from __future__ import annotations

from flask_admin.contrib.sqla.filters import FilterEqual
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy import ColumnElement

import permissions
from admin_views.base import SecureModelView
from admin_views.labels import (
    OBJECT_TYPE_LABELS,
    PROVINCE_NAMES,
    ROLE_LABELS,
    action_label,
    action_options,
    label,
    source_label,
)
from admin_views.search import LocalDateBetween, ProvinceFilter
from models import AuditEvent
from permissions import Action


class AuditEventView(SecureModelView):
    access_action = Action.AUDIT_LIST
    export_action = Action.AUDIT_EXPORT
    audit_object = "audit_event"
    simple_list_pager = True
    can_view_details = True
    column_list = ("id", "at", "actor_username", "actor_role", "province_code", "action",
                   "object_type", "object_id", "ip")
    column_details_list = (*column_list, "changes", "content_hash", "seq", "prev_hash", "hash")
    column_export_list = column_details_list
    column_sortable_list = ("id",)
    column_default_sort = ("id", True)
    column_labels = {
        "id": _l("No."), "at": _l("Time"), "actor_username": _l("User"),
        "actor_role": _l("Role"), "province_code": _l("Province"), "action": _l("Action"),
        "object_type": _l("Object type"), "object_id": _l("Object"), "ip": _l("Address"),
        "changes": _l("Changes"), "content_hash": _l("Content hash"), "seq": _l("Place in the chain"),
        "prev_hash": _l("Previous hash"), "hash": _l("Hash"),
    }
    column_formatters = {
        "actor_role": lambda _v, _c, m, _n: label(ROLE_LABELS, m.actor_role),
        "province_code": lambda _v, _c, m, _n: PROVINCE_NAMES.get(m.province_code, ""),
        "action": lambda _v, _c, m, _n: action_label(m.action),
        "object_type": lambda _v, _c, m, _n: label(OBJECT_TYPE_LABELS, m.object_type),
        "actor_username": lambda _v, _c, m, _n: source_label(m.actor_username),
        "ip": lambda _v, _c, m, _n: source_label(m.ip),
    }
    column_formatters_export = column_formatters
    #: the record as hashed (the chain is checked against exactly this), shown verbatim as data
    column_formatters_detail = {**column_formatters, "changes": lambda _v, _c, m, _n: Markup(
        "<code class=\"audit-changes\">{}</code>").format(m.changes)}
    column_filters = (
        FilterEqual(AuditEvent.actor_username, _l("User")),
        FilterEqual(AuditEvent.action, _l("Action"), options=action_options),
        FilterEqual(AuditEvent.object_type, _l("Object type"), options=sorted(OBJECT_TYPE_LABELS.items())),
        FilterEqual(AuditEvent.object_id, _l("Object")),
        LocalDateBetween(AuditEvent.at, _l("Date")),
        ProvinceFilter(AuditEvent.province_code, _l("Province"), options=list(PROVINCE_NAMES.items())),
    )

    def scope(self) -> ColumnElement[bool]:
        return permissions.audit_scope(current_user)
