"""Messages (SPEC §13): the outbox, the e-mail and SMS adapters, and the delivery worker.

`queue_email` / `queue_sms` add a row to the caller's transaction: the message exists exactly
when the change that causes it is committed. `deliver_due` sends what is due; a failure is
retried with exponential back-off and, after OUTBOX_MAX_ATTEMPTS, marked failed (kept, shown to
MIIT, retryable) — never lost, never rolling back the change.
"""

from __future__ import annotations

import json
import smtplib
import ssl
import urllib.request
from datetime import timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

from flask import current_app
from sqlalchemy import or_, select, update

from extensions import db
from models import MessageChannel, MessageStatus, OutboxMessage, utcnow

REDACTED = "[已发送，内容已清除]"
#: a claimed message whose worker died is taken again after this long
STALE_CLAIM = timedelta(minutes=10)


class DeliveryError(Exception):
    """The transport refused or failed; the message will be retried."""


def queue_email(recipient: str, subject: str, body: str, *, sensitive: bool = False,
                attachment_name: str | None = None, attachment: bytes | None = None) -> OutboxMessage:
    message = OutboxMessage(channel=MessageChannel.EMAIL, recipient=recipient, subject=subject, body=body,
                            sensitive=sensitive, attachment_name=attachment_name, attachment=attachment,
                            status=MessageStatus.QUEUED, attempts=0, next_attempt_at=utcnow(), last_error="")
    db.session.add(message)
    return message


def queue_emails(messages: list[dict[str, Any]]) -> None:
    """Many e-mails in one multi-row insert (a batch approval); keys as `queue_email`'s arguments."""
    if not messages:
        return  # an empty executemany would insert one row of defaults
    now = utcnow()
    db.session.execute(OutboxMessage.__table__.insert(), [{
        "channel": MessageChannel.EMAIL, "recipient": m["recipient"], "subject": m["subject"], "body": m["body"],
        "attachment_name": m.get("attachment_name"), "attachment": m.get("attachment"),
        "sensitive": m.get("sensitive", False), "status": MessageStatus.QUEUED, "attempts": 0,
        "next_attempt_at": now, "last_error": "", "created_at": now} for m in messages])


def queue_sms(mobile: str, text: str, *, sensitive: bool = False) -> OutboxMessage:
    message = OutboxMessage(channel=MessageChannel.SMS, recipient=mobile, subject="", body=text,
                            sensitive=sensitive, status=MessageStatus.QUEUED, attempts=0,
                            next_attempt_at=utcnow(), last_error="")
    db.session.add(message)
    return message


# --- transports ------------------------------------------------------------------------------

def build_email(message: OutboxMessage, sender: str) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = message.recipient
    mail["Subject"] = message.subject
    mail["Date"] = formatdate(localtime=False)
    mail["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or "localhost")
    mail.set_content(message.body)
    if message.attachment is not None:
        mail.add_attachment(message.attachment, maintype="application", subtype="octet-stream",
                            filename=message.attachment_name or "attachment")
    return mail


def send_email(message: OutboxMessage, config: dict[str, Any]) -> None:
    """SMTP when MAIL_SERVER is set; otherwise an .eml file under instance/mail/ (development)."""
    mail = build_email(message, config["MAIL_FROM"])
    if not config["MAIL_SERVER"]:
        folder = Path(config["INSTANCE_PATH"]) / "mail"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{message.id:08d}.eml").write_bytes(bytes(mail))
        return
    smtp_class = smtplib.SMTP_SSL if config["MAIL_USE_SSL"] else smtplib.SMTP
    try:
        with smtp_class(config["MAIL_SERVER"], config["MAIL_PORT"],
                        timeout=config["MAIL_TIMEOUT_SECONDS"]) as smtp:
            if config["MAIL_USE_TLS"] and not config["MAIL_USE_SSL"]:
                smtp.starttls(context=ssl.create_default_context())
            if config["MAIL_USERNAME"]:
                smtp.login(config["MAIL_USERNAME"], config["MAIL_PASSWORD"])
            smtp.send_message(mail)
    except (OSError, smtplib.SMTPException) as error:
        raise DeliveryError(f"SMTP: {error}") from error


def send_sms(message: OutboxMessage, config: dict[str, Any]) -> None:
    """`log` appends to instance/sms.log (development); `http` POSTs JSON to the gateway."""
    if config["SMS_BACKEND"] == "log":
        line = json.dumps({"at": utcnow().isoformat(), "to": message.recipient, "text": message.body},
                          ensure_ascii=False)
        with (Path(config["INSTANCE_PATH"]) / "sms.log").open("a", encoding="utf-8") as log:
            log.write(line + "\n")
        return
    if config["SMS_BACKEND"] != "http" or not config["SMS_HTTP_URL"]:
        raise DeliveryError(f"SMS backend not configured: {config['SMS_BACKEND']!r}")
    request = urllib.request.Request(
        config["SMS_HTTP_URL"], method="POST",
        data=json.dumps({"to": message.recipient, "text": message.body}, ensure_ascii=False).encode(),
        headers={"Content-Type": "application/json",
                 **({"Authorization": f"Bearer {config['SMS_HTTP_TOKEN']}"} if config["SMS_HTTP_TOKEN"] else {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            if not 200 <= response.status < 300:
                raise DeliveryError(f"SMS gateway answered {response.status}")
    except OSError as error:
        raise DeliveryError(f"SMS gateway: {error}") from error


SENDERS = {MessageChannel.EMAIL: send_email, MessageChannel.SMS: send_sms}


# --- the worker ------------------------------------------------------------------------------

def _claim(limit: int) -> list[int]:
    """Mark due messages as being sent (short transaction), so parallel workers never send twice."""
    now = utcnow()
    due = select(OutboxMessage.id).where(or_(
        (OutboxMessage.status == MessageStatus.QUEUED) & (OutboxMessage.next_attempt_at <= now),
        (OutboxMessage.status == MessageStatus.SENDING) & (OutboxMessage.next_attempt_at <= now - STALE_CLAIM),
    )).order_by(OutboxMessage.id).limit(limit)
    if db.engine.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    ids = list(db.session.scalars(due))
    if ids:
        db.session.execute(update(OutboxMessage).where(OutboxMessage.id.in_(ids)).values(
            status=MessageStatus.SENDING, next_attempt_at=now))
    db.session.commit()
    return ids


def _record_outcome(message: OutboxMessage, error: str | None, config: dict[str, Any]) -> None:
    message.attempts += 1
    if error is None:
        message.status = MessageStatus.SENT
        message.sent_at = utcnow()
        message.last_error = ""
        if message.sensitive:
            message.body = REDACTED
        return
    message.last_error = error[:2000]
    if message.attempts >= config["OUTBOX_MAX_ATTEMPTS"]:
        message.status = MessageStatus.FAILED
    else:
        message.status = MessageStatus.QUEUED
        delay = config["OUTBOX_BACKOFF_SECONDS"] * 2 ** (message.attempts - 1)
        message.next_attempt_at = utcnow() + timedelta(seconds=min(delay, 3600))


def deliver_due(limit: int = 100) -> dict[str, int]:
    """Send every due message once; returns counts of sent and failed attempts."""
    config = current_app.config
    counts = {"sent": 0, "retry": 0}
    for message_id in _claim(limit):
        message = db.session.get(OutboxMessage, message_id)
        try:
            SENDERS[message.channel](message, config)
            error = None
            counts["sent"] += 1
        except DeliveryError as failure:
            error = str(failure)
            counts["retry"] += 1
        _record_outcome(message, error, config)
        db.session.commit()
    return counts
