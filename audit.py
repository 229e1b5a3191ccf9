"""The audit log (SPEC §12): append with a hash chain, verify the chain.

Kept apart from workflow.py because everything writes to it: workflow transitions,
console edits, sign-in attempts, exports.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from flask import has_request_context, request
from flask_login import current_user
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from extensions import db
from models import AuditEvent, AuditHead, User, utcnow
from rawsql import BulkInsert

GENESIS_HASH = "0" * 64
#: the columns a row's hash covers, in order (the previous row's hash first)
HASHED = ("prev_hash", "at", "actor_id", "actor_username", "actor_role", "province_code", "action", "object_type",
          "object_id", "changes", "ip")


def canonical_json(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


def event_hash(row: AuditEvent | SimpleNamespace) -> str:
    """The hash of one row's content and the hash of the row before it."""
    return _hash(row.prev_hash, row.at, row.actor_id, row.actor_username, row.actor_role, row.province_code,
                 row.action, row.object_type, row.object_id, row.changes, row.ip)


def _hash(prev_hash: str, at: datetime, *content: Any) -> str:
    return hashlib.sha256(canonical_json([prev_hash, at.isoformat(timespec="microseconds"), *content])
                          .encode()).hexdigest()


def _client_address() -> str:
    return (request.remote_addr or "") if has_request_context() else "cli"


def _current_actor() -> User | None:
    if has_request_context() and current_user and current_user.is_authenticated:
        return current_user._get_current_object()  # type: ignore[attr-defined]
    return None


def _locked_head() -> AuditHead:
    head = db.session.execute(
        select(AuditHead).where(AuditHead.id == 1).with_for_update()
    ).scalar_one_or_none()
    if head is None:
        head = AuditHead(id=1, last_hash=GENESIS_HASH, last_event_id=None)
        db.session.add(head)
    return head


def _row(action: str, *, object_type: str = "", object_id: object = "", changes: dict[str, Any] | None = None,
         province_code: str | None = None, actor: User | None = None, actor_username: str | None = None,
         prev_hash: str, at: datetime | None = None) -> dict[str, Any]:
    actor = actor if actor is not None else _current_actor()
    row = {
        "at": at or utcnow(),
        "actor_id": actor.id if actor else None,
        "actor_username": actor.username if actor else (actor_username or ""),
        "actor_role": str(actor.role) if actor else "",
        "province_code": province_code if province_code is not None else (actor.province_code if actor else None),
        "action": action,
        "object_type": object_type,
        "object_id": str(object_id),
        "changes": canonical_json(changes or {}),
        "ip": _client_address(),
        "prev_hash": prev_hash,
    }
    row["hash"] = _hash(*(row[key] for key in HASHED))
    return row


def record(action: str, **fields: Any) -> AuditEvent:
    """Append one event in the caller's transaction (it commits or rolls back with the change).

    Fields: object_type, object_id, changes, province_code (the province the event concerns,
    which scopes it for bureaus; by default the actor's), actor, actor_username.
    """
    head = _locked_head()
    row = AuditEvent(**_row(action, prev_hash=head.last_hash, **fields))
    db.session.add(row)
    db.session.flush()
    head.last_hash, head.last_event_id = row.hash, row.id
    return row


_INSERT = BulkInsert(AuditEvent.__table__, ("at", "actor_id", "actor_username", "actor_role", "province_code",
                                            "action", "object_type", "object_id", "changes", "ip", "prev_hash",
                                            "hash"))


def record_many(events: list[tuple[str, dict[str, Any]]]) -> None:
    """Append many events at once (a batch approval): one lock of the head, one multi-row insert."""
    if not events:
        return
    head = _locked_head()
    rows, at = [], utcnow()  # one instant for the batch: it is one transaction
    for action, fields in events:
        rows.append(_row(action, prev_hash=rows[-1]["hash"] if rows else head.last_hash, at=at, **fields))
    _INSERT.run(rows)
    head.last_hash = rows[-1]["hash"]
    head.last_event_id = db.session.scalar(select(AuditEvent.id).where(AuditEvent.hash == head.last_hash))


@dataclass(frozen=True)
class ChainReport:
    checked: int
    broken_id: int | None = None
    reason: str = ""

    @property
    def intact(self) -> bool:
        return self.broken_id is None and not self.reason


def _rows_in_order(batch: int = 5000) -> Iterator[AuditEvent]:
    last_id = 0
    while True:
        rows = db.session.scalars(
            select(AuditEvent).where(AuditEvent.id > last_id).order_by(AuditEvent.id).limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        last_id = rows[-1].id
        db.session.expunge_all()


def verify_chain() -> ChainReport:
    """Walk the log in id order; name the first row whose links or content do not match."""
    expected_prev = GENESIS_HASH
    checked = 0
    last_id: int | None = None
    for row in _rows_in_order():
        if row.prev_hash != expected_prev:
            return ChainReport(checked, row.id, "previous-hash link broken (a row was removed or inserted)")
        if event_hash(row) != row.hash:
            return ChainReport(checked, row.id, "content does not match its hash (row was altered)")
        expected_prev = row.hash
        last_id = row.id
        checked += 1
    head = db.session.get(AuditHead, 1)
    head_hash = head.last_hash if head else GENESIS_HASH
    if head_hash != expected_prev:
        return ChainReport(checked, last_id, "the newest rows were removed (chain head does not match)")
    return ChainReport(checked)


@event.listens_for(Session, "before_flush")
def _refuse_audit_changes(session: Session, _context: Any, _instances: Any) -> None:
    """The log is append-only for the application: no update, no delete."""
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, AuditEvent):
            raise PermissionError("audit events are append-only")
