"""The data-exchange API attacked (issue 16): by an outsider, and by a provider holding a credential who sends
what no client would — each test a defect found by a security review, failing before its fix."""

from __future__ import annotations

import contextlib
import io
import socket
import threading
import time
from datetime import timedelta
from typing import Any

import pytest

import webhooks
import workflow
from extensions import db
from models import ApiCredential, Application, utcnow
from tests.exchange_helpers import call, credential_for
from tests.helpers import user_named
from tests.test_exchange_filings import approved_filing, caller, website_json
from tests.test_webhooks import _approved, loopback, receiver  # noqa: F401  (fixtures)
from workflow import exchange


def _raw(client, path: str, token: str, body: bytes, method: str = "POST") -> Any:
    return client.open(f"/api/v1/exchange{path}", method=method, data=body,
                       headers={"Authorization": token, "Content-Type": "application/json"})


# --- hostile bodies ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("method", "path"), [("POST", "/filings"), ("POST", "/events/ack"), ("PUT", "/webhook")])
def test_json_nested_deeper_than_the_parser_goes_is_a_400_not_a_500(app, users, client, method, path):
    """Can 200 kB of brackets (far below the 10 MB limit) make the API answer 500 (a RecursionError)?"""
    with app.app_context():
        _, token = credential_for(users["isp"])
    body = b'{"sequence": 1, "records": [' + b"[" * 100_000 + b"]" * 100_000 + b"]}"
    answer = _raw(client, path, token, body, method)
    assert answer.status_code == 400 and answer.get_json()["code"] == "400"
    assert call(client, "GET", "/credential", token)[1]["next_sequence"] == 1  # nothing taken


def test_a_record_nested_near_the_parsers_limit_is_refused_alone(app, users, client):
    """A record the parser just manages to read must not overflow the checks run on it."""
    with app.app_context():
        _, token = credential_for(users["isp"])
    for sequence, depth in enumerate((900, 930, 945, 955), start=1):
        body = b'{"sequence": %d, "records": [{"entity": ' % sequence + b"[" * depth + b"]" * depth + b"}]}"
        answer = _raw(client, "/filings", token, body)
        assert answer.status_code in (200, 400), depth
        if answer.status_code == 200:
            assert answer.get_json()["results"][0]["code"] == "1000"


def test_a_chunked_put_without_content_length_is_refused_before_it_is_read(app, users, client):
    """PUT /webhook with `Transfer-Encoding: chunked` read its body past EXCHANGE_MAX_BODY_BYTES (up to Flask's
    MAX_CONTENT_LENGTH): only a POST without Content-Length was refused."""
    app.config["EXCHANGE_MAX_BODY_BYTES"] = 1000
    with app.app_context():
        _, token = credential_for(users["isp"])
    body = b'{"url": "https://example.com/' + b"a" * 5000 + b'"}'
    answer = client.open("/api/v1/exchange/webhook", method="PUT", input_stream=io.BytesIO(body),
                         environ_overrides={"wsgi.input_terminated": True},
                         headers={"Authorization": token, "Content-Type": "application/json",
                                  "Transfer-Encoding": "chunked"})
    assert answer.status_code == 411 and answer.get_json()["code"] == "411"


def test_an_old_number_whose_answer_was_purged_is_not_a_negative_gap(app, users, client):
    """After EXCHANGE_ANSWER_DAYS a repeated number found no stored answer and was refused as a gap with
    `missing_count` below zero and a message naming the numbers backwards."""
    with app.app_context():
        _, token = credential_for(users["isp"])
    for sequence in (1, 2):
        assert call(client, "POST", "/filings", token, json={"sequence": sequence, "records": [{}]})[0] == 200
    with app.app_context():
        assert exchange.purge_answers(utcnow() + timedelta(days=10_000)) == 2
    status, body, _ = call(client, "POST", "/filings", token, json={"sequence": 1, "records": [{}]})
    assert status == 409 and body["next_sequence"] == 3
    assert body["missing_count"] == 0 and body["missing"] == [] and "缺少" not in body["message"]


# --- the door ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("key_id", ["bk_\x00", "bk_0123456789abcde\x00", "bk_" + "é" * 16, "x" * 5000])
def test_a_malformed_key_id_is_a_401_on_every_database(app, users, client, key_id):
    """A NUL in the key id was a 500 on PostgreSQL (the key id went to the database as it came)."""
    with app.app_context():
        credential_for(users["isp"])
    status, body, headers = call(client, "GET", "/credential", f"Bearer {key_id}.secret")
    assert status == 401 and body["code"] == "401" and headers["WWW-Authenticate"].startswith("Bearer")


# --- scope: what an ISP that does not serve a filing may read ---------------------------------------------------

def test_the_status_shows_an_isp_not_serving_a_filing_only_its_own_application_and_the_filed_websites(
        app, people, client):
    """An ISP that once asked to serve a filing (its new access pending, refused or ended) stays in the
    filing's application scope; the status must not show it the owner's other applications and unfiled
    websites — the console shows it only what the public sees."""
    with app.app_context():
        entity = approved_filing(people, 71_901, isps=("isp2",))
        number, site = entity.number, entity.websites[0].number
        code = workflow.owner_access_code(user_named(people["icp"]), entity)
        db.session.commit()
    isp, icp = caller(app, client, people["isp"]), caller(app, client, people["icp"])
    access = {"method": "2", "server_province_code": "120000", "ip_ranges": [{"start": "198.51.100.9"}]}
    asked = isp.one("/accesses", {"number": site, "access": access, "access_code": code})
    assert asked["status"] == "accepted", asked
    with app.app_context():
        workflow.reject(user_named(people["bureau"]), db.session.get(Application, asked["ids"]["application_id"]),
                        {"unit_name": "接入信息有误"})
        db.session.commit()
    isp2 = caller(app, client, people["isp2"])
    secret_site = isp2.one("/websites", {"number": number, "website": website_json("unfiled71901")})
    assert secret_site["status"] == "accepted", secret_site
    status, body = isp.status(number=number)
    assert status == 200 and len(body["filings"]) == 1
    filing = body["filings"][0]
    assert [w["number"] for w in filing["websites"]] == [site]  # the owner's unfiled website is not shown
    assert [a["id"] for a in filing["applications"]] == [asked["ids"]["application_id"]]
    with app.app_context():
        assert db.session.get(Application, asked["ids"]["application_id"]).created_by_id == \
            user_named(people["isp"]).id
    # the serving ISP and the owner still see everything
    for who in (isp2, icp):
        seen = who.status(number=number)[1]["filings"][0]
        assert len(seen["websites"]) == 2 and len(seen["applications"]) == 3


# --- webhooks ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("address", ["64:ff9b::a9fe:a9fe", "64:ff9b::7f00:1", "64:ff9b::a00:1",
                                     "2002:7f00:1::", "2002:a9fe:a9fe::1", "::7f00:1", "::a9fe:a9fe"])
def test_an_ipv4_address_inside_an_ipv6_one_is_judged_as_ipv4(app, users, client, address):
    """NAT64 (64:ff9b::/96), 6to4 (2002::/16) and IPv4-compatible (::/96) addresses carry an IPv4 address that a
    gateway may reach: the metadata service, loopback or the private network."""
    with app.app_context():
        _, token = credential_for(users["isp"])
    status, body, _ = call(client, "PUT", "/webhook", token, json={"url": f"https://[{address}]/hook"})
    assert status == 400 and body["field"] == "url", body


@pytest.mark.parametrize("path", ["/a b", "/hook?x=a b", "/路径", "/a\tb"])
def test_a_url_the_http_client_cannot_send_never_stops_the_other_webhooks(
        loopback, client, people, receiver, path):  # noqa: F811  (the fixtures imported above)
    """A provider's URL with a space or a non-ASCII character in its path passed the check, then made every
    delivery pass raise (http.client's InvalidURL / UnicodeEncodeError) before the next credential's turn."""
    app = loopback
    bad_url = f"http://127.0.0.1:{receiver.server_port}{path}"
    with app.app_context():
        bad_id, bad = credential_for(people["isp"])
        _good_id, good = credential_for(people["isp"])
    status, body, _ = call(client, "PUT", "/webhook", bad, json={"url": bad_url})
    assert status == 400 and body["field"] == "url", body
    assert call(client, "PUT", "/webhook", good, json={"url": receiver.url})[0] == 200
    with app.app_context():
        stored = db.session.get(ApiCredential, bad_id)  # one registered before the check refused it
        stored.webhook_url, stored.webhook_secret, stored.webhook_delivered_id = bad_url, "secret", 0
        db.session.commit()
        _approved(people, range(71_950, 71_952))
        exchange.sequence_events()
        assert webhooks.deliver_due() == {"delivered": 2, "failed": 1}
        assert "地址" in db.session.get(ApiCredential, bad_id).webhook_last_error
    assert len(receiver.received) == 2


def test_a_receiver_answering_a_byte_at_a_time_is_cut_off_at_the_timeout(app):
    """The socket's timeout bounds each read, not the POST: a provider's receiver sending a header line every
    0.2 s (well within a 0.5 s timeout) held the worker — and every other credential's webhook — for 6 s here,
    as long as it liked in truth, and was then counted as delivered."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def drip() -> None:
        connection, _ = listener.accept()
        with connection, contextlib.suppress(OSError):
            connection.recv(65536)
            connection.sendall(b"HTTP/1.1 200 OK\r\n")
            for n in range(30):
                if stop.wait(0.2):
                    return
                connection.sendall(b"X-Slow-%d: x\r\n" % n)
            connection.sendall(b"Content-Length: 0\r\n\r\n")

    thread = threading.Thread(target=drip, daemon=True)
    thread.start()
    target = webhooks.Target("http", "127.0.0.1", listener.getsockname()[1], "/", "127.0.0.1")
    started = time.perf_counter()
    try:
        with pytest.raises(webhooks.DeliveryError, match="timed out"):
            webhooks.post(target, b"{}", "secret", 0.5)
        assert time.perf_counter() - started < 3
    finally:
        stop.set()
        listener.close()
        thread.join(5)
