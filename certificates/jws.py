"""bazs.cert as a compact JWS (RFC 7515) signed with Ed25519, and the JWKS that verifies it (RFC 7517, 8037)."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

ALGORITHM = "EdDSA"
TYPE = "bazs+jws"

Jwk = dict[str, str]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def public_jwk(key: Ed25519PublicKey) -> Jwk:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    jwk = {"crv": "Ed25519", "kty": "OKP", "x": b64url(raw)}
    thumbprint = b64url(hashlib.sha256(json.dumps(jwk, separators=(",", ":"), sort_keys=True).encode()).digest())
    return {**jwk, "kid": thumbprint, "alg": ALGORITHM, "use": "sig"}


class KeySet(dict[str, list[Jwk]]):
    """A JWKS document — serialised as the plain `{"keys": [...]}` — that knows how to re-read its key store.

    Another node may have signed with a key made after this one was read: a kid the set lacks is looked up
    once more in a fresh read before the certificate is called foreign (`verify` does that)."""

    def __init__(self, keys: list[Jwk], reload: Callable[[], KeySet] | None = None) -> None:
        super().__init__(keys=keys)
        self._reload = reload

    def find(self, kid: str) -> Jwk | None:
        found = _key_with_kid(self, kid)
        if found is None and self._reload is not None:
            return _key_with_kid(self._reload(), kid)
        return found


def _key_with_kid(jwks: Mapping[str, list[Jwk]], kid: str) -> Jwk | None:
    return next((jwk for jwk in jwks.get("keys", []) if jwk.get("kid") == kid), None)


class CertificateError(Exception):
    """Why a certificate does not verify; `code` is stable for the API, the message for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def canonical(data: dict[str, Any]) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


def signing_input(kid: str, payload: dict[str, Any]) -> str:
    """The JWS header and payload, encoded, that the signature covers."""
    header = {"alg": ALGORITHM, "kid": kid, "typ": TYPE}
    return f"{b64url(canonical(header))}.{b64url(canonical(payload))}"


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


def verify(token: str, jwks: Mapping[str, list[Jwk]]) -> dict[str, Any]:
    """The payload of a certificate whose signature checks against the JWKS; else CertificateError.

    A `KeySet` (what `keyring().jwks()` returns) re-reads its store once for a kid it does not know."""
    header, payload, signed, signature = decode(token)
    if header.get("alg") != ALGORITHM:
        raise CertificateError("bad_algorithm", "证书的签名算法不是本系统使用的算法。")
    kid = header.get("kid", "")
    if not isinstance(kid, str):
        raise CertificateError("malformed", "证书格式错误：头部的签名密钥标识不正确。")
    jwk = jwks.find(kid) if isinstance(jwks, KeySet) else _key_with_kid(jwks, kid)
    if jwk is None:
        raise CertificateError("unknown_key", "签名密钥不是本系统发布的密钥。")
    public_key = Ed25519PublicKey.from_public_bytes(b64url_decode(jwk["x"]))
    try:
        public_key.verify(signature, signed)
    except InvalidSignature as error:
        raise CertificateError("bad_signature", "签名校验失败：证书内容被改动，或不是用该密钥签发的。") from error
    return payload
