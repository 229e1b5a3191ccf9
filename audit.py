"""The audit log (SPEC §12): append without a shared lock, sequence and sign, verify.

Kept apart from workflow.py because everything writes to it: workflow transitions,
console edits, sign-in attempts, exports.

Sequencing is separate from writing, as a Certificate Transparency log (RFC 9162) or Trillian separates it
from integration: a writer inserts its events unchained in its own transaction, with only the hash of
their content, and takes no lock any other writer takes. A single sequencer (`sequence_pending`, run by the
worker each pass and by `audit verify`) integrates the committed events in short transactions: each gets its
place `seq` and `hash` = H(previous hash, seq, content hash), and each transaction ends with a tree head
signed by the registry's Ed25519 key ring — whoever holds the public keys (the JWKS is public) can check that
the history up to that size was never rewritten. `verify_chain` recomputes the chain and checks it against
every signed tree head.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any, TypedDict

from flask import current_app, g, has_request_context, request
from flask_login import current_user
from sqlalchemy import bindparam, event, func, insert, select, text, update
from sqlalchemy.orm import Session

import certificates
from extensions import db
from models import AuditEvent, AuditHead, AuditTreeHead, User, utcnow
from rawsql import BulkInsert

GENESIS_HASH = "0" * 64
#: the columns an event's content hash covers, in order
HASHED = ("at", "actor_id", "actor_username", "actor_role", "province_code", "action", "object_type", "object_id",
          "changes", "ip")
#: the sequencers' own lock (PostgreSQL advisory lock key; SQLite's write lock serialises them already)
SEQUENCER_LOCK = 0x6175_6469_7401
SEQUENCER_BATCH = 5_000  # events integrated per transaction
TREE_HEAD_KIND = "bazs.audit.tree_head"  # in the signed payload: a tree head is never taken for a certificate


#: one encoder for every call (json.dumps with options builds a new one each time: a third of the sequencer's time)
_CANONICAL = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


def canonical_json(data: Any) -> str:
    return _CANONICAL.encode(data)


def _sha256(data: Any) -> str:
    return hashlib.sha256(canonical_json(data).encode()).hexdigest()


def content_hash(row: AuditEvent | SimpleNamespace | Any) -> str:
    """The hash of what one event says (the HASHED fields), fixed when it is written."""
    return _content_digest([getattr(row, name) for name in HASHED])


def _content_digest(values: Sequence[Any]) -> str:
    """content_hash of the HASHED values in order (the sequencer and the verifier read them as a row)."""
    return _sha256([values[0].isoformat(timespec="microseconds"), *values[1:]])


def chain_hash(prev_hash: str, seq: int, content: str) -> str:
    """An integrated event's link: its place, its content hash and the hash of the event before it (two
    fixed-length hex digests and a number: the text is unambiguous without JSON)."""
    return hashlib.sha256(f"{prev_hash}|{seq}|{content}".encode("ascii")).hexdigest()


def _client_address() -> str:
    return (request.remote_addr or "") if has_request_context() else "cli"


def _with_credential(changes: dict[str, Any] | None) -> dict[str, Any]:
    """Inside a data-exchange API call, every event names the credential it was made with (issue 16)."""
    credential_id = g.get("api_credential_id") if has_request_context() else None
    return {**(changes or {}), "credential_id": credential_id} if credential_id else (changes or {})


def _current_actor() -> User | None:
    if has_request_context() and current_user and current_user.is_authenticated:
        return current_user._get_current_object()  # type: ignore[attr-defined]
    return None


def _row(action: str, *, object_type: str = "", object_id: object = "", changes: dict[str, Any] | None = None,
         province_code: str | None = None, actor: User | None = None, actor_username: str | None = None,
         at: datetime | None = None) -> dict[str, Any]:
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
        "changes": canonical_json(_with_credential(changes)),
        "ip": _client_address(),
    }
    row["content_hash"] = content_hash(SimpleNamespace(**row))
    return row


def record(action: str, **fields: Any) -> AuditEvent:
    """Append one event in the caller's transaction (it commits or rolls back with the change); unchained,
    so it waits for no other writer.

    Fields: object_type, object_id, changes, province_code (the province the event concerns,
    which scopes it for bureaus; by default the actor's), actor, actor_username.
    """
    row = AuditEvent(**_row(action, **fields))
    db.session.add(row)
    db.session.flush()
    return row


_INSERT = BulkInsert(AuditEvent.__table__, (*HASHED, "content_hash"))


def record_many(events: list[tuple[str, dict[str, Any]]]) -> None:
    """Append many events at once (a batch approval): one multi-row insert, no lock."""
    if not events:
        return
    at = utcnow()  # one instant for the batch: it is one transaction
    _INSERT.run([_row(action, at=at, **fields) for action, fields in events])


# --- the sequencer --------------------------------------------------------------------------------------

class Sequenced(TypedDict):
    """What one run of the sequencer did (the worker prints it)."""

    integrated: int
    refused: list[int]  # ids of waiting events whose content no longer matches their content hash


def _take_sequencer_lock() -> None:
    """Sequencers exclude each other for one transaction; writers never take this lock. A second
    sequencer waits for the first one's current batch (≤ SEQUENCER_BATCH events) and then goes on."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SEQUENCER_LOCK})


def _head() -> AuditHead:
    head = db.session.get(AuditHead, 1, populate_existing=True)
    if head is None:
        head = AuditHead(id=1, last_seq=0, last_hash=GENESIS_HASH)
        db.session.add(head)
    return head


_EVENT_COLUMNS = (AuditEvent.id, *(getattr(AuditEvent, name) for name in HASHED), AuditEvent.content_hash)
_HASHED_SLICE = slice(1, 1 + len(HASHED))  # the HASHED values in a row of _EVENT_COLUMNS


def _waiting(after_id: int, limit: int) -> list[Any]:
    return db.session.execute(select(*_EVENT_COLUMNS).where(AuditEvent.seq.is_(None), AuditEvent.id > after_id)
                              .order_by(AuditEvent.id).limit(limit)).all()


def tree_head_payload(tree_size: int, head_hash: str, at: datetime, previous_size: int) -> dict[str, Any]:
    """What a tree head signs: the chain's hash at `tree_size` events, and the size of the tree head before it
    (so that removing one from the middle breaks the next one's link)."""
    return {"kind": TREE_HEAD_KIND, "tree_size": tree_size, "head": head_hash,
            "at": at.isoformat(timespec="microseconds"), "previous_size": previous_size}


def _sign_tree_head(ring: certificates.KeyRing, head: AuditHead, previous_size: int) -> None:
    """In the transaction that moved the head: the newest tree head always names the head."""
    at = utcnow()
    kid, token = ring.signed(tree_head_payload(head.last_seq, head.last_hash, at, previous_size))
    db.session.execute(insert(AuditTreeHead).values(tree_size=head.last_seq, head_hash=head.last_hash, at=at,
                                                     kid=kid, signature=token))


def _integrate_batch(ring: certificates.KeyRing, after_id: int, limit: int,
                     refused: list[int]) -> tuple[int, int | None]:
    """One transaction: the next waiting events chained after the head, the head moved, a tree head signed.
    Returns (events integrated, the last id read — None when nothing was waiting)."""
    _take_sequencer_lock()
    head = _head()
    previous_size, seq, last_hash = head.last_seq, head.last_seq, head.last_hash
    rows = _waiting(after_id, limit)
    links = []
    for row in rows:
        if _content_digest(row[_HASHED_SLICE]) != row.content_hash:
            refused.append(row.id)
            continue
        seq += 1
        link = chain_hash(last_hash, seq, row.content_hash)
        links.append({"row_id": row.id, "seq": seq, "prev_hash": last_hash, "hash": link})
        last_hash = link
    head.last_seq, head.last_hash = seq, last_hash
    if links:
        _write_links(links)
        _sign_tree_head(ring, head, previous_size)
    db.session.commit()
    return len(links), (rows[-1].id if rows else None)


_EVENTS = AuditEvent.__table__
_LINK = (update(_EVENTS).where(_EVENTS.c.id == bindparam("row_id"), _EVENTS.c.seq.is_(None))
         .values(seq=bindparam("seq"), prev_hash=bindparam("prev_hash"), hash=bindparam("hash")))

#: PostgreSQL: the batch in one statement from arrays (1.3–1.5 times the rate of an executemany of UPDATEs)
_LINK_ARRAYS = text(
    "UPDATE audit_events AS e SET seq = v.seq, prev_hash = v.prev_hash, hash = v.hash "
    "FROM unnest(CAST(:row_id AS bigint[]), CAST(:seq AS bigint[]), CAST(:prev_hash AS varchar[]), "
    "CAST(:hash AS varchar[])) AS v(id, seq, prev_hash, hash) WHERE e.id = v.id AND e.seq IS NULL")


def _write_links(links: list[dict[str, Any]]) -> None:
    """Core UPDATEs: the ORM guard against changing events stays for everyone else."""
    connection = db.session.connection()
    if connection.dialect.name == "postgresql":
        connection.execute(_LINK_ARRAYS, {key: [link[key] for link in links] for key in links[0]})
    else:
        connection.execute(_LINK, links)


def sequence_pending(limit: int | None = 50_000) -> Sequenced:
    """Integrate up to `limit` (None: all) committed events waiting for their place, in id order,
    SEQUENCER_BATCH per transaction. An event whose content no longer matches its content hash (altered
    before it was integrated) is left out and named. Ends the caller's transaction first (it commits), as
    every short write does."""
    db.session.commit()
    ring = certificates.keyring()  # its first key, if it must make one, is stored before the sequencer's lock
    refused: list[int] = []
    integrated, after_id = 0, 0
    while limit is None or integrated < limit:
        wanted = SEQUENCER_BATCH if limit is None else min(SEQUENCER_BATCH, limit - integrated)
        count, last_id = _integrate_batch(ring, after_id, wanted, refused)
        if last_id is None:
            break
        integrated, after_id = integrated + count, last_id
    if refused:
        current_app.logger.error("audit: events %s were altered before they were sequenced", refused)
    return Sequenced(integrated=integrated, refused=refused)


# --- verification -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ChainReport:
    checked: int
    broken_id: int | None = None
    reason: str = ""

    @property
    def intact(self) -> bool:
        return self.broken_id is None and not self.reason


class ChainBroken(Exception):
    """The first problem found; becomes the ChainReport."""

    def __init__(self, broken_id: int | None, reason: str, checked: int = 0) -> None:
        super().__init__(reason)
        self.broken_id, self.reason, self.checked = broken_id, reason, checked


def _keyset(query: Any, key: Any, batch: int = 5000) -> Iterator[Any]:
    """The rows of `query` in `key` order, `batch` at a time (nothing held in memory)."""
    last = 0
    while True:
        rows = db.session.execute(query.where(key > last).order_by(key).limit(batch)).all()
        if not rows:
            return
        yield from rows
        last = getattr(rows[-1], key.key)


def _signed_heads() -> Iterator[Any]:
    """The tree heads in size order, each checked against the public keys and its predecessor."""
    jwks, previous = certificates.keyring().jwks(), None
    columns = (AuditTreeHead.tree_size, AuditTreeHead.head_hash, AuditTreeHead.at, AuditTreeHead.signature)
    for head in _keyset(select(*columns), AuditTreeHead.tree_size):
        try:
            payload = certificates.verify(head.signature, jwks)
        except certificates.CertificateError as error:
            raise ChainBroken(None, f"tree head at size {head.tree_size}: signature does not verify "
                                    f"({error.code}; forged or altered)") from error
        if payload != tree_head_payload(head.tree_size, head.head_hash, head.at, payload.get("previous_size", -1)):
            raise ChainBroken(None, f"tree head at size {head.tree_size}: does not match what was signed (altered)")
        if previous is not None and payload["previous_size"] != previous:
            raise ChainBroken(None, f"tree head at size {head.tree_size}: the tree head before it "
                                    f"(size {payload['previous_size']}) was removed")
        previous = head.tree_size
        yield head


def _walk(heads: Iterator[Any]) -> tuple[int, int | None, str, Any]:
    """Every integrated event in place order; returns (events checked, last id, chain hash, the first signed
    tree head beyond the chain or None)."""
    expected_seq, expected_prev, last_id = 1, GENESIS_HASH, None
    signed = next(heads, None)
    for row in _keyset(select(*_EVENT_COLUMNS, AuditEvent.seq, AuditEvent.prev_hash, AuditEvent.hash),
                       AuditEvent.seq):
        problem = _event_problem(row, expected_seq, expected_prev)
        if problem is None and signed is not None and signed.tree_size == row.seq:
            if signed.head_hash != row.hash:
                problem = f"differs from the signed tree head at size {row.seq} (history rewritten)"
            signed = next(heads, None)
        if problem is not None:
            raise ChainBroken(row.id, problem, checked=expected_seq - 1)
        expected_seq, expected_prev, last_id = expected_seq + 1, row.hash, row.id
    return expected_seq - 1, last_id, expected_prev, signed


def _event_problem(row: Any, expected_seq: int, expected_prev: str) -> str | None:
    """What is wrong with one integrated event, given the place and previous hash it must have."""
    if row.seq != expected_seq:
        return f"events before this one were removed (place {expected_seq} is missing)"
    if row.prev_hash != expected_prev:
        return "previous-hash link broken (a row was removed or inserted)"
    if _content_digest(row[_HASHED_SLICE]) != row.content_hash:
        return "content does not match its hash (row was altered)"
    if chain_hash(expected_prev, row.seq, row.content_hash) != row.hash:
        return "chain hash does not match its place and content (row was altered)"
    return None


def _check_head(size: int, last_id: int | None, chain: str, beyond: Any) -> None:
    """The newest rows are all there: the head and the newest signed tree head name the chain's end."""
    if beyond is not None:
        raise ChainBroken(last_id, f"the newest events were removed (a signed tree head covers {beyond.tree_size}, "
                                   f"{size} remain)")
    head = db.session.get(AuditHead, 1, populate_existing=True)
    head_size, head_hash = (head.last_seq, head.last_hash) if head else (0, GENESIS_HASH)
    if head_size < size:
        raise ChainBroken(last_id, "the chain goes past its head (a row was inserted)")
    if (head_size, head_hash) != (size, chain):
        raise ChainBroken(last_id, "the newest rows were removed (chain head does not match)")
    newest = db.session.scalar(select(AuditTreeHead).order_by(AuditTreeHead.tree_size.desc()).limit(1))
    if newest is not None and newest.tree_size != head_size:
        raise ChainBroken(last_id, "the head is past the newest signed tree head (events chained outside the "
                                   "sequencer, or a tree head removed)")


def verify_chain() -> ChainReport:
    """Sequence what is waiting, then walk the chain in place order checking every event and every signed tree
    head; name the first event (or tree head) that does not match. Events altered while waiting are named."""
    refused = sequence_pending(limit=None)["refused"]
    size = 0
    try:
        size, last_id, chain, beyond = _walk(_signed_heads())
        _check_head(size, last_id, chain, beyond)
    except ChainBroken as broken:
        return ChainReport(broken.checked or size, broken.broken_id, broken.reason)
    if refused:
        return ChainReport(size, refused[0], "content does not match its hash (altered before it was sequenced)")
    return ChainReport(size)


# --- published tree heads and a witness's check (a third party keeps what it saw, and checks it later) ---

def published_tree_head(size: int | None = None) -> dict[str, Any] | None:
    """The newest signed tree head (or the one at `size`), as the public API publishes it: sizes, hashes, the
    time and the compact JWS — nothing of the events themselves."""
    query = select(AuditTreeHead).order_by(AuditTreeHead.tree_size.desc()).limit(1)
    if size is not None:
        query = select(AuditTreeHead).where(AuditTreeHead.tree_size == size)
    head = db.session.scalar(query)
    if head is None:
        return None
    return {"tree_size": head.tree_size, "head_hash": head.head_hash,
            "at": head.at.isoformat(timespec="microseconds"), "kid": head.kid, "signature": head.signature}


def witness_problem(seen: Any) -> str | None:
    """What is wrong with one tree head a witness kept (an answer of the public tree-head endpoint): None when
    its signature verifies with the registry's keys and the chain still has that hash at that size — so the
    history the witness saw was not rewritten since, even by someone who could rewrite the stored heads."""
    if not isinstance(seen, dict) or not isinstance(seen.get("signature"), str):
        return "not a tree head (a JSON object with a signature)"
    try:
        payload = certificates.verify(seen["signature"], certificates.keyring().jwks())
    except certificates.CertificateError as error:
        return f"signature does not verify ({error.code})"
    if payload.get("kind") != TREE_HEAD_KIND or not isinstance(payload.get("tree_size"), int):
        return "signed, but not a tree head of this registry's audit log"
    size = payload["tree_size"]
    if size == 0:
        return None
    chained = db.session.scalar(select(AuditEvent.hash).where(AuditEvent.seq == size))
    if chained is None:
        return f"the log no longer reaches size {size} (events removed)"
    if chained != payload["head"]:
        return f"the chain's hash at size {size} differs from the signed one (history rewritten)"
    return None


def tree_size() -> int:
    """How many events are integrated (the head's place)."""
    return db.session.scalar(select(AuditHead.last_seq).where(AuditHead.id == 1)) or 0


def waiting_count() -> int:
    return db.session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.seq.is_(None))) or 0


@event.listens_for(Session, "before_flush")
def _refuse_audit_changes(session: Session, _context: Any, _instances: Any) -> None:
    """The log is append-only for the application: no update, no delete."""
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, (AuditEvent, AuditTreeHead)):
            raise PermissionError("audit events are append-only")
