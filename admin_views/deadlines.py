"""The statutory deadline as the bureau's queue shows it: the due day and the working days left, urgent ones
marked with a CSS class (overdue: badge-danger, ≤ 3 working days: badge-warning)."""

from __future__ import annotations

from typing import Any

from flask_babel import gettext as _
from markupsafe import Markup

import deadlines
from models import Application, utcnow


def days_left_text(left: int) -> str:
    if left < 0:
        return _("Overdue by %(days)s working days", days=-left)
    if left == 0:
        return _("Due today")
    return _("%(days)s working days left", days=left)


def urgency_class(left: int) -> str:
    if left < 0:
        return "badge badge-danger deadline-overdue"
    if left <= deadlines.DUE_SOON_WORKING_DAYS:
        return "badge badge-warning deadline-soon"
    return "badge badge-light deadline-ok"


def deadline_cell(_view: Any, _context: Any, application: Application, _name: str) -> Markup | str:
    """The due day and the working days left (counted today, Beijing time)."""
    if application.due_at is None:
        return ""
    due = deadlines.due_day(application.due_at)
    left = deadlines.days_left(due, deadlines.beijing_date(utcnow()))
    return Markup('{due} <span class="{css}">{text}</span>').format(
        due=due.isoformat(), css=urgency_class(left), text=days_left_text(left))
