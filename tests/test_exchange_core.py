"""The data-exchange API's door (issue 16 §1, §7): credentials checked on every call, no cookie accepted or set,
JSON errors, the body limit and the per-credential rate limit; over real HTTP where it matters."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from extensions import db
from models import ApiCredential, AuditEvent, UserStatus, utcnow
from tests.exchange_helpers import call, credential_for
from tests.helpers import PASSWORD, sign_in, user_named
from workflow import WorkflowError, exchange


def test_a_credential_answers_and_its_call_is_audited_with_its_id(app, users, live_server):
    with app.app_context():
        credential_id, token = credential_for(users["isp"])
    status, body, headers = call(live_server, "GET", "/credential", token)
    assert status == 200 and body["user"] == users["isp"] and body["scopes"] == ["events", "filings"]
    assert body["next_sequence"] == 1 and "Set-Cookie" not in headers
    with app.app_context():
        event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "exchange.read")).one()
        assert json.loads(event.changes)["credential_id"] == credential_id
        assert event.actor_username == users["isp"]
        assert db.session.get(ApiCredential, credential_id).last_used_ip == "127.0.0.1"


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer bk_0000", "Basic abc.def", "Bearer bk_00.wrong"])
def test_no_or_a_wrong_credential_is_a_json_401(client, users, header):
    status, body, headers = call(client, "GET", "/credential", header)
    assert status == 401 and body["code"] == "401" and body["field"] is None and "凭证" in body["message"]
    assert headers["WWW-Authenticate"].startswith("Bearer")


def test_a_session_cookie_alone_never_makes_a_call(app, users):
    client = app.test_client()
    sign_in(client, users["isp"], PASSWORD)
    status, body, _ = call(client, "GET", "/credential", None)
    assert status == 401 and body["code"] == "401"


def test_revoked_expired_and_disabled_are_refused_at_once(app, users, client):
    with app.app_context():
        revoked_id, revoked = credential_for(users["isp"])
        expiring_id, expiring = credential_for(users["isp"])
        _, of_disabled = credential_for(users["domain_reporter"])
    assert call(client, "GET", "/credential", revoked)[0] == 200
    with app.app_context():
        user_named(users["domain_reporter"]).status = UserStatus.DISABLED
        db.session.flush()  # user_named expires what is not flushed
        exchange.revoke_credential(user_named(users["isp"]), db.session.get(ApiCredential, revoked_id))
        db.session.get(ApiCredential, expiring_id).expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    assert [call(client, "GET", "/credential", token)[0] for token in (revoked, expiring, of_disabled)] == [401] * 3


def test_an_address_outside_the_allowed_networks_is_refused(app, users, client):
    with app.app_context():
        _, elsewhere = credential_for(users["isp"], networks="10.0.0.0/8")
        _, here = credential_for(users["isp"], networks="127.0.0.0/8\n::1")
    status, body, _ = call(client, "GET", "/credential", elsewhere)
    assert status == 403 and body["code"] == "403"
    assert call(client, "GET", "/credential", here)[0] == 200


def test_credentials_are_checked_before_they_are_made(app, users):
    with app.app_context():
        isp, icp = user_named(users["isp"]), user_named(users["preapproval"])
        with pytest.raises(WorkflowError) as refused:
            exchange.create_credential(isp, "x", ["ip"])
        assert refused.value.field == "scopes"
        with pytest.raises(WorkflowError):
            exchange.create_credential(isp, "x", ["filings"], networks="not-a-network")
        with pytest.raises(WorkflowError):
            exchange.create_credential(isp, "x", ["filings"], expires_at=utcnow() - timedelta(days=1))
        with pytest.raises(WorkflowError):  # a role without the API
            exchange.create_credential(icp, "x", ["events"])
        credential, secret = exchange.create_credential(isp, "ok", ["filings"])
        assert credential.secret_hash not in secret and secret.split(".", 1)[1] not in credential.secret_hash
        assert db.session.scalar(select(ApiCredential.secret_hash).where(ApiCredential.id == credential.id)) \
            == exchange._digest(secret.split(".", 1)[1])


def test_the_rate_limit_counts_per_credential_with_retry_after(app, users, client):
    app.config["EXCHANGE_RATE_LIMIT_PER_MINUTE"] = 3
    with app.app_context():
        _, first = credential_for(users["isp"])
        _, second = credential_for(users["isp"])
    assert [call(client, "GET", "/credential", first)[0] for _ in range(3)] == [200] * 3
    status, body, headers = call(client, "GET", "/credential", first)
    assert status == 429 and body["code"] == "429" and int(headers["Retry-After"]) >= 1
    assert call(client, "GET", "/credential", second)[0] == 200


def test_a_body_over_the_limit_is_a_json_413(app, users, client):
    app.config["EXCHANGE_MAX_BODY_BYTES"] = 1000
    with app.app_context():
        _, token = credential_for(users["domain_reporter"])
    status, body, _ = call(client, "POST", "/domains", token, json={"sequence": 1, "records": [{"x": "y" * 2000}]})
    assert status == 413 and body["code"] == "413"


def test_an_unknown_path_under_the_api_is_a_json_404(client, users, app):
    with app.app_context():
        _, token = credential_for(users["isp"])
    status, body, _ = call(client, "GET", "/no-such-thing", token)
    assert status == 404 and body["code"] == "404" and body["message"]


def test_a_read_marking_its_use_after_another_writer_committed_does_not_fail(app, users, client, monkeypatch):
    """SQLite: a GET's transaction reads the credential, another writer commits, then the call records its use —
    inside the read transaction that UPDATE failed at once with "database is locked" (a 500 seen in a walk-through)."""
    with app.app_context():
        _, token = credential_for(users["isp"])
    authenticate = exchange.authenticate

    def and_another_writer_commits(*args: object) -> ApiCredential:
        credential = authenticate(*args)
        with db.engine.connect() as other:
            other.execute(text("UPDATE users SET contact_name = contact_name || 'x' WHERE id = :id"),
                          {"id": credential.user_id})
            other.commit()
        return credential

    monkeypatch.setattr(exchange, "authenticate", and_another_writer_commits)
    assert call(client, "GET", "/credential", token)[0] == 200
