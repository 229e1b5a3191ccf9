"""One shape for every error under /api/ (issue 16): `{"code", "message", "field"}` — the code a string (the HTTP
status, or a data-exchange result code), the message in Chinese, the field concerned or null."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify


def json_error(status: int, message: str, field: str | None = None, code: str | None = None,
               headers: dict[str, str] | None = None, **extra: Any) -> Response:
    response = jsonify({"code": code or str(status), "message": str(message), "field": field, **extra})
    response.status_code = status
    response.headers.update(headers or {})
    return response
