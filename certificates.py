"""Electronic certificates (SPEC §6): Ed25519 keys, JWKS, and bazs.cert as a compact JWS.

Keys live under `instance/keys/` (outside the web root and the database), one PEM per key named
by its `kid` (the RFC 7638 thumbprint), mode 0600; `current` names the signing key. Rotation adds
a key and moves `current`; old keys stay to verify what they signed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from flask import current_app

ALGORITHM = "EdDSA"
TYPE = "bazs+jws"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def public_jwk(key: Ed25519PublicKey) -> dict[str, str]:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    jwk = {"crv": "Ed25519", "kty": "OKP", "x": b64url(raw)}
    thumbprint = b64url(hashlib.sha256(json.dumps(jwk, separators=(",", ":"), sort_keys=True).encode()).digest())
    return {**jwk, "kid": thumbprint, "alg": ALGORITHM, "use": "sig"}


class CertificateError(Exception):
    """Why a certificate does not verify; `code` is stable for the API, the message for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class KeyRing:
    folder: Path
    _loaded: dict[str, Ed25519PrivateKey] = field(default_factory=dict, repr=False)
    _current: str | None = field(default=None, repr=False)

    @classmethod
    def at(cls, instance_path: str | Path) -> KeyRing:
        ring = cls(Path(instance_path) / "keys")
        if not (ring.folder / "current").exists():
            ring.rotate()
        return ring

    def _write_private(self, path: Path, data: bytes) -> None:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)

    def rotate(self) -> str:
        """A new signing key; returns its kid. The previous keys keep verifying."""
        key = Ed25519PrivateKey.generate()
        kid = public_jwk(key.public_key())["kid"]
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        self._write_private(self.folder / f"{kid}.pem", pem)
        current = self.folder / "current.tmp"
        current.write_text(kid)
        current.replace(self.folder / "current")
        self._current = kid
        return kid

    def current_kid(self) -> str:
        """The signing key. Cached per process: a rotation by another process is seen after a restart."""
        if self._current is None:
            self._current = (self.folder / "current").read_text().strip()
        return self._current

    def private_key(self, kid: str) -> Ed25519PrivateKey:
        if kid not in self._loaded:
            key = serialization.load_pem_private_key((self.folder / f"{kid}.pem").read_bytes(), password=None)
            assert isinstance(key, Ed25519PrivateKey)
            self._loaded[kid] = key
        return self._loaded[kid]

    def public_keys(self) -> dict[str, Ed25519PublicKey]:
        return {path.stem: self.private_key(path.stem).public_key() for path in sorted(self.folder.glob("*.pem"))}

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return {"keys": [public_jwk(key) for key in self.public_keys().values()]}

    def sign(self, payload: dict[str, Any]) -> str:
        kid = self.current_kid()
        header = {"alg": ALGORITHM, "kid": kid, "typ": TYPE}
        signing_input = f"{b64url(_canonical(header))}.{b64url(_canonical(payload))}"
        signature = self.private_key(kid).sign(signing_input.encode("ascii"))
        return f"{signing_input}.{b64url(signature)}"


def keyring() -> KeyRing:
    """The app's key ring (created with its first key on first use)."""
    return current_app.extensions.setdefault("keyring", KeyRing.at(current_app.instance_path))


def _canonical(data: dict[str, Any]) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


def decode(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """Header, payload, signing input and signature, without checking anything but the form."""
    parts = token.strip().split(".")
    if len(parts) != 3:
        raise CertificateError("malformed", "证书格式错误：应为以点号分隔的三段（头部、内容、签名）。")
    try:
        header = json.loads(b64url_decode(parts[0]))
        payload = json.loads(b64url_decode(parts[1]))
        signature = b64url_decode(parts[2])
    except (ValueError, UnicodeDecodeError) as error:
        raise CertificateError("malformed", "证书格式错误：内容无法解码。") from error
    except RecursionError as error:  # e.g. a header of 5,000 nested arrays
        raise CertificateError("malformed", "证书格式错误：头部或内容嵌套过深。") from error
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise CertificateError("malformed", "证书格式错误：头部或内容的结构不正确。")
    return header, payload, f"{parts[0]}.{parts[1]}".encode("ascii"), signature


def verify(token: str, jwks: dict[str, list[dict[str, str]]]) -> dict[str, Any]:
    """The payload of a certificate whose signature checks against the JWKS; else CertificateError."""
    header, payload, signing_input, signature = decode(token)
    if header.get("alg") != ALGORITHM:
        raise CertificateError("bad_algorithm", "证书的签名算法不是本系统使用的算法。")
    kid = header.get("kid", "")
    if not isinstance(kid, str):
        raise CertificateError("malformed", "证书格式错误：头部的签名密钥标识不正确。")
    jwk = {jwk["kid"]: jwk for jwk in jwks.get("keys", [])}.get(kid)
    if jwk is None:
        raise CertificateError("unknown_key", "签名密钥不是本系统发布的密钥。")
    public_key = Ed25519PublicKey.from_public_bytes(b64url_decode(jwk["x"]))
    try:
        public_key.verify(signature, signing_input)
    except InvalidSignature as error:
        raise CertificateError("bad_signature", "签名校验失败：证书内容被改动，或不是用该密钥签发的。") from error
    return payload
