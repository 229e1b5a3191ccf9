"""个人设置 › 接口凭证 and 接口说明 (issue 16): who opens them, a credential created (its secret shown once, kept
only as a hash, working against the API), refused with every reason beside its field, listed with its last use,
revoked (then refused by the API at once); nobody touches another user's credential."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from extensions import db
from models import ApiCredential, AuditEvent
from tests.exchange_helpers import call
from tests.helpers import csrf_token, post, user_named

ALL = ("miit", "bureau", "isp", "icp", "ip_reporter", "domain_reporter", "preapproval", "content_admin",
       "special_query")
HOLDERS = {"miit", "bureau", "isp", "icp", "ip_reporter", "domain_reporter"}
PAGES = ("/admin/credentials/", "/admin/api/")
SECRET_RE = re.compile(r"Authorization: Bearer (bk_[0-9a-f]+\.[A-Za-z0-9_-]+)")


@pytest.mark.parametrize("path", PAGES)
def test_the_pages_open_for_the_roles_that_may_hold_credentials_only(as_user, path: str) -> None:
    """ISP, ICP, bureau, MIIT, IP and domain reporters get the page; the other roles 403."""
    for role in ALL:
        assert as_user(role).get(path).status_code == (200 if role in HOLDERS else 403), (role, path)


def test_signed_out_users_are_sent_to_sign_in(client) -> None:
    for path in PAGES:
        response = client.get(path)
        assert response.status_code == 302 and response.headers["Location"].startswith("/login"), path


@pytest.mark.parametrize(("role", "offered", "not_offered"), [
    ("isp", {"filings", "events"}, {"ip", "domain"}),
    ("ip_reporter", {"ip", "events"}, {"filings", "domain"}),
    ("domain_reporter", {"domain", "events"}, {"filings", "ip"}),
    ("bureau", {"filings", "ip", "events"}, {"domain"}),  # ip: the address lookup
])
def test_the_form_offers_the_scopes_of_the_role(as_user, role: str, offered: set[str], not_offered: set[str]) -> None:
    page = as_user(role).get("/admin/credentials/").get_data(as_text=True)
    shown = set(re.findall(r'name="scopes"[^>]*value="([a-z]+)"', page))
    assert shown == offered and not shown & not_offered


def _create(client, **fields: object):
    data = {"name": "订单系统", "scopes": ["filings", "events"], "expires_at": "", "networks": "", **fields}
    return post(client, "/admin/credentials/", data)


def test_a_credential_is_created_shown_once_and_kept_as_a_hash(app, as_user, client) -> None:
    """The secret appears on the answer of the creation only; the database holds its SHA-256; the API takes it."""
    isp = as_user("isp")
    response = _create(isp, networks="127.0.0.1\n203.0.113.0/24")
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    token = SECRET_RE.search(page).group(1)
    key_id, secret = token.split(".")
    with app.app_context():
        credential = db.session.scalar(select(ApiCredential).where(ApiCredential.key_id == key_id))
        assert credential.user.username == "tj_isp" and credential.scope_set == {"filings", "events"}
        assert secret not in credential.secret_hash and len(credential.secret_hash) == 64
        assert credential.networks == ["127.0.0.1/32", "203.0.113.0/24"]
        assert db.session.scalar(select(AuditEvent.id).where(AuditEvent.action == "api_credential.created",
                                                             AuditEvent.object_id == str(credential.id)))
    listing = isp.get("/admin/credentials/").get_data(as_text=True)
    assert key_id in listing and "订单系统" in listing and secret not in listing and "从未使用" in listing
    status, body, _ = call(client, "GET", "/credential", f"Bearer {token}")
    assert status == 200 and body["key_id"] == key_id and body["next_sequence"] == 1
    assert "127.0.0.1" in isp.get("/admin/credentials/").get_data(as_text=True)  # last used from that address


def test_an_expiry_date_ends_with_that_day_in_beijing(app, as_user) -> None:
    day = date.today() + timedelta(days=30)
    token = SECRET_RE.search(_create(as_user("ip_reporter"), scopes=["ip"],
                                     expires_at=day.isoformat()).get_data(as_text=True)).group(1)
    with app.app_context():
        credential = db.session.scalar(select(ApiCredential).where(ApiCredential.key_id == token.split(".")[0]))
        assert credential.expires_at.isoformat() == f"{day.isoformat()}T16:00:00"  # 24:00 Beijing = 16:00 UTC


@pytest.mark.parametrize(("fields", "field", "message"), [
    ({"name": ""}, "name", "必填"),
    ({"scopes": []}, "scopes", ""),
    ({"scopes": ["ip"]}, "scopes", "ip"),  # not a scope an ISP may hold, posted by hand
    ({"expires_at": "2020-01-01"}, "expires_at", ""),
    ({"networks": "203.0.113.0/24\n不是地址"}, "networks", "不是地址"),
])
def test_a_refused_credential_says_why_beside_the_field(app, as_user, fields, field: str, message: str) -> None:
    response = _create(as_user("isp"), **fields)
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and not SECRET_RE.search(page)
    feedback = re.search(rf'name="{field}".*?<div class="invalid-feedback[^"]*">([^<]+)</div>', page, re.DOTALL)
    assert feedback and message in feedback.group(1) and re.search("[\u4e00-\u9fff]", feedback.group(1))
    with app.app_context():
        assert db.session.scalar(select(db.func.count()).select_from(ApiCredential)) == 0


def test_a_post_without_the_csrf_token_creates_nothing(app, as_user) -> None:
    response = as_user("isp").post("/admin/credentials/", data={"name": "x", "scopes": ["filings"]})
    assert not SECRET_RE.search(response.get_data(as_text=True))
    with app.app_context():
        assert db.session.scalar(select(db.func.count()).select_from(ApiCredential)) == 0


def _credential_id(app, token: str) -> int:
    with app.app_context():
        return db.session.scalar(select(ApiCredential.id).where(ApiCredential.key_id == token.split(".")[0]))


def test_a_revoked_credential_is_refused_by_the_api_at_once(app, as_user, client) -> None:
    isp = as_user("isp")
    token = SECRET_RE.search(_create(isp).get_data(as_text=True)).group(1)
    credential_id = _credential_id(app, token)
    assert call(client, "GET", "/credential", f"Bearer {token}")[0] == 200
    assert isp.post(f"/admin/credentials/{credential_id}/revoke").status_code == 400  # no CSRF token
    assert call(client, "GET", "/credential", f"Bearer {token}")[0] == 200
    response = post(isp, f"/admin/credentials/{credential_id}/revoke", follow_redirects=True)
    assert response.status_code == 200 and "已吊销" in response.get_data(as_text=True)
    status, body, _ = call(client, "GET", "/credential", f"Bearer {token}")
    assert status == 401 and body["code"] == "401"
    again = post(isp, f"/admin/credentials/{credential_id}/revoke", follow_redirects=True)
    assert "alert-danger" in again.get_data(as_text=True)  # already revoked: said so, nothing changed


def test_nobody_revokes_another_users_credential(app, as_user, client) -> None:
    """Another ISP's credential id is 404, and the credential keeps working."""
    token = SECRET_RE.search(_create(as_user("isp")).get_data(as_text=True)).group(1)
    other = as_user("isp_bj")
    response = other.post(f"/admin/credentials/{_credential_id(app, token)}/revoke",
                          data={"csrf_token": csrf_token(other)})
    assert response.status_code == 404
    assert call(client, "GET", "/credential", f"Bearer {token}")[0] == 200
    assert token.split(".")[0] not in other.get("/admin/credentials/").get_data(as_text=True)


def test_a_disabled_users_credentials_stop_working(app, as_user, client) -> None:
    token = SECRET_RE.search(_create(as_user("isp")).get_data(as_text=True)).group(1)
    with app.app_context():
        from models import UserStatus
        user_named("tj_isp").status = UserStatus.DISABLED
        db.session.commit()
    assert call(client, "GET", "/credential", f"Bearer {token}")[0] == 401


def test_the_api_page_lists_the_operations_and_links_the_openapi_document(as_user) -> None:
    page = as_user("isp").get("/admin/api/").get_data(as_text=True)
    assert 'href="/api/v1/openapi.json"' in page and "/api/v1/exchange/credential" in page
    assert "Authorization: Bearer" in page and "README" in page and 'href="/admin/credentials/"' in page


def test_the_menu_names_the_pages_in_chinese(as_user) -> None:
    page = as_user("isp").get("/admin/credentials/").get_data(as_text=True)
    assert "接口凭证" in page and "接口说明" in page
