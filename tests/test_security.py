"""CSRF, sessions, redirects: the console's doors."""

from __future__ import annotations

import pytest

from tests.helpers import PASSWORD, TIANJIN, csrf_token, post, sign_in, user_named, with_captcha


@pytest.mark.parametrize("path", ["/login", "/logout", "/language", "/admin/filing_users/new/",
                                  "/admin/filing_users/row-action/disable/", "/admin/provinces/new/"])
def test_post_without_csrf_token_is_refused(as_user, path: str) -> None:
    client = as_user("miit")
    response = client.post(path, data={"username": "x", "id": "1", "lang": "en"})
    assert response.status_code == 400


def test_post_with_a_forged_token_is_refused(as_user, users) -> None:
    client = as_user("bureau")
    data = {"username": "forged", "password": "Abc-12345", "role": "isp", "province_code": TIANJIN,
            "contact_name": "x", "mobile": "13812345678", "email": "f@example.cn", "csrf_token": "forged"}
    assert client.post("/admin/filing_users/new/", data=data).status_code == 400


def test_sign_in_wrong_password_same_answer_as_unknown_user(client, users) -> None:
    wrong = sign_in(client, users["isp"], "Wrong-pass-1").get_data(as_text=True)
    unknown = sign_in(client, "nobody_here", "Wrong-pass-1").get_data(as_text=True)
    assert "用户名或密码错误" in wrong and "用户名或密码错误" in unknown


def test_session_rotated_at_sign_in(app, client, users) -> None:
    """Nothing of the session before sign-in survives it: neither a value planted there (session fixation)
    nor the CSRF secret; the signed-in session holds the account's identity."""
    csrf_token(client)
    with client.session_transaction() as before:
        before["planted"] = "attacker"
        csrf_secret = before["csrf_token"]
    assert sign_in(client, users["isp"]).status_code == 302
    with client.session_transaction() as after:
        assert "planted" not in after
        assert after.get("csrf_token") != csrf_secret
    with app.app_context():
        assert after["_user_id"] == user_named(users["isp"]).get_id()


def test_stolen_cookie_is_useless_after_sign_out(app, as_user) -> None:
    client = as_user("bureau")
    stolen = client.get_cookie("session").value
    post(client, "/logout")
    thief = app.test_client()
    thief.set_cookie("session", stolen)
    response = thief.get("/admin/")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/", "/\\evil.example",
                                    "javascript:alert(1)"])
def test_no_open_redirect_after_sign_in(client, users, target: str) -> None:
    token = csrf_token(client)
    response = client.post(f"/login?next={target}", data=with_captcha(
        client, {"username": users["isp"], "password": PASSWORD, "csrf_token": token}))
    assert response.headers["Location"] == "/admin/"


def test_local_next_is_honoured(client, users) -> None:
    token = csrf_token(client)
    response = client.post("/login?next=/admin/provinces/", data=with_captcha(
        client, {"username": users["isp"], "password": PASSWORD, "csrf_token": token}))
    assert response.headers["Location"] == "/admin/provinces/"


def test_logout_is_post_only(as_user) -> None:
    assert as_user("isp").get("/logout").status_code == 405


def test_security_headers(client) -> None:
    response = client.get("/login")
    assert response.headers["X-Frame-Options"] == "DENY"
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "script-src 'self';" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy  # tests/test_csp.py checks it in full


def test_cookie_flags(client, users) -> None:
    response = sign_in(client, users["isp"])
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_rendered_values_are_escaped(app, as_user) -> None:
    post(as_user("bureau"), "/admin/filing_users/new/", {
        "username": "xss_isp", "password": "Init-pass-9", "role": "isp", "province_code": TIANJIN,
        "organisation": "<script>alert(1)</script>", "contact_name": "x", "mobile": "13812345678",
        "email": "x@example.cn"})
    body = as_user("bureau").get("/admin/filing_users/").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body


def test_error_pages_are_chinese(as_user) -> None:
    forbidden = as_user("isp").get("/admin/audit_log/")
    assert forbidden.status_code == 403 and "您的账号无权打开此页面" in forbidden.get_data(as_text=True)
    missing = as_user("isp").get("/admin/no-such-page/")
    assert missing.status_code == 404 and "页面或记录不存在" in missing.get_data(as_text=True)
    expired = as_user("isp").post("/language", data={"lang": "en"})
    assert expired.status_code == 400 and "表单已过期" in expired.get_data(as_text=True)
