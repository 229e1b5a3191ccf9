"""Accounts managed by staff (FAQ 29–30): creation, profile, status, password reset, import right."""

from __future__ import annotations

import secrets
import string
from collections.abc import Iterator
from dataclasses import dataclass

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from werkzeug.security import generate_password_hash

import audit
import notify
import permissions
from extensions import db
from models import (
    PROVINCIAL_ROLES,
    CodeItem,
    CodeTable,
    Province,
    Role,
    User,
    UserStatus,
)
from permissions import Action
from validators import (
    email_error,
    mobile_error,
    password_errors,
    username_error,
)
from workflow.errors import NotFound, Problem, WorkflowError, raise_problems

#: every staff account created in the console carries it; registration refuses any name holding it
STAFF_NAME_MARK = "_"

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
    role: Role | None  # None: not chosen yet (the form has no preselected role)
    password: str = ""
    province_code: str | None = None
    organisation: str = ""
    contact_name: str = ""
    mobile: str = ""
    email: str = ""
    preapproval_category: str | None = None
    can_import: bool = False
    isp_account: str = ""  # an IP reporting unit's access-provider (ISP) account, by name: the ranges it reports

    def __post_init__(self) -> None:
        """Form input arrives as None when a field is absent: normalise to stripped text."""
        for name in ("username", "organisation", "contact_name", "mobile", "email", "isp_account"):
            setattr(self, name, (getattr(self, name) or "").strip())
        self.password = self.password or ""
        self.province_code = self.province_code or None
        self.preapproval_category = self.preapproval_category or None
        self.can_import = bool(self.can_import)


def check_user_profile(data: UserData, actor: User | None = None) -> None:
    """Field rules shared by creation and editing; raises WorkflowErrors naming every field in error."""
    raise_problems([*_profile_problems(data), *_isp_account_problems(actor, data)])


def _isp_account(data: UserData) -> User | None:
    if not data.isp_account:
        return None
    return db.session.scalar(select(User).where(User.username == data.isp_account, User.role == Role.ISP))


def _isp_account_problems(actor: User | None, data: UserData) -> Iterator[Problem]:
    """An IP reporting unit's access provider: an ISP account, of the bureau's own province."""
    if not data.isp_account:
        return
    isp = _isp_account(data)
    if data.role != Role.IP_REPORTER:
        yield "isp_account", _l("Only an IP reporting unit has an access-provider account.")
    elif isp is None:
        yield "isp_account", _l("No access-provider (ISP) account has this name.")
    elif actor is not None and actor.role != Role.MIIT and isp.province_code != actor.province_code:
        yield "isp_account", _l("Choose an access provider of your province.")


def _profile_problems(data: UserData) -> Iterator[Problem]:
    if data.role in PROVINCIAL_ROLES and not data.province_code:
        yield "province_code", _l("A province is required for this role.")
    elif data.role == Role.MIIT and data.province_code:
        yield "province_code", _l("MIIT accounts are national and have no province.")
    elif data.province_code and db.session.get(Province, data.province_code) is None:
        yield "province_code", _l("Unknown province.")
    if data.role == Role.PREAPPROVAL:
        if not data.preapproval_category:
            yield "preapproval_category", _l("A pre-approval category is required.")
        elif db.session.scalar(select(CodeItem.id).where(
                CodeItem.table == CodeTable.PREAPPROVAL_CATEGORY, CodeItem.code == data.preapproval_category)) is None:
            yield "preapproval_category", _l("Unknown pre-approval category.")
    elif data.preapproval_category:
        yield "preapproval_category", _l("Only pre-approval users have a pre-approval category.")
    if not data.contact_name:
        yield "contact_name", _l("Contact name is required.")
    if error := mobile_error(data.mobile):
        yield "mobile", error
    if error := email_error(data.email):
        yield "email", error


def _new_account_problems(data: UserData, lookup: bool = True) -> Iterator[Problem]:
    """The rules of a new account; `lookup=False` leaves out whether the name is taken (asked only once
    the captcha is passed, so that names cannot be probed without it)."""
    if error := username_error(data.username):
        yield "username", error
    elif lookup and db.session.scalar(select(User.id).where(User.username == data.username)) is not None:
        yield "username", _l("This username is already taken.")
    for error in password_errors(data.password, data.username):
        yield "password", error
    yield from _profile_problems(data)


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
        isp_account_id=isp.id if (isp := _isp_account(data)) is not None else None,
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
    check_new_user(actor, data)
    return _insert_user(actor, data, UserStatus.ACTIVE, "user.create")


def check_new_user(actor: User | None, data: UserData) -> None:
    """Every rule of a staff-created account at once (WorkflowErrors naming each field)."""
    raise_problems(_new_user_problems(actor, data))


def _new_user_problems(actor: User | None, data: UserData) -> Iterator[Problem]:
    if data.role is None:
        yield "role", _l("Choose the account's role.")
    elif actor is not None and not permissions.may_create_user(actor, data.role, data.province_code):
        yield "role", _l("You may not create this kind of account in this province.")
    elif data.role == Role.ICP and actor is not None:
        yield "role", _l("ICP accounts are created by self-registration.")
    yield from _new_account_problems(data)
    yield from _isp_account_problems(actor, data)
    if data.can_import and (data.role != Role.ISP or (actor is not None and actor.role != Role.BUREAU)):
        yield "can_import", _l("Only a bureau grants the import right, and only to ISPs.")
    if actor is not None and data.role != Role.ICP and STAFF_NAME_MARK not in data.username \
            and username_error(data.username) is None:
        yield "username", _l("A staff username contains '_' (for example tj_isp_01): names without it are "
                             "left to self-registration.")


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
    check_user_profile(data, actor)
    changes = {}
    for name in _EDITABLE_FIELDS:
        new = getattr(data, name)
        if getattr(target, name) != new:
            changes[name] = [getattr(target, name), new]
            setattr(target, name, new)
    if target.role == Role.IP_REPORTER and target.isp_account != (isp := _isp_account(data)):
        changes["isp_account"] = [str(target.isp_account or ""), data.isp_account]
        target.isp_account = isp
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


def alert_if_under_attack(user: User, failures: int) -> None:
    """The account's failed sign-ins in the window (a wrong password, or a key that did not answer after the right
    one) reached THROTTLE_ACCOUNT_ALERT: tell its owner through the outbox — once per window, as the count reaches
    the threshold once."""
    if failures != current_app.config["THROTTLE_ACCOUNT_ALERT"]:
        return
    minutes = current_app.config["THROTTLE_WINDOW_MINUTES"]
    notify.queue_email(user.email, "ICP备案管理系统 账号安全提醒", (
        f"尊敬的用户 {user.username}：\n\n最近 {minutes} 分钟内，有人尝试登录您的账号失败 {failures} 次"
        "（密码错误，或密码正确而安全密钥未通过验证）。出错的网络地址已被暂时限制登录该账号，您本人仍可正常登录。\n\n"
        "如果这些尝试不是您本人所为，请登录后在“个人设置 › 修改密码”中换一个更强的密码；"
        "如果忘记了密码，请使用登录页的“找回密码”。"))
    audit.record("auth.account_under_attack", object_type="user", object_id=user.id,
                 changes={"failures": failures, "window_minutes": minutes},
                 province_code=user.province_code, actor_username=user.username)
