"""Factories and client helpers shared by the tests."""

from __future__ import annotations

import re
from typing import Any

from flask.testing import FlaskClient

import workflow
from extensions import db
from models import Role, User, utcnow

PASSWORD = "Secret-pass-1"
TIANJIN, BEIJING = "120000", "110000"
#: the year in the filing numbers given now (numbering.filing_number: two digits of the year, UTC as the workflow
#: counts it), so that the tests hold after a new year
YY = f"{utcnow().year % 100:02d}"
_CSRF_RE = re.compile(r'name="csrf_token"(?: type="hidden")? value="([^"]+)"')


def make_user(username: str, role: Role, province_code: str | None = None, **extra: Any) -> User:
    """Create an account the way the command line does (no actor), committed."""
    if role == Role.PREAPPROVAL:
        extra.setdefault("preapproval_category", "1")
    user = workflow.create_user(None, workflow.UserData(
        username=username, role=role, password=PASSWORD, province_code=province_code,
        contact_name="测试联系人", mobile="13912345678", email=f"{username}@example.cn", **extra))
    db.session.commit()
    return user


def csrf_token(client: FlaskClient) -> str:
    """A valid CSRF token for the client's session, read from a page as a browser would."""
    for path in ("/login", "/admin/"):
        response = client.get(path)
        match = _CSRF_RE.search(response.get_data(as_text=True))
        if match:
            return match.group(1)
    raise AssertionError("no page rendered a CSRF token")


def post(client: FlaskClient, path: str, data: dict[str, Any] | None = None, **kwargs: Any):
    """POST with the CSRF token, like the forms of the console."""
    return client.post(path, data={**(data or {}), "csrf_token": csrf_token(client)}, **kwargs)


CAPTCHA = "TEST"  # the fixed answer the test configuration allows (TESTING only)


def with_captcha(client: FlaskClient, data: dict[str, Any]) -> dict[str, Any]:
    """Load the captcha picture (as the page's <img> does) and answer it."""
    assert client.get("/captcha.png").mimetype == "image/png"
    return {**data, "captcha": CAPTCHA}


def sign_in(client: FlaskClient, username: str, password: str = PASSWORD):
    return post(client, "/login", with_captcha(client, {"username": username, "password": password}))


def user_named(username: str) -> User:
    """The account, read fresh (call inside an app context)."""
    db.session.expire_all()
    return db.session.query(User).filter_by(username=username).one()
