"""Helpers shared by the forms of the blueprints and of the console."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from flask import flash
from flask_wtf import FlaskForm
from wtforms import Field
from wtforms.validators import InputRequired, StopValidation

from extensions import db
from workflow import WorkflowError


def show_refusal(form: FlaskForm, error: WorkflowError, aliases: Mapping[str, str] | None = None) -> None:
    """Undo the attempt and show every problem beside its field (a wizard's `websites-0-domains` names the
    field `domains`; `aliases` maps a workflow name to the form's field), or at the top of the page when no
    field of the form is named. A field the form's own validators refused keeps only their message."""
    db.session.rollback()
    refused_by_form = {field.name for field in form if field.errors}
    for name, message in error.errors:
        short = (name or "").rsplit("-", 1)[-1]
        short = (aliases or {}).get(short, short)
        if short and short in form:
            if short not in refused_by_form and message not in form[short].errors:
                form[short].errors = [*form[short].errors, message]
        else:
            flash(message, "error")


def validate_with(form: FlaskForm, check: Callable[[], object], aliases: Mapping[str, str] | None = None) -> bool:
    """A posted form checked by its own validators *and* the workflow's rules on what was typed, so that every
    error shows at once beside its field; True when both pass (the caller then makes the change)."""
    if not form.is_submitted():
        return False
    valid = form.validate()
    if form.meta.csrf and form.csrf_token.errors:
        return False
    try:
        check()
    except WorkflowError as error:
        show_refusal(form, error, aliases)
        return False
    return valid


class Chosen(InputRequired):
    """A menu without a default (role, unit nature: the user picks); its message rendered as text in the
    request's language, since Flask-Admin shows only `str` errors beside a field."""

    def __call__(self, form: FlaskForm, field: Field) -> None:
        try:
            super().__call__(form, field)
        except StopValidation as refused:
            raise StopValidation(str(refused)) from None
