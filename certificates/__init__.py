"""Electronic certificates (SPEC §6): Ed25519 keys, JWKS, and bazs.cert as a compact JWS.

`SIGNING_KEY_STORE` says where the keys live: `local` (the default) — instance/keys/, one PEM per key named by
its `kid` (the RFC 7638 thumbprint), mode 0600, outside the web root and the database, for one node; or
`database` — the `signing_keys` table, each private key sealed with AES-256-GCM under `SIGNING_KEY_KEK`, so
that every node signs with the same current key. Rotation adds a key and makes it current; old keys stay to
verify what they signed. Each process re-reads the current kid every `SIGNING_KEY_REFRESH_SECONDS`.
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask, current_app

from certificates.jws import (
    ALGORITHM,
    TYPE,
    CertificateError,
    KeySet,
    b64url,
    b64url_decode,
    decode,
    public_jwk,
    verify,
)
from certificates.keyring import KeyRing
from certificates.stores import DatabaseKeyStore, KeyStore, KeyStoreError, LocalKeyStore, StoredKey, parse_kek
from extensions import db

__all__ = ["ALGORITHM", "TYPE", "CertificateError", "KeyRing", "KeySet", "KeyStoreError", "StoredKey", "b64url",
           "b64url_decode", "decode", "import_local_keys", "init_app", "keyring", "public_jwk", "verify"]

STORES = ("local", "database")


def init_app(app: Flask) -> None:
    """Refuse to start with a key store that cannot work: an unknown kind, or `database` without a valid KEK."""
    kind = app.config["SIGNING_KEY_STORE"]
    if kind not in STORES:
        raise KeyStoreError(f"SIGNING_KEY_STORE must be one of {', '.join(STORES)}, not {kind!r}")
    if kind == "database":
        parse_kek(app.config["SIGNING_KEY_KEK"])


def database_store() -> DatabaseKeyStore:
    return DatabaseKeyStore(db.engine, parse_kek(current_app.config["SIGNING_KEY_KEK"]))


def local_store() -> LocalKeyStore:
    return LocalKeyStore(Path(current_app.instance_path) / "keys")


def keyring() -> KeyRing:
    """The app's key ring (created with its first key on first use)."""
    ring = current_app.extensions.get("keyring")
    if ring is None:
        store: KeyStore = database_store() if current_app.config["SIGNING_KEY_STORE"] == "database" else local_store()
        ring = KeyRing(store, float(current_app.config["SIGNING_KEY_REFRESH_SECONDS"]))
        ring.current_kid()
        current_app.extensions["keyring"] = ring
    return ring


def import_local_keys(remove: bool) -> list[str]:
    """Move the instance/keys PEMs into the database store (sealed), oldest first; the local signing key becomes
    the current one unless the database already has one. `remove` deletes the PEMs once stored."""
    local, target = local_store(), database_store()
    make_current = target.current_kid() is None
    listed = local.listing() if local.folder.exists() else []
    kids = [target.add(local.private_key(key.kid), created_at=key.created_at, current=make_current and key.current)
            for key in listed]
    if remove:
        local.remove()
    current_app.extensions.pop("keyring", None)  # the next keyring() reads the database afresh
    return kids
