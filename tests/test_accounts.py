"""SPEC §2: registration, identity check, captcha, throttling, recovery, own account."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import update

import workflow
from app import create_app
from extensions import db
from models import Captcha, CodePurpose, Throttle, User, UserStatus, VerificationCode, utcnow
from tests.accounts_helpers import REGISTRATION, deliver, email_codes, eml_bodies, register, reset_link, sms_codes
from tests.conftest import _config
from tests.helpers import CAPTCHA, PASSWORD, csrf_token, post, sign_in, user_named, with_captcha

NEW_PASSWORD = "Fresh-start-42"


def _registered(app, client) -> tuple[str, str]:
    assert register(client).headers["Location"] == "/register/done"
    deliver(app)
    return sms_codes(app, REGISTRATION["mobile"])[-1], email_codes(app, REGISTRATION["email"])[-1]


def _status(app, username: str = REGISTRATION["username"]) -> UserStatus:
    with app.app_context():
        return user_named(username).status


# --- the whole path ---------------------------------------------------------------------------

def test_register_confirm_sign_out_sign_in(app, client) -> None:
    """Registration → codes → first sign-in → identity check → active → sign-out → sign-in."""
    mobile_code, email_code = _registered(app, client)
    assert _status(app) == UserStatus.PENDING
    first = sign_in(client, "newsite", "Site-owner-7")
    assert first.headers["Location"] == "/verify"
    assert client.get("/admin/").status_code == 302  # not signed in yet
    confirmed = post(client, "/verify", {"mobile_code": mobile_code, "email_code": email_code})
    assert confirmed.headers["Location"] == "/admin/"
    assert _status(app) == UserStatus.ACTIVE
    assert client.get("/admin/").status_code == 200
    post(client, "/logout")
    assert client.get("/admin/").status_code == 302
    assert sign_in(client, "newsite", "Site-owner-7").headers["Location"] == "/admin/"


def test_statement_and_flow_must_be_accepted_first(client) -> None:
    assert client.get("/register/form").headers["Location"] == "/register"
    post(client, "/register")
    assert client.get("/register/form").headers["Location"] == "/register"
    assert "ICP信息备案流程图" in client.get("/register/flow").get_data(as_text=True)
    post(client, "/register/flow")
    assert client.get("/register/form").status_code == 200


def test_flow_chart_is_a_real_diagram(client) -> None:
    svg = client.get("/static/img/filing-flow.svg").get_data(as_text=True)
    for step in ("接入服务商核实", "通信管理局审核", "前置审批部门确认", "审核通过"):
        assert step in svg


# --- codes ------------------------------------------------------------------------------------

def _to_identity_check(app, client) -> tuple[str, str]:
    codes = _registered(app, client)
    sign_in(client, "newsite", "Site-owner-7")
    return codes


def test_wrong_code_refused_and_counted(app, client) -> None:
    mobile_code, _email_code = _to_identity_check(app, client)
    body = post(client, "/verify", {"mobile_code": mobile_code, "email_code": "000000"}).get_data(as_text=True)
    assert "验证码错误" in body
    assert _status(app) == UserStatus.PENDING
    with app.app_context():
        row = db.session.query(VerificationCode).filter_by(purpose=CodePurpose.REGISTER_EMAIL).one()
        assert row.attempts == 1 and row.used_at is None


def test_five_wrong_tries_spend_the_code(app, client) -> None:
    mobile_code, email_code = _to_identity_check(app, client)
    for _ in range(5):
        post(client, "/verify", {"mobile_code": mobile_code, "email_code": "000000"})
    body = post(client, "/verify", {"mobile_code": mobile_code, "email_code": email_code}).get_data(as_text=True)
    assert "错误次数过多" in body
    assert _status(app) == UserStatus.PENDING


def test_expired_code_refused(app, client) -> None:
    mobile_code, email_code = _to_identity_check(app, client)
    with app.app_context():
        db.session.execute(update(VerificationCode).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    body = post(client, "/verify", {"mobile_code": mobile_code, "email_code": email_code}).get_data(as_text=True)
    assert "验证码已失效" in body and _status(app) == UserStatus.PENDING


def test_used_code_cannot_be_reused(app, client) -> None:
    mobile_code, email_code = _to_identity_check(app, client)
    post(client, "/verify", {"mobile_code": mobile_code, "email_code": email_code})
    with app.app_context():
        user = user_named("newsite")
        errors = workflow.check_codes(user, {CodePurpose.REGISTER_MOBILE: mobile_code})
        assert "验证码已失效" in errors[CodePurpose.REGISTER_MOBILE]


def test_codes_are_stored_hashed(app, client) -> None:
    mobile_code, email_code = _registered(app, client)
    with app.app_context():
        hashes = [row.code_hash for row in db.session.query(VerificationCode)]
    assert all(len(h) == 64 and mobile_code not in h and email_code not in h for h in hashes)


def test_lost_codes_resent_at_most_once_a_minute(app, client) -> None:
    _registered(app, client)
    post(client, "/register/resend", with_captcha(client, {"resend-username": "newsite",
                                                           "resend-captcha": CAPTCHA}))
    deliver(app)
    assert len(sms_codes(app, REGISTRATION["mobile"])) == 1  # the first codes are less than a minute old
    with app.app_context():
        db.session.execute(update(VerificationCode).values(created_at=utcnow() - timedelta(minutes=2)))
        db.session.commit()
    post(client, "/register/resend", with_captcha(client, {"resend-username": "newsite",
                                                           "resend-captcha": CAPTCHA}))
    deliver(app)
    assert len(sms_codes(app, REGISTRATION["mobile"])) == 2
    assert len(email_codes(app, REGISTRATION["email"])) == 2


def _normalised(response) -> tuple[int, str | None, str]:
    body = re.sub(r'value="[^"]+"', 'value=""', response.get_data(as_text=True))
    return response.status_code, response.headers.get("Location"), body


def test_resend_never_reveals_whether_the_name_exists(app) -> None:
    known, unknown = app.test_client(), app.test_client()
    _registered(app, known)
    answers = []
    for client, name in ((known, "newsite"), (unknown, "nobody_at_all")):
        post(client, "/register")
        post(client, "/register/flow")
        answers.append(_normalised(post(client, "/register/resend", with_captcha(
            client, {"resend-username": name, "resend-captcha": CAPTCHA}), follow_redirects=True)))
    assert answers[0] == answers[1]
    assert "验证码为" not in answers[0][2]


# --- captcha ----------------------------------------------------------------------------------

def test_wrong_captcha_refused(client, users) -> None:
    client.get("/captcha.png")
    body = post(client, "/login", {"username": users["isp"], "password": PASSWORD, "captcha": "XXXX"})
    assert "图片中的验证码错误或已过期" in body.get_data(as_text=True)
    assert client.get("/admin/").status_code == 302


def test_captcha_is_single_use(client, users) -> None:
    client.get("/captcha.png")
    post(client, "/login", {"username": users["isp"], "password": "Wrong-pass-1", "captcha": CAPTCHA})
    again = post(client, "/login", {"username": users["isp"], "password": PASSWORD, "captcha": CAPTCHA})
    assert "图片中的验证码错误或已过期" in again.get_data(as_text=True)


def test_expired_captcha_refused(app, client, users) -> None:
    client.get("/captcha.png")
    with app.app_context():
        db.session.execute(update(Captcha).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    response = post(client, "/login", {"username": users["isp"], "password": PASSWORD, "captcha": CAPTCHA})
    assert "图片中的验证码错误或已过期" in response.get_data(as_text=True)


def test_captcha_answer_never_reaches_the_browser(app, client) -> None:
    from flask.sessions import SecureCookieSessionInterface

    response = client.get("/captcha.png")
    assert response.headers["Cache-Control"] == "no-store"
    serializer = SecureCookieSessionInterface().get_signing_serializer(app)
    session = serializer.loads(client.get_cookie("session").value)
    assert set(session) == {"captcha_id"} and CAPTCHA not in str(session)


def test_fixed_captcha_answer_refused_outside_tests(tmp_path) -> None:
    config = _config(tmp_path, f"sqlite:///{tmp_path / 'x.db'}") | {"TESTING": False}
    with pytest.raises(RuntimeError, match="CAPTCHA_FIXED_ANSWER"):
        create_app(config)


def test_captcha_is_a_picture(tmp_path) -> None:
    from security import captcha_png

    assert captcha_png("AB7K")[:8] == b"\x89PNG\r\n\x1a\n"


# --- password rules and usernames at registration -----------------------------------------------

@pytest.mark.parametrize(("password", "message"), [
    ("abc", "密码至少6位"), ("12345678", "密码不能全是数字"), ("newsite", "密码不能与用户名相同"),
    ("password1", "最常用的密码"), ("qwerty123", "最常用的密码")])
def test_each_password_rule_refuses(app, client, password: str, message: str) -> None:
    body = register(client, password=password, confirm=password).get_data(as_text=True)
    assert message in body
    with app.app_context():
        assert db.session.query(User).filter_by(username="newsite").count() == 0


def test_taken_username_refused(app, client) -> None:
    """An ICP name already registered is refused as taken (the trade-off the README documents)."""
    assert register(client).headers["Location"] == "/register/done"
    body = register(app.test_client()).get_data(as_text=True)
    assert "该用户名已被使用" in body


# --- throttling ---------------------------------------------------------------------------------

def test_lock_out_and_unlock(app, client, users) -> None:
    for _ in range(5):
        sign_in(client, users["isp"], "Wrong-pass-1")
    locked = sign_in(client, users["isp"])  # the right password, but locked
    assert locked.status_code == 200 and "失败次数过多" in locked.get_data(as_text=True)
    with app.app_context():
        db.session.execute(update(Throttle).values(locked_until=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    assert sign_in(client, users["isp"]).headers["Location"] == "/admin/"


def test_lock_is_checked_before_the_password_hash(app, client, users, monkeypatch) -> None:
    for _ in range(5):
        sign_in(client, users["isp"], "Wrong-pass-1")
    calls = []
    monkeypatch.setattr(workflow.accounts, "check_password_hash", lambda *args: calls.append(args) or True)
    sign_in(client, users["isp"])
    assert calls == []


def test_every_attempt_is_audited(app, client, users) -> None:
    from models import AuditEvent

    sign_in(client, users["isp"], "Wrong-pass-1")
    sign_in(client, users["isp"])
    with app.app_context():
        actions = [e.action for e in db.session.query(AuditEvent).filter(AuditEvent.action.like("auth.%"))]
    assert actions == ["auth.sign_in_failed", "auth.sign_in"]


def test_address_lock_covers_many_accounts(app, client) -> None:
    app.config["THROTTLE_ADDRESS_LOCK"] = 3
    for name in ("a1234", "b1234", "c1234"):
        sign_in(client, name, "Wrong-pass-1")
    with app.app_context():
        assert db.session.get(Throttle, "address:127.0.0.1").locked_until > utcnow()


# --- lost password --------------------------------------------------------------------------------

def _forgot(client, **fields):
    data = {"username": "tj_isp", "contact_name": "测试联系人", "email": "tj_isp@example.cn", **fields}
    return post(client, "/password/forgot", with_captcha(client, data), follow_redirects=True)


def test_reset_link_by_email_sets_a_new_password_once(app, client, users) -> None:
    _forgot(client)
    deliver(app)
    link = reset_link(app, "tj_isp@example.cn")
    assert client.get(link).status_code == 200
    done = post(client, link, {"new_password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert done.headers["Location"] == "/login"
    assert sign_in(app.test_client(), users["isp"], NEW_PASSWORD).headers["Location"] == "/admin/"
    assert client.get(link).status_code == 404  # single use


def test_reset_link_expires(app, client, users) -> None:
    from models import PasswordResetToken

    _forgot(client)
    deliver(app)
    link = reset_link(app, "tj_isp@example.cn")
    with app.app_context():
        db.session.execute(update(PasswordResetToken).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    assert client.get(link).status_code == 404


def test_forgot_password_never_reveals_whether_the_account_exists(app, users) -> None:
    known = _normalised(_forgot(app.test_client()))
    unknown = _normalised(_forgot(app.test_client(), username="no_such_user"))
    wrong_email = _normalised(_forgot(app.test_client(), email="other@example.cn"))
    assert known == unknown == wrong_email
    deliver(app)
    assert len(eml_bodies(app, "tj_isp@example.cn")) == 1


# --- own account ------------------------------------------------------------------------------------

def test_change_password_needs_the_old_one_and_ends_other_sessions(app, as_user, users) -> None:
    client, other_device = as_user("isp"), as_user("isp")
    wrong = post(client, "/admin/password/", {"old_password": "nope-nope-1", "new_password": NEW_PASSWORD,
                                                      "confirm": NEW_PASSWORD})
    assert "当前密码错误" in wrong.get_data(as_text=True)
    ok = post(client, "/admin/password/", {"old_password": PASSWORD, "new_password": NEW_PASSWORD,
                                                   "confirm": NEW_PASSWORD})
    assert ok.status_code == 302
    assert client.get("/admin/").status_code == 200  # this session continues
    assert other_device.get("/admin/").status_code == 302  # the other one ended
    assert sign_in(app.test_client(), users["isp"], NEW_PASSWORD).headers["Location"] == "/admin/"


def test_new_mobile_replaces_the_old_only_after_its_code(app, as_user, users) -> None:
    client = as_user("isp")
    response = post(client, "/admin/account/", {"contact_name": "新联系人", "organisation": "天津某网络公司",
                                                 "mobile": "13700001111", "email": "tj_isp@example.cn"})
    assert response.headers["Location"].startswith("/admin/account/confirm/change_mobile/")
    with app.app_context():
        user = user_named(users["isp"])
        assert (user.mobile, user.contact_name) == ("13912345678", "新联系人")
    deliver(app)
    code = sms_codes(app, "13700001111")[-1]
    assert "验证码错误" in post(client, "/admin/account/confirm/change_mobile/", {"code": "999999"}).get_data(
        as_text=True) or code == "999999"
    post(client, "/admin/account/confirm/change_mobile/", {"code": code})
    with app.app_context():
        assert user_named(users["isp"]).mobile == "13700001111"


def test_csrf_token_required_on_account_forms(as_user) -> None:
    client = as_user("isp")
    csrf_token(client)
    assert client.post("/admin/password/", data={"old_password": PASSWORD}).status_code == 400
