"""The machinery every data-exchange operation shares (issue 16): the blueprint, the registry of operations (which
also yields the OpenAPI document), the batch envelope with its sequence numbers, and the result codes.

A batch is atomic per record, not per call: each record runs in its own SAVEPOINT, so a refused record leaves
nothing behind and the others are kept. The whole call — every accepted record, the stored answer and the next
expected sequence number — commits in one transaction, under the credential's row lock: a repeated number finds
the stored answer and writes nothing, also when two nodes receive it at once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Response, g, jsonify, request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.exc import IntegrityError

import audit
from api_errors import json_error
from extensions import db
from models import User
from workflow import exchange
from workflow.errors import CodedErrors, NotFound, WorkflowError

bp = Blueprint("exchange", __name__, url_prefix="/api/v1/exchange")

MAX_RECORDS = 1000
#: per family, the codes of "not found (or not yours)" and "taken by a concurrent request": the 1xxx filing codes are
#: the registry's own table (exchange_api/filing_codes.py); the 2xxx and 3xxx codes are the specification's, so the
#: registry's own stay in the x99x range, which it does not use
GENERIC_CODES = {"1": ("1004", "1009"), "2": ("2990", "2991"), "3": ("3990", "3991")}
MAX_MISSING_LISTED = 100  # a gap's missing numbers named in the refusal, the first ones


class Refusal(Exception):
    """A record refused by a handler with its result code."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.field = code, str(message), field


class BatchRequest(BaseModel):
    """The envelope of every write call."""

    model_config = ConfigDict(extra="forbid")
    sequence: int = Field(ge=1, le=2**62,
                          description="本凭证的调用序号：从 1 起，每次写调用加 1；重复的序号返回首次调用的应答")
    records: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_RECORDS,
                                          description="记录，至多 1000 条；逐条处理，一条被拒不影响其他记录")


class Problem(BaseModel):
    code: str
    field: str | None = None
    message: str


class RecordResult(BaseModel):
    index: int = Field(description="记录在 records 中的位置（从 0 起）")
    status: str = Field(description="accepted 或 refused")
    ids: dict[str, Any] | None = Field(default=None, description="被接受记录的编号（申请、主体、网站等）")
    code: str | None = Field(default=None, description="被拒记录的结果代码（1xxx 备案、2xxx IP、3xxx 域名）")
    field: str | None = None
    message: str | None = None
    problems: list[Problem] | None = None


class BatchAnswer(BaseModel):
    sequence: int
    next_sequence: int = Field(description="下一次写调用应使用的序号")
    atomic: str = Field(default="per_record", description="逐条原子：每条记录要么完整写入，要么什么也不写")
    accepted: int
    refused: int
    results: list[RecordResult]


class ErrorAnswer(BaseModel):
    code: str
    message: str
    field: str | None = None


Handler = Callable[[User, Any], dict[str, Any]]
WholeBatchHandler = Callable[[User, list[tuple[int, Any]]], list[dict[str, Any] | Refusal]]


@dataclass(frozen=True)
class Operation:
    """One operation of the API, as the OpenAPI document describes it."""

    path: str
    method: str
    name: str
    scope: str
    summary: str
    family: str = ""
    record: type[BaseModel] | None = None
    params: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


OPERATIONS: list[Operation] = []


def register(operation: Operation, view: Callable[[], Response]) -> None:
    bp.add_url_rule(operation.path, operation.name, view, methods=[operation.method])
    OPERATIONS.append(operation)


def require_scope(scope: str) -> Response | None:
    """A 403 answer unless the credential holds `scope` ("" for the operations every credential may call)."""
    if scope and scope not in g.credential.scope_set:
        return json_error(403, f"该接口凭证没有 {scope} 权限范围。", code="403")
    return None


# --- results of one record -------------------------------------------------------------------------------

def _refused(index: int, code: str, message: str, field: str | None, problems: list[dict[str, Any]] | None = None
             ) -> dict[str, Any]:
    return {"index": index, "status": "refused", "code": code, "field": field, "message": message,
            "problems": problems or [{"code": code, "field": field, "message": message}]}


def _schema_refusal(index: int, family: str, error: ValidationError) -> dict[str, Any]:
    problems = [{"code": f"{family}000", "field": ".".join(str(part) for part in item["loc"]) or None,
                 "message": f"字段格式错误：{item['msg']}"} for item in error.errors(include_url=False)]
    first = problems[0]
    return _refused(index, first["code"], first["message"], first["field"], problems)


def refusal_of(index: int, error: Exception, family: str,
               codes: Callable[[WorkflowError], str] | None = None) -> dict[str, Any]:
    """A record's refusal from what its handler raised."""
    if isinstance(error, Refusal):
        return _refused(index, error.code, error.message, error.field)
    if isinstance(error, CodedErrors):
        problems = [{"code": code or f"{family}001", "field": name, "message": message}
                    for name, code, message in error.coded]
        return _refused(index, problems[0]["code"], problems[0]["message"], problems[0]["field"], problems)
    if isinstance(error, NotFound):
        return _refused(index, GENERIC_CODES[family][0], "记录不存在，或不在本凭证用户的权限范围内。", None)
    if isinstance(error, IntegrityError):
        message = "同一时刻另一请求占用了其中的域名或证件号码，请重试该记录。"
        return _refused(index, GENERIC_CODES[family][1], message, None)
    assert isinstance(error, WorkflowError)
    code = codes(error) if codes else f"{family}001"
    problems = [{"code": code, "field": name, "message": message} for name, message in error.errors]
    return _refused(index, code, error.message, error.field, problems)


HANDLED = (Refusal, WorkflowError, IntegrityError)


def in_savepoints(actor: User, records: list[tuple[int, Any]], handler: Handler) -> list[Any]:
    """Each record through `handler` in its own SAVEPOINT: its ids, or the refusal it raised (rolled back to before
    it) — the default way of a batch, and the fallback of the handlers that take the whole batch."""
    outcomes: list[Any] = []
    for _index, record in records:
        try:
            with db.session.begin_nested():
                outcomes.append(handler(actor, record))
        except HANDLED as error:
            outcomes.append(error)
    return outcomes


# --- the envelope ------------------------------------------------------------------------------------------

def json_body() -> Any:
    """The request's JSON, or None when it is none — also when it nests deeper than the parser goes (a
    RecursionError, else a 500 for a few hundred kilobytes of brackets)."""
    try:
        return request.get_json(silent=True)
    except RecursionError:
        return None


def _replay(stored: Any, digest: str) -> Response:
    if stored.request_digest != digest:
        return json_error(409, f"序号 {stored.sequence} 已用于另一份内容不同的请求；请使用下一个序号。", "sequence",
                          code="409")
    response = Response(stored.response, status=stored.status, mimetype="application/json")
    response.headers["X-Exchange-Replayed"] = "true"
    return response


def _sequence_refusal(sequence: int, expected: int) -> Response:
    missing = list(range(expected, min(sequence, expected + MAX_MISSING_LISTED)))
    message = f"序号不连续：期望 {expected}，收到 {sequence}；缺少 {expected}–{sequence - 1}。" if sequence > expected \
        else f"序号 {sequence} 早已使用，其应答已过保存期限；下一个序号是 {expected}。"  # purged: nothing missing
    return json_error(409, message, "sequence", code="409", next_sequence=expected, missing=missing,
                      missing_count=max(sequence - expected, 0))


def _nul_path(value: Any, path: str = "") -> str | None:
    """The dotted path of the first string holding a NUL character ("" for the record itself; no text a person
    types holds one, and PostgreSQL cannot store it), else None."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, inner in items:
        if "\x00" in str(key):
            return path
        if (found := _nul_path(inner, f"{path}.{key}" if path else str(key))) is not None:
            return found
    return None


def _records(raw: list[dict[str, Any]], model: type[BaseModel], family: str
             ) -> tuple[list[tuple[int, Any]], dict[int, dict[str, Any]]]:
    valid, refused = [], {}
    for index, item in enumerate(raw):
        if (path := _nul_path(item)) is not None:
            refused[index] = _refused(index, f"{family}000", "字段中不能含有 NUL 字符。", path or None)
            continue
        try:
            valid.append((index, model.model_validate(item)))
        except ValidationError as error:
            refused[index] = _schema_refusal(index, family, error)
    return valid, refused


def run_batch(operation: Operation, handle: Callable[[User, list[tuple[int, Any]]], list[dict[str, Any]]]
              ) -> Response:
    """Validate the envelope, check the sequence number under the credential's lock, run every record, store the
    answer and commit — or answer a repeat from the store."""
    if (refusal := require_scope(operation.scope)) is not None:
        return refusal
    body = json_body()
    try:
        envelope = BatchRequest.model_validate(body)
    except ValidationError as error:
        item = error.errors(include_url=False)[0]
        return json_error(400, f"请求格式错误：{item['msg']}", ".".join(str(p) for p in item["loc"]) or None)
    credential, digest = g.credential, exchange.request_digest(request.get_data())
    if envelope.sequence < credential.next_sequence and (
            stored := exchange.stored_call(credential.id, envelope.sequence)) is not None:
        db.session.rollback()
        return _replay(stored, digest)  # a stored answer never changes: no lock needed to read it
    expected = exchange.lock_sequence(credential.id)
    if envelope.sequence < expected:
        stored = exchange.stored_call(credential.id, envelope.sequence)
        db.session.rollback()
        return _replay(stored, digest) if stored else _sequence_refusal(envelope.sequence, expected)
    if envelope.sequence > expected:
        db.session.rollback()
        return _sequence_refusal(envelope.sequence, expected)
    valid, results = _records(envelope.records, operation.record, operation.family)
    for result in handle(credential.user, valid):
        results[result["index"]] = result
    ordered = [results[index] for index in range(len(envelope.records))]
    accepted = sum(result["status"] == "accepted" for result in ordered)
    answer = BatchAnswer(sequence=envelope.sequence, next_sequence=envelope.sequence + 1, atomic="per_record",
                         accepted=accepted,
                         refused=len(ordered) - accepted, results=ordered).model_dump(exclude_unset=True)
    exchange.store_call(credential.id, envelope.sequence, operation.name, digest, 200, answer)
    audit.record("exchange.call", object_type="api_credential", object_id=credential.id, actor=credential.user,
                 changes={"operation": operation.name, "sequence": envelope.sequence, "accepted": accepted,
                          "refused": len(ordered) - accepted})
    db.session.commit()
    return Response(json.dumps(answer, ensure_ascii=False), status=200, mimetype="application/json")


def batch_operation(path: str, *, scope: str, record: type[BaseModel], summary: str, family: str,
                    description: str = "", codes: Callable[[WorkflowError], str] | None = None,
                    whole_batch: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a write operation taking a batch of `record`s: `handler(actor, record) -> ids` runs once per record
    in its own savepoint; with `whole_batch`, `handler(actor, [(index, record), …]) -> [ids | Refusal, …]` gets them
    all at once (and makes its own savepoints)."""
    def decorate(handler: Callable[..., Any]) -> Callable[..., Any]:
        operation = Operation(path=path, method="POST", name=handler.__name__, scope=scope, summary=summary,
                              family=family, record=record, response=BatchAnswer, description=description)

        def results(actor: User, valid: list[tuple[int, Any]]) -> list[dict[str, Any]]:
            if not valid:
                return []
            outcomes = handler(actor, valid) if whole_batch else in_savepoints(actor, valid, handler)
            return [refusal_of(index, outcome, family, codes) if isinstance(outcome, Exception)
                    else {"index": index, "status": "accepted", "ids": outcome}
                    for (index, _), outcome in zip(valid, outcomes, strict=True)]

        register(operation, lambda: run_batch(operation, results))
        return handler
    return decorate


def query_operation(path: str, *, scope: str, params: type[BaseModel], response: type[BaseModel], summary: str,
                    description: str = "") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a read: `handler(actor, params) -> response model or dict`; the query string is validated by
    `params` (400 with the field on a bad one); a WorkflowError answers 404 (nothing that says why)."""
    def decorate(handler: Callable[..., Any]) -> Callable[..., Any]:
        operation = Operation(path=path, method="GET", name=handler.__name__, scope=scope, summary=summary,
                              params=params, response=response, description=description)

        def view() -> Response:
            if (refusal := require_scope(scope)) is not None:
                return refusal
            try:
                query = params.model_validate(request.args.to_dict())
            except ValidationError as error:
                item = error.errors(include_url=False)[0]
                return json_error(400, f"参数错误：{item['msg']}", ".".join(str(p) for p in item["loc"]) or None)
            try:
                answer = handler(g.credential.user, query)
            except Refusal as refusal_error:
                return json_error(404, refusal_error.message, refusal_error.field, code=refusal_error.code)
            except WorkflowError as error:
                return json_error(404, error.message, error.field)
            return jsonify(answer.model_dump(mode="json") if isinstance(answer, BaseModel) else answer)

        register(operation, view)
        return handler
    return decorate
