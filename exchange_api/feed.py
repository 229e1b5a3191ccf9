"""The event feed of the data-exchange API (issue 16 §4–§5): read it, acknowledge it, synchronise in full, and
register the webhook that pushes it.

- `GET /events?after=ID&limit=N`: the caller's events after ID (default: its acknowledged position), in feed
  order. What is not acknowledged is delivered again: a client that crashed reads from its position once more.
- `POST /events/ack {"up_to": ID}`: the acknowledged position moves forward only, never past the feed's head.
- `GET /snapshot`: the current state of every filing the caller serves (an ISP) or owns (an ICP account), as
  NDJSON, streamed in keyset pages (never all in memory); its first line gives the feed position at the start, so
  that a client resumes from the feed there (an event after it may already show in the snapshot: applying it
  again changes nothing), its last line the count (a stream cut short has none).
- `PUT /webhook {"url"}` (the secret shown once), `GET /webhook` (its delivery state), `DELETE /webhook`.

The events themselves are made by the workflow (`workflow.events`); this module only reads them and translates.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from flask import Response, g, stream_with_context
from pydantic import BaseModel, ConfigDict, Field, RootModel, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import selectinload

import audit
from api_errors import json_error
from exchange_api.core import Operation, json_body, query_operation, register, require_scope
from extensions import db, write_intent
from models import (
    CLOSED_APPLICATION_STATES,
    Access,
    ApiCredential,
    Application,
    Certificate,
    CertificateStatus,
    Entity,
    ExchangeEvent,
    ExchangeFeedHead,
    FilingStatus,
    Role,
    User,
    Website,
    utcnow,
)
from webhooks import event_document
from workflow import events, exchange
from workflow.errors import WorkflowError

MAX_LIMIT = 1000
#: filings per page of the snapshot (one transaction each)
SNAPSHOT_PAGE = 500
ENDED = (FilingStatus.CANCELLED, FilingStatus.REVOKED)

EVENT_EXAMPLE = {
    "id": 1042, "kind": "application.approved", "object_type": "application", "object_id": "7",
    "at": "2026-11-30T02:15:00Z",
    "payload": {"application_id": 7, "application_kind": "new_filing", "state": "approved", "entity_id": 3,
                "unit_name": "天津示例科技有限公司", "status": "active", "number": "津ICP备26000001号",
                "licence_number": None, "websites": [{"id": 5, "number": "津ICP备26000001号-1", "status": "active"}],
                "certificate_id": "0b6f7c1e-7a53-4c6a-9f0e-2b8f6c1d9a10", "domains": {"example.cn": "consistent"}}}
KINDS = ("application.approved（审核通过：备案号、网站号、证书编号、域名核验结论）、application.rejected（管局驳回，"
         "含原因）、application.returned（接入商退回，含原因）、filing.cancelled / filing.revoked / "
         "filing.licence_revoked（注销、撤销、吊销）、domain.flagged / domain.resolved（域名核验异常及其解除）、"
         "ip.finding_opened / ip.finding_resolved（IP 备案核查结果）、rectification.issued / rectification.answered / "
         "rectification.closed（整改通知的发出、接入服务商反馈、结案）")


# --- the feed -----------------------------------------------------------------------------------------------------

class EventsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    after: int | None = Field(default=None, ge=0, le=2**62,
                              description="返回编号大于此值的事件；省略时从本凭证已确认的位置之后读取")
    limit: int = Field(default=100, ge=1, le=MAX_LIMIT, description=f"至多返回的事件数（1–{MAX_LIMIT}）")


class Event(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [EVENT_EXAMPLE]})
    id: int = Field(description="事件编号：在调用者的队列中严格递增")
    kind: str = Field(description=f"事件类型：{KINDS}")
    object_type: str = Field(description="对象类型：application、entity、website、block、allocation 等")
    object_id: str = Field(description="对象编号")
    at: str = Field(description="事件发生时间（UTC，ISO 8601）")
    payload: dict[str, Any] = Field(description="事件内容：编号、号码、状态、原因等")


class EventsPage(BaseModel):
    events: list[Event]
    after: int = Field(description="本次读取的起点")
    next_after: int = Field(description="下次读取的起点（本页最后一个事件的编号）；确认时 up_to 用它")
    more: bool = Field(description="之后是否还有事件")
    acked_event_id: int = Field(description="本凭证已确认的位置")


def _sequenced() -> None:
    """Number what committed since the last pass first (the worker does it too): a read never waits a pass. The
    sequencer takes SQLite's write lock, so only when something waits for it."""
    if db.session.scalar(select(ExchangeEvent.id).where(ExchangeEvent.seq.is_(None)).limit(1)) is not None:
        exchange.sequence_events()


@query_operation("/events", scope="events", params=EventsQuery, response=EventsPage, summary="读取事件队列",
                 description="调用者的事件，按编号递增。未确认的事件会再次返回：处理完一页后用 POST /events/ack "
                             "确认到 next_after。")
def read_events(actor: User, query: EventsQuery) -> dict[str, Any]:
    _sequenced()
    acked = db.session.scalar(select(ApiCredential.acked_event_id).where(ApiCredential.id == g.credential.id))
    after = acked if query.after is None else query.after
    rows = db.session.execute(
        select(ExchangeEvent.seq, ExchangeEvent.kind, ExchangeEvent.object_type, ExchangeEvent.object_id,
               ExchangeEvent.payload, ExchangeEvent.at)
        .where(ExchangeEvent.user_id == actor.id, ExchangeEvent.seq > after)
        .order_by(ExchangeEvent.seq).limit(query.limit + 1)).all()
    page = [event_document(*row) for row in rows[:query.limit]]
    return {"events": page, "after": after, "next_after": page[-1]["id"] if page else after,
            "more": len(rows) > query.limit, "acked_event_id": acked}


class AckRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"up_to": 1042}]})
    up_to: int = Field(ge=0, le=2**62, description="确认到此编号（含）：之前的事件不再返回")


class AckAnswer(BaseModel):
    acked_event_id: int = Field(description="本凭证现在已确认的位置（不会后退）")


def _body(model: type[BaseModel]) -> BaseModel | Response:
    """The JSON body validated by `model`, or the 400 answer naming the field."""
    try:
        return model.model_validate(json_body())
    except ValidationError as error:
        item = error.errors(include_url=False)[0]
        return json_error(400, f"请求格式错误：{item['msg']}", ".".join(str(p) for p in item["loc"]) or None)


def _audited(operation: str, **changes: Any) -> None:
    """Every write call is audited with the credential (as the batch envelope does), then committed."""
    credential = g.credential
    audit.record("exchange.call", object_type="api_credential", object_id=credential.id, actor=credential.user,
                 changes={"operation": operation, **changes})
    db.session.commit()


def acknowledge_events() -> Response:
    if (refusal := require_scope("events")) is not None:
        return refusal
    body = _body(AckRequest)
    if isinstance(body, Response):
        return body
    try:
        acked = exchange.acknowledge(g.credential, body.up_to)
    except WorkflowError as error:
        db.session.rollback()
        return json_error(409, error.message, error.field, code="409")
    _audited("acknowledge_events", up_to=body.up_to)
    return Response(AckAnswer(acked_event_id=acked).model_dump_json(), mimetype="application/json")


register(Operation(path="/events/ack", method="POST", name="acknowledge_events", scope="events",
                   summary="确认事件", params=AckRequest, response=AckAnswer,
                   description="确认到 up_to（含）为止的事件：之后读取队列时默认从这里开始。确认位置只进不退；"
                               "确认一个更小的编号不改变它。",
                   extra={"errors": {409: "确认位置超过了已发出的最后一个事件"}}),
         acknowledge_events)


# --- the full synchronisation -------------------------------------------------------------------------------------

class SnapshotHeader(BaseModel):
    type: Literal["header"]
    feed_position: int = Field(description="开始时事件队列的最后编号：同步后从 GET /events?after=它 继续")
    generated_at: str = Field(description="开始时间（UTC）")
    basis: Literal["served", "owned"] = Field(description="served：本接入商接入的备案；owned：本账号的备案")


class SnapshotAccess(BaseModel):
    id: int
    isp_id: int
    isp: str = Field(description="接入服务商账号")
    method: str | None = Field(description="接入方式；其他接入服务商的接入为 null（只列名称，同控制台）")
    server_province_code: str | None = Field(description="服务器所在省份；其他接入服务商的接入为 null")
    ip_ranges: list[str] | None = Field(description="IP 地址段，每段“起始-结束”；其他接入服务商的接入为 null")


class SnapshotWebsite(BaseModel):
    id: int
    name: str
    number: str | None = Field(description="网站备案号（…号-n），未通过审核的为 null")
    status: str = Field(description="draft / active / no_access / cancelled / revoked")
    home_url: str
    domains: list[str]
    accesses: list[SnapshotAccess] = Field(description="现有的接入")


class SnapshotApplication(BaseModel):
    id: int
    kind: str
    state: str


class SnapshotFiling(BaseModel):
    type: Literal["filing"]
    entity_id: int
    unit_name: str
    province_code: str
    certificate_type: str
    certificate_number: str
    number: str | None = Field(description="主体备案号")
    licence_number: str | None = Field(description="经营许可证号（经营性）")
    status: str
    certificate_id: str | None = Field(description="现行电子证书的编号")
    application: SnapshotApplication | None = Field(description="最近一份申请（有未办结的即为它）")
    websites: list[SnapshotWebsite]


class SnapshotEnd(BaseModel):
    type: Literal["end"]
    filings: int = Field(description="本次同步的备案数；没有这一行说明传输中断")


class SnapshotLine(RootModel[SnapshotHeader | SnapshotFiling | SnapshotEnd]):
    """One line of the NDJSON snapshot: the header first, one line per filing, the end line last."""


def _served_pages(isp_id: int) -> Iterator[list[int]]:
    """The ISP's filings, a page at a time: its live accesses walked in website order (the index on
    (isp_id, website_id)); a filing is given on the page holding the first of its websites the ISP serves, so that
    one served on several websites comes once without remembering what was sent."""
    last = 0
    while True:
        website_ids = list(db.session.scalars(select(Access.website_id).where(
            Access.isp_id == isp_id, Access.live, Access.website_id > last)
            .order_by(Access.website_id).limit(SNAPSHOT_PAGE)))
        if not website_ids:
            return
        last = website_ids[-1]
        page = set(website_ids)
        entity_ids = sorted(set(db.session.scalars(select(Website.entity_id).where(Website.id.in_(page)))))
        yield [entity_id for entity_id, first in _first_served(entity_ids, isp_id).items() if first in page]


def _first_served(entity_ids: list[int], isp_id: int) -> dict[int, int]:
    rows = db.session.execute(select(Website.entity_id, Website.id).join(Access, Access.website_id == Website.id)
                              .where(Website.entity_id.in_(entity_ids), Access.isp_id == isp_id, Access.live))
    first: dict[int, int] = {}
    for entity_id, website_id in rows:
        first[entity_id] = min(first.get(entity_id, website_id), website_id)
    return first


def _owned_pages(owner_id: int) -> Iterator[list[int]]:
    last = 0
    while page := list(db.session.scalars(select(Entity.id).where(
            Entity.owner_id == owner_id, Entity.id > last, Entity.status.not_in(ENDED))
            .order_by(Entity.id).limit(SNAPSHOT_PAGE))):
        last = page[-1]
        yield page


def _filing_lines(entity_ids: list[int], viewer_isp: int | None) -> Iterator[str]:
    """The filings of one page, with their websites, domains, live accesses, current certificate and latest
    application: a few queries for the page."""
    websites = selectinload(Entity.websites)
    entities = db.session.scalars(select(Entity).where(Entity.id.in_(entity_ids)).order_by(Entity.id).options(
        websites.selectinload(Website.domains),
        websites.selectinload(Website.accesses).selectinload(Access.isp))).all()
    certificates = dict(db.session.execute(select(Certificate.entity_id, Certificate.id).where(
        Certificate.entity_id.in_(entity_ids), Certificate.status == CertificateStatus.CURRENT)).all())
    latest: dict[int, Application] = {}
    for application in db.session.scalars(select(Application).where(Application.entity_id.in_(entity_ids))
                                          .order_by(Application.id)):
        current = latest.get(application.entity_id)
        if current is None or current.state in CLOSED_APPLICATION_STATES:
            latest[application.entity_id] = application
    for entity in entities:
        yield _filing(entity, certificates.get(entity.id), latest.get(entity.id), viewer_isp).model_dump_json() + "\n"


def _access(access: Access, viewer_isp: int | None) -> SnapshotAccess:
    """An access in full for the owner and for its own ISP; another ISP's only by name, as the console shows it."""
    whole = viewer_isp is None or access.isp_id == viewer_isp
    return SnapshotAccess(id=access.id, isp_id=access.isp_id, isp=access.isp.username,
                          method=access.method if whole else None,
                          server_province_code=access.server_province_code if whole else None,
                          ip_ranges=[line for line in access.ip_ranges.splitlines() if line] if whole else None)


def _filing(entity: Entity, certificate_id: str | None, application: Application | None,
            viewer_isp: int | None) -> SnapshotFiling:
    return SnapshotFiling(
        type="filing", entity_id=entity.id, unit_name=entity.unit_name, province_code=entity.province_code,
        certificate_type=entity.certificate_type, certificate_number=entity.certificate_number, number=entity.number,
        licence_number=entity.licence_number, status=entity.status.value, certificate_id=certificate_id,
        application=SnapshotApplication(id=application.id, kind=application.kind.value,
                                        state=application.state.value) if application else None,
        websites=[SnapshotWebsite(
            id=website.id, name=website.name, number=website.number, status=website.status.value,
            home_url=website.home_url,
            domains=[d.name for d in website.domains if d.live or website.status == FilingStatus.DRAFT],
            accesses=[_access(a, viewer_isp) for a in website.accesses if a.live]) for website in entity.websites])


def _stream(user_id: int, role: Role) -> Iterator[str]:
    """The header, a line per filing, the end line; each page read in its own short read transaction."""
    with write_intent(False):
        _sequenced()
        position = db.session.scalar(select(ExchangeFeedHead.last_seq).where(ExchangeFeedHead.id == 1)) or 0
        basis = "served" if role == Role.ISP else "owned"
        yield SnapshotHeader(type="header", feed_position=position, basis=basis,
                             generated_at=utcnow().replace(microsecond=0).isoformat() + "Z").model_dump_json() + "\n"
        count = 0
        for page in (_served_pages(user_id) if basis == "served" else _owned_pages(user_id)):
            lines = list(_filing_lines(page, user_id if basis == "served" else None))
            db.session.commit()  # the page's read transaction ends before it is sent
            count += len(lines)
            yield "".join(lines)
        db.session.commit()
        yield SnapshotEnd(type="end", filings=count).model_dump_json() + "\n"


def snapshot() -> Response:
    if (refusal := require_scope("filings")) is not None:
        return refusal
    user = g.credential.user
    if user.role not in (Role.ISP, Role.ICP):
        return json_error(403, "全量同步仅供接入服务商（其接入的备案）和备案主体（其自己的备案）使用。", code="403")
    response = Response(stream_with_context(_stream(user.id, user.role)), mimetype="application/x-ndjson")
    response.headers["X-Accel-Buffering"] = "no"  # nginx passes each page on as it comes
    return response


register(Operation(path="/snapshot", method="GET", name="snapshot", scope="filings", summary="全量同步（NDJSON）",
                   response=SnapshotLine,
                   description="按行流式返回（application/x-ndjson）：第一行 type=header 给出开始时的事件队列位置 "
                               "feed_position；之后每行一个备案（type=filing：主体、网站、域名、接入、号码、状态、"
                               "现行证书、最近的申请）；最后一行 type=end 给出行数。接入服务商得到其接入的备案，"
                               "备案主体得到自己的备案。同步后从 GET /events?after=feed_position 继续。",
                   extra={"content_type": "application/x-ndjson", "answer": "NDJSON：每行一个 SnapshotLine",
                          "errors": {403: "凭证没有 filings 权限范围，或用户既非接入服务商也非备案主体"}}),
         snapshot)


# --- the webhook --------------------------------------------------------------------------------------------------

class WebhookRequest(BaseModel):
    model_config = ConfigDict(extra="forbid",
                              json_schema_extra={"examples": [{"url": "https://isp.example.cn/beian/events"}]})
    url: str = Field(min_length=8, max_length=2048, description="接收事件的 HTTPS 地址（须为公网地址）")


class WebhookAnswer(BaseModel):
    url: str | None = Field(description="登记的地址；未登记为 null")
    secret: str | None = Field(default=None, description="签名密钥：仅在登记时返回这一次，请妥善保存")
    delivered_id: int | None = Field(default=None, description="已推送到的事件编号")
    attempts: int = Field(default=0, description="当前事件连续失败的次数")
    next_at: str | None = Field(default=None, description="失败后下次重试的时间（UTC）")
    last_error: str = Field(default="", description="最近一次失败的原因")


def _webhook_state(credential: ApiCredential, secret: str | None = None) -> Response:
    answer = WebhookAnswer(
        url=credential.webhook_url, secret=secret,
        delivered_id=credential.webhook_delivered_id if credential.webhook_url else None,
        attempts=credential.webhook_attempts, last_error=credential.webhook_last_error,
        next_at=credential.webhook_next_at.isoformat() + "Z" if credential.webhook_next_at else None)
    return Response(answer.model_dump_json(), mimetype="application/json")


def _own_credential() -> ApiCredential:
    return db.session.get(ApiCredential, g.credential.id, populate_existing=True)


def put_webhook() -> Response:
    if (refusal := require_scope("events")) is not None:
        return refusal
    body = _body(WebhookRequest)
    if isinstance(body, Response):
        return body
    db.session.commit()  # the URL's host is resolved next: no transaction (SQLite's write lock) held meanwhile
    credential = g.credential
    try:
        secret = events.set_webhook(credential, body.url)
    except WorkflowError as error:
        db.session.rollback()
        return json_error(400, error.message, error.field)
    _audited("put_webhook", url=credential.webhook_url)
    return _webhook_state(credential, secret)


def get_webhook() -> Response:
    if (refusal := require_scope("events")) is not None:
        return refusal
    return _webhook_state(_own_credential())


def delete_webhook() -> Response:
    if (refusal := require_scope("events")) is not None:
        return refusal
    credential = _own_credential()
    try:
        events.remove_webhook(credential)
    except WorkflowError as error:
        db.session.rollback()
        return json_error(404, error.message, error.field)
    _audited("delete_webhook")
    return _webhook_state(credential)


WEBHOOK_NOTE = ("每个事件单独 POST（JSON，与 GET /events 的 events 元素相同），按事件编号顺序推送；请求头 "
                "X-Beian-Timestamp（Unix 秒）与 X-Beian-Signature: sha256=<HMAC-SHA256(密钥, 时间戳 + \".\" + 请求体) "
                "的十六进制>。接收方返回 2xx 即为送达；否则按指数退避重试同一事件，不跳过、不乱序。")
register(Operation(path="/webhook", method="PUT", name="put_webhook", scope="events", summary="登记 Webhook",
                   params=WebhookRequest, response=WebhookAnswer,
                   description="登记（或更换）接收事件推送的地址，返回签名密钥（仅此一次）；从本凭证已确认的位置之后"
                               f"开始推送。{WEBHOOK_NOTE}",
                   extra={"errors": {400: "地址不是 https，或解析到本机、内网等非公网地址，或无法解析"}}),
         put_webhook)
register(Operation(path="/webhook", method="GET", name="get_webhook", scope="events", summary="Webhook 推送状态",
                   response=WebhookAnswer, description="登记的地址、已推送到的事件编号、失败次数与原因。"),
         get_webhook)
register(Operation(path="/webhook", method="DELETE", name="delete_webhook", scope="events",
                   summary="删除 Webhook", response=WebhookAnswer, description="不再推送；事件仍可从队列读取。",
                   extra={"errors": {404: "该凭证没有登记 Webhook"}}),
         delete_webhook)
