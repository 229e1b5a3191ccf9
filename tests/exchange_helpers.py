"""What the data-exchange API's tests share: a credential for a user, a live server on loopback (the API is
tested over real HTTP, as the issue asks), and a call helper for either the test client or that server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from extensions import db
from models import SCOPES
from tests.helpers import user_named
from workflow import exchange


def credential_for(username: str, scopes: tuple[str, ...] | None = None, **options: Any) -> tuple[int, str]:
    """(credential id, the Authorization header's value) for a user, inside an app context; `scopes` default to
    every scope the user's role may hold; options: expires_at, networks."""
    user = user_named(username)
    wanted = scopes if scopes is not None else tuple(scope for scope in SCOPES
                                                     if scope in exchange.allowed_scopes(user))
    credential, secret = exchange.create_credential(user, f"test {username}", wanted, **options)
    db.session.commit()
    return credential.id, f"Bearer {secret}"


@dataclass
class LiveServer:
    url: str


@pytest.fixture
def live_server(app: Flask) -> Iterator[LiveServer]:
    """The test app served by werkzeug (threaded) on a free loopback port."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield LiveServer(f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        thread.join(5)


def call(target: FlaskClient | LiveServer, method: str, path: str, token: str | None,
         json: Any = None, params: dict[str, Any] | None = None, **headers: str) -> tuple[int, Any, dict[str, str]]:
    """(status, JSON body or text, headers) of one call under /api/v1/exchange (path without it)."""
    url = f"/api/v1/exchange{path}"
    sent = {**({"Authorization": token} if token else {}), **headers}
    if isinstance(target, LiveServer):
        response = requests.request(method, target.url + url, json=json, params=params, headers=sent, timeout=60)
        body = response.json() if response.headers.get("Content-Type", "").startswith("application/json") \
            else response.text
        return response.status_code, body, dict(response.headers)
    answer = target.open(url, method=method, json=json, query_string=params, headers=sent)
    body = answer.get_json(silent=True) if answer.is_json else answer.get_data(as_text=True)
    return answer.status_code, body, dict(answer.headers)


class Caller:
    """One credential's calls, with its sequence numbers; each write answered 200 with the envelope's fields."""

    def __init__(self, target: Any, token: str) -> None:
        self.target, self.token, self.sequence = target, token, 0

    def write(self, path: str, records: list[dict[str, Any]]) -> dict[str, Any]:
        self.sequence += 1
        status, body, _ = call(self.target, "POST", path, self.token, json={"sequence": self.sequence,
                                                                            "records": records})
        assert status == 200, body
        assert body["next_sequence"] == self.sequence + 1 and body["atomic"] == "per_record"
        return body

    def read(self, path: str, **params: Any) -> tuple[int, Any]:
        status, body, _ = call(self.target, "GET", path, self.token, params=params)
        return status, body
