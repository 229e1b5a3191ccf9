"""Refusals raised by the workflow functions."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l


class WorkflowError(Exception):
    """A refused change, with a message for the user and the field concerned (if any)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(str(message))
        self.message = str(message)
        self.field = field


class NotFound(WorkflowError):
    """The actor may not see the object: report it as absent, never as forbidden."""

    def __init__(self) -> None:
        super().__init__(str(_l("Record not found.")))
