"""Every state change: check permission and state, change, record an audit event.

Views, CLI commands and (later) the import and the API call these functions; none
changes a record's state by itself. Functions flush but do not commit: the caller
owns the transaction, so a failure leaves nothing half-written.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from flask_babel import format_datetime
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

import audit
import notify
import permissions
import security
from extensions import db
from models import (
    PROVINCIAL_ROLES,
    CodeItem,
    CodePurpose,
    CodeTable,
    MessageStatus,
    OutboxMessage,
    PasswordResetToken,
    Province,
    Role,
    User,
    UserStatus,
    VerificationCode,
    utcnow,
)
from permissions import Action
from validators import email_error, mobile_error, password_errors, username_error


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


#: compared against when the username is unknown, so both paths cost one hash check
_DUMMY_HASH = generate_password_hash("not-a-password", method="scrypt")


def hash_password(password: str) -> str:
    return generate_password_hash(password, method=current_app.config["PASSWORD_HASH_METHOD"])


def generate_password(length: int = 12) -> str:
    """A random password that passes the password rules (letters and digits, mixed)."""
    alphabet = string.ascii_letters + string.digits
    while True:
        candidate = "".join(secrets.choice(alphabet) for _ in range(length))
        if any(c.isdigit() for c in candidate) and any(c.isalpha() for c in candidate):
            return candidate


@dataclass
class UserData:
    """The editable fields of an account (username and role only at creation)."""

    username: str
    role: Role
    password: str = ""
    province_code: str | None = None
    organisation: str = ""
    contact_name: str = ""
    mobile: str = ""
    email: str = ""
    preapproval_category: str | None = None
    can_import: bool = False

    def __post_init__(self) -> None:
        """Form input arrives as None when a field is absent: normalise to stripped text."""
        for name in ("username", "organisation", "contact_name", "mobile", "email"):
            setattr(self, name, (getattr(self, name) or "").strip())
        self.password = self.password or ""
        self.province_code = self.province_code or None
        self.preapproval_category = self.preapproval_category or None
        self.can_import = bool(self.can_import)


def _check_profile(data: UserData) -> None:
    """Field rules shared by creation and editing; raises on the first problem."""
    if data.role in PROVINCIAL_ROLES and not data.province_code:
        raise WorkflowError(_l("A province is required for this role."), "province_code")
    if data.role == Role.MIIT and data.province_code:
        raise WorkflowError(_l("MIIT accounts are national and have no province."), "province_code")
    if data.province_code and db.session.get(Province, data.province_code) is None:
        raise WorkflowError(_l("Unknown province."), "province_code")
    if data.role == Role.PREAPPROVAL:
        if not data.preapproval_category:
            raise WorkflowError(_l("A pre-approval category is required."), "preapproval_category")
        known = db.session.scalar(
            select(CodeItem.id).where(
                CodeItem.table == CodeTable.PREAPPROVAL_CATEGORY,
                CodeItem.code == data.preapproval_category,
            )
        )
        if known is None:
            raise WorkflowError(_l("Unknown pre-approval category."), "preapproval_category")
    elif data.preapproval_category:
        raise WorkflowError(
            _l("Only pre-approval users have a pre-approval category."), "preapproval_category"
        )
    if not data.contact_name:
        raise WorkflowError(_l("Contact name is required."), "contact_name")
    if error := mobile_error(data.mobile):
        raise WorkflowError(error, "mobile")
    if error := email_error(data.email):
        raise WorkflowError(error, "email")


def _check_new_account(data: UserData) -> None:
    if error := username_error(data.username):
        raise WorkflowError(error, "username")
    if db.session.scalar(select(User.id).where(User.username == data.username)) is not None:
        raise WorkflowError(_l("This username is already taken."), "username")
    if errors := password_errors(data.password, data.username):
        raise WorkflowError(errors[0], "password")
    _check_profile(data)


def _insert_user(actor: User | None, data: UserData, status: UserStatus, action: str) -> User:
    user = User(
        username=data.username,
        password_hash=hash_password(data.password),
        role=data.role,
        province_code=data.province_code,
        organisation=data.organisation,
        contact_name=data.contact_name,
        mobile=data.mobile,
        email=data.email,
        preapproval_category=data.preapproval_category,
        can_import=data.can_import,
        status=status,
        created_by_id=actor.id if actor else None,
    )
    db.session.add(user)
    try:
        db.session.flush()
    except IntegrityError as race:  # the same name registered at the same moment elsewhere
        raise WorkflowError(_l("This username is already taken."), "username") from race
    audit.record(
        action,
        object_type="user",
        object_id=user.id,
        changes={"username": user.username, "role": str(user.role),
                 "province_code": user.province_code, "can_import": user.can_import},
        province_code=user.province_code,
        actor=actor,
        actor_username=data.username if action == "user.register" else (None if actor else "cli"),
    )
    return user


def create_user(actor: User | None, data: UserData) -> User:
    """FAQ 29–30. `actor=None` is the operator at the command line (init, create-user)."""
    if actor is not None and not permissions.may_create_user(actor, data.role, data.province_code):
        raise WorkflowError(_l("You may not create this kind of account in this province."), "role")
    if data.role == Role.ICP and actor is not None:
        raise WorkflowError(_l("ICP accounts are created by self-registration."), "role")
    _check_new_account(data)
    if data.can_import and (data.role != Role.ISP or (actor is not None and actor.role != Role.BUREAU)):
        raise WorkflowError(_l("Only a bureau grants the import right, and only to ISPs."), "can_import")
    return _insert_user(actor, data, UserStatus.ACTIVE, "user.create")


def _require_manage(actor: User, target: User, action: Action) -> None:
    if not permissions.may_manage_user(actor, target, action):
        raise NotFound()


_EDITABLE_FIELDS = ("province_code", "organisation", "contact_name", "mobile", "email",
                    "preapproval_category")


def update_user(actor: User, target: User, data: UserData) -> User:
    """Edit an account's profile; username and role never change (FAQ 24, 49)."""
    _require_manage(actor, target, Action.USER_EDIT)
    data.role, data.username = target.role, target.username
    if not permissions.in_actor_province(actor, data.province_code):
        raise WorkflowError(_l("You may not move an account outside your province."), "province_code")
    _check_profile(data)
    changes = {}
    for name in _EDITABLE_FIELDS:
        new = getattr(data, name)
        if getattr(target, name) != new:
            changes[name] = [getattr(target, name), new]
            setattr(target, name, new)
    if not changes:
        return target
    audit.record("user.edit", object_type="user", object_id=target.id, changes=changes,
                 province_code=target.province_code, actor=actor)
    return target


def set_user_status(actor: User, target: User, status: UserStatus) -> User:
    """Disable or enable an account; disabling ends its sessions at once."""
    _require_manage(actor, target, Action.USER_STATUS)
    if status not in (UserStatus.ACTIVE, UserStatus.DISABLED):
        raise WorkflowError(_l("Unknown account status."))
    if target.status == status:
        raise WorkflowError(_l("The account already has this status."))
    if target.status == UserStatus.PENDING and status == UserStatus.ACTIVE:
        raise WorkflowError(_l("A pending account becomes active through its identity check."))
    old = target.status
    target.status = status
    if status == UserStatus.DISABLED:
        target.session_epoch += 1
    audit.record("user.disable" if status == UserStatus.DISABLED else "user.enable",
                 object_type="user", object_id=target.id,
                 changes={"status": [str(old), str(status)]},
                 province_code=target.province_code, actor=actor)
    return target


def reset_user_password(actor: User, target: User) -> str:
    """Set a new random password, end the user's sessions, return the password (shown once)."""
    _require_manage(actor, target, Action.USER_RESET_PASSWORD)
    password = generate_password()
    target.password_hash = hash_password(password)
    target.session_epoch += 1
    audit.record("user.reset_password", object_type="user", object_id=target.id,
                 province_code=target.province_code, actor=actor)
    return password


def set_import_grant(actor: User, target: User, granted: bool) -> User:
    """FAQ 47: a bureau gives or withdraws the import right of one of its ISPs."""
    if not permissions.may_grant_import(actor, target):
        raise NotFound()
    if target.can_import == granted:
        raise WorkflowError(_l("The import right is already in this state."))
    target.can_import = granted
    audit.record("user.grant_import" if granted else "user.withdraw_import",
                 object_type="user", object_id=target.id,
                 changes={"can_import": [not granted, granted]},
                 province_code=target.province_code, actor=actor)
    return target


class SignInOutcome(enum.Enum):
    SIGNED_IN = "signed_in"
    IDENTITY_CHECK = "identity_check"  # right password, registration not yet confirmed (FAQ 21)
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
    if until := security.locked_until(keys):
        message = str(_l("Too many failed attempts. Try again after %(time)s.",
                         time=format_datetime(until, "HH:mm")))
        _record_attempt("auth.sign_in_failed", username, None, "locked")
        return SignInResult(SignInOutcome.REFUSED, message=message)
    if not captcha_ok:
        _record_attempt("auth.sign_in_failed", username, None, "captcha")
        return SignInResult(SignInOutcome.REFUSED, message=str(_l(
            "The verification code in the picture is wrong or has expired.")))
    user = db.session.scalar(select(User).where(User.username == username))
    if not check_password_hash(user.password_hash if user else _DUMMY_HASH, password):
        security.record_failure(*keys)
        _record_attempt("auth.sign_in_failed", username, user, "password")
        return SignInResult(SignInOutcome.REFUSED, message=str(_l("Wrong username or password.")))
    security.record_success(keys[0])
    if user.status == UserStatus.DISABLED:
        _record_attempt("auth.sign_in_failed", username, user, "disabled")
        return SignInResult(SignInOutcome.REFUSED, message=str(_l(
            "This account has been disabled. Contact your administrator.")))
    if user.status == UserStatus.PENDING:
        _record_attempt("auth.identity_check", username, user)
        return SignInResult(SignInOutcome.IDENTITY_CHECK, user)
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


def register_icp(data: UserData) -> User:
    """FAQ 20: a new ICP account, pending until both codes are entered at first sign-in."""
    data.role, data.province_code, data.preapproval_category, data.can_import = Role.ICP, None, None, False
    _check_new_account(data)
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
                                      expires_at=utcnow() + timedelta(minutes=minutes)))
    notify.queue_email(user.email, "ICP备案管理系统 重置密码", (
        f"尊敬的用户 {user.username}：\n\n请在 {minutes} 分钟内打开下面的链接设置新密码（链接只能使用一次）：\n"
        f"{link_for(token)}\n\n如非本人操作，请忽略本邮件，您的密码不会改变。"), sensitive=True)


def reset_token_user(token: str) -> User | None:
    """The account a reset link belongs to, while the link is unused and unexpired."""
    row = db.session.get(PasswordResetToken, _token_digest(token))
    if row is None or row.used_at is not None or row.expires_at < utcnow():
        return None
    return db.session.get(User, row.user_id)


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
    if errors := password_errors(new_password, user.username):
        raise WorkflowError(errors[0], field)
    user.password_hash = hash_password(new_password)
    user.session_epoch += 1  # every other session of the account ends


def change_password(user: User, old_password: str, new_password: str) -> None:
    """FAQ 27: old + new."""
    if not check_password_hash(user.password_hash, old_password):
        raise WorkflowError(_l("The current password is wrong."), "old_password")
    if old_password == new_password:
        raise WorkflowError(_l("The new password must differ from the current one."), "new_password")
    _set_password(user, new_password, "new_password")
    audit.record("auth.password_changed", object_type="user", object_id=user.id, actor=user)


def update_own_profile(user: User, organisation: str, contact_name: str, mobile: str,
                       email: str) -> list[CodePurpose]:
    """FAQ 28. Name and organisation change at once; a new mobile or e-mail is only taken once
    the code sent to it is entered. Returns the confirmations now awaited."""
    data = UserData(username=user.username, role=user.role, province_code=user.province_code,
                    preapproval_category=user.preapproval_category, organisation=organisation,
                    contact_name=contact_name, mobile=mobile, email=email)
    _check_profile(data)
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
