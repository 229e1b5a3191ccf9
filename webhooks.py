"""Webhooks of the data-exchange API (issue 16 §5): each event of a credential's feed POSTed, in feed order, to
the HTTPS URL the credential registered, signed with its secret; the worker's step `deliver_due`.

Signature: `X-Beian-Signature: sha256=<hex HMAC-SHA256(secret, X-Beian-Timestamp + "." + body)>` — the receiver
checks it with the standard library (README) and refuses an old timestamp (a replay).

Order is kept and nothing is skipped: a credential's events go one at a time, and a failure (no connection, a
timeout, an answer other than 2xx) stops that credential's delivery until its back-off has passed
(`WEBHOOK_RETRY_SECONDS` doubled per failed attempt, at most `WEBHOOK_MAX_BACKOFF_SECONDS`); the same event is
tried again then. The position delivered up to (`webhook_delivered_id`) is the webhook's own: the feed's
acknowledgement stays the caller's.

The target is checked at registration and again at every delivery: `https` (plain `http` only with
WEBHOOK_ALLOW_HTTP, for tests), and the name resolved once — every address it resolves to must be public
(`netguard.public`: no loopback, private, link-local, metadata, shared or reserved address, unless
WEBHOOK_ALLOW_PRIVATE) — and the connection is made to that address (the TLS name checked against the URL's
host), so a second resolution can never point it elsewhere (DNS rebinding). No redirect is followed; the answer
is read up to RESPONSE_LIMIT bytes.

Below workflow: it reads the feed and writes only the credentials' delivery columns, as `notify` writes the
outbox's. The events exist only once their transaction committed, so a webhook never holds one up.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import json
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import or_, select, update

import leases
import netguard
from extensions import db
from models import ApiCredential, ExchangeEvent, User, UserStatus, utcnow

SIGNATURE_HEADER = "X-Beian-Signature"
TIMESTAMP_HEADER = "X-Beian-Timestamp"
#: bytes of a receiver's answer read (and discarded): the status is what counts
RESPONSE_LIMIT = 64 * 1024
MAX_URL_LENGTH = 2048
USER_AGENT = "beian-webhook/1"
#: what http.client refuses in a request line (InvalidURL): spaces and control characters
UNSENDABLE = re.compile(r"[\x00-\x20\x7f]")


class WebhookUrlError(ValueError):
    """A URL refused as a webhook target, and why (Chinese, shown to the caller)."""


class DeliveryError(Exception):
    """One POST that did not succeed, and why (kept on the credential as its last error)."""


# --- the signature ------------------------------------------------------------------------------------------------

def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The value of X-Beian-Signature for this body sent at this timestamp."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def event_document(seq: int, kind: str, object_type: str, object_id: str, payload: str, at: datetime
                   ) -> dict[str, Any]:
    """An event as the feed and the webhooks give it: `id` is its feed id."""
    return {"id": seq, "kind": kind, "object_type": object_type, "object_id": object_id,
            "at": at.replace(microsecond=0).isoformat() + "Z", "payload": json.loads(payload)}


# --- the target ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect (`address`, resolved once) and what to ask for."""

    scheme: str
    host: str
    port: int
    path: str
    address: str


def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise WebhookUrlError(f"无法解析 Webhook 地址的主机名 {host}。") from error
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def check_url(url: str, config: Any = None) -> Target:
    """The target of a webhook URL, or WebhookUrlError: https (http only with WEBHOOK_ALLOW_HTTP), no user name or
    password in it, and a host whose every address is public (unless WEBHOOK_ALLOW_PRIVATE)."""
    config = config or current_app.config
    if len(url) > MAX_URL_LENGTH:
        raise WebhookUrlError(f"Webhook 地址过长（至多 {MAX_URL_LENGTH} 个字符）。")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise WebhookUrlError("Webhook 地址格式错误。") from error
    allowed = ("https", "http") if config.get("WEBHOOK_ALLOW_HTTP") else ("https",)
    if parts.scheme not in allowed or not parts.hostname:
        raise WebhookUrlError("Webhook 地址须为 https:// 开头的完整网址。")
    if parts.username is not None or parts.password is not None:
        raise WebhookUrlError("Webhook 地址中不得包含用户名或密码。")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if UNSENDABLE.search(url) or not path.isascii():  # http.client would raise at every delivery
        raise WebhookUrlError("Webhook 地址中不得含有空格或控制字符，路径须为 ASCII（请先进行百分号编码）。")
    port = port or (443 if parts.scheme == "https" else 80)
    addresses = _resolve(parts.hostname, port)
    if not config.get("WEBHOOK_ALLOW_PRIVATE") and not all(netguard.public(address) for address in addresses):
        raise WebhookUrlError("Webhook 地址不得指向本机、内网、链路本地或云元数据等非公网地址。")
    return Target(parts.scheme, parts.hostname, port, path, addresses[0])


# --- one POST -----------------------------------------------------------------------------------------------------

class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the address resolved and checked, whatever the host name resolves to now."""

    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self.address = target.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """The same over TLS: the certificate is checked against the URL's host name (SNI too)."""

    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout, context=ssl.create_default_context())
        self.address = target.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)  # the deadline may cut it
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self.host)  # during the handshake too


def _cut(connection: http.client.HTTPConnection, cut: threading.Event) -> None:
    """End a POST that outlived its deadline: a receiver answering a byte at a time would hold the worker (and
    every other credential's webhook behind it) for as long as it likes."""
    cut.set()
    if connection.sock is not None:
        with contextlib.suppress(OSError):
            connection.sock.shutdown(socket.SHUT_RDWR)


def post(target: Target, body: bytes, secret: str, timeout: float) -> int:
    """POST one signed body; the status (2xx), else DeliveryError. The answer is read up to RESPONSE_LIMIT."""
    timestamp = str(int(time.time()))
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT,
               TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: signature(secret, timestamp, body)}
    kind = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    connection = kind(target, timeout)
    cut = threading.Event()  # the socket's timeout bounds each read only: this bounds the whole POST
    deadline = threading.Timer(timeout, _cut, (connection, cut))
    deadline.start()
    try:
        connection.request("POST", target.path, body=body, headers=headers)
        response = connection.getresponse()
        response.read(RESPONSE_LIMIT)
        status = response.status
    except (OSError, http.client.HTTPException) as error:
        if not cut.is_set():
            raise DeliveryError(f"{type(error).__name__}: {error}"[:200]) from error
    finally:
        deadline.cancel()
        connection.close()
    if cut.is_set():  # what was read when it was cut short may look like a whole answer
        raise DeliveryError(f"timed out: no whole answer within {timeout} s")
    if not 200 <= status < 300:
        raise DeliveryError(f"HTTP {status}")
    return status


# --- the worker's step --------------------------------------------------------------------------------------------

def backoff(attempts: int, config: Any) -> timedelta:
    """The wait after the `attempts`-th failure in a row: doubled each time, bounded."""
    seconds = config["WEBHOOK_RETRY_SECONDS"] * 2 ** max(attempts - 1, 0)
    return timedelta(seconds=min(seconds, config["WEBHOOK_MAX_BACKOFF_SECONDS"]))


def _due_credentials(now: datetime) -> list[tuple[int, int, str, str, int, int]]:
    """(id, user, url, secret, delivered up to, attempts) of each credential in force with a webhook, the
    `events` scope and its back-off passed, whose user is active."""
    rows = db.session.execute(
        select(ApiCredential.id, ApiCredential.user_id, ApiCredential.webhook_url, ApiCredential.webhook_secret,
               ApiCredential.webhook_delivered_id, ApiCredential.webhook_attempts, ApiCredential.scopes)
        .join(User, User.id == ApiCredential.user_id)
        .where(ApiCredential.webhook_url.is_not(None), ApiCredential.revoked_at.is_(None),
               or_(ApiCredential.expires_at.is_(None), ApiCredential.expires_at > now),
               or_(ApiCredential.webhook_next_at.is_(None), ApiCredential.webhook_next_at <= now),
               User.status == UserStatus.ACTIVE)
        .order_by(ApiCredential.id))
    return [tuple(row[:6]) for row in rows if "events" in row.scopes.split(",")]


def _pending(user_id: int, after: int, limit: int) -> list[tuple[int, bytes]]:
    rows = db.session.execute(
        select(ExchangeEvent.seq, ExchangeEvent.kind, ExchangeEvent.object_type, ExchangeEvent.object_id,
               ExchangeEvent.payload, ExchangeEvent.at)
        .where(ExchangeEvent.user_id == user_id, ExchangeEvent.seq > after).order_by(ExchangeEvent.seq).limit(limit))
    return [(row.seq, json.dumps(event_document(*row), ensure_ascii=False).encode()) for row in rows]


def _record(credential_id: int, url: str, values: dict[str, Any]) -> None:
    """The outcome, unless the webhook was changed or removed meanwhile (its new URL starts afresh)."""
    leases.fence()
    db.session.execute(update(ApiCredential).where(ApiCredential.id == credential_id,
                                                   ApiCredential.webhook_url == url).values(**values))
    db.session.commit()


def _send(credential_id: int, url: str, secret: str, pending: list[tuple[int, bytes]], config: Any
          ) -> tuple[int, str]:
    """POST these events in order, each success recorded at once; (how many went, the error that stopped them)."""
    try:
        target = check_url(url, config)
    except WebhookUrlError as refused:
        return 0, str(refused)
    sent = 0
    for seq, body in pending:
        try:
            post(target, body, secret, config["WEBHOOK_TIMEOUT_SECONDS"])
        except DeliveryError as failed:
            return sent, str(failed)
        _record(credential_id, url, {"webhook_delivered_id": seq, "webhook_attempts": 0, "webhook_next_at": None,
                                     "webhook_last_error": ""})
        sent += 1
    return sent, ""


def _deliver_credential(credential: tuple[int, int, str, str, int, int], config: Any, counts: dict[str, int],
                        now: datetime) -> None:
    """This credential's next events in order, until one fails (then its back-off starts) or the batch is done.
    No transaction is open while a POST waits."""
    credential_id, user_id, url, secret, delivered, attempts = credential
    pending = _pending(user_id, delivered, config["WEBHOOK_BATCH"])
    db.session.commit()
    if not pending:
        return
    sent, error = _send(credential_id, url, secret, pending, config)
    counts["delivered"] += sent
    if error:
        counts["failed"] += 1
        failures = (0 if sent else attempts) + 1
        _record(credential_id, url, {"webhook_attempts": failures, "webhook_next_at": now + backoff(failures, config),
                                     "webhook_last_error": error[:255]})


def deliver_due(now: datetime | None = None) -> dict[str, int]:
    """The worker's step: for each credential whose webhook is due, its sequenced events not delivered yet, in
    feed order (up to WEBHOOK_BATCH each); the events delivered and the credentials that failed."""
    config, now = current_app.config, now or utcnow()
    counts = {"delivered": 0, "failed": 0}
    for credential in _due_credentials(now):
        _deliver_credential(credential, config, counts, now)
    db.session.commit()
    return counts
