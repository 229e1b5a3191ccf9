"""The OpenAPI 3.1 document at /api/v1/openapi.json (issue 16 §6): the whole API, generated from the models that
validate the calls, with examples; and a property-based run of the API against it (schemathesis): generated calls
of every operation over HTTP, no 5xx, every answer as the document says (status, content type, body schema)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import select

from exchange_api.core import MAX_RECORDS, OPERATIONS
from extensions import db
from models import ApiCredential
from tests import exchange_helpers
from tests.exchange_helpers import credential_for

live_server = exchange_helpers.live_server  # the fixture
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]
#: generated calls per operation and mode: 39 operations × 2 modes × 5 (~380 calls) take ~17 s on SQLite or PostgreSQL
EXAMPLES = 5
#: the account whose credential calls the operations of a scope
CALLER = {"filings": "tj_isp", "events": "tj_isp", "": "tj_isp", "ip": "tj_ipreport", "domain": "tj_domain"}


@pytest.fixture
def document(client) -> dict[str, Any]:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    return response.get_json()


def _path(rule: str) -> str:
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule)


def test_the_document_is_openapi_3_1_with_the_bearer_scheme_and_the_error_shape(document) -> None:
    assert document["openapi"] == "3.1.0" and "凭证" in document["info"]["description"]
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "<key_id>.<secret>",
        "description": "接口凭证：控制台“个人设置 › 接口凭证”创建，密钥只显示一次"}
    error = document["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"code", "message"} and "field" in error["properties"]


def test_every_api_route_is_in_the_document_and_nothing_else(app, document) -> None:
    """The routes under /api/ (public and data-exchange) and the paths of the document are the same set."""
    routes = {(_path(rule.rule), method.lower()) for rule in app.url_map.iter_rules()
              if rule.rule.startswith("/api/") for method in rule.methods - {"HEAD", "OPTIONS"}}
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    assert routes == documented


def test_each_write_documents_the_envelope_its_record_and_an_example_that_validates(document) -> None:
    """Batches of 1..1,000 records of the operation's own model, atomic per record, with the sequence errors; the
    example is accepted by the very model that validates the calls."""
    writes = [operation for operation in OPERATIONS if operation.record]
    assert len(writes) >= 10
    for operation in writes:
        described = document["paths"][f"/api/v1/exchange{operation.path}"]["post"]
        body = described["requestBody"]["content"]["application/json"]
        records = body["schema"]["properties"]["records"]
        assert records["maxItems"] == MAX_RECORDS and records["minItems"] == 1
        assert records["items"] == {"$ref": f"#/components/schemas/{operation.record.__name__}"}
        assert body["schema"]["required"] == ["sequence", "records"] and described["x-atomic"] == "per_record"
        assert {"200", "400", "401", "403", "409", "411", "413", "429"} <= set(described["responses"]), operation.path
        for record in body["example"]["records"]:
            operation.record.model_validate(record)


def test_the_records_schemas_are_the_validating_models_own(document) -> None:
    """One source of truth: each record model's JSON Schema, as pydantic makes it, is the document's."""
    schemas = document["components"]["schemas"]
    for operation in OPERATIONS:
        if operation.record:
            own = operation.record.model_json_schema(ref_template="#/components/schemas/{model}")
            own.pop("$defs", None)
            assert schemas[operation.record.__name__] == own, operation.path


def test_every_field_of_a_record_is_described_in_chinese(document) -> None:
    """A field that is a model of its own is described by that model."""
    for name, schema in document["components"]["schemas"].items():
        if name.endswith(("Record", "Change", "Target")):
            for field, prop in schema.get("properties", {}).items():
                described = prop.get("description", "") + prop.get("title", "")
                assert "$ref" in prop or re.search("[\u4e00-\u9fff]", described), (name, field)


# --- the property-based run ----------------------------------------------------------------------------------------

def _tokens(app) -> dict[str, tuple[int, str]]:
    """A credential with every scope of its role for each calling account."""
    with app.app_context():
        return {username: credential_for(username) for username in set(CALLER.values())}


def _expected_sequence(app, credential_id: int) -> int:
    with app.app_context():
        return db.session.scalar(select(ApiCredential.next_sequence).where(ApiCredential.id == credential_id))


def _run(app, operation: Any, url: str, credential: tuple[int, str], mode: schemathesis.GenerationMode) -> int:
    """EXAMPLES generated calls of one operation; the body's sequence number made the expected one for every
    other call (so that records reach the workflow) and left as generated otherwise (gaps, repeats)."""
    calls = []

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def call(case: schemathesis.Case) -> None:
        if isinstance(case.body, dict) and isinstance(case.body.get("sequence"), int) and len(calls) % 2 == 0:
            case.body["sequence"] = _expected_sequence(app, credential[0])
        response = case.call(base_url=url, headers={"Authorization": credential[1]})
        calls.append(response.status_code)
        case.validate_response(response, checks=CHECKS)

    try:
        call()
    except Unsatisfiable:
        assert mode == schemathesis.GenerationMode.NEGATIVE  # nothing to get wrong: an operation without inputs
    return len(calls)


@pytest.mark.parametrize("mode", [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE])
def test_the_api_answers_as_its_document_says(app, users, live_server, document, mode) -> None:
    """Every data-exchange operation with generated calls from the right role's credential; the public API too."""
    app.config["EXCHANGE_RATE_LIMIT_PER_MINUTE"] = app.config["API_RATE_LIMIT_PER_MINUTE"] = 100_000
    schema = schemathesis.openapi.from_dict(document)
    tokens = _tokens(app)
    exercised = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path == "/api/v1/openapi.json":
            continue
        scope = next((op.scope for op in OPERATIONS if f"/api/v1/exchange{op.path}" == operation.path), "")
        exercised += _run(app, operation, live_server.url, tokens[CALLER[scope]], mode) > 0
    assert exercised >= (30 if mode == schemathesis.GenerationMode.POSITIVE else 25)

