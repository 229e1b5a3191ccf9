"""Blueprint: sign-in with captcha, ICP registration and identity check, password recovery,
change of password and personal information, language choice (SPEC §2, FAQ 20–28)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from werkzeug.exceptions import SecurityError
from wtforms import PasswordField, StringField
from wtforms.validators import EqualTo, InputRequired, Length

import security
import workflow
from extensions import begin_write, db, login_manager
from forms import show_refusal, validate_with
from models import CodePurpose, Role, User, UserStatus, utcnow
from workflow import security_keys

bp = Blueprint("auth", __name__)

_IDENTITY_KEY = "identity_check"
_ACCEPTED_KEY = "registration_accepted"
#: the password was right, a security key is awaited: {"user": id:epoch, "at": when, "next": path} — not a login
_KEY_STEP_KEY = "security_key_step"
#: the id of the server-side challenge of the ceremony under way (the challenge itself never leaves the server)
CHALLENGE_KEY = "webauthn_challenge"


# --- forms ----------------------------------------------------------------------------------

def _captcha_field() -> StringField:
    return StringField(_l("Verification code (picture)"), [InputRequired(), Length(max=8)])


class SignInForm(FlaskForm):
    username = StringField(_l("Username"), [InputRequired(), Length(max=64)])
    password = PasswordField(_l("Password"), [InputRequired(), Length(max=128)])
    captcha = _captcha_field()


class RegistrationForm(FlaskForm):
    username = StringField(_l("Username"), [InputRequired(), Length(max=64)])
    password = PasswordField(_l("Password"), [InputRequired(), Length(max=128)])
    confirm = PasswordField(_l("Repeat the password"), [
        InputRequired(), EqualTo("password", message=_l("The two passwords differ."))])
    contact_name = StringField(_l("Contact name"), [InputRequired(), Length(max=64)])
    organisation = StringField(_l("Organisation (optional)"), [Length(max=128)])
    mobile = StringField(_l("Mobile"), [InputRequired(), Length(max=20)])
    email = StringField(_l("E-mail"), [InputRequired(), Length(max=254)])
    captcha = _captcha_field()


class ResendCodesForm(FlaskForm):
    username = StringField(_l("Registered username"), [InputRequired(), Length(max=64)])
    captcha = _captcha_field()


class IdentityForm(FlaskForm):
    mobile_code = StringField(_l("Mobile code"), [InputRequired(), Length(min=6, max=6)])
    email_code = StringField(_l("E-mail code"), [InputRequired(), Length(min=6, max=6)])


class ForgotPasswordForm(FlaskForm):
    username = StringField(_l("Username"), [InputRequired(), Length(max=64)])
    contact_name = StringField(_l("Contact name"), [InputRequired(), Length(max=64)])
    email = StringField(_l("E-mail"), [InputRequired(), Length(max=254)])
    captcha = _captcha_field()


class NewPasswordForm(FlaskForm):
    new_password = PasswordField(_l("New password"), [InputRequired(), Length(max=128)])
    confirm = PasswordField(_l("Repeat the new password"), [
        InputRequired(), EqualTo("new_password", message=_l("The two passwords differ."))])


# --- helpers --------------------------------------------------------------------------------

def safe_next(target: str | None, default: str) -> str:
    """Only a path on this site: no scheme, no host, no protocol-relative '//' (open redirect)."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


def public_url(endpoint: str, **values: str) -> str:
    """An absolute link for a message that leaves the site: PUBLIC_BASE_URL, never the Host header."""
    return current_app.config["PUBLIC_BASE_URL"] + url_for(endpoint, **values)


def _start_session(user: User) -> None:
    session.clear()  # a fresh session at sign-in (no fixation)
    login_user(user)


def _to_key_step(user: User, target: str) -> Response:
    """The password (or the identity check after it) is accepted, no session yet: the security key step, whose
    30 minutes count from now."""
    session.clear()
    session[_KEY_STEP_KEY] = {"user": user.get_id(), "at": utcnow().isoformat(), "next": target}
    return redirect(url_for("auth.security_key"))


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


@bp.app_errorhandler(SecurityError)
def untrusted_host(_error: SecurityError) -> tuple[str, int, dict[str, str]]:
    """A Host header outside TRUSTED_HOSTS: 400 in plain text (no page can be rendered, since no URL
    can be built for a host the app does not serve)."""
    return "400 Bad Request: 主机名不是本站的地址 (untrusted Host header)\n", 400, {
        "Content-Type": "text/plain; charset=utf-8"}


# --- captcha, sign-in, sign-out, language ----------------------------------------------------

@bp.route("/captcha.png")
def captcha_image() -> Response:
    """A new captcha for this session (the answer stays in the database, never in the cookie);
    at most CAPTCHA_RATE_LIMIT_PER_MINUTE per address, then 429 (each one is a row)."""
    security.enforce_rate_limit("captcha", current_app.config["CAPTCHA_RATE_LIMIT_PER_MINUTE"])
    begin_write()
    answer = security.new_captcha()
    db.session.commit()
    response = Response(security.captcha_png(answer), mimetype="image/png")
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/login", methods=["GET", "POST"])
def login() -> str | Response:
    console = url_for("admin.index")
    if current_user.is_authenticated:
        return redirect(console)
    form = SignInForm()
    if form.validate_on_submit():
        username = form.username.data.strip()
        result = workflow.sign_in(username, form.password.data, security.captcha_passes(form.captcha.data),
                                  request.remote_addr)
        db.session.commit()
        if result.outcome == workflow.SignInOutcome.SIGNED_IN:
            _start_session(result.user)
            return redirect(safe_next(request.args.get("next"), console))
        if result.outcome == workflow.SignInOutcome.SECURITY_KEY:
            return _to_key_step(result.user, safe_next(request.args.get("next"), console))
        if result.outcome == workflow.SignInOutcome.IDENTITY_CHECK:
            session.clear()
            session[_IDENTITY_KEY] = result.user.get_id()
            return redirect(url_for("auth.identity_check"))
        flash(result.message, "error")
    elif request.method == "POST":
        security.captcha_passes(None)  # a submitted form spends its captcha even when incomplete
        db.session.commit()
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


# --- the security key step of a sign-in (issue 17 §3) ---------------------------------------

def _key_step_user() -> tuple[User | None, datetime | None]:
    """The account whose password was entered in this session, and when (None: no key step under way)."""
    pending = session.get(_KEY_STEP_KEY)
    if not isinstance(pending, dict):
        return None, None
    user = load_user(str(pending.get("user", "")))
    try:
        return user, datetime.fromisoformat(str(pending.get("at")))
    except ValueError:
        return None, None


def ceremony_options(make: Callable[[], tuple[int, str]]) -> Response | tuple[Response, int]:
    """A ceremony's options as JSON for static/js/security-keys.js; the challenge's id stays in the session."""
    try:
        challenge_id, options = make()
    except workflow.WorkflowError as error:
        db.session.rollback()
        return jsonify(message=error.message), 400
    db.session.commit()
    session[CHALLENGE_KEY] = challenge_id
    return current_app.response_class(options, mimetype="application/json")


def ceremony_answer(run: Callable[[dict[str, Any]], Response]) -> Response | tuple[Response, int]:
    """The browser's answer {"credential": {...}, "name": ...} given to the workflow; committed whether refused or
    not (the challenge is spent, a refusal audited); a refusal as {"message": ...} with 400."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("credential"), dict):
        return jsonify(message=str(_l("The security key's answer could not be verified. Try again."))), 400
    challenge_id = session.pop(CHALLENGE_KEY, None)
    try:
        response = run({**body, "challenge_id": challenge_id if isinstance(challenge_id, int) else None})
    except workflow.WorkflowError as error:
        db.session.commit()
        return jsonify(message=error.message), 400
    db.session.commit()
    return response


@bp.route("/login/key")
def security_key() -> str | Response:
    """After the password: use a registered key, or register one (first sign-in of a role that requires it)."""
    user, password_at = _key_step_user()
    try:
        if user is None:
            raise workflow.WorkflowError(_l("Sign in with your password first."))
        step = security_keys.open_step(user, password_at)
    except workflow.WorkflowError as error:
        session.pop(_KEY_STEP_KEY, None)
        flash(error.message, "error")
        return redirect(url_for("auth.login"))
    return render_template("auth/security_key.html", step=step.value, user=user,
                           minutes=security_keys.KEY_STEP_MINUTES)


@bp.route("/login/key/options", methods=["POST"])
def security_key_options() -> Response | tuple[Response, int]:
    user, password_at = _key_step_user()
    if user is None:
        return jsonify(message=str(_l("Sign in with your password first."))), 400
    return ceremony_options(lambda: security_keys.sign_in_key_options(user, password_at, request.remote_addr))


@bp.route("/login/key/answer", methods=["POST"])
def security_key_answer() -> Response | tuple[Response, int]:
    user, password_at = _key_step_user()
    if user is None:
        return jsonify(message=str(_l("Sign in with your password first."))), 400

    def finish(body: dict[str, Any]) -> Response:
        security_keys.sign_in_with_key(user, password_at, body["challenge_id"], body["credential"],
                                       request.remote_addr, str(body.get("name", "")))
        target = session[_KEY_STEP_KEY]["next"]
        _start_session(user)
        return jsonify(redirect=target)

    return ceremony_answer(finish)


# --- registration (FAQ 20): statement → flow chart → form -----------------------------------

@bp.route("/register", methods=["GET", "POST"])
def register_statement() -> str | Response:
    if request.method == "POST":
        session[_ACCEPTED_KEY] = ["statement"]
        return redirect(url_for("auth.register_flow"))
    return render_template("auth/register_statement.html", form=FlaskForm())


@bp.route("/register/flow", methods=["GET", "POST"])
def register_flow() -> str | Response:
    if "statement" not in session.get(_ACCEPTED_KEY, []):
        return redirect(url_for("auth.register_statement"))
    if request.method == "POST":
        session[_ACCEPTED_KEY] = ["statement", "flow"]
        return redirect(url_for("auth.register_form"))
    return render_template("auth/register_flow.html", form=FlaskForm())


@bp.route("/register/form", methods=["GET", "POST"])
def register_form() -> str | Response:
    if "flow" not in session.get(_ACCEPTED_KEY, []):
        return redirect(url_for("auth.register_statement"))
    form, resend = RegistrationForm(), ResendCodesForm(prefix="resend")
    if form.is_submitted():
        captcha_ok = security.captcha_passes(form.captcha.data)  # spent whatever else is wrong
        db.session.commit()
        data = workflow.UserData(
            username=form.username.data, role=Role.ICP, password=form.password.data,
            contact_name=form.contact_name.data, organisation=form.organisation.data,
            mobile=form.mobile.data, email=form.email.data)
        # every error at once; which names exist is asked only once the captcha is passed
        if validate_with(form, lambda: workflow.check_registration(data, lookup=captcha_ok)) and captcha_ok:
            try:
                workflow.register_icp(data)
                db.session.commit()
            except workflow.WorkflowError as error:
                show_refusal(form, error)
            else:
                session.pop(_ACCEPTED_KEY, None)
                return redirect(url_for("auth.register_done"))
        if not captcha_ok:
            form.captcha.errors = [str(_l("The verification code in the picture is wrong or has expired."))]
    return render_template("auth/register_form.html", form=form, resend=resend)


@bp.route("/register/resend", methods=["POST"])
def register_resend() -> str | Response:
    """FAQ 26 "检测": the same answer whatever the name; codes only to the registered contacts."""
    form = ResendCodesForm(prefix="resend")
    if form.validate_on_submit() and security.captcha_passes(form.captcha.data):
        workflow.resend_registration_codes(form.username.data)
        db.session.commit()
        flash(_l("If this username is registered and not yet confirmed, new codes have been sent to its "
                 "mobile and e-mail (at most once a minute)."), "info")
    else:
        db.session.commit()
        flash(_l("The verification code in the picture is wrong or has expired."), "error")
    return redirect(url_for("auth.register_form"))


@bp.route("/register/done")
def register_done() -> str:
    return render_template("auth/register_done.html")


# --- identity check at first sign-in (FAQ 21) ------------------------------------------------

def _identity_user() -> User | None:
    user = load_user(session.get(_IDENTITY_KEY, ""))
    return user if user is not None and user.status == UserStatus.PENDING else None


@bp.route("/verify", methods=["GET", "POST"])
def identity_check() -> str | Response:
    user = _identity_user()
    if user is None:
        return redirect(url_for("auth.login"))
    form = IdentityForm()
    if form.validate_on_submit():
        errors = workflow.confirm_identity(user, form.mobile_code.data, form.email_code.data)
        db.session.commit()
        if not errors:
            if security_keys.key_step(user):  # a role that signs in with a key registers it now, before any session
                response = _to_key_step(user, url_for("admin.index"))
            else:
                _start_session(user)
                response = redirect(url_for("admin.index"))
            flash(_l("Your identity is confirmed. Welcome!"), "success")
            return response
        form.mobile_code.errors = [errors[CodePurpose.REGISTER_MOBILE]] if CodePurpose.REGISTER_MOBILE in errors else []
        form.email_code.errors = [errors[CodePurpose.REGISTER_EMAIL]] if CodePurpose.REGISTER_EMAIL in errors else []
    return render_template("auth/identity_check.html", form=form, user=user)


# --- lost password (FAQ 25) ------------------------------------------------------------------

@bp.route("/password/forgot", methods=["GET", "POST"])
def forgot_password() -> str | Response:
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        if security.captcha_passes(form.captcha.data):
            workflow.request_password_reset(
                form.username.data, form.contact_name.data, form.email.data,
                lambda token: public_url("auth.reset_password", token=token))
            db.session.commit()
            flash(_l("If the details match an account, a link to set a new password has been sent to its "
                     "e-mail. The link works once, for 30 minutes."), "info")
            return redirect(url_for("auth.login"))
        db.session.commit()
        form.captcha.errors = [str(_l("The verification code in the picture is wrong or has expired."))]
    return render_template("auth/forgot_password.html", form=form)


@bp.route("/password/reset/<token>", methods=["GET", "POST"])
def reset_password(token: str) -> str | Response:
    if workflow.reset_token_user(token) is None:
        abort(404)
    form = NewPasswordForm()
    if form.validate_on_submit():
        try:
            workflow.reset_password(token, form.new_password.data)
            db.session.commit()
        except workflow.WorkflowError as error:
            show_refusal(form, error)
        else:
            flash(_l("Your password has been changed. Sign in with the new one."), "success")
            return redirect(url_for("auth.login"))
    return render_template("auth/reset_password.html", form=form)
