"""Request guards for the account pages: the server-side image captcha and sign-in throttling."""

from __future__ import annotations

import hashlib
import hmac
import io
import secrets
from datetime import datetime, timedelta

from flask import current_app, session
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from sqlalchemy import delete

from extensions import db
from models import Captcha, Throttle, utcnow

CAPTCHA_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L
CAPTCHA_LENGTH = 4
_SESSION_KEY = "captcha_id"


def _digest(value: str) -> str:
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


# --- captcha ---------------------------------------------------------------------------------

def new_captcha() -> str:
    """Store a new answer under a random id kept in the session; return the answer (to draw)."""
    answer = current_app.config.get("CAPTCHA_FIXED_ANSWER") or "".join(
        secrets.choice(CAPTCHA_ALPHABET) for _ in range(CAPTCHA_LENGTH))
    captcha_id = secrets.token_urlsafe(24)
    now = utcnow()
    db.session.execute(delete(Captcha).where(Captcha.expires_at < now))
    db.session.add(Captcha(id=captcha_id, answer_hash=_digest(f"{captcha_id}:{answer.upper()}"),
                           expires_at=now + timedelta(minutes=current_app.config["CAPTCHA_TTL_MINUTES"])))
    session[_SESSION_KEY] = captcha_id
    return answer


def captcha_passes(given: str | None) -> bool:
    """Single use: the captcha of this session is spent by any attempt, right or wrong."""
    captcha_id = session.pop(_SESSION_KEY, None)
    if not captcha_id:
        return False
    row = db.session.get(Captcha, captcha_id)
    if row is None or row.used_at is not None:
        return False
    row.used_at = utcnow()
    if row.expires_at < utcnow():
        return False
    answer = (given or "").strip().upper()
    return hmac.compare_digest(row.answer_hash, _digest(f"{captcha_id}:{answer}"))


def captcha_png(answer: str) -> bytes:
    """Letters at random heights and angles over noise lines and dots."""
    width, height = 150, 50
    rng = secrets.SystemRandom()
    image = Image.new("RGB", (width, height), (246, 243, 236))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        draw.line([(rng.randint(0, width), rng.randint(0, height)) for _ in range(2)],
                  fill=(rng.randint(120, 200), rng.randint(120, 200), rng.randint(120, 200)), width=2)
    font = ImageFont.load_default(size=34)
    for index, char in enumerate(answer):
        glyph = Image.new("RGBA", (44, 48), (0, 0, 0, 0))
        ImageDraw.Draw(glyph).text((6, 2), char, font=font,
                                   fill=(rng.randint(20, 120), rng.randint(20, 80), rng.randint(20, 120)))
        glyph = glyph.rotate(rng.uniform(-28, 28), resample=Image.Resampling.BICUBIC, expand=False)
        image.paste(glyph, (8 + index * 34 + rng.randint(-3, 3), rng.randint(-2, 6)), glyph)
    for _ in range(120):
        draw.point((rng.randint(0, width - 1), rng.randint(0, height - 1)),
                   fill=(rng.randint(0, 255), rng.randint(0, 255), rng.randint(0, 255)))
    buffer = io.BytesIO()
    image.filter(ImageFilter.SMOOTH).save(buffer, format="PNG")
    return buffer.getvalue()


# --- throttling ------------------------------------------------------------------------------

def throttle_keys(username: str, address: str | None) -> tuple[str, str]:
    return f"account:{username.strip().lower()[:64]}", f"address:{address or 'unknown'}"


def locked_until(keys: tuple[str, ...]) -> datetime | None:
    """The latest lock among the keys that is still running, if any (checked before any hashing)."""
    now = utcnow()
    ends = [row.locked_until for key in keys if (row := db.session.get(Throttle, key))
            and row.locked_until and row.locked_until > now]
    return max(ends) if ends else None


def record_failure(account_key: str, address_key: str) -> None:
    """Count a failure; the account slows down (1 min) then locks, the address locks later."""
    config = current_app.config
    window = timedelta(minutes=config["THROTTLE_WINDOW_MINUTES"])
    now = utcnow()
    for key, lock_at, slow_at in ((account_key, config["THROTTLE_ACCOUNT_LOCK"],
                                   config["THROTTLE_ACCOUNT_SLOWDOWN"]),
                                  (address_key, config["THROTTLE_ADDRESS_LOCK"], None)):
        row = db.session.get(Throttle, key)
        if row is None:
            row = Throttle(key=key, failures=0, window_started_at=now)
            db.session.add(row)
        if row.window_started_at < now - window:
            row.failures, row.window_started_at = 0, now
        row.failures += 1
        if row.failures >= lock_at:
            row.locked_until = now + window
        elif slow_at is not None and row.failures >= slow_at:
            row.locked_until = now + timedelta(minutes=1)


def record_success(account_key: str) -> None:
    row = db.session.get(Throttle, account_key)
    if row is not None:
        db.session.delete(row)
