"""Issue 11 (12): hostile input gets a clear answer, never a 500 — certificates whose header has a
list or object `kid` or nests 5,000 levels, and forged page, size and filter arguments on every
console list and export."""

from __future__ import annotations

import json

import pytest
from flask import Flask
from markupsafe import escape

import certificates
from certificates import CertificateError, KeyRing, b64url
from tests.helpers import post

PAYLOAD = {"certificate_id": "c-1", "entity_number": "津ICP备26000001号"}


def _with_header(header_json: str) -> str:
    return f"{b64url(header_json.encode())}.{b64url(json.dumps(PAYLOAD).encode())}.{b64url(b'x' * 64)}"


HOSTILE_CERTIFICATES = {
    "kid list": _with_header('{"alg": "EdDSA", "kid": ["a", "b"]}'),
    "kid object": _with_header('{"alg": "EdDSA", "kid": {"x": 1}}'),
    "kid null": _with_header('{"alg": "EdDSA", "kid": null}'),
    "alg list": _with_header('{"alg": ["EdDSA"], "kid": "k"}'),
    "nested header": _with_header('{"alg": "EdDSA", "kid": "k", "x": ' + "[" * 5000 + "]" * 5000 + "}"),
    "nested payload": ".".join([b64url(b'{"alg": "EdDSA", "kid": "k"}'),
                                b64url(("[" * 5000 + "]" * 5000).encode()), b64url(b"x" * 64)]),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_CERTIFICATES))
def test_hostile_certificate_is_invalid_with_a_reason(tmp_path, name: str) -> None:
    ring = KeyRing.at(tmp_path)
    with pytest.raises(CertificateError) as refused:
        certificates.verify(HOSTILE_CERTIFICATES[name], ring.jwks())
    assert refused.value.code in {"malformed", "bad_algorithm"} and refused.value.message


@pytest.mark.parametrize("name", sorted(HOSTILE_CERTIFICATES))
def test_hostile_certificate_over_the_api_and_the_page(client, name: str) -> None:
    token = HOSTILE_CERTIFICATES[name]
    answer = client.post("/api/v1/public/certificates/verify", data=token)
    assert answer.status_code == 200
    assert answer.get_json()["status"] == "invalid" and answer.get_json()["reason"]
    page = post(client, "/certificates/verify", {"certificate": token})
    assert page.status_code == 200 and str(escape(answer.get_json()["reason"])) in page.get_data(as_text=True)


def test_a_string_kid_of_another_key_keeps_its_own_reason(tmp_path) -> None:
    ring = KeyRing.at(tmp_path)
    with pytest.raises(CertificateError) as refused:
        certificates.verify(_with_header('{"alg": "EdDSA", "kid": "someone-else"}'), ring.jwks())
    assert refused.value.code == "unknown_key"


# --- console lists and exports ----------------------------------------------------------------------

FORGED_ARGUMENTS = ("flt0_0=bogus", "flt1_0=", "flt99_0=x", "flt0_99=x", "page=99999999999999999999",
                    "page=-5", "page=abc", "page_size=99999999999999999999", "page_size=-1", "sort=999",
                    "sort=-1", "desc=x", "search=%00")


def _list_and_export_paths(app: Flask) -> list[str]:
    """Every console list (`*.index_view` under /admin/<view>/) and export of the URL map."""
    paths = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.endswith(".index_view") and rule.rule.count("/") == 3:
            paths.add(rule.rule)
        elif rule.endpoint.endswith(".export") and "GET" in rule.methods:  # 专项查询's export is a POST (its reason)
            paths.add(rule.rule.replace("<export_type>", "xlsx"))
    return sorted(paths)


def test_the_url_map_has_the_lists(app) -> None:
    paths = _list_and_export_paths(app)
    assert "/admin/filings/" in paths and "/admin/audit_log/export/xlsx/" in paths and len(paths) > 20


@pytest.mark.parametrize("role", ["miit", "bureau", "isp", "icp", "content_admin"])
def test_forged_list_arguments_never_give_500(app, as_user, role: str) -> None:
    """Each forged argument on each list and export: 200 (first page, the bad filter dropped with a
    message) or 403 for a view the role may not open — the test client raises on any 500."""
    client = as_user(role)
    answers = {}
    for path in _list_and_export_paths(app):
        for query in FORGED_ARGUMENTS:
            answers[f"{path}?{query}"] = client.get(f"{path}?{query}").status_code
    assert set(answers.values()) <= {200, 400, 403}, {k: v for k, v in answers.items() if v not in {200, 400, 403}}
    assert {v for k, v in answers.items() if k.endswith("search=%00")} <= {400, 403}  # NUL: refused up front
    assert 200 in answers.values()


def test_a_bogus_filter_value_is_dropped_with_a_message(as_user) -> None:
    client = as_user("miit")
    listing = client.get("/admin/outbox/?flt0_0=bogus").get_data(as_text=True)
    assert "bogus" in listing  # Flask-Admin's "invalid filter value" message names it
    assert client.get("/admin/outbox/?page=99999999999999999999").status_code == 200


def test_nul_bytes_are_refused_before_any_view(client) -> None:
    """PostgreSQL cannot hold a NUL character: a query string or form value with one is refused with 400."""
    assert client.get("/?q=%00").status_code == 400
    assert client.get("/api/v1/public/lookup?q=a%00b").status_code == 400
    assert client.post("/login", data={"username": "miit\x00", "password": "x"}).status_code == 400
    assert client.get("/?q=ok").status_code == 200


@pytest.mark.parametrize("forged", ["99999999999999999999", str(2**63), str(2**31), "0", "-1"])
def test_an_id_no_column_can_hold_is_404_not_500(as_user, forged: str) -> None:
    """A record's page by an id wider than its column (64 bits on SQLite's driver, the Integer ids' 32 bits on
    PostgreSQL) or not positive: no such record, on a BigId table (users) and an Integer one (outbox)."""
    client = as_user("miit")
    assert client.get(f"/admin/management_users/edit/?id={forged}").status_code in {302, 404}  # to the list
    assert client.get(f"/admin/outbox/details/?id={forged}").status_code in {302, 404}
