"""Sign-in, ICP self-registration and its codes, passwords, personal information, messages (SPEC §2, §13)."""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from werkzeug.security import check_password_hash

import audit
import notify
import permissions
import security
from extensions import db
from models import (
    CodePurpose,
    MessageStatus,
    OutboxMessage,
    PasswordResetToken,
    Role,
    User,
    UserStatus,
    VerificationCode,
    utcnow,
)
from permissions import Action
from validators import (
    password_errors,
)
from workflow import security_keys
from workflow.errors import NotFound, WorkflowError, raise_problems
from workflow.users import (
    _DUMMY_HASH,
    STAFF_NAME_MARK,
    UserData,
    _insert_user,
    _new_account_problems,
    alert_if_under_attack,
    check_user_profile,
    hash_password,
)


class SignInOutcome(enum.Enum):
    SIGNED_IN = "signed_in"
    IDENTITY_CHECK = "identity_check"  # right password, registration not yet confirmed (FAQ 21)
    SECURITY_KEY = "security_key"  # right password, a security key to use or register (issue 17 §3): no session yet
    REFUSED = "refused"


@dataclass(frozen=True)
class SignInResult:
    outcome: SignInOutcome
    user: User | None = None
    message: str = ""


def _record_attempt(action: str, username: str, user: User | None, reason: str = "") -> None:
    audit.record(action, object_type="user", object_id=user.id if user else "",
                 changes={"username": username[:64], **({"reason": reason} if reason else {})},
                 province_code=user.province_code if user else None,
                 actor=user if action == "auth.sign_in" else None, actor_username=username[:64])


def sign_in(username: str, password: str, captcha_ok: bool, address: str | None) -> SignInResult:
    """One sign-in attempt, recorded whatever its outcome (SPEC §12).

    The locks are checked before the password hash is computed (a hash costs ~100 ms: unthrottled,
    it is a denial-of-service lever). Unknown user and wrong password give the same answer.
    """
    keys = security.throttle_keys(username, address)
    if until := security.locked_until(keys.locks):
        message = security.lockout_message(until)
        _record_attempt("auth.sign_in_failed", username, None, "locked")
        return SignInResult(SignInOutcome.REFUSED, message=message)
    if not captcha_ok:
        _record_attempt("auth.sign_in_failed", username, None, "captcha")
        return SignInResult(SignInOutcome.REFUSED, message=str(_l(
            "The verification code in the picture is wrong or has expired.")))
    user = db.session.scalar(select(User).where(User.username == username))
    if not check_password_hash(user.password_hash if user else _DUMMY_HASH, password):
        failures = security.record_failure(keys)
        _record_attempt("auth.sign_in_failed", username, user, "password")
        if user is not None:
            alert_if_under_attack(user, failures)
        return SignInResult(SignInOutcome.REFUSED, message=str(_l("Wrong username or password.")))
    step = security_keys.key_step(user) if user.status == UserStatus.ACTIVE else None
    if step is None:  # with a key step ahead the failures stay counted until a key answers (security_keys)
        security.record_success(keys)
    if user.status == UserStatus.DISABLED:
        _record_attempt("auth.sign_in_failed", username, user, "disabled")
        return SignInResult(SignInOutcome.REFUSED, message=str(_l(
            "This account has been disabled. Contact your administrator.")))
    if user.status == UserStatus.PENDING:
        _record_attempt("auth.identity_check", username, user)
        return SignInResult(SignInOutcome.IDENTITY_CHECK, user)
    if step:
        _record_attempt("auth.security_key_step", username, user, step.value)
        return SignInResult(SignInOutcome.SECURITY_KEY, user)
    user.last_login_at = utcnow()
    _record_attempt("auth.sign_in", username, user)
    return SignInResult(SignInOutcome.SIGNED_IN, user)


def sign_out(user: User) -> None:
    """End every session of the user (a copied cookie stops working too)."""
    user.session_epoch += 1
    audit.record("auth.sign_out", object_type="user", object_id=user.id,
                 province_code=user.province_code, actor=user)


# --- ICP self-registration and verification codes (SPEC §2, FAQ 20–28) ----------------------

CODE_CHANNEL = {CodePurpose.REGISTER_MOBILE: "mobile", CodePurpose.REGISTER_EMAIL: "email",
                CodePurpose.CHANGE_MOBILE: "mobile", CodePurpose.CHANGE_EMAIL: "email"}


def _code_digest(code_id: int, code: str) -> str:
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, f"code:{code_id}:{code}".encode(), hashlib.sha256).hexdigest()


def _issue_code(user: User, purpose: CodePurpose, target: str) -> None:
    """A fresh 6-digit code (CSPRNG), stored hashed, sent to `target` through the outbox."""
    code = f"{secrets.randbelow(10**6):06d}"
    minutes = current_app.config["CODE_TTL_MINUTES"]
    row = VerificationCode(user_id=user.id, purpose=purpose, target=target, code_hash="", attempts=0,
                           expires_at=utcnow() + timedelta(minutes=minutes))
    db.session.add(row)
    db.session.flush()
    row.code_hash = _code_digest(row.id, code)
    text = f"【ICP备案管理系统】您的验证码为 {code}，{minutes} 分钟内有效，用户名 {user.username}。请勿泄露。"
    if CODE_CHANNEL[purpose] == "mobile":
        notify.queue_sms(target, text, sensitive=True)
    else:
        body = f"尊敬的用户：\n\n{text}\n\n如非本人操作，请忽略本邮件。"
        notify.queue_email(target, "ICP备案管理系统 邮件验证码", body, sensitive=True)


def _send_registration_codes(user: User) -> None:
    _issue_code(user, CodePurpose.REGISTER_MOBILE, user.mobile)
    _issue_code(user, CodePurpose.REGISTER_EMAIL, user.email)


def _reserved_name(username: str, lookup: bool) -> bool:
    """Staff names are not enumerable through registration: any name of the staff form is refused
    with one answer, before (and whether or not) the database holds it; so is a staff account's name
    outside that form (one created at the command line), with the same answer."""
    return STAFF_NAME_MARK in username or (lookup and db.session.scalar(
        select(User.role).where(User.username == username)) not in (None, Role.ICP))


def check_registration(data: UserData, lookup: bool = True) -> None:
    """Every rule of a registration at once (WorkflowErrors naming each field). `lookup=False` (before the
    captcha is passed) leaves out the rules that ask which names exist."""
    data.role, data.province_code, data.preapproval_category, data.can_import = Role.ICP, None, None, False
    problems = list(_new_account_problems(data, lookup))
    if _reserved_name(data.username, lookup):
        problems = [("username", _l("Usernames containing '_' are reserved for staff accounts: choose another "
                                    "(letters, digits, '.', '-').")),
                    *(problem for problem in problems if problem[0] != "username")]
    raise_problems(problems)


def register_icp(data: UserData) -> User:
    """FAQ 20: a new ICP account, pending until both codes are entered at first sign-in."""
    check_registration(data)
    user = _insert_user(None, data, UserStatus.PENDING, "user.register")
    _send_registration_codes(user)
    return user


def resend_registration_codes(username: str) -> None:
    """FAQ 26 ("检测"): new codes for a pending account, at most once a minute; silent otherwise,
    so that the caller's answer is the same whether or not the name exists."""
    user = db.session.scalar(select(User).where(User.username == username.strip()))
    if user is None or user.status != UserStatus.PENDING:
        return
    last = db.session.scalar(select(VerificationCode.created_at).where(
        VerificationCode.user_id == user.id,
        VerificationCode.purpose == CodePurpose.REGISTER_MOBILE).order_by(VerificationCode.id.desc()).limit(1))
    if last is not None and last > utcnow() - timedelta(seconds=current_app.config["CODE_RESEND_SECONDS"]):
        return
    _send_registration_codes(user)
    audit.record("user.codes_resent", object_type="user", object_id=user.id, actor_username=user.username)


def _latest_code(user: User, purpose: CodePurpose) -> VerificationCode | None:
    return db.session.scalar(select(VerificationCode).where(
        VerificationCode.user_id == user.id, VerificationCode.purpose == purpose,
    ).order_by(VerificationCode.id.desc()).limit(1))


def _code_error(row: VerificationCode | None, code: str) -> str | None:
    """Why `code` is not accepted (counting a wrong try), or None when it matches."""
    if row is None or row.used_at is not None or row.expires_at < utcnow():
        return str(_l("The code has expired or was already used. Ask for a new one."))
    if row.attempts >= current_app.config["CODE_MAX_ATTEMPTS"]:
        return str(_l("Too many wrong codes. Ask for a new one."))
    if not hmac.compare_digest(row.code_hash, _code_digest(row.id, (code or "").strip())):
        row.attempts += 1
        return str(_l("The code is wrong."))
    return None


def check_codes(user: User, codes: dict[CodePurpose, str]) -> dict[CodePurpose, str]:
    """Check several codes together; consume them only when all match. Returns errors by purpose.

    The caller commits either way: a wrong try must count even though nothing else changes.
    """
    rows = {purpose: _latest_code(user, purpose) for purpose in codes}
    errors = {purpose: error for purpose, code in codes.items() if (error := _code_error(rows[purpose], code))}
    if not errors:
        for row in rows.values():
            row.used_at = utcnow()
    return errors


def confirm_identity(user: User, mobile_code: str, email_code: str) -> dict[CodePurpose, str]:
    """FAQ 21: both codes right → the account is active."""
    if user.status != UserStatus.PENDING:
        raise WorkflowError(_l("This account has already been confirmed."))
    errors = check_codes(user, {CodePurpose.REGISTER_MOBILE: mobile_code,
                                CodePurpose.REGISTER_EMAIL: email_code})
    if not errors:
        user.status = UserStatus.ACTIVE
        user.last_login_at = utcnow()
        audit.record("user.confirmed", object_type="user", object_id=user.id, actor=user)
        if step := security_keys.key_step(user):  # its role signs in with a key: registered before any session
            _record_attempt("auth.security_key_step", user.username, user, step.value)
    return errors


# --- passwords and personal information ------------------------------------------------------

def _token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def request_password_reset(username: str, contact_name: str, email: str,
                           link_for: Callable[[str], str]) -> None:
    """FAQ 25: a single-use link by e-mail when all three match an account; silent otherwise."""
    user = db.session.scalar(select(User).where(User.username == username.strip()))
    matches = (user is not None and user.status != UserStatus.DISABLED
               and user.contact_name == contact_name.strip()
               and user.email.lower() == email.strip().lower())
    audit.record("auth.reset_requested", object_type="user", object_id=user.id if matches else "",
                 changes={"username": username[:64], "matched": matches}, actor_username=username[:64])
    if not matches:
        return
    token = secrets.token_urlsafe(32)
    minutes = current_app.config["RESET_TTL_MINUTES"]
    db.session.add(PasswordResetToken(token_hash=_token_digest(token), user_id=user.id,
                                      password_fingerprint=_password_fingerprint(user),
                                      expires_at=utcnow() + timedelta(minutes=minutes)))
    notify.queue_email(user.email, "ICP备案管理系统 重置密码", (
        f"尊敬的用户 {user.username}：\n\n请在 {minutes} 分钟内打开下面的链接设置新密码（链接只能使用一次）：\n"
        f"{link_for(token)}\n\n如非本人操作，请忽略本邮件，您的密码不会改变。"), sensitive=True)


def _password_fingerprint(user: User) -> str:
    """Changes with the password (its hash is salted anew each time): a link is valid for one password."""
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, f"reset:{user.password_hash}".encode(), hashlib.sha256).hexdigest()


def reset_token_user(token: str) -> User | None:
    """The account a reset link belongs to, while the link is unused, unexpired, and the password is
    still the one it was issued against (any reset or change of the password ends every link)."""
    row = db.session.get(PasswordResetToken, _token_digest(token))
    if row is None or row.used_at is not None or row.expires_at < utcnow():
        return None
    user = db.session.get(User, row.user_id)
    if user is None or not hmac.compare_digest(row.password_fingerprint, _password_fingerprint(user)):
        return None
    return user


def reset_password(token: str, new_password: str) -> User:
    user = reset_token_user(token)
    if user is None:
        raise WorkflowError(_l("This link has expired or was already used. Ask for a new one."))
    _set_password(user, new_password, "field")
    db.session.get(PasswordResetToken, _token_digest(token)).used_at = utcnow()
    audit.record("auth.password_reset", object_type="user", object_id=user.id, actor_username=user.username,
                 province_code=user.province_code)
    return user


def _set_password(user: User, new_password: str, field: str) -> None:
    raise_problems((field, error) for error in password_errors(new_password, user.username))
    user.password_hash = hash_password(new_password)
    user.session_epoch += 1  # every other session of the account ends


def change_password(user: User, old_password: str, new_password: str) -> None:
    """FAQ 27: old + new."""
    problems = [] if check_password_hash(user.password_hash, old_password) else [
        ("old_password", _l("The current password is wrong."))]
    if old_password == new_password:
        problems.append(("new_password", _l("The new password must differ from the current one.")))
    problems += [("new_password", error) for error in password_errors(new_password, user.username)]
    raise_problems(problems)
    _set_password(user, new_password, "new_password")
    audit.record("auth.password_changed", object_type="user", object_id=user.id, actor=user)


def check_own_profile(user: User, organisation: str, contact_name: str, mobile: str, email: str) -> UserData:
    """The user's new personal information, every problem at once (WorkflowErrors); nothing changes."""
    data = UserData(username=user.username, role=user.role, province_code=user.province_code,
                    preapproval_category=user.preapproval_category, organisation=organisation,
                    contact_name=contact_name, mobile=mobile, email=email)
    check_user_profile(data)
    return data


def update_own_profile(user: User, organisation: str, contact_name: str, mobile: str,
                       email: str) -> list[CodePurpose]:
    """FAQ 28. Name and organisation change at once; a new mobile or e-mail is only taken once
    the code sent to it is entered. Returns the confirmations now awaited."""
    data = check_own_profile(user, organisation, contact_name, mobile, email)
    changes = {name: [getattr(user, name), getattr(data, name)] for name in ("organisation", "contact_name")
               if getattr(user, name) != getattr(data, name)}
    for name, value in changes.items():
        setattr(user, name, value[1])
    awaited = []
    if data.mobile != user.mobile:
        _issue_code(user, CodePurpose.CHANGE_MOBILE, data.mobile)
        awaited.append(CodePurpose.CHANGE_MOBILE)
    if data.email.lower() != user.email.lower():
        _issue_code(user, CodePurpose.CHANGE_EMAIL, data.email)
        awaited.append(CodePurpose.CHANGE_EMAIL)
    if changes or awaited:
        audit.record("user.profile_changed", object_type="user", object_id=user.id, actor=user,
                     changes={**changes, "awaiting": [str(p) for p in awaited]})
    return awaited


def confirm_contact_change(user: User, purpose: CodePurpose, code: str) -> str | None:
    """The code sent to the new mobile/e-mail → it replaces the old one. Returns an error or None."""
    row = _latest_code(user, purpose)
    if error := check_codes(user, {purpose: code}).get(purpose):
        return error
    field = CODE_CHANNEL[purpose]
    audit.record("user.contact_changed", object_type="user", object_id=user.id, actor=user,
                 changes={field: [getattr(user, field), row.target]})
    setattr(user, field, row.target)
    return None


def retry_message(actor: User, message: OutboxMessage) -> None:
    """MIIT sends a failed message once more (SPEC §13: never lost)."""
    if not permissions.can(actor, Action.OUTBOX_RETRY):
        raise NotFound()
    if message.status != MessageStatus.FAILED:
        raise WorkflowError(_l("Only failed messages are retried."))
    message.status, message.attempts, message.next_attempt_at = MessageStatus.QUEUED, 0, utcnow()
    audit.record("outbox.retry", object_type="outbox_message", object_id=message.id, actor=actor)
