"""Every state change: check permission and state, change, record an audit event.

Views, CLI commands and (later) the import and the API call these functions; none
changes a record's state by itself. Functions flush but do not commit: the caller
owns the transaction, so a failure leaves nothing half-written.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import ipaddress
import json
import secrets
import string
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import current_app
from flask_babel import format_datetime
from flask_babel import lazy_gettext as _l
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload
from werkzeug.security import check_password_hash, generate_password_hash

import audit
import certificates
import notify
import numbering
import permissions
import security
from extensions import db
from models import (
    PROVINCIAL_ROLES,
    TAKEN_STATUSES,
    Access,
    Application,
    ApplicationKind,
    ApplicationState,
    BlacklistEntry,
    BlacklistKind,
    Certificate,
    CertificateStatus,
    CodeItem,
    CodePurpose,
    CodeTable,
    Domain,
    Entity,
    FilingStatus,
    IspVerification,
    MessageStatus,
    OutboxMessage,
    PasswordResetToken,
    PreapprovalItem,
    Province,
    ReviewState,
    Role,
    User,
    UserStatus,
    VerificationCode,
    Website,
    utcnow,
)
from permissions import Action
from validators import (
    certificate_type_error,
    credit_code_error,
    email_error,
    home_url_error,
    id_card_error,
    ip_address_error,
    mobile_error,
    normalise_domain,
    parse_ip_range,
    password_errors,
    username_error,
)


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


# --- filings: draft, submit, ISP verification, pre-approval, bureau audit (SPEC §3–§6) ----------

CREDIT_CODE_TYPE, ID_CARD_TYPE = "1", "16"  # certificate-type codes checked by their check characters


@dataclass
class AccessData:
    isp_id: int
    method: str
    server_province_code: str
    ip_ranges: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class WebsiteData:
    name: str
    domains: list[str]
    home_url: str
    service_content: str
    accesses: list[AccessData]
    languages: str = "1"
    responsible_name: str = ""
    responsible_mobile: str = ""
    preapprovals: list[tuple[str, str]] = field(default_factory=list)  # (category code, document number)
    bbs: bool = False
    bbs_sections: str = ""


@dataclass
class EntityData:
    province_code: str
    unit_name: str
    unit_nature: str
    certificate_type: str
    certificate_number: str
    responsible_name: str
    responsible_id_number: str
    responsible_mobile: str
    responsible_email: str
    address: str = ""
    commercial: bool = False


def _code_exists(table: CodeTable, code: str) -> bool:
    return db.session.scalar(select(CodeItem.id).where(CodeItem.table == table, CodeItem.code == code)) is not None


def _blacklisted(kind: BlacklistKind, value: str) -> bool:
    return db.session.scalar(select(BlacklistEntry.id).where(
        BlacklistEntry.kind == kind, BlacklistEntry.value == value)) is not None


def check_entity(data: EntityData, entity_id: int | None = None) -> None:
    """The entity step of the wizard; raises WorkflowError naming the field."""
    if db.session.get(Province, data.province_code) is None:
        raise WorkflowError(_l("Unknown province."), "province_code")
    if not data.unit_name.strip():
        raise WorkflowError(_l("The unit name is required."), "unit_name")
    allowed = {code: set((extra or "").split(",")) for code, extra in db.session.execute(
        select(CodeItem.code, CodeItem.extra).where(CodeItem.table == CodeTable.CERTIFICATE_TYPE))}
    if not _code_exists(CodeTable.UNIT_NATURE, data.unit_nature):
        raise WorkflowError(_l("Unknown unit nature."), "unit_nature")
    if error := certificate_type_error(data.unit_nature, data.certificate_type, allowed):
        raise WorkflowError(error, "certificate_type")
    number_error = {CREDIT_CODE_TYPE: credit_code_error, ID_CARD_TYPE: id_card_error}.get(
        data.certificate_type, lambda value: None if value.strip() else str(_l("The certificate number is required.")))
    if error := number_error(data.certificate_number):
        raise WorkflowError(error, "certificate_number")
    if error := id_card_error(data.responsible_id_number):
        raise WorkflowError(error, "responsible_id_number")
    if error := mobile_error(data.responsible_mobile):
        raise WorkflowError(error, "responsible_mobile")
    if error := email_error(data.responsible_email):
        raise WorkflowError(error, "responsible_email")
    for kind, value, name in ((BlacklistKind.CERTIFICATE_NUMBER, data.certificate_number, "certificate_number"),
                              (BlacklistKind.UNIT_NAME, data.unit_name.strip(), "unit_name")):
        if _blacklisted(kind, value):
            raise WorkflowError(_l("This value is on the registry's blacklist and cannot be filed."), name)
    other = db.session.scalar(select(Entity.id).where(
        Entity.certificate_number == data.certificate_number, Entity.status.in_(TAKEN_STATUSES),
        Entity.id != (entity_id or 0)).limit(1))
    if other is not None:
        raise WorkflowError(_l("An entity with this certificate number is already filed (FAQ 62)."),
                            "certificate_number")


def _normalised_domains(website: WebsiteData, index: int) -> list[str]:
    names = []
    for raw in website.domains:
        if ip_address_error(raw) is None:
            names.append(str(ipaddress.ip_address(raw.strip())))
            continue
        try:
            names.append(normalise_domain(raw))
        except ValueError as error:
            raise WorkflowError(str(error), f"websites-{index}-domains") from error
    if not names or len(set(names)) != len(names):
        raise WorkflowError(_l("Give each website at least one domain, each once."), f"websites-{index}-domains")
    return names


def check_website(website: WebsiteData, index: int, own_website_ids: set[int] = frozenset()) -> list[str]:
    """The website step of the wizard (without access); returns the normalised domains."""
    prefix = f"websites-{index}-"
    names = _normalised_domains(website, index)
    if not website.name.strip():
        raise WorkflowError(_l("The website name is required."), prefix + "name")
    if error := home_url_error(website.home_url, names):
        raise WorkflowError(error, prefix + "home_url")
    if not _code_exists(CodeTable.SERVICE_CONTENT, website.service_content):
        raise WorkflowError(_l("Choose the website's service content."), prefix + "service_content")
    for name in names:
        if _blacklisted(BlacklistKind.DOMAIN, name):
            raise WorkflowError(_l("This value is on the registry's blacklist and cannot be filed."),
                                prefix + "domains")
        holder = db.session.scalar(select(Domain.website_id).where(Domain.name == name, Domain.live))
        if holder is not None and holder not in own_website_ids:
            raise WorkflowError(_l("The domain %(name)s is already on another website.", name=name),
                                prefix + "domains")
    for category, document in website.preapprovals:
        if not _code_exists(CodeTable.PREAPPROVAL_CATEGORY, category) or not document.strip():
            raise WorkflowError(_l("Each pre-approval item needs its category and document number."),
                                prefix + "preapprovals")
    return names


def check_accesses(accesses: list[AccessData], index: int) -> None:
    """The access step of the wizard, for website `index`."""
    field_name = f"websites-{index}-accesses"
    if not accesses:
        raise WorkflowError(_l("Name at least one access provider (ISP)."), field_name)
    if len({a.isp_id for a in accesses}) != len(accesses):
        raise WorkflowError(_l("Each access provider once per website."), field_name)
    for access in accesses:
        isp = db.session.get(User, access.isp_id)
        if isp is None or isp.role != Role.ISP or isp.status != UserStatus.ACTIVE:
            raise WorkflowError(_l("Unknown access provider."), field_name)
        if not _code_exists(CodeTable.ACCESS_METHOD, access.method):
            raise WorkflowError(_l("Choose the access method."), field_name)
        if db.session.get(Province, access.server_province_code) is None:
            raise WorkflowError(_l("Unknown province."), field_name)
        for start, end in access.ip_ranges:
            try:
                parse_ip_range(start, end)
            except ValueError as error:
                raise WorkflowError(str(error), field_name) from error


def _may_file_for(actor: User, entity: Entity | None, websites: list[WebsiteData]) -> bool:
    """ICP users file for themselves; an ISP may file for a customer it serves (SPEC §4)."""
    if actor.role == Role.ICP:
        return entity is None or entity.owner_id == actor.id
    if actor.role == Role.ISP:
        return all(any(a.isp_id == actor.id for a in w.accesses) for w in websites)
    return False


def save_filing_draft(actor: User, entity_data: EntityData, websites: list[WebsiteData],
                      application: Application | None = None) -> Application:
    """Create or replace the draft of a new filing (the wizard's data); nothing is submitted."""
    entity = application.entity if application else None
    if application is not None and application.state != ApplicationState.DRAFT:
        raise WorkflowError(_l("Only a draft or a returned application can be edited."))
    if not _may_file_for(actor, entity, websites):
        raise NotFound()
    if not websites:
        raise WorkflowError(_l("A filing has at least one website."), "websites")
    check_entity(entity_data, entity.id if entity else None)
    own_ids = {w.id for w in entity.websites} if entity else set()
    all_names: list[str] = []
    for index, website in enumerate(websites):
        all_names += check_website(website, index, own_ids)
        check_accesses(website.accesses, index)
    if len(set(all_names)) != len(all_names):
        raise WorkflowError(_l("A domain can belong to one website only."), "websites")
    if entity is None:
        entity = Entity(owner_id=actor.id if actor.role == Role.ICP else None, status=FilingStatus.DRAFT,
                        website_seq=0)
        db.session.add(entity)
    for name, value in vars(entity_data).items():
        setattr(entity, name, value.strip() if isinstance(value, str) else value)
    for old in list(entity.websites):
        db.session.delete(old)
    db.session.flush()
    for index, website in enumerate(websites):
        row = Website(entity=entity, name=website.name.strip(), home_url=website.home_url.strip(),
                      service_content=website.service_content, languages=website.languages,
                      responsible_name=website.responsible_name, responsible_mobile=website.responsible_mobile,
                      bbs=website.bbs, bbs_sections=website.bbs_sections, status=FilingStatus.DRAFT)
        row.domains = [Domain(name=name, live=True) for name in _normalised_domains(website, index)]
        row.preapprovals = [PreapprovalItem(category=c, document_number=d.strip(), state=ReviewState.PENDING)
                            for c, d in website.preapprovals]
        row.accesses = [Access(isp_id=a.isp_id, method=a.method, server_province_code=a.server_province_code,
                               ip_ranges="\n".join(f"{s}-{e}" for s, e in a.ip_ranges), live=True)
                        for a in website.accesses]
        db.session.add(row)
    if application is None:
        application = Application(entity=entity, province_code=entity.province_code,
                                  kind=ApplicationKind.NEW_FILING, state=ApplicationState.DRAFT)
        db.session.add(application)
    application.province_code = entity.province_code
    try:
        db.session.flush()
    except IntegrityError as race:
        raise WorkflowError(_l("A domain or certificate number was filed elsewhere at the same moment."
                               )) from race
    audit.record("application.draft_saved", object_type="application", object_id=application.id,
                 province_code=entity.province_code, actor=actor)
    return application


def _isps_of(application: Application) -> set[int]:
    return {a.isp_id for w in application.entity.websites for a in w.accesses if a.live}


def submit_application(actor: User, application: Application) -> Application:
    """draft → isp_review, one verification row per ISP named; the submitting ISP counts as verified."""
    if not _may_file_for(actor, application.entity, []) and not (
            actor.role == Role.ISP and actor.id in _isps_of(application)):
        raise NotFound()
    if application.state != ApplicationState.DRAFT:
        raise WorkflowError(_l("Only a draft or a returned application can be submitted."))
    application.verifications = [
        IspVerification(isp_id=isp_id, state=ReviewState.CONFIRMED if isp_id == actor.id else ReviewState.PENDING,
                        at=utcnow() if isp_id == actor.id else None)
        for isp_id in sorted(_isps_of(application))]
    application.submitted_by_id, application.submitted_at = actor.id, utcnow()
    application.reasons = "{}"
    application.state = ApplicationState.ISP_REVIEW
    _advance_after_isp(application)
    audit.record("application.submitted", object_type="application", object_id=application.id,
                 province_code=application.province_code, actor=actor)
    return application


def _advance_after_isp(application: Application) -> None:
    if all(v.state == ReviewState.CONFIRMED for v in application.verifications):
        application.state = ApplicationState.BUREAU_REVIEW


def _verification_of(actor: User, application: Application) -> IspVerification:
    row = next((v for v in application.verifications if v.isp_id == actor.id), None)
    if actor.role != Role.ISP or row is None:
        raise NotFound()
    if application.state != ApplicationState.ISP_REVIEW or row.state != ReviewState.PENDING:
        raise WorkflowError(_l("This application is not waiting for your verification."))
    return row


def isp_verify(actor: User, application: Application) -> Application:
    """FAQ 66–67: stays in ISP review until every ISP named has verified."""
    row = _verification_of(actor, application)
    row.state, row.at = ReviewState.CONFIRMED, utcnow()
    _advance_after_isp(application)
    audit.record("application.isp_verified", object_type="application", object_id=application.id,
                 province_code=application.province_code, actor=actor)
    return application


def isp_return(actor: User, application: Application, reason: str) -> Application:
    if not reason.strip():
        raise WorkflowError(_l("Give the reason for returning the application."), "reason")
    row = _verification_of(actor, application)
    row.state, row.at, row.reason = ReviewState.RETURNED, utcnow(), reason.strip()[:500]
    application.state = ApplicationState.DRAFT
    application.reasons = json.dumps({"isp": reason.strip()[:500]}, ensure_ascii=False)
    audit.record("application.isp_returned", object_type="application", object_id=application.id,
                 province_code=application.province_code, actor=actor, changes={"reason": reason.strip()[:500]})
    return application


def review_preapproval(actor: User, item: PreapprovalItem, confirmed: bool, reason: str = "") -> PreapprovalItem:
    """A pre-approval authority confirms or disputes one item of its category (and province)."""
    if not permissions.may_review_preapproval(actor, item):
        raise NotFound()
    if not confirmed and not reason.strip():
        raise WorkflowError(_l("Give the reason for disputing the item."), "reason")
    item.state = ReviewState.CONFIRMED if confirmed else ReviewState.RETURNED
    item.reviewer_id, item.reviewed_at, item.reason = actor.id, utcnow(), reason.strip()[:500]
    audit.record("preapproval.confirmed" if confirmed else "preapproval.disputed", object_type="preapproval",
                 object_id=item.id, province_code=item.website.entity.province_code, actor=actor,
                 changes={"reason": item.reason} if item.reason else {})
    return item


def _require_bureau_review(actor: User, application: Application) -> None:
    if not permissions.may_audit(actor, application.province_code):
        raise NotFound()
    if application.state != ApplicationState.BUREAU_REVIEW:
        raise WorkflowError(_l("This application is not waiting for the bureau's audit."))


def _blacklist_hits(applications: list[Application]) -> set[tuple[str, str]]:
    """The (kind, value) pairs of these applications that are on the blacklist: one query."""
    wanted = set()
    for application in applications:
        entity = application.entity
        wanted |= {(BlacklistKind.CERTIFICATE_NUMBER.value, entity.certificate_number),
                   (BlacklistKind.UNIT_NAME.value, entity.unit_name)}
        wanted |= {(BlacklistKind.DOMAIN.value, d.name) for w in entity.websites for d in w.domains}
    values = {value for _kind, value in wanted}
    hits = set()
    for start in range(0, len(values), 5000):
        chunk = sorted(values)[start:start + 5000]
        hits |= {(str(kind), value) for kind, value in db.session.execute(
            select(BlacklistEntry.kind, BlacklistEntry.value).where(BlacklistEntry.value.in_(chunk)))}
    return hits & wanted


def approval_blockers(application: Application, hits: set[tuple[str, str]] | None = None) -> list[str]:
    """Why the bureau cannot approve yet (unconfirmed pre-approval, blacklisted value)."""
    hits = _blacklist_hits([application]) if hits is None else hits
    entity, problems = application.entity, []
    for website in entity.websites:
        for item in website.preapprovals:
            if item.state != ReviewState.CONFIRMED:
                problems.append(str(_l("Pre-approval %(document)s of %(site)s is not confirmed.",
                                       document=item.document_number, site=website.name)))
        problems += [str(_l("The domain %(name)s is blacklisted.", name=d.name)) for d in website.domains
                     if (BlacklistKind.DOMAIN.value, d.name) in hits]
    if {(BlacklistKind.CERTIFICATE_NUMBER.value, entity.certificate_number),
            (BlacklistKind.UNIT_NAME.value, entity.unit_name)} & hits:
        problems.append(str(_l("The entity is blacklisted.")))
    return problems


def _preload(applications: list[Application]) -> list[Entity]:
    """Entities with their websites, domains and pre-approvals in a few queries, not one per row.

    The caller keeps what it returns: the session's identity map holds objects only weakly."""
    ids, loaded = [a.entity_id for a in applications], []
    for start in range(0, len(ids), 1000):
        loaded += db.session.scalars(select(Entity).where(Entity.id.in_(ids[start:start + 1000])).options(
            selectinload(Entity.websites).selectinload(Website.domains),
            selectinload(Entity.websites).selectinload(Website.preapprovals))).all()
    return loaded


def approve(actor: User, application: Application, typed_number: str | None = None) -> Application:
    """管局审核通过, 手工审核 (FAQ 32): the number typed by the auditor or generated."""
    return _approve_all(actor, [application], typed_number)[0]


def batch_approve(actor: User, applications: list[Application]) -> list[Application]:
    """FAQ 32 自动审核: many at once, numbers always generated; all or nothing."""
    return _approve_all(actor, applications, None)


def _approve_all(actor: User, applications: list[Application], typed_number: str | None) -> list[Application]:
    """One transaction (SPEC §4): numbers, certificates, e-mails, audit events — set-based, so that a
    batch of thousands costs a few statements per table rather than a dozen per application."""
    for application in applications:
        _require_bureau_review(actor, application)
    by_id = {entity.id: entity for entity in _preload(applications)}
    entities = [by_id[application.entity_id] for application in applications]
    hits = _blacklist_hits(applications)
    for application in applications:
        if problems := approval_blockers(application, hits):
            raise WorkflowError(f"{application.entity.unit_name}: {problems[0]}" if len(applications) > 1
                                else problems[0])
    now = utcnow()
    _assign_numbers(entities, typed_number, now.year)
    for application, entity in zip(applications, entities, strict=True):
        for website in entity.websites:
            if website.number is None:
                entity.website_seq += 1
                website.number = numbering.website_number(entity.number, entity.website_seq)
                website.status, website.approved_at = FilingStatus.ACTIVE, now
        entity.status, entity.approved_at = FilingStatus.ACTIVE, entity.approved_at or now
        application.state, application.decided_by_id, application.decided_at = (
            ApplicationState.APPROVED, actor.id, now)
    db.session.flush()
    tokens = _issue_certificates(entities)
    notify.queue_emails([_approval_email(entity, tokens[entity.id][1], now) for entity in entities])
    audit.record_many([("application.approved", {
        "object_type": "application", "object_id": a.id, "province_code": a.province_code, "actor": actor,
        "changes": {"number": a.entity.number, "typed": bool(typed_number), "certificate": tokens[a.entity_id][0]},
    }) for a in applications])
    return applications


def _assign_numbers(entities: list[Entity], typed_number: str | None, year: int) -> None:
    provinces = {p.code: p for p in db.session.scalars(select(Province))}
    if typed_number:
        (entity,) = entities
        if error := numbering.typed_number_error(typed_number, provinces[entity.province_code]):
            raise WorkflowError(error, "number")
        entity.number = typed_number.strip()
    waiting: dict[str, list[Entity]] = {}
    for entity in entities:
        if entity.number is None:
            waiting.setdefault(entity.province_code, []).append(entity)
    for code, group in sorted(waiting.items()):
        for entity, number in zip(group, numbering.allocate_filing_numbers(provinces[code], year, len(group)),
                                  strict=True):
            entity.number = number
    for entity in entities:
        if entity.commercial and entity.licence_number is None:
            entity.licence_number = numbering.allocate_licence_number(provinces[entity.province_code])


def reject(actor: User, application: Application, reasons: dict[str, str]) -> Application:
    """管局驳回: a reason per field where it applies; the application becomes editable again."""
    _require_bureau_review(actor, application)
    reasons = {key: value.strip()[:500] for key, value in reasons.items() if value and value.strip()}
    if not reasons:
        raise WorkflowError(_l("Give at least one reason for rejecting."), "reason")
    application.state, application.decided_by_id, application.decided_at = ApplicationState.DRAFT, actor.id, utcnow()
    application.reasons = json.dumps(reasons, ensure_ascii=False)
    audit.record("application.rejected", object_type="application", object_id=application.id,
                 province_code=application.province_code, actor=actor, changes=reasons)
    return application


def certificate_payload(entity: Entity, certificate_id: str, issued: datetime) -> dict[str, object]:
    province = db.session.get(Province, entity.province_code)
    return {
        "certificate_id": certificate_id,
        "kind": "licence" if entity.commercial else "filing",
        "entity_number": entity.number,
        "licence_number": entity.licence_number,
        "unit_name": entity.unit_name,
        "province": province.name,
        "websites": [{"number": w.number, "name": w.name, "domains": [d.name for d in w.domains],
                      "home_url": w.home_url} for w in entity.websites if w.status == FilingStatus.ACTIVE],
        "issuer": f"{province.name}通信管理局",
        "issued_at": issued.strftime("%Y-%m-%d"),
    }


def _issue_certificates(entities: list[Entity]) -> dict[int, tuple[str, str]]:
    """A new bazs.cert per entity (the previous ones become superseded); entity id → (id, token)."""
    ring = certificates.keyring()
    ids = [entity.id for entity in entities]
    for start in range(0, len(ids), 1000):
        db.session.execute(update(Certificate).where(
            Certificate.entity_id.in_(ids[start:start + 1000]), Certificate.status == CertificateStatus.CURRENT,
        ).values(status=CertificateStatus.SUPERSEDED))
    issued, kid, rows, tokens = utcnow(), ring.current_kid(), [], {}
    for entity in entities:
        certificate_id = str(uuid.uuid4())
        token = ring.sign(certificate_payload(entity, certificate_id, issued))
        rows.append({"id": certificate_id, "entity_id": entity.id, "kid": kid, "token": token,
                     "status": CertificateStatus.CURRENT, "issued_at": issued})
        tokens[entity.id] = (certificate_id, token)
    db.session.execute(Certificate.__table__.insert(), rows)
    return tokens


def _approval_email(entity: Entity, token: str, when: datetime) -> dict[str, object]:
    """FAQ 53, with the licence wording for commercial entities; the certificate attached."""
    kind, number = ("许可证", entity.licence_number) if entity.commercial else ("备案", entity.number)
    body = (f"尊敬的用户，您的ICP{kind}申请已通过审核，备案／许可证号为:{number}，"
            f"审核日期：{format_datetime(when, 'yyyy-MM-dd')}。附件一是您的电子证书。谢谢合作！")
    return {"recipient": entity.responsible_email, "subject": f"ICP{kind}审核通知", "body": body,
            "attachment_name": "bazs.cert", "attachment": token.encode("ascii")}
