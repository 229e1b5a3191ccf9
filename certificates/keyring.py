"""KeyRing: signs with the store's current key and verifies with all of its keys, re-reading the store so that a
rotation made by another process or node is used without a restart."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from certificates.jws import Jwk, KeySet, b64url, public_jwk, signing_input
from certificates.stores import KeyStore, LocalKeyStore, StoredKey

DEFAULT_REFRESH_SECONDS = 30.0
#: how often, at most, a kid the ring lacks makes it re-read the store (another node's new key is found within it)
UNKNOWN_KID_RELOAD_SECONDS = 1.0


@dataclass
class KeyRing:
    """The keys of one store, cached: the current kid and the public keys are re-read once they are older than
    `refresh_seconds` (a rotation elsewhere is used within that time), and at once for a kid not yet seen.
    Private keys never change under a kid, so they are cached for good. `clock` is injectable for tests."""

    store: KeyStore
    refresh_seconds: float = DEFAULT_REFRESH_SECONDS
    clock: Callable[[], float] = time.monotonic
    _private: dict[str, Ed25519PrivateKey] = field(default_factory=dict, repr=False)
    _public: dict[str, Ed25519PublicKey] = field(default_factory=dict, repr=False)
    _jwks: list[Jwk] = field(default_factory=list, repr=False)
    _current: str | None = field(default=None, repr=False)
    _current_read_at: float = field(default=-math.inf, repr=False)
    _public_read_at: float = field(default=-math.inf, repr=False)
    _reload_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    #: when an unknown kid last made the ring re-read the store (the first one after a regular read does at once)
    _unknown_kid_read_at: float | None = field(default=None, repr=False)

    @classmethod
    def at(cls, instance_path: str | Path, refresh_seconds: float = DEFAULT_REFRESH_SECONDS) -> KeyRing:
        """The local key ring of an instance folder (instance/keys/), with its first key made if it has none."""
        ring = cls(LocalKeyStore(Path(instance_path) / "keys"), refresh_seconds)
        ring.current_kid()
        return ring

    @property
    def folder(self) -> Path:
        """The folder of a local key ring."""
        if not isinstance(self.store, LocalKeyStore):
            raise AttributeError("only a local key ring has a folder")
        return self.store.folder

    def _stale(self, read_at: float) -> bool:
        return self.clock() - read_at >= self.refresh_seconds

    def rotate(self) -> str:
        """A new signing key; returns its kid. The previous keys keep verifying."""
        key = Ed25519PrivateKey.generate()
        kid = self.store.add(key)
        self._private[kid] = key
        if kid not in self._public and not math.isinf(self._public_read_at):
            self._public[kid] = key.public_key()
            self._jwks.append(public_jwk(key.public_key()))
        self._current, self._current_read_at = kid, self.clock()
        return kid

    def current_kid(self) -> str:
        """The signing key, as the store names it at most `refresh_seconds` ago (the first key is made here)."""
        if self._current is None or self._stale(self._current_read_at):
            self._current = self.store.current_kid() or self.rotate()
            self._current_read_at = self.clock()
        return self._current

    def private_key(self, kid: str) -> Ed25519PrivateKey:
        if kid not in self._private:
            self._private[kid] = self.store.private_key(kid)
        return self._private[kid]

    def _reload_public(self) -> KeySet:
        self._unknown_kid_read_at = None
        self._public = self.store.public_keys()
        self._jwks = [public_jwk(key) for key in self._public.values()]
        self._public_read_at = self.clock()
        return KeySet(list(self._jwks))

    def public_keys(self) -> dict[str, Ed25519PublicKey]:
        """Every key of the store, the retired ones included (they verify what they signed)."""
        if self._stale(self._public_read_at):
            self._reload_public()
        return dict(self._public)

    def jwks(self) -> KeySet:
        """The public JWKS; verifying against it re-reads the store for a kid it lacks."""
        self.public_keys()
        return KeySet(list(self._jwks), reload=self._reload_for_unknown_kid)

    def _reload_for_unknown_kid(self) -> KeySet:
        """The store re-read for a kid the ring lacks: at once the first time since the last regular read (another
        node's new key verifies at once), then at most once per UNKNOWN_KID_RELOAD_SECONDS, one thread at a time — a
        certificate is outsiders' input (a website inspected serves any kid it likes, on 32 threads), and each
        unknown kid would otherwise read the whole key store again."""
        with self._reload_lock:
            if self._unknown_kid_read_at is None or \
                    self.clock() - self._unknown_kid_read_at >= UNKNOWN_KID_RELOAD_SECONDS:
                keys = self._reload_public()
                self._unknown_kid_read_at = self._public_read_at
                return keys
            return KeySet(list(self._jwks))

    def signed(self, payload: dict[str, Any]) -> tuple[str, str]:
        """(kid, token): the kid the token was signed with, for callers that store it beside the token."""
        kid = self.current_kid()
        data = signing_input(kid, payload)
        return kid, f"{data}.{b64url(self.private_key(kid).sign(data.encode('ascii')))}"

    def sign(self, payload: dict[str, Any]) -> str:
        return self.signed(payload)[1]

    def listing(self) -> list[StoredKey]:
        return self.store.listing()
