"""The sequenced, signed audit log: writers take no shared lock, one sequencer chains, tree heads are signed."""

from __future__ import annotations

import json
import os
import threading
import time
from types import SimpleNamespace

import pytest
from alembic import command
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import current_app
from flask_migrate import upgrade
from sqlalchemy import select, text

import audit
import certificates
from app import MIGRATIONS_DIR
from extensions import db
from models import AuditEvent, AuditHead, AuditTreeHead

ON_POSTGRESQL = bool(os.environ.get("TEST_DATABASE_URL"))
postgresql_only = pytest.mark.skipif(not ON_POSTGRESQL, reason="row and advisory locks are PostgreSQL's")


def _record(count: int, prefix: str = "u") -> None:
    for i in range(count):
        audit.record("auth.sign_in", actor_username=f"{prefix}{i}", object_type="user", object_id=i)
    db.session.commit()


def _ids() -> list[int]:
    return list(db.session.scalars(select(AuditEvent.id).order_by(AuditEvent.id)))


def _execute(sql: str, **params: object) -> None:
    db.session.execute(text(sql), params)
    db.session.commit()


def test_a_writer_inserts_unchained_and_moves_no_head(app) -> None:
    """Does writing an event touch anything another writer writes?"""
    with app.app_context():
        _record(1)
        audit.record_many([("application.approved", {"object_id": 7}), ("application.approved", {"object_id": 8})])
        db.session.commit()
        events = db.session.scalars(select(AuditEvent)).all()
        assert [(e.seq, e.prev_hash, e.hash) for e in events] == [(None, None, None)] * 3
        assert all(e.content_hash == audit.content_hash(e) for e in events)
        assert db.session.get(AuditHead, 1) is None and audit.waiting_count() == 3


def test_the_sequencer_chains_in_id_order_and_signs_the_head(app) -> None:
    with app.app_context():
        _record(7)
        assert audit.sequence_pending() == {"integrated": 7, "refused": []}
        rows = db.session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
        assert [row.seq for row in rows] == list(range(1, 8))
        previous = audit.GENESIS_HASH
        for row in rows:
            assert row.prev_hash == previous and row.hash == audit.chain_hash(previous, row.seq, row.content_hash)
            previous = row.hash
        head = db.session.get(AuditHead, 1)
        assert (head.last_seq, head.last_hash) == (7, previous)
        signed = db.session.scalars(select(AuditTreeHead)).one()
        payload = certificates.verify(signed.signature, certificates.keyring().jwks())
        assert payload["tree_size"] == signed.tree_size == 7 and payload["head"] == signed.head_hash == previous
        assert payload["previous_size"] == 0 and payload["kind"] == audit.TREE_HEAD_KIND


def test_each_pass_that_integrates_signs_one_linked_tree_head(app, monkeypatch) -> None:
    monkeypatch.setattr(audit, "SEQUENCER_BATCH", 4)
    with app.app_context():
        _record(10)
        assert audit.sequence_pending(limit=6)["integrated"] == 6
        assert audit.sequence_pending()["integrated"] == 4
        assert audit.sequence_pending()["integrated"] == 0  # nothing waiting: no new tree head
        heads = db.session.execute(select(AuditTreeHead.tree_size, AuditTreeHead.signature)
                                   .order_by(AuditTreeHead.tree_size)).all()
        assert [size for size, _token in heads] == [4, 6, 10]
        jwks = certificates.keyring().jwks()
        assert [certificates.verify(token, jwks)["previous_size"] for _size, token in heads] == [0, 4, 6]
        assert audit.verify_chain() == audit.ChainReport(10)


def test_an_event_altered_while_waiting_is_not_integrated_and_is_named(app) -> None:
    with app.app_context():
        _record(4)
        altered = _ids()[1]
        _execute("UPDATE audit_events SET actor_username = 'someone' WHERE id = :id", id=altered)
        assert audit.sequence_pending() == {"integrated": 3, "refused": [altered]}
        assert db.session.get(AuditEvent, altered).seq is None
        report = audit.verify_chain()
        assert (report.intact, report.broken_id, report.checked) == (False, altered, 3)
        assert "before it was sequenced" in report.reason


def _rewrite_from(first_seq: int) -> None:
    """What someone who knows the formulas (not the signing key) does: alter an event and re-chain every
    event after it, the head included."""
    _execute("UPDATE audit_events SET ip = '6.6.6.6' WHERE seq = :seq", seq=first_seq)
    previous = db.session.scalar(select(AuditEvent.hash).where(AuditEvent.seq == first_seq - 1))
    for row in db.session.execute(select(AuditEvent).where(AuditEvent.seq >= first_seq)
                                  .order_by(AuditEvent.seq)).scalars().all():
        content = audit.content_hash(row)
        link = audit.chain_hash(previous, row.seq, content)
        db.session.execute(text("UPDATE audit_events SET content_hash = :c, prev_hash = :p, hash = :h WHERE id = :id"),
                           {"c": content, "p": previous, "h": link, "id": row.id})
        previous = link
    db.session.execute(text("UPDATE audit_head SET last_hash = :h"), {"h": previous})
    db.session.commit()


@pytest.mark.parametrize(("tamper", "named", "reason"), [
    ("UPDATE audit_events SET changes = 'x' WHERE seq = 3", 3, "content does not match"),
    ("UPDATE audit_events SET content_hash = :fake WHERE seq = 3", 3, "content does not match"),
    ("UPDATE audit_events SET hash = :fake WHERE seq = 3", 3, "chain hash does not match"),
    ("UPDATE audit_events SET seq = 99 WHERE seq = 3", 4, "place 3 is missing"),
    ("DELETE FROM audit_events WHERE seq = 3", 4, "place 3 is missing"),
    ("DELETE FROM audit_events WHERE seq = 5; UPDATE audit_head SET last_seq = 4", 4,
     "a signed tree head covers 5"),
])
def test_each_tampering_of_the_integrated_log_is_named(app, tamper: str, named: int, reason: str) -> None:
    with app.app_context():
        _record(5)
        audit.sequence_pending()
        ids = dict(db.session.execute(select(AuditEvent.seq, AuditEvent.id)).all())
        for statement in tamper.split("; "):
            db.session.execute(text(statement), {"fake": "f" * 64} if ":fake" in statement else {})
        db.session.commit()
        report = audit.verify_chain()
    assert not report.intact and report.broken_id == ids[named] and reason in report.reason


def test_a_consistently_rewritten_history_disagrees_with_the_signed_tree_head(app) -> None:
    with app.app_context():
        _record(6)
        audit.sequence_pending()
        _rewrite_from(2)
        report = audit.verify_chain()
        assert not report.intact and "history rewritten" in report.reason
        assert report.broken_id == db.session.scalar(select(AuditEvent.id).where(AuditEvent.seq == 6))


def test_a_row_chained_outside_the_sequencer_is_detected(app) -> None:
    """Inserted past the head (formulas known, no key): the head, then the newest tree head, give it away."""
    with app.app_context():
        _record(3)
        audit.sequence_pending()
        head = db.session.get(AuditHead, 1)
        row = SimpleNamespace(at=audit.utcnow(), actor_id=None, actor_username="ghost", actor_role="",
                              province_code=None, action="auth.sign_in", object_type="", object_id="", changes="{}",
                              ip="")
        content = audit.content_hash(row)
        link = audit.chain_hash(head.last_hash, 4, content)
        db.session.add(AuditEvent(**vars(row), content_hash=content, seq=4, prev_hash=head.last_hash, hash=link))
        db.session.commit()
        assert "goes past its head" in audit.verify_chain().reason
        _execute("UPDATE audit_head SET last_seq = 4, last_hash = :h", h=link)
        assert "past the newest signed tree head" in audit.verify_chain().reason


def _resign_with_a_foreign_key(token: str) -> str:
    """The same header (kid) and payload, signed by a key that is not the registry's."""
    signing_input = token.rsplit(".", 1)[0]
    forged = Ed25519PrivateKey.generate().sign(signing_input.encode("ascii"))
    return f"{signing_input}.{certificates.b64url(forged)}"


@pytest.mark.parametrize("forgery", ["foreign_key", "altered_hash", "middle_removed", "newest_removed"])
def test_a_forged_or_removed_tree_head_is_detected(app, monkeypatch, forgery: str) -> None:
    monkeypatch.setattr(audit, "SEQUENCER_BATCH", 2)
    with app.app_context():
        _record(6)
        audit.sequence_pending()  # tree heads at 2, 4, 6
        first = db.session.scalars(select(AuditTreeHead).order_by(AuditTreeHead.tree_size)).first()
        if forgery == "foreign_key":
            _execute("UPDATE audit_tree_heads SET signature = :s WHERE tree_size = 2",
                     s=_resign_with_a_foreign_key(first.signature))
        elif forgery == "altered_hash":
            _execute("UPDATE audit_tree_heads SET head_hash = :h WHERE tree_size = 2", h="0" * 64)
        else:
            _execute("DELETE FROM audit_tree_heads WHERE tree_size = :n",
                     n=4 if forgery == "middle_removed" else 6)
        report = audit.verify_chain()
    expected = {"foreign_key": "signature does not verify", "altered_hash": "does not match what was signed",
                "middle_removed": "size 4) was removed", "newest_removed": "past the newest signed tree head"}
    assert not report.intact and expected[forgery] in report.reason


def test_cli_names_a_forged_tree_head(app) -> None:
    with app.app_context():
        _record(2)
        audit.sequence_pending()
        _execute("UPDATE audit_tree_heads SET head_hash = :h", h="1" * 64)
    result = app.test_cli_runner().invoke(args=["audit", "verify"])
    assert result.exit_code == 1 and "BROKEN at a signed tree head" in result.output


# --- published tree heads and witnesses -------------------------------------------------------------

def _resign_every_head() -> None:
    """What an insider holding the signing key can do after rewriting the events: replace every stored tree
    head by one newly signed over the rewritten chain (the log then verifies on its own)."""
    head = db.session.get(AuditHead, 1, populate_existing=True)
    at = audit.utcnow()
    kid, token = certificates.keyring().signed(audit.tree_head_payload(head.last_seq, head.last_hash, at, 0))
    _execute("DELETE FROM audit_tree_heads")
    _execute("INSERT INTO audit_tree_heads (tree_size, head_hash, at, kid, signature) VALUES (:n, :h, :at, :k, :s)",
             n=head.last_seq, h=head.last_hash, at=at, k=kid, s=token)


def _witness(app, *lines: str) -> object:
    folder = current_app.instance_path
    path = os.path.join(folder, "witnessed.jsonl")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    return app.test_cli_runner().invoke(args=["audit", "verify", "--witness", path])


def test_the_public_endpoint_publishes_the_newest_or_a_given_tree_head(app, client, monkeypatch) -> None:
    monkeypatch.setattr(audit, "SEQUENCER_BATCH", 2)
    assert client.get("/api/v1/public/audit/tree-head").status_code == 404
    with app.app_context():
        _record(4)
        audit.sequence_pending()  # tree heads at 2 and 4
    newest = client.get("/api/v1/public/audit/tree-head").get_json()
    assert newest["tree_size"] == 4 and set(newest) == {"tree_size", "head_hash", "at", "kid", "signature"}
    payload = certificates.verify(newest["signature"], client.get("/api/v1/public/keys").get_json())
    assert payload["head"] == newest["head_hash"] and payload["tree_size"] == 4
    assert client.get("/api/v1/public/audit/tree-head?size=2").get_json()["tree_size"] == 2
    assert client.get("/api/v1/public/audit/tree-head?size=3").status_code == 404
    for bad in ("0", "-1", "x", "", str(2**63), "9" * 400):  # past the column's range: refused, not queried
        answer = client.get(f"/api/v1/public/audit/tree-head?size={bad}")
        assert answer.status_code == 400 and "正整数" in answer.get_json()["message"]


def test_a_witness_catches_a_rewrite_that_the_log_alone_no_longer_shows(app, client) -> None:
    """A third party kept the tree head at size 3; an insider with the key rewrites events 2.. and re-signs
    every stored head: `audit verify` alone passes, with the witness's copy it fails and says why."""
    with app.app_context():
        _record(3)
        audit.sequence_pending()
    kept = client.get("/api/v1/public/audit/tree-head").get_data(as_text=True).strip()
    with app.app_context():
        _record(2)
        held = _witness(app, kept, "")
        assert held.exit_code == 0 and "1 of 1 hold" in held.output
        _rewrite_from(2)
        _resign_every_head()
        assert audit.verify_chain().intact
        caught = _witness(app, kept)
    assert caught.exit_code == 1 and "line 1: the chain's hash at size 3 differs" in caught.output


@pytest.mark.parametrize(("line", "problem"), [
    ("not json", "not a tree head"),
    ('{"tree_size": 3}', "not a tree head"),
    ("FOREIGN", "signature does not verify"),
    ("CERTIFICATE", "not a tree head of this registry's audit log"),
])
def test_a_witness_line_that_is_not_a_head_of_this_log_is_refused(app, line: str, problem: str) -> None:
    with app.app_context():
        _record(3)
        audit.sequence_pending()
        token = db.session.scalar(select(AuditTreeHead.signature))
        if line == "FOREIGN":
            line = json.dumps({"signature": _resign_with_a_foreign_key(token)})
        elif line == "CERTIFICATE":
            line = json.dumps({"signature": certificates.keyring().sign({"kind": "filing", "tree_size": 3})})
        result = _witness(app, line)
    assert result.exit_code == 1 and problem in result.output and "0 of 1 hold" in result.output


def test_a_witness_head_beyond_a_truncated_log_is_caught(app) -> None:
    with app.app_context():
        _record(4)
        audit.sequence_pending()
        kept = json.dumps(audit.published_tree_head())
        _execute("DELETE FROM audit_events WHERE seq = 4")
        result = _witness(app, kept)
    assert result.exit_code == 1 and "no longer reaches size 4" in result.output


def test_the_application_cannot_change_a_tree_head(app) -> None:
    with app.app_context():
        _record(1)
        audit.sequence_pending()
        signed = db.session.scalars(select(AuditTreeHead)).one()
        signed.head_hash = "0" * 64
        with pytest.raises(PermissionError):
            db.session.flush()
        db.session.rollback()


# --- PostgreSQL: no shared lock, one sequencer at a time ------------------------------------------------------

def _record_and_commit_within(seconds: float) -> float:
    """In a second transaction (its own app context: its own session) that gives up waiting for a lock after
    `seconds`: one audited write and commit; the time it took."""
    started = time.perf_counter()
    db.session.execute(text(f"SET LOCAL lock_timeout = '{int(seconds * 1000)}ms'"))
    audit.record("auth.sign_in", actor_username="second")
    db.session.commit()
    return time.perf_counter() - started


@postgresql_only
@pytest.mark.parametrize("holder", ["open_batch", "sequencer"])
def test_an_audited_write_waits_for_no_open_transaction(app, holder: str) -> None:
    """Does a transaction that recorded 10,000 events and stays open (or a sequencer mid-batch) hold up another
    transaction's audited write? (It did: both took the one head row's lock until commit.)"""
    with app.app_context():
        _record(3)
        audit.sequence_pending()
        if holder == "open_batch":
            audit.record_many([("application.approved", {"object_id": i}) for i in range(10_000)])
        else:
            db.session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": audit.SEQUENCER_LOCK})
            db.session.execute(text("UPDATE audit_head SET last_seq = last_seq"))
        with app.app_context():
            # a wait for the holder's lock would end in the 2 s lock timeout's error; alone it takes ~5 ms, and the
            # bound leaves room for a new connection on a loaded machine
            assert _record_and_commit_within(2.0) < 1.9
        db.session.rollback()


@postgresql_only
def test_concurrent_sequencers_never_share_a_place_or_fork(app, monkeypatch) -> None:
    """Two sequencers and a writer at once: places 1..N each once, one chain, verified."""
    monkeypatch.setattr(audit, "SEQUENCER_BATCH", 7)
    writing = threading.Event()
    errors: list[BaseException] = []

    def run(work) -> None:
        try:
            with app.app_context():
                work()
        except BaseException as error:  # reported by the test, not lost in the thread
            errors.append(error)

    def write() -> None:
        for round_ in range(20):
            _record(10, prefix=f"r{round_}-")
        writing.set()

    def sequence() -> None:
        while not writing.is_set() or audit.waiting_count():
            audit.sequence_pending(limit=25)

    threads = [threading.Thread(target=run, args=(work,)) for work in (write, sequence, sequence)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    with app.app_context():
        places = list(db.session.scalars(select(AuditEvent.seq).order_by(AuditEvent.seq)))
        assert places == list(range(1, 201))
        sizes = list(db.session.scalars(select(AuditTreeHead.tree_size).order_by(AuditTreeHead.tree_size)))
        assert sizes[-1] == 200 and len(sizes) == len(set(sizes))
        assert audit.verify_chain() == audit.ChainReport(200)


# --- the migration: a log chained by the previous release -------------------------------------------------

def _legacy_chain(count: int) -> list[dict[str, object]]:
    """Events as the previous release chained them: hash = H(prev_hash, content) in id order."""
    rows, previous = [], audit.GENESIS_HASH
    for i in range(count):
        row = {"at": audit.utcnow(), "actor_id": None, "actor_username": f"old{i}", "actor_role": "",
               "province_code": None, "action": "auth.sign_in", "object_type": "user", "object_id": str(i),
               "changes": "{}", "ip": "cli", "prev_hash": previous}
        content = [row[name] for name in audit.HASHED]
        row["hash"] = audit._sha256([previous, content[0].isoformat(timespec="microseconds"), *content[1:]])
        rows.append(row)
        previous = row["hash"]
    return rows


LEGACY_INSERT = text("INSERT INTO audit_events (at, actor_id, actor_username, actor_role, province_code, action, "
                     "object_type, object_id, changes, ip, prev_hash, hash) VALUES (:at, :actor_id, "
                     ":actor_username, :actor_role, :province_code, :action, :object_type, :object_id, :changes, :ip, "
                     ":prev_hash, :hash)")


@pytest.fixture
def legacy_app(tmp_path):
    """An empty database brought to the revision before this one (tests/test_migrations.py's fixture)."""
    from tests.test_migrations import empty_app

    yield from empty_app.__wrapped__(tmp_path)


def _upgrade_with_legacy(rows: list[dict[str, object]], head_hash: str) -> None:
    upgrade(directory=MIGRATIONS_DIR, revision="b14e0001d0a1")
    with db.engine.begin() as connection:
        connection.execute(LEGACY_INSERT, rows)  # ids 1, 2, … in this order
        connection.execute(text("INSERT INTO audit_head (id, last_hash, last_event_id) VALUES (1, :h, :i)"),
                           {"h": head_hash, "i": len(rows)})
    migrate = current_app.extensions["migrate"].migrate  # alembic itself: Flask-Migrate turns errors into exit(1)
    command.upgrade(migrate.get_config(MIGRATIONS_DIR), "b15e0001a0d1")


def test_the_migration_rechains_the_previous_release_log(legacy_app) -> None:
    rows = _legacy_chain(12)
    _upgrade_with_legacy(rows, rows[-1]["hash"])
    places = db.session.execute(text("SELECT id, seq FROM audit_events ORDER BY id")).all()
    assert [tuple(place) for place in places] == [(i, i) for i in range(1, 13)]
    db.session.commit()
    upgrade(directory=MIGRATIONS_DIR)
    _record(1)
    assert audit.verify_chain() == audit.ChainReport(13)


@pytest.mark.parametrize("broken", ["altered", "tail_removed"])
def test_the_migration_refuses_to_rechain_a_broken_log(legacy_app, broken: str) -> None:
    """Re-chaining must not launder tampering done under the previous release."""
    rows = _legacy_chain(5)
    if broken == "altered":
        rows[2]["actor_username"] = "someone"
    with pytest.raises(RuntimeError, match="event 3 does not match" if broken == "altered" else "newest"):
        _upgrade_with_legacy(rows if broken == "altered" else rows[:-1], rows[-1]["hash"])
