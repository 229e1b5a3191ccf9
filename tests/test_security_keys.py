"""Security keys (issue 17 §3), through the HTTP endpoints, answered by a software authenticator written here (ES256,
"none" attestation): can a pre-approval user get a session without its key? Is a challenge used twice? Is a cloned
key (a signature counter going backwards) refused? Who may reset an account's keys?"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import cbor2
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from flask.testing import FlaskClient
from sqlalchemy import func, select

import config
from app import create_app
from extensions import db
from models import (
    AuditEvent,
    OutboxMessage,
    Role,
    SecurityKey,
    Throttle,
    UserStatus,
    WebAuthnChallenge,
    utcnow,
)
from permissions import Action, can
from tests.accounts_helpers import REGISTRATION, deliver, email_codes, register, sms_codes
from tests.conftest import _config
from tests.helpers import TIANJIN, csrf_token, make_user, post, sign_in, user_named
from workflow import security_keys

ORIGIN, RP_ID = "http://localhost:5000", "localhost"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class SoftKey:
    """A FIDO2 authenticator in software: one ES256 credential, a signature counter, "none" attestation."""

    origin: str = ORIGIN
    rp_id: str = RP_ID
    sign_count: int = 0
    private: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    credential_id: bytes = field(default_factory=lambda: os.urandom(32))

    def _client_data(self, kind: str, challenge: str) -> bytes:
        return json.dumps({"type": kind, "challenge": challenge, "origin": self.origin,
                           "crossOrigin": False}).encode()

    def _auth_data(self, flags: int, attested: bytes = b"") -> bytes:
        return hashlib.sha256(self.rp_id.encode()).digest() + bytes([flags]) + struct.pack(
            ">I", self.sign_count) + attested

    def create(self, options: dict[str, Any]) -> dict[str, Any]:
        numbers = self.private.public_key().public_numbers()
        cose = cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})
        attested = bytes(16) + struct.pack(">H", len(self.credential_id)) + self.credential_id + cose
        auth_data = self._auth_data(0x45, attested)  # UP, UV, AT
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        raw = b64url(self.credential_id)
        return {"id": raw, "rawId": raw, "type": "public-key", "clientExtensionResults": {},
                "response": {"clientDataJSON": b64url(self._client_data("webauthn.create", options["challenge"])),
                             "attestationObject": b64url(attestation), "transports": ["usb"]}}

    def get(self, options: dict[str, Any], step: int = 1) -> dict[str, Any]:
        self.sign_count += step
        client_data = self._client_data("webauthn.get", options["challenge"])
        auth_data = self._auth_data(0x05)  # UP, UV
        signature = self.private.sign(auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256()))
        raw = b64url(self.credential_id)
        return {"id": raw, "rawId": raw, "type": "public-key", "clientExtensionResults": {},
                "response": {"clientDataJSON": b64url(client_data), "authenticatorData": b64url(auth_data),
                             "signature": b64url(signature)}}


@pytest.fixture
def keyed_app(app):
    """The app with the production default: pre-approval users sign in with a key."""
    app.config.update(WEBAUTHN_REQUIRED_ROLES=["preapproval"], WEBAUTHN_RP_ID=RP_ID, WEBAUTHN_ORIGIN=ORIGIN)
    return app


def post_json(client: FlaskClient, path: str, body: dict[str, Any] | None = None, token: str | None = None):
    return client.post(path, json=body or {}, headers={"X-CSRFToken": token or csrf_token(client)})


def options(client: FlaskClient, path: str = "/login/key/options") -> dict[str, Any]:
    response = post_json(client, path)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def register_at_sign_in(client: FlaskClient, key: SoftKey, name: str = "办公室密钥"):
    return post_json(client, "/login/key/answer", {"credential": key.create(options(client)), "name": name})


def use_key(client: FlaskClient, key: SoftKey, **kwargs: Any):
    return post_json(client, "/login/key/answer", {"credential": key.get(options(client), **kwargs)})


def signed_in(client: FlaskClient) -> bool:
    return client.get("/admin/").status_code == 200


def events(app, action: str) -> list[AuditEvent]:
    with app.app_context():
        return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def changes(event: AuditEvent) -> dict[str, Any]:
    return json.loads(event.changes)


def password_then_key(app, username: str, key: SoftKey) -> FlaskClient:
    client = app.test_client()
    assert sign_in(client, username).headers["Location"].endswith("/login/key")
    assert use_key(client, key).status_code == 200
    return client


@pytest.fixture
def registered(keyed_app, users) -> SoftKey:
    """The fixture pre-approval user with one key registered at its first sign-in."""
    key, client = SoftKey(), keyed_app.test_client()
    sign_in(client, users["preapproval"])
    assert register_at_sign_in(client, key).status_code == 200
    return key


# --- the sign-in ------------------------------------------------------------------------------------------

def test_a_preapproval_user_gets_no_session_until_its_first_key_is_registered(keyed_app, users) -> None:
    client = keyed_app.test_client()
    response = sign_in(client, users["preapproval"])
    assert response.status_code == 302 and response.headers["Location"].endswith("/login/key")
    assert not signed_in(client)  # the password alone is not a login
    page = client.get("/login/key").get_data(as_text=True)
    assert "注册安全密钥并登录" in page
    made = options(client)
    assert made["rp"] == {"name": "ICP备案管理系统", "id": RP_ID} and made["user"]["name"] == users["preapproval"]
    answer = post_json(client, "/login/key/answer", {"credential": SoftKey().create(made), "name": "办公室密钥"})
    assert answer.status_code == 200 and answer.get_json() == {"redirect": "/admin/"}
    assert signed_in(client)
    with keyed_app.app_context():
        key = db.session.scalars(select(SecurityKey)).one()
        assert (key.name, key.transports, key.sign_count) == ("办公室密钥", "usb", 0)
    assert [changes(e)["reason"] for e in events(keyed_app, "auth.security_key_step")] == ["register"]
    assert len(events(keyed_app, "security_key.added")) == 1
    assert changes(events(keyed_app, "auth.sign_in")[0])["security_key"] == "办公室密钥"


def test_the_next_sign_in_uses_the_key_and_counts_its_signatures(keyed_app, users, registered) -> None:
    client = password_then_key(keyed_app, users["preapproval"], registered)
    assert signed_in(client)
    with keyed_app.app_context():
        key = db.session.scalars(select(SecurityKey)).one()
        assert key.sign_count == 1 and key.last_used_at is not None


def test_without_the_key_there_is_no_session(keyed_app, users, registered) -> None:
    client = keyed_app.test_client()
    sign_in(client, users["preapproval"])
    stranger = SoftKey()  # a key of nobody's: its credential id is unknown
    refused = post_json(client, "/login/key/answer", {"credential": stranger.get(options(client))})
    assert refused.status_code == 400 and "无法验证" in refused.get_json()["message"]
    assert not signed_in(client)
    assert client.get("/login/key").status_code == 200  # the key step is still open: the right key may follow
    assert changes(events(keyed_app, "auth.sign_in_failed")[-1])["reason"].startswith("security_key")



def test_wrong_keys_count_as_wrong_passwords_and_lock_the_step(keyed_app, users, registered) -> None:
    """Whoever has the password tries keys: from the third failure from an address each try waits a minute
    (THROTTLE_PAIR_SLOWDOWN), the fifth locks it for the window (THROTTLE_PAIR_LOCK) — the password sign-in from
    there too; even the right key waits."""
    client, pair = keyed_app.test_client(), f"pair:{users['preapproval']}|127.0.0.1"

    def wrong_key() -> None:
        assert post_json(client, "/login/key/answer", {"credential": SoftKey().get(options(client))}).status_code == 400

    def a_minute_passes() -> None:
        with keyed_app.app_context():
            db.session.get(Throttle, pair).locked_until = None
            db.session.commit()

    sign_in(client, users["preapproval"])
    for _ in range(3):
        wrong_key()
    locked = post_json(client, "/login/key/options")
    assert locked.status_code == 400 and "失败次数过多" in locked.get_json()["message"]
    a_minute_passes()
    wrong_key()
    a_minute_passes()
    wrong_key()
    with keyed_app.app_context():
        throttle = db.session.get(Throttle, pair)
        assert throttle.failures == 5 and throttle.locked_until > utcnow() + timedelta(minutes=10)
    refused = post_json(client, "/login/key/answer", {"credential": registered.get({"challenge": ""}),
                                                      "challenge_id": 0})
    assert refused.status_code == 400 and "失败次数过多" in refused.get_json()["message"] and not signed_in(client)
    again = keyed_app.test_client()
    assert "失败次数过多" in sign_in(again, users["preapproval"]).get_data(as_text=True)
    assert not signed_in(again)


def _pair_failures(app, username: str) -> int:
    with app.app_context():
        row = db.session.get(Throttle, f"pair:{username}|127.0.0.1")
        return row.failures if row is not None else 0


def test_the_password_again_does_not_reset_the_wrong_keys_and_the_owner_is_warned(keyed_app, users,
                                                                                   registered) -> None:
    """Two wrong keys, the password again, a third wrong key: the count goes on (the password's success no longer
    clears it while a key step lies ahead) and the step waits; at THROTTLE_ACCOUNT_ALERT the owner gets the e-mail."""
    keyed_app.config["THROTTLE_ACCOUNT_ALERT"] = 3
    name = users["preapproval"]
    for attempts in (2, 1):
        client = keyed_app.test_client()
        sign_in(client, name)
        for _ in range(attempts):
            assert post_json(client, "/login/key/answer",
                             {"credential": SoftKey().get(options(client))}).status_code == 400
    assert _pair_failures(keyed_app, name) == 3
    assert "失败次数过多" in post_json(client, "/login/key/options").get_json()["message"]
    with keyed_app.app_context():
        owner = user_named(name).email
        assert list(db.session.scalars(select(OutboxMessage.subject).where(OutboxMessage.recipient == owner))) == [
            "ICP备案管理系统 账号安全提醒"]
    assert len(events(keyed_app, "auth.account_under_attack")) == 1


def test_an_expired_challenge_is_no_failure_and_the_right_key_clears_the_count(keyed_app, users, registered) -> None:
    """A slow tap (an expired challenge) is not counted; a wrong key is, until the right key answers."""
    name, client = users["preapproval"], keyed_app.test_client()
    sign_in(client, name)
    made = options(client)
    with keyed_app.app_context():
        db.session.execute(WebAuthnChallenge.__table__.update().values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    assert post_json(client, "/login/key/answer", {"credential": registered.get(made)}).status_code == 400
    assert _pair_failures(keyed_app, name) == 0
    assert post_json(client, "/login/key/answer", {"credential": SoftKey().get(options(client))}).status_code == 400
    assert _pair_failures(keyed_app, name) == 1
    assert use_key(client, registered).status_code == 200 and signed_in(client)
    assert _pair_failures(keyed_app, name) == 0

def test_another_accounts_key_is_refused(keyed_app, users, registered) -> None:
    with keyed_app.app_context():
        make_user("tj_preapp2", Role.PREAPPROVAL, TIANJIN)
    client = keyed_app.test_client()
    sign_in(client, "tj_preapp2")
    own = SoftKey()
    assert register_at_sign_in(client, own).status_code == 200
    other = keyed_app.test_client()
    sign_in(other, "tj_preapp2")
    refused = post_json(other, "/login/key/answer", {"credential": registered.get(options(other))})
    assert refused.status_code == 400 and not signed_in(other)


def test_a_cloned_key_whose_counter_goes_back_is_refused_and_audited(keyed_app, users, registered) -> None:
    password_then_key(keyed_app, users["preapproval"], registered)  # counter 1
    password_then_key(keyed_app, users["preapproval"], registered)  # counter 2
    clone = SoftKey(private=registered.private, credential_id=registered.credential_id, sign_count=0)
    client = keyed_app.test_client()
    sign_in(client, users["preapproval"])
    refused = use_key(client, clone)  # counter 1 ≤ 2
    assert refused.status_code == 400 and "复制" in refused.get_json()["message"]
    assert not signed_in(client)
    cloned = events(keyed_app, "auth.security_key_cloned")
    assert [(changes(e)["stored_count"], changes(e)["answered_count"]) for e in cloned] == [(2, 1)]
    with keyed_app.app_context():
        assert db.session.scalar(select(SecurityKey.sign_count)) == 2  # the stored counter is kept


def test_the_same_counter_twice_is_refused_too(keyed_app, users, registered) -> None:
    password_then_key(keyed_app, users["preapproval"], registered)
    client = keyed_app.test_client()
    sign_in(client, users["preapproval"])
    assert use_key(client, registered, step=0).status_code == 400


def test_a_challenge_is_used_once(keyed_app, users, registered) -> None:
    client = keyed_app.test_client()
    sign_in(client, users["preapproval"])
    made = options(client)
    token = csrf_token(client)
    with client.session_transaction() as state:
        kept = dict(state)  # a copy of the cookie's contents, to answer again with the same challenge id
    answer = registered.get(made)
    assert post_json(client, "/login/key/answer", {"credential": answer}, token).status_code == 200
    replay = keyed_app.test_client()
    with replay.session_transaction() as state:
        state.update(kept)
    again = post_json(replay, "/login/key/answer", {"credential": answer}, token)
    assert again.status_code == 400 and "已使用" in again.get_json()["message"]
    with keyed_app.app_context():
        assert db.session.scalar(select(func.count()).select_from(WebAuthnChallenge)) == 0


def test_an_expired_challenge_is_refused(keyed_app, users, registered) -> None:
    client = keyed_app.test_client()
    sign_in(client, users["preapproval"])
    made = options(client)
    with keyed_app.app_context():
        db.session.execute(WebAuthnChallenge.__table__.update().values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    assert post_json(client, "/login/key/answer", {"credential": registered.get(made)}).status_code == 400
    assert not signed_in(client)


def test_the_key_step_closes_30_minutes_after_the_password(keyed_app, users) -> None:
    client = keyed_app.test_client()
    sign_in(client, users["preapproval"])
    with client.session_transaction() as state:
        state["security_key_step"]["at"] = (utcnow() - timedelta(minutes=31)).isoformat()
        state.modified = True
    assert client.get("/login/key").headers["Location"].endswith("/login")
    refused = post_json(client, "/login/key/options")
    assert refused.status_code == 400


@pytest.mark.parametrize(("origin", "rp_id"), [("https://evil.example", RP_ID), (ORIGIN, "evil.example")])
def test_an_answer_for_another_site_is_refused(keyed_app, users, origin: str, rp_id: str) -> None:
    client = keyed_app.test_client()
    sign_in(client, users["preapproval"])
    refused = register_at_sign_in(client, SoftKey(origin=origin, rp_id=rp_id))
    assert refused.status_code == 400 and not signed_in(client)
    assert len(events(keyed_app, "security_key.refused")) == 1


def test_the_key_endpoints_need_the_password_first_and_a_csrf_token(keyed_app, users) -> None:
    client = keyed_app.test_client()
    assert post_json(client, "/login/key/options").status_code == 400  # no password entered
    assert client.get("/login/key").headers["Location"].endswith("/login")
    sign_in(client, users["preapproval"])
    assert client.post("/login/key/options", json={}).status_code == 400  # no CSRF token
    assert post_json(client, "/login/key/answer", {"credential": "not an object"}).status_code == 400


def test_a_role_that_needs_no_key_signs_in_with_the_password(keyed_app, users) -> None:
    client = keyed_app.test_client()
    assert sign_in(client, users["bureau"]).headers["Location"].endswith("/admin/")
    assert signed_in(client)


def test_the_required_roles_come_from_the_configuration(keyed_app, users) -> None:
    keyed_app.config["WEBAUTHN_REQUIRED_ROLES"] = ["preapproval", "bureau"]
    client = keyed_app.test_client()
    assert sign_in(client, users["bureau"]).headers["Location"].endswith("/login/key")
    assert not signed_in(client)


def test_configuration_defaults(monkeypatch) -> None:
    for name in ("WEBAUTHN_RP_ID", "WEBAUTHN_ORIGIN", "WEBAUTHN_REQUIRED_ROLES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://beian.example.cn")
    settings = config.from_environment()
    assert (settings["WEBAUTHN_RP_ID"], settings["WEBAUTHN_ORIGIN"]) == ("beian.example.cn", "https://beian.example.cn")
    assert settings["WEBAUTHN_REQUIRED_ROLES"] == ["preapproval"]
    assert config.webauthn_origin("http://127.0.0.1:5000") == "http://localhost:5000"
    monkeypatch.setenv("WEBAUTHN_REQUIRED_ROLES", "preapproval, miit,bureau")
    assert config.from_environment()["WEBAUTHN_REQUIRED_ROLES"] == ["preapproval", "miit", "bureau"]



def test_a_role_name_that_does_not_exist_stops_the_app(tmp_path) -> None:
    """A misspelt role would silently leave that role on passwords alone."""
    settings = _config(tmp_path, f"sqlite:///{tmp_path / 'x.db'}")
    settings["WEBAUTHN_REQUIRED_ROLES"] = ["preapproval", "buraeu"]
    with pytest.raises(RuntimeError, match="WEBAUTHN_REQUIRED_ROLES names roles that do not exist: buraeu"):
        create_app(settings)
    create_app(settings | {"WEBAUTHN_REQUIRED_ROLES": [str(role) for role in Role]})


def test_a_new_website_owner_of_a_role_that_needs_a_key_registers_it_after_the_identity_check(keyed_app) -> None:
    """The first sign-in of a registered ICP account is the identity check (FAQ 21): with icp among the roles that
    sign in with a key, confirming the codes leads to the key step, not to a session."""
    keyed_app.config["WEBAUTHN_REQUIRED_ROLES"] = ["icp"]
    client = keyed_app.test_client()
    assert register(client).headers["Location"] == "/register/done"
    deliver(keyed_app)
    codes = {"mobile_code": sms_codes(keyed_app, REGISTRATION["mobile"])[-1],
             "email_code": email_codes(keyed_app, REGISTRATION["email"])[-1]}
    assert sign_in(client, REGISTRATION["username"], REGISTRATION["password"]).headers["Location"] == "/verify"
    confirmed = post(client, "/verify", codes)
    assert confirmed.headers["Location"] == "/login/key"
    assert not signed_in(client)
    assert "身份验证成功" in client.get("/login/key").get_data(as_text=True)
    assert register_at_sign_in(client, SoftKey()).get_json() == {"redirect": "/admin/"}
    assert signed_in(client)
    with keyed_app.app_context():
        assert user_named(REGISTRATION["username"]).status == UserStatus.ACTIVE
        assert db.session.scalar(select(func.count()).select_from(SecurityKey)) == 1
    # without icp among them, the same path ends in a session at once (tests/test_accounts.py)

# --- 个人设置 › 安全密钥 ---------------------------------------------------------------------------------------

def add_in_console(client: FlaskClient, key: SoftKey, name: str):
    path = "/admin/security-keys"
    return post_json(client, f"{path}/answer", {"credential": key.create(options(client, f"{path}/options")),
                                                "name": name})


def test_any_user_may_add_keys_and_then_signs_in_with_one(keyed_app, users, as_user) -> None:
    client = as_user("icp")
    assert "安全密钥" in client.get("/admin/security-keys/").get_data(as_text=True)
    first, spare = SoftKey(), SoftKey()
    assert add_in_console(client, first, "随身密钥").status_code == 200
    assert add_in_console(client, spare, "备用密钥").status_code == 200
    page = client.get("/admin/security-keys/").get_data(as_text=True)
    assert "随身密钥" in page and "备用密钥" in page
    again = keyed_app.test_client()
    assert sign_in(again, users["icp"]).headers["Location"].endswith("/login/key")  # a voluntary key is asked for
    assert use_key(again, spare).status_code == 200 and signed_in(again)


def test_a_key_is_not_registered_twice_nor_two_keys_under_one_name(keyed_app, as_user) -> None:
    client, key = as_user("icp"), SoftKey()
    assert add_in_console(client, key, "随身密钥").status_code == 200
    assert add_in_console(client, key, "另一个名字").status_code == 400  # the same credential
    refused = add_in_console(client, SoftKey(), "随身密钥")
    assert refused.status_code == 400 and "名称" in refused.get_json()["message"]


def test_rename_and_remove_while_another_remains(keyed_app, as_user) -> None:
    client = as_user("icp")
    add_in_console(client, SoftKey(), "甲")
    add_in_console(client, SoftKey(), "乙")
    with keyed_app.app_context():
        first, second = db.session.scalars(select(SecurityKey.id).order_by(SecurityKey.id)).all()
    post(client, f"/admin/security-keys/{first}/rename", {"name": "办公室"})
    post(client, f"/admin/security-keys/{second}/remove")
    with keyed_app.app_context():
        assert db.session.scalars(select(SecurityKey.name)).all() == ["办公室"]
    refused = post(client, f"/admin/security-keys/{first}/remove", follow_redirects=True)
    assert "唯一" in refused.get_data(as_text=True)
    with keyed_app.app_context():
        assert db.session.scalar(select(func.count()).select_from(SecurityKey)) == 1
    assert {e.action for e in events(keyed_app, "security_key.renamed") + events(keyed_app, "security_key.removed")} \
        == {"security_key.renamed", "security_key.removed"}


def test_another_users_key_is_404(keyed_app, as_user) -> None:
    owner = as_user("icp")
    add_in_console(owner, SoftKey(), "甲")
    add_in_console(owner, SoftKey(), "乙")
    with keyed_app.app_context():
        key_id = db.session.scalars(select(SecurityKey.id)).first()
    stranger = as_user("isp")
    assert post(stranger, f"/admin/security-keys/{key_id}/remove").status_code == 404
    assert post(stranger, f"/admin/security-keys/{key_id}/rename", {"name": "x"}).status_code == 404
    assert stranger.post(f"/admin/security-keys/{key_id}/remove").status_code == 400  # no CSRF token


def test_the_console_page_needs_a_session(keyed_app) -> None:
    assert keyed_app.test_client().get("/admin/security-keys/").status_code == 302


# --- a lost key: the creator resets -----------------------------------------------------------------------

def _reset(client: FlaskClient, user_id: int):
    return post(client, "/admin/management_users/row-action/reset_keys/", {"id": user_id})


@pytest.fixture
def tianjin_preapproval(keyed_app, users) -> tuple[int, SoftKey]:
    """A Tianjin pre-approval user (created by the Tianjin bureau's province) with a key."""
    with keyed_app.app_context():
        user_id = make_user("tj_preapp", Role.PREAPPROVAL, TIANJIN).id
    key, client = SoftKey(), keyed_app.test_client()
    sign_in(client, "tj_preapp")
    assert register_at_sign_in(client, key).status_code == 200
    return user_id, key


def test_the_bureau_resets_the_keys_and_the_user_registers_a_new_one(keyed_app, as_user, tianjin_preapproval) -> None:
    user_id, lost = tianjin_preapproval
    session_before = password_then_key(keyed_app, "tj_preapp", lost)
    bureau = as_user("bureau")
    assert "重置安全密钥" in bureau.get("/admin/management_users/").get_data(as_text=True)
    done = _reset(bureau, user_id)
    assert done.status_code == 302
    with keyed_app.app_context():
        assert db.session.scalar(select(func.count()).select_from(SecurityKey)) == 0
    assert not signed_in(session_before)  # its sessions ended
    assert changes(events(keyed_app, "user.reset_keys")[0]) == {"keys": ["办公室密钥"]}
    client = keyed_app.test_client()
    sign_in(client, "tj_preapp")
    assert "注册安全密钥并登录" in client.get("/login/key").get_data(as_text=True)
    assert register_at_sign_in(client, SoftKey(), "新密钥").status_code == 200 and signed_in(client)


@pytest.mark.parametrize("who", ["bureau_bj", "isp", "content_admin", "special_query"])
def test_others_cannot_reset(keyed_app, as_user, tianjin_preapproval, who: str) -> None:
    user_id, _key = tianjin_preapproval
    response = _reset(as_user(who), user_id)
    assert response.status_code in (403, 404)
    with keyed_app.app_context():
        assert db.session.scalar(select(func.count()).select_from(SecurityKey)) == 1


def test_miit_resets_too_but_nobody_resets_oneself(keyed_app, users, tianjin_preapproval) -> None:
    _user_id, _key = tianjin_preapproval
    with keyed_app.app_context():
        miit, target, bureau = user_named(users["miit"]), user_named("tj_preapp"), user_named(users["bureau"])
        assert security_keys.may_reset_keys(miit, target) and security_keys.may_reset_keys(bureau, target)
        assert not security_keys.may_reset_keys(target, target)
        assert not security_keys.may_reset_keys(user_named(users["bureau_bj"]), target)
        assert can(bureau, Action.USER_RESET_KEYS) and not can(target, Action.USER_RESET_KEYS)
