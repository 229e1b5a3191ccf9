"""bazs.cert as a JWS: sign, verify against the JWKS, rotate, and refuse tampering with distinct reasons."""

from __future__ import annotations

import json
import os
import stat

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from certificates import CertificateError, KeyRing, b64url, b64url_decode, decode, verify

PAYLOAD = {"certificate_id": "c-1", "kind": "filing", "entity_number": "津ICP备26000001号", "unit_name": "某公司"}


@pytest.fixture
def ring(tmp_path) -> KeyRing:
    return KeyRing.at(tmp_path)


def test_keys_are_private_files(ring: KeyRing) -> None:
    (pem,) = ring.folder.glob("*.pem")
    assert stat.S_IMODE(os.stat(pem).st_mode) == 0o600


def test_signed_certificate_verifies_independently(ring: KeyRing) -> None:
    token = ring.sign(PAYLOAD)
    header, payload, signing_input, signature = decode(token)
    assert header["alg"] == "EdDSA" and header["kid"] == ring.current_kid()
    (jwk,) = ring.jwks()["keys"]
    Ed25519PublicKey.from_public_bytes(b64url_decode(jwk["x"])).verify(signature, signing_input)
    assert verify(token, ring.jwks()) == payload == PAYLOAD


def test_rotation_keeps_old_certificates_valid(ring: KeyRing) -> None:
    old = ring.sign(PAYLOAD)
    old_kid = ring.current_kid()
    new_kid = ring.rotate()
    assert new_kid != old_kid and len(ring.jwks()["keys"]) == 2
    assert verify(old, ring.jwks()) == PAYLOAD
    assert decode(ring.sign(PAYLOAD))[0]["kid"] == new_kid


def _reason(token: str, jwks) -> str:
    with pytest.raises(CertificateError) as caught:
        verify(token, jwks)
    return caught.value.code


def test_tampering_gives_distinct_reasons(ring: KeyRing) -> None:
    token = ring.sign(PAYLOAD)
    head, body, signature = token.split(".")
    changed = b64url(json.dumps({**PAYLOAD, "unit_name": "别的公司"}).encode())
    assert _reason(f"{head}.{changed}.{signature}", ring.jwks()) == "bad_signature"
    foreign = KeyRing.at(ring.folder.parent / "elsewhere")
    foreign_token = foreign.sign(PAYLOAD)
    assert _reason(foreign_token, ring.jwks()) == "unknown_key"
    forged_header = b64url(json.dumps({"alg": "EdDSA", "kid": ring.current_kid()}).encode())
    forged_input = f"{forged_header}.{body}".encode()
    forged = f"{forged_header}.{body}.{b64url(Ed25519PrivateKey.generate().sign(forged_input))}"
    assert _reason(forged, ring.jwks()) == "bad_signature"  # right kid, foreign key
    assert _reason("not-a-jws", ring.jwks()) == "malformed"
    none_alg = b64url(json.dumps({"alg": "none", "kid": ring.current_kid()}).encode())
    assert _reason(f"{none_alg}.{body}.", ring.jwks()) == "bad_algorithm"
