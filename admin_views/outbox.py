"""消息发送队列 (SPEC §13): MIIT sees every message's state and sends a failed one again."""

from __future__ import annotations

from typing import Any

from flask_admin.contrib.sqla.filters import FilterEqual
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import ColumnElement, true

import workflow
from admin_views.base import PostRowAction, SecureModelView
from models import MessageStatus, OutboxMessage
from permissions import Action

STATUS_LABELS = {MessageStatus.QUEUED: _l("Queued"), MessageStatus.SENDING: _l("Sending"),
                 MessageStatus.SENT: _l("Sent"), MessageStatus.FAILED: _l("Failed")}


class OutboxView(SecureModelView):
    """Bodies are not shown: a queued message may still carry a verification code."""

    access_action = Action.OUTBOX_LIST
    audit_object = "outbox_message"
    simple_list_pager = True
    column_list = ("id", "created_at", "channel", "recipient", "subject", "status", "attempts",
                   "next_attempt_at", "sent_at", "last_error")
    column_sortable_list = ("id",)
    column_default_sort = ("id", True)
    column_labels = {"id": _l("No."), "created_at": _l("Created at"), "channel": _l("Channel"),
                     "recipient": _l("Recipient"), "subject": _l("Subject"), "status": _l("Status"),
                     "attempts": _l("Attempts"), "next_attempt_at": _l("Next attempt"),
                     "sent_at": _l("Sent at"), "last_error": _l("Last error")}
    column_formatters = {"status": lambda _v, _c, m, _n: str(STATUS_LABELS[m.status]),
                         "channel": lambda _v, _c, m, _n: "短信" if m.channel == "sms" else "邮件"}
    column_filters = (
        FilterEqual(OutboxMessage.status, _l("Status"), options=[(str(s), STATUS_LABELS[s]) for s in MessageStatus]),
        FilterEqual(OutboxMessage.recipient, _l("Recipient")),
    )
    row_post_actions = (PostRowAction("retry", _l("Send again"), "fa fa-repeat"),)

    def scope(self) -> ColumnElement[bool]:
        return true()

    def is_row_action_allowed(self, name: str, obj: Any) -> bool:
        return name == "retry" and obj.status == MessageStatus.FAILED

    def run_row_action(self, name: str, obj: OutboxMessage) -> str:
        workflow.retry_message(current_user, obj)
        return str(_l("Message %(id)s queued again.", id=obj.id))
