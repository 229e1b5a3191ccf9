"""Security keys (WebAuthn / FIDO2) instead of the USB certificate plug-in (issue 17 §3).

After the password (and the captcha), a user who holds a key — or whose role is in WEBAUTHN_REQUIRED_ROLES —
gets no session until a key answers: one registered then (the first sign-in, within KEY_STEP_MINUTES of the
password), or one already registered. The ceremonies' challenges are kept here, on the server (the browser's
session holds only their id), and deleted when answered: each is used once, whatever the answer. A signature
counter that does not grow betrays a cloned key: refused and audited. A lost key: the account's creator (the
bureau of its province, or MIIT — `permissions.may_manage_user`) deletes its keys, and the user registers a new
one at the next sign-in.
"""

from __future__ import annotations

import enum
import secrets
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, func, select
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import parse_authentication_credential_json
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

import audit
import permissions
import security
from extensions import db
from models import SecurityKey, User, WebAuthnChallenge, utcnow
from permissions import Action
from workflow.errors import NotFound, WorkflowError
from workflow.users import alert_if_under_attack

#: a password opens the key step for this long (registration at the first sign-in included)
KEY_STEP_MINUTES = 30
#: a ceremony's challenge is answered within this, or refused (the browser's own timeout is the same)
CHALLENGE_SECONDS = 300
NAME_LENGTH = 64
REGISTER, SIGN_IN = "register", "sign_in"
#: what the browser's answer may fail with besides the library's own errors (a forged or truncated body)
_BAD_ANSWER = (WebAuthnException, ValueError, TypeError, KeyError)
_TRANSPORTS = {transport.value for transport in AuthenticatorTransport}


class KeyRefused(WorkflowError):
    """A key's answer that does not verify (a stranger's key, a forged answer, a cloned key): a failed sign-in —
    unlike a challenge that expired or was already used, which the owner meets too (a slow tap, two tabs)."""


class KeyStep(enum.Enum):
    """What a sign-in asks after the password."""

    REGISTER = "register"  # the role requires a key and the account has none yet
    USE = "use"  # the account has a key


def keys_of(user: User) -> list[SecurityKey]:
    return list(db.session.scalars(select(SecurityKey).where(SecurityKey.user_id == user.id)
                                   .order_by(SecurityKey.id)))


def key_required(user: User) -> bool:
    return str(user.role) in current_app.config["WEBAUTHN_REQUIRED_ROLES"]


def key_step(user: User) -> KeyStep | None:
    """A key is used by whoever has one (added voluntarily or not); registered by a required role without one."""
    if db.session.scalar(select(func.count()).where(SecurityKey.user_id == user.id)):
        return KeyStep.USE
    return KeyStep.REGISTER if key_required(user) else None


# --- challenges ---------------------------------------------------------------------------------------------

def _new_challenge(user: User, purpose: str) -> tuple[int, bytes]:
    """A fresh challenge; the user's earlier one of the same purpose and everyone's expired ones are swept."""
    now = utcnow()
    db.session.execute(delete(WebAuthnChallenge).where(
        (WebAuthnChallenge.expires_at < now)
        | ((WebAuthnChallenge.user_id == user.id) & (WebAuthnChallenge.purpose == purpose))))
    row = WebAuthnChallenge(user_id=user.id, purpose=purpose, challenge=secrets.token_bytes(32),
                            expires_at=now + timedelta(seconds=CHALLENGE_SECONDS))
    db.session.add(row)
    db.session.flush()
    return row.id, row.challenge


def _take_challenge(user: User, challenge_id: int | None, purpose: str) -> bytes:
    """The challenge, deleted in the same statement: of two answers racing for it, one gets it."""
    row = db.session.execute(delete(WebAuthnChallenge).where(
        WebAuthnChallenge.id == (challenge_id or 0), WebAuthnChallenge.user_id == user.id,
        WebAuthnChallenge.purpose == purpose).returning(
        WebAuthnChallenge.challenge, WebAuthnChallenge.expires_at)).first()
    if row is None or row.expires_at < utcnow():
        raise WorkflowError(_l("The security key request has expired or was already used. Try again."))
    return row.challenge


def _relying_party() -> tuple[str, str]:
    return current_app.config["WEBAUTHN_RP_ID"], current_app.config["WEBAUTHN_ORIGIN"]


def _descriptor(key: SecurityKey) -> PublicKeyCredentialDescriptor:
    transports = [AuthenticatorTransport(t) for t in key.transports.split(",") if t in _TRANSPORTS]
    return PublicKeyCredentialDescriptor(id=key.credential_id, transports=transports or None)


# --- registration ------------------------------------------------------------------------------------------

def _registration_options(user: User) -> tuple[int, str]:
    challenge_id, challenge = _new_challenge(user, REGISTER)
    options = generate_registration_options(
        rp_id=_relying_party()[0], rp_name=current_app.config["WEBAUTHN_RP_NAME"], user_name=user.username,
        user_id=f"user:{user.id}".encode(), user_display_name=user.contact_name or user.username,
        challenge=challenge, timeout=CHALLENGE_SECONDS * 1000,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.DISCOURAGED, user_verification=UserVerificationRequirement.PREFERRED),
        exclude_credentials=[_descriptor(key) for key in keys_of(user)])
    return challenge_id, options_to_json(options)


def _clean_name(user: User, name: str, renamed: SecurityKey | None = None) -> str:
    name = " ".join((name or "").split())
    if not name:
        raise WorkflowError(_l("Give the key a name (e.g. where it is kept)."), field="name")
    if len(name) > NAME_LENGTH:
        raise WorkflowError(_l("The name is longer than %(n)d characters.", n=NAME_LENGTH), field="name")
    if any(key.name == name and key is not renamed for key in keys_of(user)):
        raise WorkflowError(_l("Another of your keys has this name."), field="name")
    return name


def _register(user: User, challenge_id: int | None, answer: str | dict[str, Any], name: str) -> SecurityKey:
    name = _clean_name(user, name)
    challenge = _take_challenge(user, challenge_id, REGISTER)
    rp_id, origin = _relying_party()
    try:
        verified = verify_registration_response(credential=answer, expected_challenge=challenge,
                                                expected_rp_id=rp_id, expected_origin=origin)
    except _BAD_ANSWER as error:
        _refused(user, "security_key.refused", str(error))
        raise WorkflowError(_l("The security key's answer could not be verified. Try again.")) from error
    if db.session.scalar(select(SecurityKey.id).where(SecurityKey.credential_id == verified.credential_id)):
        raise WorkflowError(_l("This security key is already registered."))
    key = SecurityKey(user_id=user.id, name=name, credential_id=verified.credential_id,
                      public_key=verified.credential_public_key, sign_count=verified.sign_count,
                      transports=_transports(answer))
    db.session.add(key)
    db.session.flush()
    audit.record("security_key.added", object_type="user", object_id=user.id,
                 changes={"key": name, "key_id": key.id}, province_code=user.province_code, actor=user)
    return key


def _transports(answer: str | dict[str, Any]) -> str:
    """The transports the browser reported (a hint for the next ceremonies), as "usb,nfc"."""
    reported = answer.get("response", {}).get("transports", []) if isinstance(answer, dict) else []
    return ",".join(t for t in reported if isinstance(t, str) and t in _TRANSPORTS)[:128]


def _refused(user: User, action: str, reason: str) -> None:
    audit.record(action, object_type="user", object_id=user.id, changes={"reason": reason[:200]},
                 province_code=user.province_code, actor_username=user.username)


# --- authentication ----------------------------------------------------------------------------------------

def _authentication_options(user: User) -> tuple[int, str]:
    keys = keys_of(user)
    if not keys:
        raise WorkflowError(_l("This account has no security key."))
    challenge_id, challenge = _new_challenge(user, SIGN_IN)
    options = generate_authentication_options(
        rp_id=_relying_party()[0], challenge=challenge, timeout=CHALLENGE_SECONDS * 1000,
        allow_credentials=[_descriptor(key) for key in keys],
        user_verification=UserVerificationRequirement.PREFERRED)
    return challenge_id, options_to_json(options)


def _answering_key(user: User, answer: str | dict[str, Any]) -> SecurityKey:
    """The user's key the answer names (another account's, or an unknown one, is refused)."""
    credential = parse_authentication_credential_json(answer)
    key = db.session.scalar(select(SecurityKey).where(
        SecurityKey.user_id == user.id, SecurityKey.credential_id == credential.raw_id))
    if key is None:
        raise ValueError("not a key of this account")
    return key


def _authenticate(user: User, challenge_id: int | None, answer: str | dict[str, Any]) -> SecurityKey:
    challenge = _take_challenge(user, challenge_id, SIGN_IN)
    rp_id, origin = _relying_party()
    try:
        key = _answering_key(user, answer)
        # the counter is compared below, after the signature is verified, so that a regression is told apart
        verified = verify_authentication_response(
            credential=answer, expected_challenge=challenge, expected_rp_id=rp_id, expected_origin=origin,
            credential_public_key=key.public_key, credential_current_sign_count=0)
    except _BAD_ANSWER as error:
        _refused(user, "auth.sign_in_failed", f"security_key: {error}")
        raise KeyRefused(_l("The security key's answer could not be verified. Use a key registered to "
                            "this account.")) from error
    if (verified.new_sign_count or key.sign_count) and verified.new_sign_count <= key.sign_count:
        audit.record("auth.security_key_cloned", object_type="user", object_id=user.id,
                     changes={"key": key.name, "stored_count": key.sign_count,
                              "answered_count": verified.new_sign_count},
                     province_code=user.province_code, actor_username=user.username)
        raise KeyRefused(_l("This security key's signature counter went backwards: the key may have been "
                               "copied. Sign-in refused; ask the unit that created your account to reset your "
                               "keys."))
    key.sign_count = verified.new_sign_count
    return key


def _signed_in(user: User, key: SecurityKey) -> None:
    """The last step of a sign-in with a key: what `accounts.sign_in` records for a password-only one."""
    user.last_login_at = key.last_used_at = utcnow()
    audit.record("auth.sign_in", object_type="user", object_id=user.id,
                 changes={"username": user.username, "security_key": key.name},
                 province_code=user.province_code, actor=user, actor_username=user.username)


# --- the sign-in's key step (after the password; no session yet) -------------------------------------------

def open_step(user: User, password_at: datetime | None) -> KeyStep:
    """The key step this sign-in is at, refused when there is none or its time is over."""
    step = key_step(user)
    if step is None:
        raise WorkflowError(_l("Sign in again."))
    if password_at is None or utcnow() - password_at > timedelta(minutes=KEY_STEP_MINUTES):
        raise WorkflowError(_l("More than %(n)d minutes have passed since the password was entered. Sign in "
                               "again.", n=KEY_STEP_MINUTES))
    return step


def _unlocked(user: User, address: str | None) -> security.ThrottleKeys:
    """The sign-in's throttle counters (`security.throttle_keys`), refused while the account is locked from this
    address or the address is: a wrong key counts as a wrong password does."""
    keys = security.throttle_keys(user.username, address)
    if until := security.locked_until(keys.locks):
        raise WorkflowError(security.lockout_message(until))
    return keys


def sign_in_key_options(user: User, password_at: datetime | None, address: str | None) -> tuple[int, str]:
    """The options of the key step (challenge id, options as JSON): a registration for an account without a key
    (its role requires one), an authentication with its keys otherwise."""
    _unlocked(user, address)
    if open_step(user, password_at) == KeyStep.REGISTER:
        return _registration_options(user)
    return _authentication_options(user)


def sign_in_with_key(user: User, password_at: datetime | None, challenge_id: int | None,
                     answer: str | dict[str, Any], address: str | None, name: str = "") -> SecurityKey:
    """The key step's answer: the first key registered, or a registered key used; the user is signed in with it.
    A key that does not answer counts as a failed sign-in from `address`, as a wrong password does (the caller
    commits a refusal); the address's count ends only when a key answers."""
    keys = _unlocked(user, address)
    if open_step(user, password_at) == KeyStep.REGISTER:
        key = _register(user, challenge_id, answer, name)
    else:
        try:
            key = _authenticate(user, challenge_id, answer)
        except KeyRefused:
            alert_if_under_attack(user, security.record_failure(keys))
            raise
    security.record_success(keys)  # the failures of this address end with the key, not with the password
    _signed_in(user, key)
    return key


# --- 个人设置 › 安全密钥: the user's own keys ----------------------------------------------------------------

def add_key_options(user: User) -> tuple[int, str]:
    """A signed-in user adds a key (several per user)."""
    return _registration_options(user)


def add_key(user: User, challenge_id: int | None, answer: str | dict[str, Any], name: str) -> SecurityKey:
    return _register(user, challenge_id, answer, name)


def own_key(user: User, key_id: int) -> SecurityKey:
    key = db.session.get(SecurityKey, key_id)
    if key is None or key.user_id != user.id:
        raise NotFound()
    return key


def rename_key(user: User, key: SecurityKey, name: str) -> None:
    if key.user_id != user.id:
        raise NotFound()
    old, key.name = key.name, _clean_name(user, name, renamed=key)
    audit.record("security_key.renamed", object_type="user", object_id=user.id,
                 changes={"key": [old, key.name], "key_id": key.id}, province_code=user.province_code, actor=user)


def remove_key(user: User, key: SecurityKey) -> None:
    """Removable while another remains: an account never loses its last key by itself (its creator resets)."""
    if key.user_id != user.id:
        raise NotFound()
    if len(keys_of(user)) < 2:
        raise WorkflowError(_l("Your only key cannot be removed: add another one first. If it is lost, ask the "
                               "unit that created your account to reset your keys."))
    audit.record("security_key.removed", object_type="user", object_id=user.id,
                 changes={"key": key.name, "key_id": key.id}, province_code=user.province_code, actor=user)
    db.session.delete(key)
    db.session.flush()


# --- a lost key: the account's creator resets --------------------------------------------------------------

def may_reset_keys(actor: Any, target: User) -> bool:
    return permissions.may_manage_user(actor, target, Action.USER_RESET_KEYS)


def reset_keys(actor: User, target: User) -> int:
    """Delete every key of `target` and end its sessions; it registers a new key at its next sign-in (if its role
    requires one). Returns how many keys were deleted."""
    if not may_reset_keys(actor, target):
        raise NotFound()
    names = [key.name for key in keys_of(target)]
    if not names:
        raise WorkflowError(_l("This account has no security key."))
    db.session.execute(delete(SecurityKey).where(SecurityKey.user_id == target.id))
    db.session.execute(delete(WebAuthnChallenge).where(WebAuthnChallenge.user_id == target.id))
    target.session_epoch += 1
    audit.record("user.reset_keys", object_type="user", object_id=target.id, changes={"keys": names},
                 province_code=target.province_code, actor=actor)
    return len(names)
