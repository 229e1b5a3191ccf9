"""Signing keys shared by several nodes (issue 15): the database store, its sealed private keys, rotation
reaching every node without a restart, and the `keys` commands."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from flask import Flask
from sqlalchemy import func, select

from app import create_app
from certificates import CertificateError, KeyRing, KeyStoreError, decode, keyring, verify
from certificates.jws import b64url, signing_input
from certificates.stores import LocalKeyStore, parse_kek, unseal
from extensions import db
from models import SigningKey
from tests.conftest import _config

KEK = base64.urlsafe_b64encode(bytes(range(32))).decode()
OTHER_KEK = base64.urlsafe_b64encode(bytes(range(1, 33))).decode()
PAYLOAD = {"certificate_id": "c-1", "kind": "filing", "entity_number": "京ICP备26000001号", "unit_name": "某公司"}


class Clock:
    """A monotonic clock the test moves: no sleeping for the refresh interval."""

    def __init__(self) -> None:
        self.now = time.monotonic()

    def __call__(self) -> float:
        return self.now


def _node(database_url: str, folder: Path, kek: str | None = KEK) -> Flask:
    """An app node with its own instance folder on the shared database, as in the cluster."""
    return create_app(_config(folder, database_url) | {
        "SIGNING_KEY_STORE": "database", "SIGNING_KEY_KEK": kek, "SIGNING_KEY_REFRESH_SECONDS": 30})


@pytest.fixture
def nodes(app: Flask, database_url: str, tmp_path: Path) -> Iterator[tuple[Flask, Flask]]:
    """Two nodes (A, B) in database mode; `app` has emptied the tables."""
    pair = (_node(database_url, tmp_path / "a"), _node(database_url, tmp_path / "b"))
    yield pair
    for node in pair:
        with node.app_context():
            db.engine.dispose()


def _ring_with_clock(node: Flask) -> tuple[KeyRing, Clock]:
    with node.app_context():
        ring = keyring()
    ring.clock = clock = Clock()
    return ring, clock


def _kid(token: str) -> str:
    return decode(token)[0]["kid"]


def test_certificate_signed_on_one_node_verifies_on_another_at_once(nodes) -> None:
    """Does node B accept a certificate signed with a key node A made a moment ago (no refresh interval)?"""
    a, b = nodes
    with a.app_context():
        first = keyring().current_kid()
    with b.app_context():
        assert keyring().current_kid() == first  # B uses the key A made, it does not make its own
        assert [jwk["kid"] for jwk in keyring().jwks()["keys"]] == [first]
    with a.app_context():
        second = keyring().rotate()
        token = keyring().sign(PAYLOAD)
    assert _kid(token) == second != first
    with b.app_context():
        assert verify(token, keyring().jwks()) == PAYLOAD
        forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
        with pytest.raises(CertificateError) as refused:
            verify(forged, keyring().jwks())
        assert refused.value.code == "bad_signature"


def test_rotation_on_one_node_is_signed_with_on_the_other_after_the_refresh_interval(nodes) -> None:
    """Does B sign with A's new key within SIGNING_KEY_REFRESH_SECONDS, without a restart, and verify both?"""
    a, b = nodes
    ring_b, clock = _ring_with_clock(b)
    with b.app_context():
        old_token = ring_b.sign(PAYLOAD)
    with a.app_context():
        new_kid = keyring().rotate()
    clock.now += 29.9
    with b.app_context():
        assert _kid(ring_b.sign(PAYLOAD)) != new_kid  # still cached
    clock.now += 0.1
    with b.app_context():
        new_token = ring_b.sign(PAYLOAD)
        assert _kid(new_token) == new_kid and ring_b.current_kid() == new_kid
        for token in (old_token, new_token):
            assert verify(token, ring_b.jwks()) == PAYLOAD
    with a.app_context():
        assert verify(new_token, keyring().jwks()) == verify(old_token, keyring().jwks()) == PAYLOAD
    served = b.test_client().get("/api/v1/public/keys").get_json()
    assert {jwk["kid"] for jwk in served["keys"]} == {_kid(old_token), new_kid}


def test_a_writing_request_signs_with_a_key_rotated_elsewhere_without_waiting(nodes) -> None:
    """A POST holds SQLite's write lock for its whole transaction: re-reading the keys must not wait for it."""
    a, b = nodes
    ring_b, clock = _ring_with_clock(b)
    with a.app_context():
        new_kid = keyring().rotate()
    clock.now += 30
    with b.test_request_context("/", method="POST"):
        db.session.execute(select(1))  # the request's transaction has begun (BEGIN IMMEDIATE on SQLite)
        started = time.perf_counter()
        assert _kid(ring_b.sign(PAYLOAD)) == new_kid
        assert time.perf_counter() - started < 1
        db.session.rollback()


def test_private_keys_are_stored_sealed(nodes, database_url: str, tmp_path: Path) -> None:
    """Is the private key in the database unreadable without the KEK, and is a wrong KEK named as the cause?"""
    a, _ = nodes
    with a.app_context():
        ring = keyring()
        kid = ring.current_kid()
        raw = ring.private_key(kid).private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                                  serialization.NoEncryption())
        sealed = db.session.scalar(select(SigningKey.private_key_sealed).where(SigningKey.kid == kid))
    assert len(sealed) == 12 + 32 + 16 and b"PRIVATE KEY" not in sealed and raw not in sealed
    assert unseal(parse_kek(KEK), kid, sealed).private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()) == raw
    with pytest.raises(KeyStoreError, match="SIGNING_KEY_KEK does not open"):
        unseal(parse_kek(OTHER_KEK), kid, sealed)
    with pytest.raises(KeyStoreError):  # the kid is bound in: a sealed key copied to another row does not open
        unseal(parse_kek(KEK), "another-kid", sealed)
    wrong = _node(database_url, tmp_path / "wrong", kek=OTHER_KEK)
    with wrong.app_context():
        assert keyring().current_kid() == kid  # the public side needs no KEK
        with pytest.raises(KeyStoreError, match="SIGNING_KEY_KEK does not open signing key"):
            keyring().sign(PAYLOAD)
        db.engine.dispose()


@pytest.mark.parametrize("kek", [None, "", "not base64 !", base64.urlsafe_b64encode(bytes(16)).decode(),
                                 base64.urlsafe_b64encode(bytes(33)).decode()])
def test_database_store_refuses_to_start_without_a_valid_kek(database_url: str, tmp_path: Path,
                                                             kek: str | None) -> None:
    with pytest.raises(KeyStoreError, match="SIGNING_KEY_KEK"):
        _node(database_url, tmp_path, kek=kek)


def test_kek_without_padding_and_the_local_default_are_accepted(database_url: str, tmp_path: Path) -> None:
    assert parse_kek(KEK.rstrip("=")) == parse_kek(KEK) == bytes(range(32))
    _node(database_url, tmp_path / "unpadded", kek=KEK.rstrip("="))
    create_app(_config(tmp_path / "local", database_url))  # local needs no KEK
    with pytest.raises(KeyStoreError, match="SIGNING_KEY_STORE must be one of local, database"):
        create_app(_config(tmp_path / "other", database_url) | {"SIGNING_KEY_STORE": "s3"})


def test_local_store_is_the_default_and_keeps_nothing_in_the_database(app: Flask) -> None:
    with app.app_context():
        ring = keyring()
        assert isinstance(ring.store, LocalKeyStore) and ring.folder == Path(app.instance_path) / "keys"
        assert [path.stem for path in ring.folder.glob("*.pem")] == [ring.current_kid()]
        assert db.session.scalar(select(func.count()).select_from(SigningKey)) == 0
    listed = app.test_cli_runner().invoke(args=["keys", "list"])
    assert listed.exit_code == 0 and listed.output.split("\t")[0] == ring.current_kid()
    assert listed.output.rstrip("\n").endswith("\tcurrent")


def test_local_ring_sees_a_rotation_by_another_process(tmp_path: Path) -> None:
    """Two processes on one instance folder (gunicorn -w 2): the other one's new key is used after the interval."""
    first, second = KeyRing.at(tmp_path), KeyRing.at(tmp_path)
    second.clock = clock = Clock()
    old = second.current_kid()
    assert len(second.jwks()["keys"]) == 1  # read and cached before the rotation
    new_kid = first.rotate()
    token = first.sign(PAYLOAD)
    assert verify(token, second.jwks()) == PAYLOAD  # an unknown kid re-reads the folder at once
    assert second.current_kid() == old
    clock.now += 30
    assert second.current_kid() == new_kid


def test_certificates_of_unknown_kids_re_read_the_store_at_most_once_a_second(tmp_path: Path) -> None:
    """A hostile website's bazs.cert names any kid it likes: 100 such tokens in one second cost one read of the store
    (not one each), and a real new key is found once the second has passed — at once after a regular read."""
    first, second = KeyRing.at(tmp_path), KeyRing.at(tmp_path)
    second.clock = clock = Clock()
    second.jwks()
    reads = []
    real_read = second.store.public_keys
    second.store.public_keys = lambda: reads.append(1) or real_read()  # type: ignore[method-assign]
    clock.now += 1
    forged = [f"{signing_input(f'kid{n}', PAYLOAD)}.{b64url(bytes(64))}" for n in range(100)]
    for token in forged:
        with pytest.raises(CertificateError):
            verify(token, second.jwks())
    assert len(reads) == 1
    first.rotate()
    token = first.sign(PAYLOAD)
    with pytest.raises(CertificateError):
        verify(token, second.jwks())  # within the second: not read again
    clock.now += 1
    assert verify(token, second.jwks()) == PAYLOAD and len(reads) == 2
    first.rotate()
    token = first.sign(PAYLOAD)
    clock.now += 30  # the regular re-read (the new key's first unknown use after it: at once)
    assert verify(token, second.jwks()) == PAYLOAD


def test_local_rings_making_their_first_key_at_once_never_fail(tmp_path: Path) -> None:
    """Threads (two sequencers, gunicorn workers) rotating and reading one folder at once: no reader sees half a
    key, no writer loses its pointer file (both once raised FileNotFoundError), every token verifies."""
    errors: list[BaseException] = []

    def use_the_folder() -> None:
        try:
            for _ in range(5):
                ring = KeyRing.at(tmp_path)
                ring.rotate()
                assert verify(ring.sign(PAYLOAD), KeyRing.at(tmp_path).jwks()) == PAYLOAD
        except BaseException as error:  # reported by the test, not lost in the thread
            errors.append(error)

    threads = [threading.Thread(target=use_the_folder) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    left = sorted(path.suffix for path in tmp_path.joinpath("keys").iterdir())
    assert left.count("") == 1 and left.count(".pem") >= 40 and set(left) == {"", ".pem"}  # no temporary left
    assert len(LocalKeyStore(tmp_path / "keys").public_keys()) == left.count(".pem")


def test_keys_commands_in_database_mode(nodes) -> None:
    a, b = nodes
    runner = a.test_cli_runner()
    rotated = runner.invoke(args=["keys", "rotate"])
    assert rotated.exit_code == 0, rotated.output
    new_kid = rotated.output.split(": ")[1].strip()
    listed = b.test_cli_runner().invoke(args=["keys", "list"])
    assert listed.exit_code == 0, listed.output
    rows = [line.split("\t") for line in listed.output.splitlines()]
    assert len(rows) == 2 and rows[-1][0] == new_kid and rows[-1][2:] == ["-", "current"]
    assert rows[0][2] != "-" and rows[0][3] == ""  # the first key (made by A on first use) is retired
    nothing = runner.invoke(args=["keys", "import-local"])
    assert nothing.exit_code == 0 and nothing.output.startswith("0 signing keys")  # nothing local to move


def _local_keys(node: Flask) -> tuple[list[str], list[str]]:
    """Two keys in the node's instance/keys/ (the second current), and a certificate signed by each."""
    local = KeyRing.at(node.instance_path)
    tokens = [local.sign(PAYLOAD)]
    local.rotate()
    tokens.append(local.sign(PAYLOAD))
    return [_kid(token) for token in tokens], tokens


def test_import_local_moves_the_keys_into_the_database(nodes) -> None:
    """Can an install switch from local to database keys, its certificates still verifying on every node?"""
    a, b = nodes
    kids, tokens = _local_keys(a)
    moved = a.test_cli_runner().invoke(args=["keys", "import-local"])
    assert moved.exit_code == 0, moved.output
    assert moved.output.strip() == f"2 signing keys in the database store; current: {kids[1]}"
    assert list((Path(a.instance_path) / "keys").iterdir()) == []
    with b.app_context():
        assert keyring().current_kid() == kids[1]
        assert [verify(token, keyring().jwks()) for token in tokens] == [PAYLOAD, PAYLOAD]
        stored = db.session.scalars(select(SigningKey.private_key_sealed)).all()
    assert len(stored) == 2 and not any(b"PRIVATE KEY" in sealed for sealed in stored)


def test_import_local_into_a_store_with_a_current_key_keeps_it(nodes) -> None:
    """Keys imported into a database that already signs only verify; --keep-local leaves the files."""
    a, b = nodes
    with b.app_context():
        current = keyring().current_kid()
    kids, tokens = _local_keys(a)
    moved = a.test_cli_runner().invoke(args=["keys", "import-local", "--keep-local"])
    assert moved.exit_code == 0 and moved.output.strip().endswith(f"current: {current}")
    assert sorted(path.stem for path in (Path(a.instance_path) / "keys").glob("*.pem")) == sorted(kids)
    with b.app_context():
        assert [verify(token, keyring().jwks()) for token in tokens] == [PAYLOAD, PAYLOAD]
        assert keyring().current_kid() == current


def test_import_local_is_refused_in_local_mode(app: Flask) -> None:
    refused = app.test_cli_runner().invoke(args=["keys", "import-local"])
    assert refused.exit_code != 0 and "set SIGNING_KEY_STORE=database" in refused.output


def test_reseal_moves_every_key_to_a_new_kek_all_or_nothing(nodes, database_url: str, tmp_path: Path,
                                                            monkeypatch) -> None:
    """Changing the key-encryption key: every sealed key opens under the new KEK after `keys reseal`, none under the
    old; certificates signed before still verify and the new node signs; a wrong old KEK changes nothing."""
    a, _ = nodes
    with a.app_context():
        keyring().rotate()
        token = keyring().sign(PAYLOAD)
        before = dict(db.session.execute(select(SigningKey.kid, SigningKey.private_key_sealed)).all())
    renewed = _node(database_url, tmp_path / "new-kek", kek=OTHER_KEK)
    runner = renewed.test_cli_runner()
    monkeypatch.delenv("SIGNING_KEY_OLD_KEK", raising=False)
    missing = runner.invoke(args=["keys", "reseal"])
    assert missing.exit_code == 1 and "nothing re-sealed" in missing.output and "SIGNING_KEY_OLD_KEK" in missing.output
    monkeypatch.setenv("SIGNING_KEY_OLD_KEK", base64.urlsafe_b64encode(bytes(32)).decode())  # not the old one
    wrong = runner.invoke(args=["keys", "reseal"])
    assert wrong.exit_code == 1 and "does not open signing key" in wrong.output
    with renewed.app_context():
        assert dict(db.session.execute(select(SigningKey.kid, SigningKey.private_key_sealed)).all()) == before
    monkeypatch.setenv("SIGNING_KEY_OLD_KEK", KEK)
    done = runner.invoke(args=["keys", "reseal"])
    assert done.exit_code == 0 and done.output.strip() == "2 signing keys re-sealed under SIGNING_KEY_KEK"
    again = runner.invoke(args=["keys", "reseal"])
    assert again.exit_code == 0 and again.output.startswith("0 signing keys")  # a second run changes nothing
    with renewed.app_context():
        for kid, sealed in db.session.execute(select(SigningKey.kid, SigningKey.private_key_sealed)).all():
            unseal(parse_kek(OTHER_KEK), kid, sealed)
            with pytest.raises(KeyStoreError):
                unseal(parse_kek(KEK), kid, sealed)
        assert verify(token, keyring().jwks()) == PAYLOAD
        assert verify(keyring().sign(PAYLOAD), keyring().jwks()) == PAYLOAD
        db.engine.dispose()


def test_reseal_is_refused_in_local_mode(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["keys", "reseal"])
    assert result.exit_code == 1 and "SIGNING_KEY_STORE=database" in result.output
