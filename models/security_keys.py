"""Security keys (WebAuthn / FIDO2) of the accounts, and the challenges of their ceremonies (issue 17 §3)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from extensions import db
from models.base import utcnow


class SecurityKey(db.Model):
    """One registered credential: its id and COSE public key as the authenticator gave them, and the last signature
    counter it reported (a lower or equal one later betrays a cloned key)."""

    __tablename__ = "security_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    credential_id: Mapped[bytes] = mapped_column(LargeBinary(1023), unique=True)  # ≤ 1,023 bytes (WebAuthn §5.8.3)
    public_key: Mapped[bytes] = mapped_column(LargeBinary(2048))  # COSE_Key
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)  # unsigned 32 bits: past PostgreSQL's integer
    transports: Mapped[str] = mapped_column(String(128), default="")  # "usb,nfc": a hint given back to the browser
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime)


class WebAuthnChallenge(db.Model):
    """A challenge kept on the server (the session holds only its id); deleted when it is answered, so it is used
    once, whatever the answer; an expired one is refused and swept."""

    __tablename__ = "webauthn_challenges"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(16))  # "register" or "sign_in"
    challenge: Mapped[bytes] = mapped_column(LargeBinary(64))
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)
