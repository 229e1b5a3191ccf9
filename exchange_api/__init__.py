"""The data-exchange API (issue 16, SPEC §15) at /api/v1/exchange/: for access providers, registrars and IP
reporters' own systems. Every call carries a credential (`Authorization: Bearer <key_id>.<secret>`); no cookie,
no session, no CSRF token is read or set, so a browser's session can never make a call. Inside a call
`flask_login.current_user` is the credential's user and every audit event names the credential.

The operations live by area (`filings`, `reports`, `feed`) and are declared with `core.batch_operation` /
`core.query_operation`, which also feed the OpenAPI document (`openapi`).
"""

from __future__ import annotations

from flask import Response, current_app, g, jsonify, request
from pydantic import BaseModel, Field

import audit
import security
from api_errors import json_error
from exchange_api.core import OPERATIONS as OPERATIONS
from exchange_api.core import Operation, register
from exchange_api.core import bp as bp
from extensions import begin_write, db
from models import ApiCredential
from workflow import exchange


def _body_refusal() -> Response | None:
    """At most EXCHANGE_MAX_BODY_BYTES, declared up front (a body without Content-Length is refused, so none is read
    past the limit)."""
    limit = current_app.config["EXCHANGE_MAX_BODY_BYTES"]
    if request.method in ("POST", "PUT") and request.content_length is None:
        return json_error(411, "请求须带 Content-Length 头。")
    if (request.content_length or 0) > limit:
        return json_error(413, f"请求体超过上限 {limit // (1024 * 1024)} MB：请分批提交（每批至多 1000 条）。")
    return None


@bp.before_request
def _authenticate() -> Response | None:
    """The credential, checked on every call (a revocation is seen at once on every node), then the body size
    and the credential's rate limit."""
    if (refused := _body_refusal()) is not None:
        return refused
    address = request.remote_addr or ""
    try:
        credential = exchange.authenticate(request.headers.get("Authorization"), address)
    except exchange.ExchangeAuthError as refused:
        db.session.rollback()
        headers = {"WWW-Authenticate": 'Bearer realm="exchange"'} if refused.status == 401 else {}
        return json_error(refused.status, refused.message, code=refused.code, headers=headers)
    g.credential, g.api_credential_id = credential, credential.id
    g._login_user = credential.user  # flask_login's current_user for this request only: nothing in the session
    per_minute = current_app.config["EXCHANGE_RATE_LIMIT_PER_MINUTE"]
    if (retry := security.retry_after("exchange", per_minute, key=credential.key_id)) is not None:
        return json_error(429, f"调用过于频繁：每个凭证每分钟至多 {per_minute} 次，请 {retry} 秒后再试。",
                          headers={"Retry-After": str(retry)})
    exchange.mark_used(credential, address)
    return None


@bp.after_request
def _no_cookies(response: Response) -> Response:
    """Reads are audited here (writes in their own transaction); no cookie ever leaves the API."""
    credential = g.get("credential")
    if credential is not None and request.method == "GET":
        begin_write()
        audit.record("exchange.read", object_type="api_credential", object_id=credential.id, actor=credential.user,
                     changes={"path": request.path, "status": response.status_code})
        db.session.commit()
    response.headers.pop("Set-Cookie", None)
    response.headers["Cache-Control"] = "no-store"
    return response


# the operations, by area (each module registers its routes on `bp` when imported)
from exchange_api import feed as feed  # noqa: E402
from exchange_api import filings as filings  # noqa: E402
from exchange_api import inspections as inspections  # noqa: E402
from exchange_api import reports as reports  # noqa: E402


class CredentialAnswer(BaseModel):
    name: str
    key_id: str
    user: str
    role: str
    scopes: list[str]
    expires_at: str | None = Field(description="UTC，无则不过期")
    next_sequence: int = Field(description="下一次写调用应使用的序号（客户端崩溃后据此续传）")
    acked_event_id: int = Field(description="已确认的事件位置")
    webhook_url: str | None


def credential_info() -> Response:
    """The calling credential: what a client asks first after a restart (the next sequence number)."""
    credential = db.session.get(ApiCredential, g.credential.id, populate_existing=True)
    return jsonify(CredentialAnswer(
        name=credential.name, key_id=credential.key_id, user=credential.user.username, role=str(credential.user.role),
        scopes=sorted(credential.scope_set), expires_at=credential.expires_at.isoformat() if credential.expires_at
        else None, next_sequence=credential.next_sequence, acked_event_id=credential.acked_event_id,
        webhook_url=credential.webhook_url).model_dump())


register(Operation(path="/credential", method="GET", name="credential_info", scope="", summary="本凭证的信息",
                   response=CredentialAnswer, description="凭证名称、权限范围、下一个序号、已确认的事件位置。"),
         credential_info)
