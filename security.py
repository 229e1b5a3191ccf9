"""Request guards: per-address rate limits, the server-side image captcha and sign-in throttling."""

from __future__ import annotations

import hashlib
import hmac
import io
import math
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import abort, current_app, make_response, render_template, request, session
from flask_babel import format_datetime, gettext
from limits import RateLimitItemPerMinute
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from sqlalchemy import delete, or_
from werkzeug.exceptions import TooManyRequests

from extensions import db
from models import Captcha, Throttle, utcnow


def refuse_nul_bytes() -> None:
    """No text a person types holds a NUL character; PostgreSQL cannot store or compare one (a 500 before):
    any query-string or form value with one is a forged request, refused with 400 before any view runs."""
    if any("\x00" in value for values in (request.args, request.form) for value in values.values()):
        abort(400)


CAPTCHA_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L
CAPTCHA_LENGTH = 4
_SESSION_KEY = "captcha_id"


def _digest(value: str) -> str:
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


# --- rate limits per client address ----------------------------------------------------------

def _limiter() -> MovingWindowRateLimiter:
    """One limiter per app, on `RATELIMIT_STORAGE_URI` (`memory://`: per process; `redis://…`: shared by every
    process and node, so the public API, lookup and captcha limits count across the cluster)."""
    if "rate_limiter" not in current_app.extensions:
        storage = storage_from_string(current_app.config["RATELIMIT_STORAGE_URI"])
        current_app.extensions["rate_limiter"] = MovingWindowRateLimiter(storage)
    return current_app.extensions["rate_limiter"]


def retry_after(bucket: str, per_minute: int, key: str | None = None) -> int | None:
    """Count this request against the `bucket` of `key` (by default the client address); the seconds to wait once
    more than `per_minute` requests came within the last minute (the refused ones are not counted), else None."""
    item, address = RateLimitItemPerMinute(per_minute), key or request.remote_addr or "unknown"
    limiter = _limiter()
    try:
        if limiter.hit(item, bucket, address):
            return None
    except Exception:  # the shared counter store (Redis) unreachable: serve rather than fail every request
        current_app.logger.exception("rate limit storage unavailable; request %s not counted", bucket)
        return None
    reset_at = limiter.get_window_stats(item, bucket, address).reset_time
    return max(1, math.ceil(reset_at - time.time()))


def enforce_rate_limit(bucket: str, per_minute: int) -> None:
    """`retry_after` for pages: over the limit → the error page, 429, with `Retry-After`."""
    if (seconds := retry_after(bucket, per_minute)) is None:
        return
    page = render_template("error.html", code=429, title=gettext("Too many requests"),
                           message=gettext("Too many requests. Try again in %(seconds)s seconds.", seconds=seconds))
    raise TooManyRequests(response=make_response(page, 429, {"Retry-After": str(seconds)}))


# --- captcha ---------------------------------------------------------------------------------

def new_captcha() -> str:
    """Store a new answer under a random id kept in the session; return the answer (to draw).

    The table stays bounded: the session's previous captcha, spent and expired ones are deleted, and
    `auth.captcha_image` limits how many an address may ask for (`CAPTCHA_RATE_LIMIT_PER_MINUTE`).
    """
    answer = current_app.config.get("CAPTCHA_FIXED_ANSWER") or "".join(
        secrets.choice(CAPTCHA_ALPHABET) for _ in range(CAPTCHA_LENGTH))
    captcha_id = secrets.token_urlsafe(24)
    now = utcnow()
    db.session.execute(delete(Captcha).where(or_(Captcha.expires_at < now, Captcha.used_at.is_not(None),
                                                 Captcha.id == session.get(_SESSION_KEY, ""))))
    db.session.add(Captcha(id=captcha_id, answer_hash=_digest(f"{captcha_id}:{answer.upper()}"),
                           expires_at=now + timedelta(minutes=current_app.config["CAPTCHA_TTL_MINUTES"])))
    session[_SESSION_KEY] = captcha_id
    return answer


def purge_spent_guards() -> int:
    """The worker's housekeeping: throttle rows whose window and lock have both passed, and spent or expired
    captchas, so that neither table grows with the number of addresses ever seen. Returns the rows deleted."""
    now = utcnow()
    window = timedelta(minutes=current_app.config["THROTTLE_WINDOW_MINUTES"])
    spent_throttles = db.session.execute(delete(Throttle).where(
        Throttle.window_started_at < now - window, or_(Throttle.locked_until.is_(None), Throttle.locked_until < now)))
    spent_captchas = db.session.execute(delete(Captcha).where(or_(Captcha.expires_at < now,
                                                                  Captcha.used_at.is_not(None))))
    db.session.commit()
    return spent_throttles.rowcount + spent_captchas.rowcount


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


# --- sign-in throttling ----------------------------------------------------------------------

@dataclass(frozen=True)
class ThrottleKeys:
    """The three counters of a sign-in attempt (rows of `throttles`)."""

    account: str  # the account, from every address: counts (alert, slow-down), never locks
    pair: str  # the account from this address: slows down, then locks
    address: str  # this address, whatever the account: locks late

    @property
    def locks(self) -> tuple[str, str]:
        return self.pair, self.address


def throttle_keys(username: str, address: str | None) -> ThrottleKeys:
    name, where = username.strip().lower()[:64], address or "unknown"
    return ThrottleKeys(f"account:{name}", f"pair:{name}|{where}", f"address:{where}")


def lockout_message(until: datetime) -> str:
    """What a sign-in refused by a lock is told."""
    return gettext("Too many failed attempts. Try again after %(time)s.", time=format_datetime(until, "HH:mm"))


def locked_until(keys: tuple[str, ...]) -> datetime | None:
    """The latest lock among the keys that is still running, if any (checked before any hashing)."""
    now = utcnow()
    ends = [row.locked_until for key in keys if (row := db.session.get(Throttle, key))
            and row.locked_until and row.locked_until > now]
    return max(ends) if ends else None


def _count_failure(key: str, now: datetime, window: timedelta) -> Throttle:
    row = db.session.get(Throttle, key)
    if row is None:
        row = Throttle(key=key, failures=0, window_started_at=now)
        db.session.add(row)
    if row.window_started_at < now - window:
        row.failures, row.window_started_at, row.locked_until = 0, now, None
    row.failures += 1
    return row


def record_failure(keys: ThrottleKeys) -> int:
    """Count a failure; return the account's failures in the window (from every address).

    The account never locks (a stranger could lock its owner out from everywhere): the account from
    this address waits a minute from THROTTLE_PAIR_SLOWDOWN failures — from the first while the
    account is under attack (THROTTLE_ACCOUNT_ALERT failures from anywhere) — and locks for the window
    at THROTTLE_PAIR_LOCK; the address locks for the window at THROTTLE_ADDRESS_LOCK, whatever accounts.
    """
    config = current_app.config
    window, now = timedelta(minutes=config["THROTTLE_WINDOW_MINUTES"]), utcnow()
    account, pair, address = (_count_failure(key, now, window) for key in (keys.account, keys.pair, keys.address))
    if pair.failures >= config["THROTTLE_PAIR_LOCK"]:
        pair.locked_until = now + window
    elif pair.failures >= config["THROTTLE_PAIR_SLOWDOWN"] or account.failures >= config["THROTTLE_ACCOUNT_ALERT"]:
        pair.locked_until = now + timedelta(minutes=1)
    if address.failures >= config["THROTTLE_ADDRESS_LOCK"]:
        address.locked_until = now + window
    return account.failures


def record_success(keys: ThrottleKeys) -> None:
    """The owner's own address starts afresh; the account's count of the attack stays for the window."""
    row = db.session.get(Throttle, keys.pair)
    if row is not None:
        db.session.delete(row)
