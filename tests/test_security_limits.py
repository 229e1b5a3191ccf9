"""Issue 11: the captcha picture and the HTML lookup are rate-limited per address (the API's limiter,
shared), and the captcha table stays bounded."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from extensions import db
from models import Captcha, Throttle, utcnow
from tests.helpers import CAPTCHA, PASSWORD, post

ADDRESS, OTHER = "192.0.2.50", "192.0.2.51"


def _from(app: Flask, address: str) -> FlaskClient:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def _captchas(app: Flask) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Captcha))


# --- 9: /captcha.png ---------------------------------------------------------------------------------

def test_captcha_beyond_the_limit_is_429_with_retry_after(app) -> None:
    app.config["CAPTCHA_RATE_LIMIT_PER_MINUTE"] = 3
    client = _from(app, ADDRESS)
    codes = [client.get("/captcha.png").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    limited = client.get("/captcha.png")
    assert 1 <= int(limited.headers["Retry-After"]) <= 60 and "请求过于频繁" in limited.get_data(as_text=True)
    assert _from(app, OTHER).get("/captcha.png").status_code == 200  # another address is not affected


def test_cookieless_requests_write_at_most_the_limit(app) -> None:
    """Without a cookie each picture is a new row: the per-address limit bounds them."""
    app.config["CAPTCHA_RATE_LIMIT_PER_MINUTE"] = 5
    for _ in range(20):
        _from(app, ADDRESS).get("/captcha.png")
    assert _captchas(app) == 5


def test_a_session_holds_one_captcha_row(app, client) -> None:
    for _ in range(5):
        client.get("/captcha.png")
    assert _captchas(app) == 1


def test_expired_and_spent_captchas_are_purged(app, users) -> None:
    for _ in range(3):
        _from(app, ADDRESS).get("/captcha.png")
    with app.app_context():
        db.session.execute(update(Captcha).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    spender = _from(app, OTHER)
    spender.get("/captcha.png")
    assert _captchas(app) == 1  # the three expired ones are gone
    post(spender, "/login", {"username": users["isp"], "password": "Wrong-pass-1", "captcha": CAPTCHA})
    _from(app, ADDRESS).get("/captcha.png")
    assert _captchas(app) == 1  # the spent one is gone too


def test_the_captcha_still_works_within_the_limit(app, users) -> None:
    client = _from(app, ADDRESS)
    client.get("/captcha.png")
    response = post(client, "/login", {"username": users["isp"], "password": PASSWORD, "captcha": CAPTCHA})
    assert response.status_code == 302


# --- 10: the HTML lookup shares the API's limit ----------------------------------------------------

def test_html_lookup_is_limited_with_the_api(app) -> None:
    app.config["API_RATE_LIMIT_PER_MINUTE"] = 3
    client = _from(app, ADDRESS)
    assert client.get("/api/v1/public/lookup?q=example.cn").status_code == 200
    assert client.get("/?q=example.cn").status_code == 200
    assert client.get("/api/v1/public/ping").status_code == 200
    limited = client.get("/?q=example.cn")
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    assert "请求过于频繁" in limited.get_data(as_text=True)
    assert client.get("/api/v1/public/lookup?q=example.cn").status_code == 429  # one budget for both
    assert client.get("/").status_code == 200  # the home page without a query is not counted
    assert _from(app, OTHER).get("/?q=example.cn").status_code == 200


def test_the_worker_purges_spent_throttles_and_keeps_live_locks(app) -> None:
    """Throttle rows whose window and lock have passed are deleted by the worker; a live lock or window stays."""
    with app.app_context():
        old = utcnow() - timedelta(hours=2)
        db.session.add_all([Throttle(key="address:192.0.2.1", failures=3, window_started_at=old),
                            Throttle(key="address:192.0.2.2", failures=20, window_started_at=old,
                                     locked_until=utcnow() + timedelta(minutes=5)),
                            Throttle(key="address:192.0.2.3", failures=1, window_started_at=utcnow())])
        db.session.commit()
    result = app.test_cli_runner().invoke(args=["outbox", "run", "--once"])
    assert result.exit_code == 0 and '"purged": 1' in result.output
    with app.app_context():
        assert set(db.session.scalars(select(Throttle.key))) == {"address:192.0.2.2", "address:192.0.2.3"}
