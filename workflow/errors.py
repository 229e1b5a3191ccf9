"""Refusals raised by the workflow functions."""

from __future__ import annotations

from collections.abc import Iterable

from flask_babel import lazy_gettext as _l

#: one problem of a form: the field it is about (None: the whole form) and the message for the user
Problem = tuple[str | None, str]


class WorkflowError(Exception):
    """A refused change, with a message for the user and the field concerned (if any)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(str(message))
        self.message = str(message)
        self.field = field

    @property
    def errors(self) -> list[Problem]:
        """Every problem found, as (field, message): here the one."""
        return [(self.field, self.message)]


class WorkflowErrors(WorkflowError):
    """Every problem of a form at once (the check functions collect them, the form shows each beside its
    field); `.message` and `.field` are the first, so a caller catching WorkflowError still has a message."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = [(field, str(message)) for field, message in problems]
        if not self.problems:
            raise ValueError("WorkflowErrors needs at least one problem")
        field, message = self.problems[0]
        super().__init__(message, field)

    @property
    def errors(self) -> list[Problem]:
        return list(self.problems)


#: a problem with the data-exchange specification's result code ("" where it has none): (field, code, message)
CodedProblem = tuple[str | None, str, str]


class CodedErrors(WorkflowErrors):
    """Refused report (IP, domain): every problem with its result code (`coded`), and as form errors with the code
    in the message."""

    def __init__(self, problems: Iterable[CodedProblem]) -> None:
        self.coded = [(name, code, str(message)) for name, code, message in problems]
        super().__init__((name, _with_code(code, message)) for name, code, message in self.coded)


def _with_code(code: str, message: str) -> str:
    return str(_l("%(message)s (result code %(code)s)", message=message, code=code)) if code else message


def raise_problems(problems: Iterable[Problem]) -> None:
    """Raise every problem at once, or nothing when there is none."""
    found = list(problems)
    if found:
        raise WorkflowErrors(found)


class NotFound(WorkflowError):
    """The actor may not see the object: report it as absent, never as forbidden."""

    def __init__(self) -> None:
        super().__init__(str(_l("Record not found.")))
