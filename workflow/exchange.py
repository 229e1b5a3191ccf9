"""The data-exchange API's own state changes (issue 16): credentials, the sequence numbers of write calls and
their stored answers, and the event feed. The operations themselves call the same workflow functions as the
console (`exchange_api`); nothing here decides a filing rule.

Order and idempotency: a write call locks its credential's row for its transaction (a per-credential lock,
never one shared by all writers), so two calls with the same number — on one node or two — run one after the
other; the second finds the first's stored answer and writes nothing.

The feed: `emit` inserts an event unsequenced in the transaction of the outcome (it waits for nobody);
`sequence_events` — one sequencer at a time, like the audit chain's — numbers the committed ones in the order it
finds them, so a feed id is never given to an event that commits later than a higher one: a caller who
acknowledged up to an id has seen every event below it.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import re
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import bindparam, delete, insert, select, text, update

import audit
from extensions import db, write_intent
from models import SCOPES, ApiCredential, ExchangeCall, ExchangeEvent, ExchangeFeedHead, Role, User, UserStatus, utcnow
from workflow.errors import NotFound, WorkflowError, WorkflowErrors

KEY_PREFIX = "bk_"
#: what a key id may look like (`create_credential` makes bk_ and 16 hex digits): anything else is refused before the
#: database sees it (a NUL character in it was a 500 on PostgreSQL)
KEY_ID = re.compile(r"bk_[0-9A-Za-z_]{1,29}")
MAX_CREDENTIALS = 20  # per user
#: scopes a role may hold: the filing operations for those who file or review, the reports for their reporters
SCOPES_BY_ROLE: dict[Role, frozenset[str]] = {
    Role.ICP: frozenset({"filings", "events"}),
    Role.ISP: frozenset({"filings", "events"}),
    Role.BUREAU: frozenset({"filings", "ip", "events"}),  # ip: the address lookup (its writes are the reporters')
    Role.MIIT: frozenset({"filings", "ip", "events"}),
    Role.IP_REPORTER: frozenset({"ip", "events"}),
    Role.DOMAIN_REPORTER: frozenset({"domain", "events"}),
}
FEED_LOCK = 0x66656564  # "feed": the PostgreSQL advisory lock of the feed's sequencer
SEQUENCER_BATCH = 5000


class ExchangeAuthError(Exception):
    """A call refused before it is read: 401 (no valid credential) or 403 (an address or scope not allowed)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


# --- credentials ----------------------------------------------------------------------------------------

def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def allowed_scopes(user: User) -> frozenset[str]:
    return SCOPES_BY_ROLE.get(user.role, frozenset())


def _networks(text_value: str) -> list[str]:
    """One address or CIDR block a line, normalised; ValueError names the first bad line."""
    networks = []
    for line in filter(None, (part.strip() for part in text_value.replace(",", "\n").splitlines())):
        try:
            networks.append(str(ipaddress.ip_network(line, strict=False)))
        except ValueError:
            raise ValueError(line) from None
    return networks


def credential_problems(actor: User, name: str, scopes: Iterable[str], expires_at: datetime | None,
                        networks: str) -> list[tuple[str | None, str]]:
    problems: list[tuple[str | None, str]] = []
    if not name.strip() or len(name.strip()) > 64:
        problems.append(("name", str(_l("Give the credential a name of at most 64 characters."))))
    wanted = set(scopes)
    if not wanted:
        problems.append(("scopes", str(_l("Choose at least one scope."))))
    elif not wanted <= allowed_scopes(actor):
        problems.append(("scopes", str(_l("Your role may not hold the scopes %(scopes)s.",
                                          scopes=", ".join(sorted(wanted - allowed_scopes(actor)))))))
    if expires_at is not None and expires_at <= utcnow():
        problems.append(("expires_at", str(_l("The expiry must be in the future."))))
    try:
        _networks(networks)
    except ValueError as bad:
        problems.append(("networks", str(_l("Not an IP address or network: %(value)s", value=str(bad)))))
    return problems


def create_credential(actor: User, name: str, scopes: Iterable[str], expires_at: datetime | None = None,
                      networks: str = "") -> tuple[ApiCredential, str]:
    """A new credential of the actor's; returns it and the secret (`<key_id>.<secret>`), shown this once."""
    if not allowed_scopes(actor) or actor.status != UserStatus.ACTIVE:
        raise NotFound()
    scopes = sorted(set(scopes))
    if problems := credential_problems(actor, name, scopes, expires_at, networks):
        raise WorkflowErrors(problems)
    held = db.session.scalar(select(db.func.count()).select_from(ApiCredential).where(
        ApiCredential.user_id == actor.id, ApiCredential.revoked_at.is_(None)))
    if held >= MAX_CREDENTIALS:
        raise WorkflowError(_l("At most %(count)s credentials in use per user: revoke one first.",
                               count=MAX_CREDENTIALS))
    key_id, secret = KEY_PREFIX + secrets.token_hex(8), secrets.token_urlsafe(32)
    credential = ApiCredential(user_id=actor.id, name=name.strip(), key_id=key_id, secret_hash=_digest(secret),
                               scopes=",".join(scopes), allowed_networks="\n".join(_networks(networks)),
                               expires_at=expires_at, next_sequence=1, acked_event_id=0, webhook_delivered_id=0,
                               webhook_attempts=0, webhook_last_error="", last_used_ip="")
    db.session.add(credential)
    db.session.flush()
    audit.record("api_credential.created", object_type="api_credential", object_id=credential.id, actor=actor,
                 changes={"name": credential.name, "scopes": credential.scopes, "key_id": key_id,
                          "expires_at": str(expires_at) if expires_at else None,
                          "networks": credential.allowed_networks})
    return credential, f"{key_id}.{secret}"


def own_credential(actor: User, credential_id: int) -> ApiCredential:
    credential = db.session.get(ApiCredential, credential_id)
    if credential is None or credential.user_id != actor.id:
        raise NotFound()
    return credential


def revoke_credential(actor: User, credential: ApiCredential) -> None:
    """Revoked at once on every node: each call reads the credential's row."""
    if credential.user_id != actor.id:
        raise NotFound()
    if credential.revoked_at is not None:
        raise WorkflowError(_l("This credential is already revoked."))
    credential.revoked_at = utcnow()
    audit.record("api_credential.revoked", object_type="api_credential", object_id=credential.id, actor=actor)


def authenticate(authorization: str | None, address: str) -> ApiCredential:
    """The credential of `Authorization: Bearer <key_id>.<secret>`, if it is in force for this address and its
    user is active; else ExchangeAuthError (nothing says which part was wrong)."""
    scheme, _, token = (authorization or "").partition(" ")
    key_id, _, secret = token.strip().partition(".")
    if scheme.lower() != "bearer" or not KEY_ID.fullmatch(key_id) or not secret:
        raise ExchangeAuthError(401, "401", "需要接口凭证：请求头 Authorization: Bearer <凭证>。")
    credential = db.session.scalar(select(ApiCredential).where(ApiCredential.key_id == key_id))
    if (credential is None or not hmac.compare_digest(credential.secret_hash, _digest(secret))
            or not credential.usable_at(utcnow()) or credential.user.status != UserStatus.ACTIVE):
        raise ExchangeAuthError(401, "401", "接口凭证无效、已吊销或已过期。")
    if credential.networks and not _address_allowed(address, credential.networks):
        raise ExchangeAuthError(403, "403", "该接口凭证不允许从此地址调用。")
    return credential


def _address_allowed(address: str, networks: list[str]) -> bool:
    try:
        client = ipaddress.ip_address(address)
    except ValueError:
        return False
    if client.version == 6 and client.ipv4_mapped:
        client = client.ipv4_mapped
    return any(client in ipaddress.ip_network(network) for network in networks)


def mark_used(credential: ApiCredential, address: str) -> None:
    """Last used, written at most once a minute (a core UPDATE: no lock held beyond it). In a transaction of its
    own that takes SQLite's write lock up front: inside a GET's read transaction the UPDATE failed at once ("database
    is locked") whenever another writer had committed since the read began."""
    now = utcnow()
    if credential.last_used_at is None or (now - credential.last_used_at).total_seconds() > 60 \
            or credential.last_used_ip != address:
        db.session.commit()
        with write_intent(True):
            db.session.execute(update(ApiCredential).where(ApiCredential.id == credential.id)
                               .values(last_used_at=now, last_used_ip=address[:45]))
            db.session.commit()


# --- sequence numbers and stored answers -------------------------------------------------------------------

def request_digest(body: bytes) -> str:
    """Of the request's bytes as sent: a client resending a call after a crash sends the same bytes."""
    return hashlib.sha256(body).hexdigest()


def lock_sequence(credential_id: int) -> int:
    """Start the write call's transaction by locking its credential's row (PostgreSQL: the row; SQLite: the write
    lock, taken at BEGIN IMMEDIATE) and return the next expected number as it is now."""
    db.session.commit()
    return db.session.execute(update(ApiCredential).where(ApiCredential.id == credential_id)
                              .values(next_sequence=ApiCredential.next_sequence)
                              .returning(ApiCredential.next_sequence)).scalar_one()


def stored_call(credential_id: int, sequence: int) -> ExchangeCall | None:
    return db.session.scalar(select(ExchangeCall).where(ExchangeCall.credential_id == credential_id,
                                                        ExchangeCall.sequence == sequence))


def store_call(credential_id: int, sequence: int, operation: str, digest: str, status: int,
               answer: dict[str, Any]) -> None:
    """Keep the answer and move the expected number on, in the call's transaction (the caller commits)."""
    db.session.add(ExchangeCall(credential_id=credential_id, sequence=sequence, operation=operation,
                                request_digest=digest, status=status,
                                response=json.dumps(answer, ensure_ascii=False)))
    db.session.execute(update(ApiCredential).where(ApiCredential.id == credential_id)
                       .values(next_sequence=sequence + 1))


def purge_answers(now: datetime | None = None) -> int:
    """Stored answers older than EXCHANGE_ANSWER_DAYS are deleted (a repeat of such an old number is then refused
    as out of order: the client has long had its answer); the number deleted."""
    cutoff = (now or utcnow()) - timedelta(days=current_app.config["EXCHANGE_ANSWER_DAYS"])
    deleted = db.session.execute(delete(ExchangeCall).where(ExchangeCall.at < cutoff)).rowcount
    db.session.commit()
    return deleted


# --- the event feed ------------------------------------------------------------------------------------------

def emit(user_ids: Iterable[int | None], kind: str, object_type: str = "", object_id: object = "",
         payload: dict[str, Any] | None = None) -> None:
    """An event for each recipient (duplicates and None dropped), in the caller's transaction."""
    emit_many([(user_id, kind, object_type, object_id, payload or {}) for user_id in set(user_ids)
               if user_id is not None])


def emit_many(events: Iterable[tuple[int, str, str, object, dict[str, Any]]]) -> None:
    """Many events in one INSERT (a batch approval's): (recipient, kind, object type, object id, payload)."""
    now = utcnow()
    rows = [{"user_id": user_id, "kind": kind, "object_type": object_type, "object_id": str(object_id),
             "payload": json.dumps(payload, ensure_ascii=False, sort_keys=True, default=str), "at": now}
            for user_id, kind, object_type, object_id, payload in events]
    if rows:
        db.session.execute(insert(ExchangeEvent), rows)


def _feed_head() -> ExchangeFeedHead:
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": FEED_LOCK})
    head = db.session.get(ExchangeFeedHead, 1, populate_existing=True)
    if head is None:
        head = ExchangeFeedHead(id=1, last_seq=0)
        db.session.add(head)
    return head


_NUMBER = (update(ExchangeEvent.__table__).where(ExchangeEvent.__table__.c.id == bindparam("row_id"))
           .values(seq=bindparam("new_seq")))


def _sequence_batch() -> int:
    head = _feed_head()
    ids = list(db.session.scalars(select(ExchangeEvent.id).where(ExchangeEvent.seq.is_(None))
                                  .order_by(ExchangeEvent.id).limit(SEQUENCER_BATCH)))
    if ids:
        first = head.last_seq + 1
        db.session.connection().execute(_NUMBER, [{"row_id": row_id, "new_seq": first + offset}
                                                  for offset, row_id in enumerate(ids)])
        head.last_seq = first + len(ids) - 1
    db.session.commit()
    return len(ids)


def sequence_events() -> int:
    """Give every committed unsequenced event its feed id; the number given. Commits the caller's transaction
    first; in a read-only request it writes with SQLite's write lock all the same."""
    db.session.commit()
    total = 0
    with write_intent(True):
        while count := _sequence_batch():
            total += count
    return total


def acknowledge(credential: ApiCredential, up_to: int) -> int:
    """Move the credential's acknowledged position to `up_to` — never backwards, never past the feed's head."""
    head = db.session.scalar(select(ExchangeFeedHead.last_seq).where(ExchangeFeedHead.id == 1)) or 0
    if up_to > head:
        raise WorkflowError(f"确认位置 {up_to} 超过了已发出的最后一个事件 {head}。", "up_to")
    if up_to > credential.acked_event_id:
        db.session.execute(update(ApiCredential).where(ApiCredential.id == credential.id,
                                                       ApiCredential.acked_event_id < up_to)
                           .values(acked_event_id=up_to))
    return max(up_to, credential.acked_event_id)


def valid_scopes(values: Iterable[str]) -> list[str]:
    return [value for value in values if value in SCOPES]
