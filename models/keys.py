"""Certificate signing keys shared by every node (SIGNING_KEY_STORE = database, issue 15)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from extensions import db
from models.base import utcnow


class SigningKey(db.Model):
    """One Ed25519 key. The private key is only ever stored sealed (certificates/stores.py): nonce ‖ AES-256-GCM
    ciphertext under SIGNING_KEY_KEK, the kid as associated data. The current key is the newest not retired."""

    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)  # RFC 7638 thumbprint of the public key
    public_key: Mapped[bytes] = mapped_column(LargeBinary(32))  # raw, 32 bytes
    private_key_sealed: Mapped[bytes] = mapped_column(LargeBinary(64))  # 12-byte nonce ‖ 32-byte key ‖ 16-byte tag
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(DateTime)  # no longer signs; still verifies
