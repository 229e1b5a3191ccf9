"""Blueprint: staff sign-in and sign-out, language choice.

(The ICP registration, captcha, identity check and recovery flows are a separate issue.)
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from werkzeug.security import check_password_hash
from werkzeug.wrappers import Response
from wtforms import PasswordField, StringField
from wtforms.validators import InputRequired, Length

import workflow
from extensions import db, login_manager
from models import User

bp = Blueprint("auth", __name__)

#: compared against when the username is unknown, so both paths cost one hash check
_DUMMY_HASH = "scrypt:32768:8:1$dummysalt$" + "0" * 128


class SignInForm(FlaskForm):
    username = StringField(_l("Username"), [InputRequired(), Length(max=64)])
    password = PasswordField(_l("Password"), [InputRequired(), Length(max=128)])


def safe_next(target: str | None, default: str) -> str:
    """Only a path on this site: no scheme, no host, no protocol-relative '//' (open redirect)."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") \
            or "\\" in target:
        return default
    return target


@login_manager.user_loader
def load_user(session_id: str) -> User | None:
    """Session identity is `id:epoch`; a bumped epoch (sign-out, disable, reset) ends it."""
    user_id, _, epoch = session_id.partition(":")
    if not user_id.isdigit() or not epoch.isdigit():
        return None
    user = db.session.get(User, int(user_id))
    if user is None or user.session_epoch != int(epoch) or not user.is_active:
        return None
    return user


@bp.route("/login", methods=["GET", "POST"])
def login() -> str | Response:
    console = url_for("admin.index")
    if current_user.is_authenticated:
        return redirect(console)
    form = SignInForm()
    if form.validate_on_submit():
        user = db.session.scalar(select(User).where(User.username == form.username.data.strip()))
        password_ok = check_password_hash(user.password_hash if user else _DUMMY_HASH,
                                          form.password.data)
        error = workflow.record_sign_in(user, form.username.data.strip(), password_ok)
        db.session.commit()
        if error is None and user is not None:
            session.clear()  # a fresh session at sign-in (no fixation)
            login_user(user)
            return redirect(safe_next(request.args.get("next"), console))
        flash(error, "error")
    return render_template("auth/login.html", form=form)


@bp.route("/logout", methods=["POST"])
@login_required
def logout() -> Response:
    workflow.sign_out(current_user._get_current_object())
    db.session.commit()
    logout_user()
    session.clear()
    flash(_l("You have signed out."), "success")
    return redirect(url_for("auth.login"))


@bp.route("/language", methods=["POST"])
def set_language() -> Response:
    lang = request.form.get("lang", "")
    if lang in current_app.config["LANGUAGES"]:
        session["lang"] = lang
    return redirect(safe_next(request.form.get("next"), url_for("auth.login")))

