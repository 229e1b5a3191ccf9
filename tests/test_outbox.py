"""SPEC §13: messages are queued with the change and delivered by the worker, over real SMTP."""

from __future__ import annotations

import socket
from datetime import timedelta
from email.header import decode_header, make_header

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Message
from sqlalchemy import update

import notify
from extensions import db
from models import MessageStatus, OutboxMessage, UserStatus, utcnow
from tests.accounts_helpers import CODE_RE, REGISTRATION, deliver, register, sms_codes
from tests.helpers import post, sign_in, user_named


class Inbox(Message):
    """Keeps every message the SMTP server receives."""

    def __init__(self) -> None:
        super().__init__()
        self.messages = []

    def handle_message(self, message) -> None:
        self.messages.append(message)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp_app(app):
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=_free_port(), MAIL_FROM="beian@registry.example.cn",
                      MAIL_TIMEOUT_SECONDS=5)
    return app


def _start_smtp(app) -> tuple[Controller, Inbox]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=app.config["MAIL_PORT"])
    controller.start()
    return controller, inbox


def _subject(message) -> str:
    return str(make_header(decode_header(message["Subject"])))


def _mail_code(inbox: Inbox) -> str:
    body = inbox.messages[-1].get_payload(decode=True).decode("utf-8")
    return CODE_RE.search(body).group(1)


def test_registration_code_by_real_smtp_finishes_registration(smtp_app) -> None:
    app, client = smtp_app, smtp_app.test_client()
    controller, inbox = _start_smtp(app)
    try:
        register(client)
        assert deliver(app) == {"sent": 2, "retry": 0}
    finally:
        controller.stop()
    message = inbox.messages[-1]
    assert message["To"] == REGISTRATION["email"] and "邮件验证码" in _subject(message)
    sign_in(client, "newsite", "Site-owner-7")
    post(client, "/verify", {"mobile_code": sms_codes(app, REGISTRATION["mobile"])[-1],
                             "email_code": _mail_code(inbox)})
    with app.app_context():
        assert user_named("newsite").status == UserStatus.ACTIVE


def test_smtp_down_keeps_the_change_and_delivers_later(smtp_app) -> None:
    app, client = smtp_app, smtp_app.test_client()
    assert register(client).headers["Location"] == "/register/done"  # committed although SMTP is down
    assert deliver(app) == {"sent": 1, "retry": 1}  # the SMS went, the e-mail waits
    with app.app_context():
        mail = db.session.query(OutboxMessage).filter_by(channel="email").one()
        assert mail.status == MessageStatus.QUEUED and mail.attempts == 1 and "SMTP" in mail.last_error
        assert mail.next_attempt_at > utcnow()
        assert user_named("newsite").status == UserStatus.PENDING
    controller, inbox = _start_smtp(app)
    try:
        assert deliver(app) == {"sent": 0, "retry": 0}  # backing off
        with app.app_context():
            db.session.execute(update(OutboxMessage).values(next_attempt_at=utcnow()))
            db.session.commit()
        assert deliver(app) == {"sent": 1, "retry": 0}
    finally:
        controller.stop()
    assert len(inbox.messages) == 1 and CODE_RE.search(inbox.messages[0].get_payload(decode=True).decode())


def test_keeps_failing_then_failed_visible_to_miit_and_retried(smtp_app, as_user) -> None:
    app = smtp_app
    app.config["OUTBOX_MAX_ATTEMPTS"] = 2
    with app.app_context():
        notify.queue_email("someone@example.cn", "测试", "正文")
        db.session.commit()
    for _ in range(2):
        deliver(app)
        with app.app_context():
            db.session.execute(update(OutboxMessage).values(next_attempt_at=utcnow() - timedelta(seconds=1)))
            db.session.commit()
    with app.app_context():
        message = db.session.query(OutboxMessage).one()
        assert message.status == MessageStatus.FAILED and message.attempts == 2
        message_id = message.id
    miit = as_user("miit")
    listing = miit.get("/admin/outbox/?flt0_0=failed").get_data(as_text=True)
    assert "someone@example.cn" in listing and "发送失败" in listing
    assert post(as_user("bureau"), "/admin/outbox/row-action/retry/", {"id": message_id}).status_code == 403
    post(miit, "/admin/outbox/row-action/retry/", {"id": message_id})
    controller, inbox = _start_smtp(app)
    try:
        assert deliver(app)["sent"] == 1
    finally:
        controller.stop()
    assert _subject(inbox.messages[0]) == "测试"


def test_sent_codes_are_removed_from_the_outbox(app, client) -> None:
    register(client)
    deliver(app)
    with app.app_context():
        bodies = [m.body for m in db.session.query(OutboxMessage)]
    assert bodies == [notify.REDACTED, notify.REDACTED]


def test_parallel_workers_never_send_twice(app) -> None:
    with app.app_context():
        for i in range(5):
            notify.queue_sms(f"1380000000{i}", "测试")
        db.session.commit()
        first = notify._claim(100)
        assert len(first) == 5 and notify._claim(100) == []  # claimed rows are not taken again


def test_sms_http_gateway(app) -> None:
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    received = []

    class Gateway(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append((self.headers["Authorization"],
                             json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
            self.send_response(202)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Gateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    app.config.update(SMS_BACKEND="http", SMS_HTTP_URL=f"http://127.0.0.1:{server.server_port}/send",
                      SMS_HTTP_TOKEN="gateway-token")
    try:
        with app.app_context():
            notify.queue_sms("13800001111", "您好")
            db.session.commit()
        assert deliver(app) == {"sent": 1, "retry": 0}
    finally:
        server.shutdown()
    assert received == [("Bearer gateway-token", {"to": "13800001111", "text": "您好"})]


def test_outbox_cli_once(app) -> None:
    with app.app_context():
        notify.queue_sms("13800001111", "测试")
        db.session.commit()
    result = app.test_cli_runner().invoke(args=["outbox", "run", "--once"])
    assert result.exit_code == 0 and '"sent": 1' in result.output
