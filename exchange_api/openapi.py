"""The OpenAPI 3.1 document of the whole API at /api/v1/openapi.json (issue 16 §6): the public API's paths
(public_site.OPENAPI) and every data-exchange operation of the registry `core.OPERATIONS`, whose request and
response schemas are the JSON Schemas of the very pydantic models that validate the calls — one source of truth:
a field added to a record model is in the document at once, with its Chinese description and examples.

Built once per process (the registry is complete once the operation modules are imported) and served as is.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from typing import Any

from flask import Blueprint, Response
from pydantic import BaseModel

import public_site
from exchange_api.core import MAX_RECORDS, OPERATIONS, BatchAnswer, BatchRequest, ErrorAnswer, Operation

bp = Blueprint("openapi", __name__)

REF = "#/components/schemas/{model}"
ERROR = "Error"
SEQUENCE_ERROR = "SequenceError"
#: the answers every data-exchange call may get besides its own, and why
COMMON_ANSWERS = {
    "400": "请求格式错误（JSON 无法解析、信封或查询参数不符合本文档），field 指出字段",
    "401": "缺少接口凭证，或凭证无效、已吊销、已过期，或其用户已停用",
    "403": "凭证没有该操作的权限范围（scope），或不允许从本地址调用",
    "411": "POST 请求没有 Content-Length",
    "413": "请求体超过 EXCHANGE_MAX_BODY_BYTES（默认 10 MB），未读取即拒绝",
    "429": "超过本凭证每分钟的调用次数；Retry-After 头给出等待秒数",
}
DESCRIPTION = (
    "公共查询接口（/api/v1/public/，无需凭证）与数据交换接口（/api/v1/exchange/，供接入商、域名注册服务机构、"
    "IP 地址报备单位的系统调用）。\n\n"
    "**凭证**：在控制台“个人设置 › 接口凭证”中创建，每次调用带请求头 `Authorization: Bearer <key_id>.<secret>`；"
    "接口不读取也不设置 Cookie，不需要 CSRF 令牌。\n\n"
    "**批量写入**：请求体 `{\"sequence\": N, \"records\": [...]}`，每次至多 1000 条记录。批量调用逐条原子"
    "（atomic: per_record）：每条记录在自己的事务保存点中处理，要么完整写入、要么什么也不写，一条被拒不影响其他记录；"
    "应答 results 中每条记录给出 accepted 及其编号，或 refused 及结果代码（1xxx 备案、2xxx IP、3xxx 域名）、"
    "字段与中文说明。\n\n"
    "**序号与幂等**：每个凭证的写调用序号从 1 起逐次加 1，应答给出 next_sequence；跳号被拒（409，列出缺少的序号）；"
    "重复的序号返回首次调用保存的应答（X-Exchange-Replayed: true），不会再次写入，服务重启或多节点同时收到也一样。\n\n"
    "**错误**：/api/ 下所有错误均为 JSON `{\"code\", \"message\", \"field\"}`。")


ERROR_EXAMPLE = {"code": "401", "message": "接口凭证无效、已吊销或已过期。", "field": None}
ERROR_FIELDS = {"code": "HTTP 状态码，或数据交换的结果代码", "message": "中文说明",
                "field": "出错的字段（点分路径），无则为 null"}
BATCH_ANSWER_EXAMPLE = {
    "sequence": 7, "next_sequence": 8, "atomic": "per_record", "accepted": 1, "refused": 1,
    "results": [{"index": 0, "status": "accepted", "ids": {"application_id": 41, "entity_id": 17}},
                {"index": 1, "status": "refused", "code": "1000", "field": "entity.certificate_number",
                 "message": "字段格式错误：Field required",
                 "problems": [{"code": "1000", "field": "entity.certificate_number",
                               "message": "字段格式错误：Field required"}]}]}


def _schema_of(model: type[BaseModel], schemas: dict[str, Any], mode: str = "validation") -> dict[str, Any]:
    """A reference to the model's schema, the model and the models it uses added to `schemas` (their `$defs`
    hoisted); two different models of one name are refused rather than one silently replacing the other."""
    schema = model.model_json_schema(ref_template=REF, mode=mode)  # type: ignore[arg-type]
    _hoist({**schema.pop("$defs", {}), model.__name__: schema}, schemas)
    return {"$ref": REF.format(model=model.__name__)}


def _hoist(definitions: dict[str, Any], schemas: dict[str, Any]) -> None:
    for name, definition in definitions.items():
        if schemas.setdefault(name, definition) != definition:
            raise ValueError(f"two models named {name} describe different things: rename one")


def _json(schema: dict[str, Any], description: str, headers: dict[str, Any] | None = None,
          example: Any = None) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": schema, **({"example": example} if example is not None else {})}
    answer: dict[str, Any] = {"description": description, "content": {"application/json": media}}
    if headers:
        answer["headers"] = headers
    return answer


def _error(description: str) -> dict[str, Any]:
    return _json({"$ref": REF.format(model=ERROR)}, description)


def _common_answers() -> dict[str, Any]:
    answers = {status: _error(description) for status, description in COMMON_ANSWERS.items()}
    answers["429"]["headers"] = {"Retry-After": {"description": "等待的秒数", "schema": {"type": "integer"}}}
    return answers


def _batch_request(operation: Operation, schemas: dict[str, Any]) -> dict[str, Any]:
    """The envelope (BatchRequest's own schema) with `records` typed by this operation's record model."""
    envelope = copy.deepcopy(BatchRequest.model_json_schema(ref_template=REF))
    envelope["properties"]["records"]["items"] = _schema_of(operation.record, schemas)  # type: ignore[arg-type]
    envelope["additionalProperties"] = False
    example = _record_example(operation.record)  # type: ignore[arg-type]
    body: dict[str, Any] = {"schema": envelope}
    if example is not None:
        body["example"] = {"sequence": 1, "records": [example]}
    return {"required": True, "content": {"application/json": body}}


def _record_example(model: type[BaseModel]) -> Any:
    """The first example the record model declares (json_schema_extra), if any."""
    schema = model.model_json_schema()
    examples = schema.get("examples") or ([schema["example"]] if "example" in schema else [])
    return examples[0] if examples else None


def _tags(operation: Operation) -> list[str]:
    return [operation.scope or "exchange"]


def _scope_note(operation: Operation) -> str:
    return f"权限范围（scope）：{operation.scope}。" if operation.scope else "任何有效凭证均可调用。"


def _batch_path(operation: Operation, schemas: dict[str, Any]) -> dict[str, Any]:
    return {
        "operationId": operation.name, "summary": operation.summary, "tags": _tags(operation),
        "description": "\n\n".join(filter(None, (
            operation.description, f"{_scope_note(operation)}每批至多 {MAX_RECORDS} 条，逐条原子；"
            f"记录字段不符合本文档的被拒，结果代码 {operation.family}000。"))),
        "security": [{"bearer": []}],
        "requestBody": _batch_request(operation, schemas),
        "responses": {
            "200": _json(_schema_of(BatchAnswer, schemas, "serialization"),
                         "每条记录的结果（重复的序号：首次调用保存的应答，X-Exchange-Replayed: true）",
                         example=BATCH_ANSWER_EXAMPLE),
            "409": _json({"$ref": REF.format(model=SEQUENCE_ERROR)},
                         "序号不连续（缺少的序号与期望的 next_sequence），或重复的序号用于了内容不同的请求"),
            **_common_answers()},
        "x-atomic": "per_record",
    }


def _query_parameters(model: type[BaseModel], schemas: dict[str, Any]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(ref_template=REF)
    _hoist(schema.pop("$defs", {}), schemas)
    required = set(schema.get("required", ()))
    return [{"name": name, "in": "query", "required": name in required,
             "description": prop.get("description", ""), "schema": prop}
            for name, prop in schema.get("properties", {}).items()]


def _answer(operation: Operation, schemas: dict[str, Any]) -> dict[str, Any]:
    """The 200 answer: the response model as JSON, or in the content type the operation names (the snapshot's
    NDJSON, each line an instance of the model)."""
    schema = _schema_of(operation.response, schemas, "serialization") if operation.response else {"type": "object"}
    content_type = operation.extra.get("content_type", "application/json")
    return {"description": operation.extra.get("answer", "结果"), "content": {content_type: {"schema": schema}}}


def _plain_path(operation: Operation, schemas: dict[str, Any]) -> dict[str, Any]:
    """A read (GET: `params` is the query string) or a single write (POST/PUT/DELETE: `params` is the JSON
    body); the statuses it answers besides the common ones in `extra["errors"]` ({status: why})."""
    described: dict[str, Any] = {
        "operationId": operation.name, "summary": operation.summary, "tags": _tags(operation),
        "description": "\n\n".join(filter(None, (operation.description, _scope_note(operation)))),
        "security": [{"bearer": []}],
        "responses": {"200": _answer(operation, schemas), **_common_answers(),
                      **{str(status): _error(why) for status, why in operation.extra.get("errors", {}).items()}},
    }
    if operation.method == "GET":
        described["parameters"] = _query_parameters(operation.params, schemas) if operation.params else []
        described["responses"].setdefault("404", _error("没有找到，或不在本凭证用户的权限范围内"))
    elif operation.params:
        described["requestBody"] = {"required": True, "content": {"application/json": {
            "schema": _schema_of(operation.params, schemas)}}}
    return described


def _operation_path(operation: Operation, schemas: dict[str, Any]) -> dict[str, Any]:
    return _batch_path(operation, schemas) if operation.record else _plain_path(operation, schemas)


def _sequence_error(schemas: dict[str, Any]) -> dict[str, Any]:
    error = copy.deepcopy(schemas[ERROR])
    error["title"] = SEQUENCE_ERROR
    error["properties"].update({
        "next_sequence": {"type": "integer", "description": "期望的下一个序号"},
        "missing": {"type": "array", "items": {"type": "integer"}, "description": "缺少的序号（至多列出前 100 个）"},
        "missing_count": {"type": "integer", "description": "缺少的序号个数"}})
    error["examples"] = [{"code": "409", "message": "序号不连续：期望 8，收到 10；缺少 8–9。", "field": "sequence",
                          "next_sequence": 8, "missing": [8, 9], "missing_count": 2}]
    return error


def _public_paths() -> dict[str, Any]:
    """The public API's paths (public_site.OPENAPI), their errors in the one error shape."""
    paths = copy.deepcopy(public_site.OPENAPI["paths"])
    for path in paths.values():
        for method in path.values():
            method["security"] = []
            method.setdefault("tags", ["public"])
            for status, answer in method["responses"].items():
                if status.startswith(("4", "5")):
                    answer.setdefault("content", {"application/json": {"schema": {"$ref": REF.format(model=ERROR)}}})
    return paths


def build_document() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    _schema_of(ErrorAnswer, schemas, "serialization")
    schemas[ERROR] = schemas.pop(ErrorAnswer.__name__)
    schemas[ERROR]["title"] = ERROR
    schemas[ERROR]["examples"] = [ERROR_EXAMPLE]
    for name, description in ERROR_FIELDS.items():
        schemas[ERROR]["properties"][name]["description"] = description
    schemas[SEQUENCE_ERROR] = _sequence_error(schemas)
    paths: dict[str, Any] = _public_paths()
    for operation in sorted(OPERATIONS, key=lambda op: (op.path, op.method)):
        paths.setdefault(f"/api/v1/exchange{operation.path}", {})[operation.method.lower()] = \
            _operation_path(operation, schemas)
    paths["/api/v1/openapi.json"] = {"get": {"summary": "本文档（OpenAPI 3.1）", "security": [], "tags": ["public"],
                                             "responses": {"200": {"description": "OpenAPI 3.1 文档"}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "ICP与IP备案管理系统 接口", "version": "1", "description": DESCRIPTION},
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "tags": [{"name": "public", "description": "公共查询，无需凭证"},
                 {"name": "exchange", "description": "凭证信息（任何有效凭证）"},
                 {"name": "filings", "description": "备案：新增备案、网站、接入，变更，注销，核验结果，状态查询；"
                                                        "未备案网站报送，整改通知及其处理结果"},
                 {"name": "ip", "description": "IP 地址报备"}, {"name": "domain", "description": "域名报备"},
                 {"name": "events", "description": "事件队列、确认、全量同步与 Webhook"}],
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": {"bearer": {
            "type": "http", "scheme": "bearer", "bearerFormat": "<key_id>.<secret>",
            "description": "接口凭证：控制台“个人设置 › 接口凭证”创建，密钥只显示一次"}}},
    }


@cache
def _serialised() -> str:
    return json.dumps(build_document(), ensure_ascii=False)


@bp.route("/api/v1/openapi.json")
def document() -> Response:
    response = Response(_serialised(), mimetype="application/json")
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
