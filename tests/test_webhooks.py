"""Webhooks of the data-exchange API (issue 16 §5): a receiver that fails twice then succeeds gets every event
once it succeeds, in feed order, signed so that the README's ten lines verify it; the worker backs off between
attempts and never skips an event; the URL must be https and public; a slow or chatty receiver is bounded."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import webhooks
import workers
import workflow
from extensions import db
from models import ApiCredential, utcnow
from tests.exchange_helpers import call, credential_for
from tests.filing_factories import filed_by_isp
from tests.helpers import user_named
from workflow import exchange

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_verify() -> Any:
    """The receiver's verification as the README shows it, run as is."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### The event feed, snapshot and webhooks"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert len(code.strip().splitlines()) <= 10
    namespace: dict[str, Any] = {}
    exec(code, namespace)  # the README's own code, not a copy
    return namespace["verify"]


class Receiver(ThreadingHTTPServer):
    """A webhook receiver on loopback: answers with `answers` in turn (then 200) and keeps what it got."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.answers: list[int] = []
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.big_answer = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}/hook?source=beian"


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append(({**self.headers}, body))
        status = self.server.answers.pop(0) if self.server.answers else 200
        payload = b"x" * (5 * 1024 * 1024) if self.server.big_answer else b"ok"
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        with contextlib.suppress(OSError):  # the registry stops reading after RESPONSE_LIMIT
            self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def loopback(app):
    """Tests reach their receiver over plain http on 127.0.0.1: both switches on."""
    app.config.update(WEBHOOK_ALLOW_HTTP=True, WEBHOOK_ALLOW_PRIVATE=True, WEBHOOK_TIMEOUT_SECONDS=5)
    return app


def _approved(people: dict[str, str], numbers: range) -> None:
    isp = user_named(people["isp"])
    applications = [filed_by_isp(isp, n) for n in numbers]
    db.session.commit()
    workflow.batch_approve(user_named(people["bureau"]), applications)
    db.session.commit()


def _state(credential_id: int) -> ApiCredential:
    db.session.expire_all()
    return db.session.get(ApiCredential, credential_id)


def test_a_receiver_failing_twice_gets_every_event_once_it_succeeds_in_order_and_signed(
        loopback, live_server, people, receiver, monkeypatch) -> None:
    app = loopback
    with app.app_context():
        credential_id, token = credential_for(people["isp"])
    status, registered, _ = call(live_server, "PUT", "/webhook", token, json={"url": receiver.url})
    assert status == 200 and registered["url"] == receiver.url and registered["delivered_id"] == 0
    secret = registered["secret"]
    assert call(live_server, "GET", "/webhook", token)[1]["secret"] is None  # shown once
    with app.app_context(), monkeypatch.context() as patched:
        patched.setattr(webhooks, "post", lambda *args: pytest.fail("an approval waited for a webhook"))
        _approved(people, range(90, 93))  # the outcome's transaction only inserts its events
    with app.app_context():
        exchange.sequence_events()
        receiver.answers = [500, 503]
        start = utcnow()
        assert webhooks.deliver_due(start) == {"delivered": 0, "failed": 1}
        assert webhooks.deliver_due(start + timedelta(seconds=20)) == {"delivered": 0, "failed": 0}  # backing off
        assert webhooks.deliver_due(start + timedelta(seconds=31)) == {"delivered": 0, "failed": 1}
        state = _state(credential_id)
        assert (state.webhook_attempts, state.webhook_last_error) == (2, "HTTP 503")
        assert state.webhook_next_at == start + timedelta(seconds=31 + 60) and state.webhook_delivered_id == 0
        assert webhooks.deliver_due(start + timedelta(seconds=100)) == {"delivered": 3, "failed": 0}
        assert webhooks.deliver_due(start + timedelta(seconds=200)) == {"delivered": 0, "failed": 0}
    first, retried, *delivered = [json.loads(body) for _headers, body in receiver.received]
    assert len(delivered) == 3 and first["id"] == retried["id"] == delivered[0]["id"]
    ids = [event["id"] for event in delivered]
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert [event["kind"] for event in delivered] == ["application.approved"] * 3
    _status, feed, _ = call(live_server, "GET", "/events", token)
    assert delivered == feed["events"]  # the same document as the feed's
    verify = readme_verify()
    for headers, body in receiver.received:
        assert verify(secret, headers, body)
        assert not verify(secret, headers, body.replace(b'"id"', b'"id" '))
        assert not verify("another-secret", headers, body)
        assert not verify(secret, {**headers, "X-Beian-Timestamp": str(int(time.time()) - 3600)}, body)
    assert receiver.received[0][0]["User-Agent"] == webhooks.USER_AGENT
    _status, after, _ = call(live_server, "GET", "/webhook", token)
    assert (after["delivered_id"], after["attempts"], after["last_error"], after["next_at"]) == (ids[-1], 0, "", None)


def test_the_worker_sequences_and_delivers_and_a_removed_webhook_gets_nothing_more(loopback, client, people,
                                                                                  receiver) -> None:
    app = loopback
    with app.app_context():
        _credential_id, token = credential_for(people["isp"])
    assert call(client, "PUT", "/webhook", token, json={"url": receiver.url})[0] == 200
    steps = tuple(step for step in workers.STEPS if step.name in ("exchange_feed", "webhooks"))
    assert [step.name for step in steps] == ["exchange_feed", "webhooks"]
    with app.app_context():
        _approved(people, range(94, 96))
        figures = workers.run_pass(steps=steps)
    assert figures == {"exchange_feed": 2, "webhooks": {"delivered": 2, "failed": 0}}
    status, removed, _ = call(client, "DELETE", "/webhook", token)
    assert status == 200 and removed["url"] is None
    assert call(client, "DELETE", "/webhook", token)[0] == 404
    with app.app_context():
        _approved(people, range(96, 97))
        assert workers.run_pass(steps=steps)["webhooks"] == {"delivered": 0, "failed": 0}
    assert len(receiver.received) == 2


def test_a_revoked_credential_gets_no_more_pushes(loopback, client, people, receiver) -> None:
    app = loopback
    with app.app_context():
        credential_id, token = credential_for(people["isp"])
    call(client, "PUT", "/webhook", token, json={"url": receiver.url})
    with app.app_context():
        _approved(people, range(97, 98))
        isp = user_named(people["isp"])
        exchange.revoke_credential(isp, db.session.get(ApiCredential, credential_id))
        db.session.commit()
        exchange.sequence_events()
        assert webhooks.deliver_due() == {"delivered": 0, "failed": 0}
    assert receiver.received == []


def test_the_webhook_starts_after_the_acknowledged_position(loopback, client, people, receiver) -> None:
    app = loopback
    with app.app_context():
        _credential_id, token = credential_for(people["isp"])
        _approved(people, range(98, 100))
    events = call(client, "GET", "/events", token)[1]["events"]
    call(client, "POST", "/events/ack", token, json={"up_to": events[0]["id"]})
    assert call(client, "PUT", "/webhook", token, json={"url": receiver.url})[1]["delivered_id"] == events[0]["id"]
    with app.app_context():
        assert webhooks.deliver_due() == {"delivered": 1, "failed": 0}
    assert [json.loads(body)["id"] for _headers, body in receiver.received] == [events[1]["id"]]


def test_a_receiver_that_never_answers_times_out_and_a_huge_answer_is_not_read(loopback, people, receiver) -> None:
    app = loopback
    app.config["WEBHOOK_TIMEOUT_SECONDS"] = 0.3
    silent = socket.create_server(("127.0.0.1", 0))  # accepts connections (the backlog) and never answers
    try:
        with app.app_context():
            target = webhooks.check_url(f"http://127.0.0.1:{silent.getsockname()[1]}/")
            started = time.perf_counter()
            with pytest.raises(webhooks.DeliveryError, match="timed out"):
                webhooks.post(target, b"{}", "secret", 0.3)
            assert time.perf_counter() - started < 2
    finally:
        silent.close()
    receiver.big_answer = True
    with app.app_context():
        assert webhooks.post(webhooks.check_url(receiver.url), b"{}", "secret", 5) == 200


def test_the_connection_goes_to_the_address_checked_not_to_a_new_resolution(receiver) -> None:
    """DNS rebinding: the name is resolved once; the POST goes to that address with the URL's host name."""
    target = webhooks.Target("http", "hooks.example.invalid", receiver.server_port, "/hook", "127.0.0.1")
    assert webhooks.post(target, b"{}", "secret", 5) == 200
    assert receiver.received[0][0]["Host"] == f"hooks.example.invalid:{receiver.server_port}"


STRICT = {"WEBHOOK_ALLOW_HTTP": False, "WEBHOOK_ALLOW_PRIVATE": False}


@pytest.mark.parametrize("url", [
    "http://93.184.216.34/hook", "ftp://93.184.216.34/", "https://", "https://user:pw@93.184.216.34/",
    "https://127.0.0.1/", "https://localhost/", "https://10.1.2.3/", "https://192.168.0.1/", "https://172.16.0.1/",
    "https://169.254.169.254/latest/meta-data/", "https://100.64.0.1/", "https://0.0.0.0/", "https://[::1]/",
    "https://[::ffff:127.0.0.1]/", "https://[fd00:ec2::254]/", "https://[fe80::1]/", "https://224.0.0.1/",
    "https://93.184.216.34:99999/", "https://" + "a" * 2050 + ".cn/"])
def test_only_https_to_a_public_address_is_a_webhook(url) -> None:
    with pytest.raises(webhooks.WebhookUrlError):
        webhooks.check_url(url, STRICT)


def test_a_public_https_url_is_taken_with_its_path_and_query() -> None:
    target = webhooks.check_url("https://93.184.216.34/beian/events?x=1", STRICT)
    assert target == webhooks.Target("https", "93.184.216.34", 443, "/beian/events?x=1", "93.184.216.34")


def test_a_private_webhook_is_refused_by_the_api_with_the_field(client, people) -> None:
    with client.application.app_context():
        _credential_id, token = credential_for(people["isp"])
    status, body, _ = call(client, "PUT", "/webhook", token, json={"url": "https://127.0.0.1/hook"})
    assert status == 400 and body["field"] == "url" and "非公网" in body["message"]
    status, body, _ = call(client, "PUT", "/webhook", token, json={"url": "https://a.cn/", "secret": "mine"})
    assert status == 400 and body["field"] == "secret"
    assert call(client, "GET", "/webhook", token)[1]["url"] is None
