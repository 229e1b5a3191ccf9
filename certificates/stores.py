"""Where signing keys live: PEM files under instance/keys/ (the local default), or the `signing_keys` table
with each private key sealed by a key-encryption key from the environment (several nodes, one key set)."""

from __future__ import annotations

import base64
import binascii
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from certificates.jws import public_jwk
from extensions import write_intent
from models import SigningKey, utcnow

KEK_BYTES = 32
NONCE_BYTES = 12  # 96 bits, the size AES-GCM is made for; random per sealing
GENERATE_KEK = ('python -c "import secrets,base64;'
                'print(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())"')


class KeyStoreError(RuntimeError):
    """The key store cannot be used as configured (no or wrong key-encryption key, unknown store)."""


@dataclass(frozen=True)
class StoredKey:
    """One key as `flask keys list` shows it."""

    kid: str
    created_at: datetime
    retired_at: datetime | None
    current: bool


class KeyStore(Protocol):
    """What a KeyRing needs of a store; every node reading the same store signs and verifies alike."""

    def current_kid(self) -> str | None: ...

    def public_keys(self) -> dict[str, Ed25519PublicKey]: ...

    def private_key(self, kid: str) -> Ed25519PrivateKey: ...

    def add(self, key: Ed25519PrivateKey, created_at: datetime | None = None, current: bool = True) -> str: ...

    def listing(self) -> list[StoredKey]: ...


def kid_of(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The RFC 7638 thumbprint of the public key."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public_jwk(public)["kid"]


def _raw_private(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption())


def _raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def parse_kek(text: str | None, name: str = "SIGNING_KEY_KEK") -> bytes:
    """A key-encryption key (`name`): 32 random bytes in base64url (padding optional); anything else is refused."""
    if not text or not text.strip():
        raise KeyStoreError(f"SIGNING_KEY_STORE=database needs {name} (32 random bytes, base64url); "
                            f"generate one with: {GENERATE_KEK}")
    try:
        kek = base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
    except (binascii.Error, ValueError) as error:
        raise KeyStoreError(f"{name} is not base64url") from error
    if len(kek) != KEK_BYTES:
        raise KeyStoreError(f"{name} must be {KEK_BYTES} bytes (AES-256), it is {len(kek)}")
    return kek


def seal(kek: bytes, kid: str, key: Ed25519PrivateKey) -> bytes:
    """nonce ‖ AES-256-GCM(private key), the kid as associated data: a sealed key moved to another row fails."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(kek).encrypt(nonce, _raw_private(key), kid.encode("ascii"))


def unseal(kek: bytes, kid: str, sealed: bytes) -> Ed25519PrivateKey:
    try:
        raw = AESGCM(kek).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], kid.encode("ascii"))
    except InvalidTag as error:
        raise KeyStoreError(f"SIGNING_KEY_KEK does not open signing key {kid}: the key-encryption key is not the "
                            "one it was stored with, or the row was altered") from error
    return Ed25519PrivateKey.from_private_bytes(raw)


@dataclass
class LocalKeyStore:
    """One PEM per key named by its kid, mode 0600, in a 0700 folder; the file `current` names the signing key."""

    folder: Path

    def current_kid(self) -> str | None:
        current = self.folder / "current"
        return current.read_text().strip() if current.exists() else None

    def private_key(self, kid: str) -> Ed25519PrivateKey:
        key = serialization.load_pem_private_key((self.folder / f"{kid}.pem").read_bytes(), password=None)
        assert isinstance(key, Ed25519PrivateKey)
        return key

    def public_keys(self) -> dict[str, Ed25519PublicKey]:
        return {path.stem: self.private_key(path.stem).public_key() for path in sorted(self.folder.glob("*.pem"))}

    def add(self, key: Ed25519PrivateKey, created_at: datetime | None = None, current: bool = True) -> str:
        """Write the key (its file's time is its creation); `current` moves the signing key to it."""
        kid = kid_of(key)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Written under a name of this writer's own, then linked: no reader ever sees half a key, and two
        # processes or threads making the first key at once never trip over each other's files.
        writing = self.folder / f"{kid}.{os.getpid()}.{threading.get_ident()}.tmp"
        fd = os.open(writing, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        try:
            os.link(writing, self.folder / f"{kid}.pem")  # never replaces a key of the same kid
        finally:
            writing.unlink()
        if current:
            pointer = self.folder / f"current.{os.getpid()}.{threading.get_ident()}.tmp"
            pointer.write_text(kid)
            pointer.replace(self.folder / "current")
        return kid

    def created_at(self, kid: str) -> datetime:
        mtime = (self.folder / f"{kid}.pem").stat().st_mtime
        return datetime.fromtimestamp(mtime, UTC).replace(tzinfo=None)

    def remove(self) -> None:
        """Delete every key file (after they were moved to another store)."""
        for path in [*self.folder.glob("*.pem"), self.folder / "current"]:
            path.unlink(missing_ok=True)

    def listing(self) -> list[StoredKey]:
        current = self.current_kid()
        keys = [StoredKey(path.stem, self.created_at(path.stem), None, path.stem == current)
                for path in self.folder.glob("*.pem")]
        return sorted(keys, key=lambda stored: (stored.created_at, stored.kid))


@contextmanager
def _read_session(engine: Engine) -> Iterator[Session]:
    with write_intent(False), Session(engine) as session:
        yield session


@dataclass
class DatabaseKeyStore:
    """The `signing_keys` table, read and written in short transactions of its own (never the caller's): a rotation
    is committed at once, and reading keys never joins or ends the request's transaction. (On SQLite a key written
    while the same thread holds the write lock would wait for itself: `flask init` makes the first key.)

    The current key is the newest one not retired (ties broken by kid), so every node picks the same one
    even if two nodes rotated at the same moment."""

    engine: Engine
    kek: bytes

    def current_kid(self) -> str | None:
        with _read_session(self.engine) as session:
            return session.scalar(select(SigningKey.kid).where(SigningKey.retired_at.is_(None))
                                  .order_by(SigningKey.created_at.desc(), SigningKey.kid.desc()).limit(1))

    def private_key(self, kid: str) -> Ed25519PrivateKey:
        with _read_session(self.engine) as session:
            sealed = session.scalar(select(SigningKey.private_key_sealed).where(SigningKey.kid == kid))
        if sealed is None:
            raise KeyStoreError(f"no signing key {kid} in the database")
        return unseal(self.kek, kid, sealed)

    def public_keys(self) -> dict[str, Ed25519PublicKey]:
        with _read_session(self.engine) as session:
            rows = session.execute(select(SigningKey.kid, SigningKey.public_key).order_by(SigningKey.created_at))
            return {kid: Ed25519PublicKey.from_public_bytes(raw) for kid, raw in rows}

    def add(self, key: Ed25519PrivateKey, created_at: datetime | None = None, current: bool = True) -> str:
        """Store the key sealed; `current` retires the others in the same transaction, else it is stored retired
        (it verifies, it never signs). A kid already stored is left as it is."""
        kid, now = kid_of(key), utcnow()
        with Session(self.engine) as session, session.begin():
            if session.get(SigningKey, kid) is not None:
                return kid
            if current:
                session.execute(update(SigningKey).where(SigningKey.retired_at.is_(None)).values(retired_at=now))
            session.add(SigningKey(kid=kid, public_key=_raw_public(key), private_key_sealed=seal(self.kek, kid, key),
                                   created_at=created_at or now, retired_at=None if current else now))
        return kid

    def reseal(self, old_kek: bytes) -> int:
        """Every private key re-sealed under this store's KEK, from `old_kek`, in one transaction: all or none.
        A key already sealed under the new KEK (a second run) is left as it is. Returns how many changed."""
        resealed = 0
        with Session(self.engine) as session, session.begin():
            for stored in session.scalars(select(SigningKey).order_by(SigningKey.created_at).with_for_update()):
                try:
                    unseal(self.kek, stored.kid, stored.private_key_sealed)
                    continue
                except KeyStoreError:
                    key = unseal(old_kek, stored.kid, stored.private_key_sealed)  # neither KEK: refused, all undone
                stored.private_key_sealed = seal(self.kek, stored.kid, key)
                resealed += 1
        return resealed

    def listing(self) -> list[StoredKey]:
        current = self.current_kid()
        with _read_session(self.engine) as session:
            rows = session.execute(select(SigningKey.kid, SigningKey.created_at, SigningKey.retired_at)
                                   .order_by(SigningKey.created_at, SigningKey.kid))
            return [StoredKey(kid, created, retired, kid == current) for kid, created, retired in rows]
