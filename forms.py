"""Helpers shared by the forms of the blueprints and of the console."""

from __future__ import annotations

from flask import flash
from flask_wtf import FlaskForm

from extensions import db
from workflow import WorkflowError


def show_refusal(form: FlaskForm, error: WorkflowError) -> None:
    """Undo the attempt and show the refusal beside its field (a wizard's `websites-0-domains`
    names the field `domains`), or at the top of the page when no field of the form is named."""
    db.session.rollback()
    name = (error.field or "").rsplit("-", 1)[-1]
    if name and name in form:
        form[name].errors = [*form[name].errors, error.message]
    else:
        flash(error.message, "error")
