"""In a real browser (issue 17 §3): Chromium's virtual authenticator (DevTools protocol `WebAuthn.*`, through
Playwright's CDP session) plays the security key. A bureau creates a pre-approval user; it signs in, registers its
key, signs out, signs in again with the key; without the key there is no session; a cloned credential with a lower
signature counter is refused; the bureau resets the keys and the user registers a new one.

Drives Debian's /usr/bin/chromium headless through Playwright (never `playwright install`); skipped when absent.
WebAuthn needs a secure context: http://localhost is one (127.0.0.1 is not a valid relying-party id).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from extensions import db
from models import SecurityKey
from tests.browser.chromium import launched
from tests.helpers import PASSWORD

#: a USB FIDO2 key with a PIN already entered (user verification done), no resident credentials
AUTHENTICATOR = {"protocol": "ctap2", "transport": "usb", "hasResidentKey": False, "hasUserVerification": True,
                 "isUserVerified": True}
SHOTS = os.environ.get("SECURITY_KEY_SCREENSHOTS")  # a folder: the pages are saved there to be looked at
NEW_USER, NEW_PASSWORD = "tj_news_review", "Review-pass-7"


@pytest.fixture
def site(app: Flask, users: dict[str, str], live_server: Any) -> str:
    """The app at http://localhost:<port>, its relying party that host (as WEBAUTHN_RP_ID / _ORIGIN configure)."""
    base = live_server.url.replace("127.0.0.1", "localhost")
    app.config.update(WEBAUTHN_REQUIRED_ROLES=["preapproval"], WEBAUTHN_RP_ID="localhost", WEBAUTHN_ORIGIN=base)
    return base


@pytest.fixture
def browser() -> Iterator[Any]:
    with launched() as chromium:
        yield chromium


class Person:
    """One browser context (its own cookies), with a virtual authenticator that can be plugged and unplugged."""

    def __init__(self, browser: Any, base: str) -> None:
        self.context = browser.new_context(base_url=base, locale="zh-CN")
        self.page = self.context.new_page()
        self.page.on("dialog", lambda dialog: dialog.accept())  # the confirmations of data-confirm forms
        self.cdp = self.context.new_cdp_session(self.page)
        self.cdp.send("WebAuthn.enable", {"enableUI": False})
        self.authenticator: str | None = None

    def plug_key(self) -> str:
        self.authenticator = self.cdp.send("WebAuthn.addVirtualAuthenticator", {"options": AUTHENTICATOR})[
            "authenticatorId"]
        return self.authenticator

    def unplug_key(self) -> None:
        self.cdp.send("WebAuthn.removeVirtualAuthenticator", {"authenticatorId": self.authenticator})
        self.authenticator = None

    def credentials(self) -> list[dict[str, Any]]:
        return self.cdp.send("WebAuthn.getCredentials", {"authenticatorId": self.authenticator})["credentials"]

    def sign_in(self, username: str, password: str = PASSWORD) -> None:
        page = self.page
        page.goto("/login")
        page.fill("#username", username)
        page.fill("#password", password)
        page.fill("#captcha", "TEST")
        page.click("form:has(#username) button[type=submit]")

    def press_key_button(self) -> None:
        self.page.click("#security-key-form button[type=submit]")

    def message(self) -> str:
        box = self.page.locator("[data-webauthn-message]")
        box.wait_for(state="visible")
        return box.inner_text()

    def shot(self, name: str) -> None:
        if SHOTS:
            Path(SHOTS).mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


def _stored_counts(app: Flask) -> list[int]:
    with app.app_context():
        return list(db.session.scalars(select(SecurityKey.sign_count).order_by(SecurityKey.id)))


def _create_preapproval_user(bureau: Person) -> None:
    page = bureau.page
    page.goto("/admin/management_users/new/")
    page.fill("#username", NEW_USER)
    page.fill("#password", NEW_PASSWORD)
    page.select_option("#role", "preapproval")
    page.select_option("#preapproval_category", "1")
    page.fill("#organisation", "天津市新闻出版局")
    page.fill("#contact_name", "王审批")
    page.fill("#mobile", "13912345670")
    page.fill("#email", "review@example.cn")
    page.click("input[type=submit].btn-primary")
    assert NEW_USER in page.content()


def test_a_preapproval_user_signs_in_with_its_security_key(app: Flask, users: dict[str, str], browser: Any,
                                                            site: str) -> None:
    bureau = Person(browser, site)
    bureau.sign_in(users["bureau"])
    _create_preapproval_user(bureau)

    # first sign-in: the password opens the registration of a key, not a session
    user = Person(browser, site)
    user.plug_key()
    user.sign_in(NEW_USER, NEW_PASSWORD)
    user.page.wait_for_url("**/login/key")
    assert "注册安全密钥并登录" in user.page.inner_text("body")
    user.shot("1-register")
    user.page.goto("/admin/")
    assert "/login" in user.page.url  # the password alone is not a login
    user.page.goto("/login/key")
    user.page.fill("#key-name", "办公室密钥")
    user.press_key_button()
    user.page.wait_for_url("**/admin/")
    assert NEW_USER in user.page.inner_text(".console-whoami")
    assert len(user.credentials()) == 1

    # 个人设置 › 安全密钥 lists it
    user.page.goto("/admin/security-keys/")
    assert user.page.input_value("#security-keys input[name=name]") == "办公室密钥"
    user.shot("2-my-keys")

    # signed out, then in again with the key
    user.page.click("form[action='/logout'] button")
    user.page.wait_for_url("**/login")
    user.sign_in(NEW_USER, NEW_PASSWORD)
    user.page.wait_for_url("**/login/key")
    assert "使用安全密钥登录" in user.page.inner_text("body")
    user.shot("3-use-key")
    user.press_key_button()
    user.page.wait_for_url("**/admin/")
    first_count = _stored_counts(app)[0]
    assert first_count >= 1

    # without the key: the browser finds no key of this account, there is no session
    stolen_password = Person(browser, site)
    stolen_password.plug_key()  # a key, but not one registered to the account
    stolen_password.sign_in(NEW_USER, NEW_PASSWORD)
    stolen_password.page.wait_for_url("**/login/key")
    stolen_password.press_key_button()
    assert "没有应答" in stolen_password.message() or "无法验证" in stolen_password.message()
    stolen_password.shot("4-no-key")
    stolen_password.page.goto("/admin/")
    assert "/login" in stolen_password.page.url

    # a cloned credential (same private key) whose counter is lower than the stored one is refused
    original = user.credentials()[0]
    clone = Person(browser, site)
    clone.plug_key()
    clone.cdp.send("WebAuthn.addCredential", {"authenticatorId": clone.authenticator, "credential": {
        **{name: original[name] for name in ("credentialId", "privateKey", "rpId")},
        "isResidentCredential": False, "signCount": 0}})
    clone.sign_in(NEW_USER, NEW_PASSWORD)
    clone.page.wait_for_url("**/login/key")
    clone.press_key_button()
    assert "复制" in clone.message()
    clone.shot("5-clone-refused")
    clone.page.goto("/admin/")
    assert "/login" in clone.page.url
    assert _stored_counts(app) == [first_count]

    # the key is lost: the bureau resets; the user's session ends and it registers a new key at the next sign-in
    bureau.page.goto(f"/admin/management_users/?search={NEW_USER}")
    bureau.shot("6-before-reset")
    bureau.page.click("form[action*='reset_keys'] button")
    bureau.page.wait_for_load_state()
    assert "安全密钥" in bureau.page.inner_text(".alert-success")
    bureau.shot("7-reset")
    assert _stored_counts(app) == []
    user.page.goto("/admin/")
    assert "/login" in user.page.url
    user.unplug_key()
    user.plug_key()  # the new key
    user.sign_in(NEW_USER, NEW_PASSWORD)
    user.page.wait_for_url("**/login/key")
    assert "注册安全密钥并登录" in user.page.inner_text("body")
    user.press_key_button()
    user.page.wait_for_url("**/admin/")
    assert len(_stored_counts(app)) == 1
