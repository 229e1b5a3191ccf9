"""Issue 11, accounts: reset links from configuration (Host header refused), sign-in locks per account
and address with the owner alerted, every reset link ended by a password change, staff names not
enumerable through registration."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

import config
import workflow
from extensions import db
from models import OutboxMessage, Throttle, utcnow
from tests.accounts_helpers import deliver, eml_bodies, register, reset_link
from tests.helpers import PASSWORD, TIANJIN, post, sign_in, user_named, with_captcha

NEW_PASSWORD = "Fresh-start-42"
OWNER_ADDRESS, ATTACKER_ADDRESS = "198.51.100.7", "203.0.113.9"


def _from(app: Flask, address: str) -> FlaskClient:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def _forgot(client: FlaskClient):
    data = {"username": "tj_isp", "contact_name": "测试联系人", "email": "tj_isp@example.cn"}
    return post(client, "/password/forgot", with_captcha(client, data))


# --- 5: links from PUBLIC_BASE_URL, unknown hosts refused -------------------------------------------

def test_unknown_host_is_refused_and_nothing_is_sent(app, client, users) -> None:
    """`Host: evil.example:8080` → 400 on every page, and no reset e-mail is queued."""
    assert client.get("/login", headers={"Host": "evil.example:8080"}).status_code == 400
    assert client.post("/password/forgot", headers={"Host": "evil.example:8080"}).status_code == 400
    with app.app_context():
        assert db.session.scalar(select(OutboxMessage.id)) is None


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1:5000", "localhost:8080"])
def test_known_hosts_are_served(client, host: str) -> None:
    assert client.get("/login", headers={"Host": host}).status_code == 200


def test_reset_link_comes_from_configuration_never_from_the_host_header(app, client, users) -> None:
    """Even with host checking off, the e-mailed link starts with PUBLIC_BASE_URL."""
    app.config.update(TRUSTED_HOSTS=None, PUBLIC_BASE_URL="https://beian.example.cn")
    client.environ_base["HTTP_HOST"] = "evil.example:8080"  # every request, as a browser sent there would
    assert _forgot(client).status_code == 302
    deliver(app)
    body = eml_bodies(app, "tj_isp@example.cn")[-1]
    assert "evil.example" not in body
    assert re.search(r"https://beian\.example\.cn/password/reset/\S+", body)


def test_trusted_hosts_default_to_the_public_host_and_loopback(monkeypatch) -> None:
    monkeypatch.delenv("TRUSTED_HOSTS", raising=False)
    assert config.trusted_hosts("https://beian.example.cn") == ["127.0.0.1", "beian.example.cn", "localhost"]
    monkeypatch.setenv("TRUSTED_HOSTS", "beian.example.cn, .gov.cn")
    assert config.trusted_hosts("https://beian.example.cn") == ["beian.example.cn", ".gov.cn"]


# --- 7: locks per account and address; the owner is told ---------------------------------------------

def test_attacker_address_is_locked_but_the_owner_signs_in_from_another(app, users) -> None:
    attacker = _from(app, ATTACKER_ADDRESS)
    for _ in range(app.config["THROTTLE_PAIR_LOCK"]):
        sign_in(attacker, users["isp"], "Wrong-pass-1")
    locked = sign_in(attacker, users["isp"])  # even the right password, from the attacker's address
    assert locked.status_code == 200 and "失败次数过多" in locked.get_data(as_text=True)
    assert sign_in(_from(app, OWNER_ADDRESS), users["isp"]).headers["Location"] == "/admin/"


def test_the_attackers_address_may_still_sign_in_to_its_own_account(app, users) -> None:
    """The lock is on (account, address): the same address can use another account."""
    attacker = _from(app, ATTACKER_ADDRESS)
    for _ in range(app.config["THROTTLE_PAIR_LOCK"]):
        sign_in(attacker, users["isp"], "Wrong-pass-1")
    assert sign_in(attacker, users["bureau"]).headers["Location"] == "/admin/"


def test_third_failure_makes_that_address_wait_a_minute(app, users) -> None:
    attacker = _from(app, ATTACKER_ADDRESS)
    for _ in range(app.config["THROTTLE_PAIR_SLOWDOWN"]):
        sign_in(attacker, users["isp"], "Wrong-pass-1")
    with app.app_context():
        pair = db.session.get(Throttle, f"pair:{users['isp']}|{ATTACKER_ADDRESS}")
        assert 55 <= (pair.locked_until - utcnow()).total_seconds() <= 60


def test_owner_is_emailed_once_when_the_account_is_under_attack(app, users) -> None:
    """Failures from many addresses: one e-mail to the owner per window, none before the threshold."""
    threshold = app.config["THROTTLE_ACCOUNT_ALERT"]

    def alerts() -> list[str]:
        with app.app_context():
            return list(db.session.scalars(select(OutboxMessage.subject).where(
                OutboxMessage.recipient == "tj_isp@example.cn")))

    for index in range(threshold - 1):
        sign_in(_from(app, f"192.0.2.{index}"), users["isp"], "Wrong-pass-1")
    assert alerts() == []
    for index in range(threshold - 1, threshold + 5):
        sign_in(_from(app, f"192.0.2.{index}"), users["isp"], "Wrong-pass-1")
    assert alerts() == ["ICP备案管理系统 账号安全提醒"]
    assert sign_in(_from(app, OWNER_ADDRESS), users["isp"]).headers["Location"] == "/admin/"


def test_under_attack_every_failing_address_waits(app, users) -> None:
    """Once the account is under attack, one failure is enough to slow an address down."""
    for index in range(app.config["THROTTLE_ACCOUNT_ALERT"]):
        sign_in(_from(app, f"192.0.2.{index}"), users["isp"], "Wrong-pass-1")
    newcomer = _from(app, ATTACKER_ADDRESS)
    sign_in(newcomer, users["isp"], "Wrong-pass-1")
    assert "失败次数过多" in sign_in(newcomer, users["isp"]).get_data(as_text=True)


def test_no_alert_for_an_unknown_account(app) -> None:
    for index in range(app.config["THROTTLE_ACCOUNT_ALERT"] + 1):
        sign_in(_from(app, f"192.0.2.{index}"), "nobody1234", "Wrong-pass-1")
    with app.app_context():
        assert db.session.scalar(select(OutboxMessage.id)) is None


# --- 8: a new password ends every reset link ------------------------------------------------------------

def _two_links(app: Flask) -> tuple[str, str]:
    _forgot(app.test_client())
    deliver(app)
    first = reset_link(app, "tj_isp@example.cn")
    _forgot(app.test_client())
    deliver(app)
    return first, reset_link(app, "tj_isp@example.cn")


def test_reset_by_one_link_ends_the_others(app, client, users) -> None:
    first, second = _two_links(app)
    assert first != second and client.get(first).status_code == 200
    assert post(client, second, {"new_password": NEW_PASSWORD, "confirm": NEW_PASSWORD}).status_code == 302
    assert client.get(first).status_code == 404
    refused = post(client, first, {"new_password": "Other-pass-77", "confirm": "Other-pass-77"})
    assert refused.status_code == 404
    assert sign_in(app.test_client(), users["isp"], NEW_PASSWORD).headers["Location"] == "/admin/"


def test_password_change_ends_reset_links(app, as_user, users) -> None:
    first, second = _two_links(app)
    client = as_user("isp")
    post(client, "/admin/password/", {"old_password": PASSWORD, "new_password": NEW_PASSWORD,
                                      "confirm": NEW_PASSWORD})
    assert [app.test_client().get(link).status_code for link in (first, second)] == [404, 404]


def test_staff_reset_ends_reset_links(app, users) -> None:
    first, _second = _two_links(app)
    with app.app_context():
        workflow.reset_user_password(user_named(users["bureau"]), user_named(users["isp"]))
        db.session.commit()
    assert app.test_client().get(first).status_code == 404


# --- 13: staff names are not enumerable through registration ----------------------------------------

def _registration_answer(app: Flask, username: str) -> str:
    body = register(app.test_client(), username=username).get_data(as_text=True)
    return re.sub(r'value="[^"]*"', 'value=""', body)


def test_staff_names_and_free_names_of_their_form_get_the_same_answer(app, users) -> None:
    staff = _registration_answer(app, users["bureau"])
    free = _registration_answer(app, "nobody_here")
    assert staff == free and "保留给管理部门账号" in staff and "已被使用" not in staff


def test_staff_name_made_at_the_command_line_is_not_revealed_as_taken(app, users) -> None:
    """`miitadmin` (no '_', made by the CLI) is refused with the staff answer, never "taken"."""
    body = _registration_answer(app, users["miit"])
    assert "保留给管理部门账号" in body and "已被使用" not in body


def test_icp_registration_stays_usable(app) -> None:
    assert register(app.test_client(), username="my-site.cn").headers["Location"] == "/register/done"


def test_console_staff_names_carry_the_mark(app, as_user) -> None:
    form = {"password": "Init-pass-9", "role": "isp", "province_code": TIANJIN, "contact_name": "张三",
            "mobile": "13812345678", "email": "isp@example.cn"}
    refused = post(as_user("bureau"), "/admin/filing_users/new/", {**form, "username": "zhangisp"})
    assert "管理部门账号的用户名须含下划线" in refused.get_data(as_text=True)
    created = post(as_user("bureau"), "/admin/filing_users/new/", {**form, "username": "tj_zhang"})
    assert created.status_code == 302
    with app.app_context():
        assert user_named("tj_zhang").role.value == "isp"
