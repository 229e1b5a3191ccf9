"""SPEC §10: the public lookup, filing info and certificate verification, pages and JSON API."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select, update

import certificates
import workflow
from extensions import db
from models import Certificate, Domain, Entity, FilingStatus, Website
from tests.filing_factories import entity_data, filed_by_isp, website_data
from tests.helpers import post, user_named

PERSONAL = ("13912345678", "11010519491231002X", "example.cn")  # the factories' phone, ID, e-mail domain


@pytest.fixture
def filed(app, users):
    """An approved filing with an IDN and an IP website, a draft, and a revoked filing."""
    with app.app_context():
        isp, bureau = user_named(users["isp"]), user_named(users["bureau"])
        sites = [website_data("alpha", [isp.id]),
                 website_data("idn", [isp.id], domains=["例子.中国"], home_url="http://例子.中国/"),
                 website_data("ip", [isp.id], domains=["203.0.113.7"], home_url="http://203.0.113.7/")]
        application = workflow.save_filing_draft(isp, entity_data(500, unit_name="天津阿尔法科技有限公司"), sites)
        workflow.submit_application(isp, application)
        workflow.approve(bureau, application)
        filed_by_isp(isp, 501)  # waiting for the bureau: not public
        revoked = filed_by_isp(isp, 502)
        workflow.approve(bureau, revoked)
        db.session.execute(update(Entity).where(Entity.id == revoked.entity_id).values(status=FilingStatus.REVOKED))
        db.session.execute(update(Website).where(Website.entity_id == revoked.entity_id)
                           .values(status=FilingStatus.REVOKED))
        db.session.commit()
        entity = db.session.get(Entity, application.entity_id)
        token = db.session.query(Certificate.token).filter_by(entity_id=entity.id).scalar()
        return {"number": entity.number, "website": entity.websites[0].number, "token": token,
                "revoked_domain": "www.site502.cn"}


def _lookup(client, query: str) -> list[dict]:
    response = client.get("/api/v1/public/lookup", query_string={"q": query})
    assert response.status_code == 200
    return response.get_json()["results"]


@pytest.mark.parametrize("query", ["www.alpha.cn", "WWW.Alpha.CN.", "https://alpha.cn:8443/x?y=1", "alpha.cn",
                                   "https://例子.中国:8443/x", "xn--fsqu00a.xn--fiqs8s", "203.0.113.7",
                                   "天津阿尔法", "天津阿尔法科技有限公司"])
def test_every_query_kind_finds_the_filing(client, filed, query: str) -> None:
    (record,) = _lookup(client, query)
    assert record["unit_name"] == "天津阿尔法科技有限公司" and record["entity_number"] == filed["number"]
    assert {d for w in record["websites"] for d in w["domains"]} >= {"www.alpha.cn", "xn--fsqu00a.xn--fiqs8s"}


def test_numbers_find_the_filing(client, filed) -> None:
    assert _lookup(client, filed["number"])[0]["entity_number"] == filed["number"]
    assert _lookup(client, filed["website"])[0]["entity_number"] == filed["number"]
    assert client.get(f"/api/v1/public/filings/{filed['number']}").get_json()["unit_name"] == "天津阿尔法科技有限公司"


@pytest.mark.parametrize("query", ["www.unfiled.cn", "www.site501.cn", "www.site502.cn", "津ICP备99999999号",
                                   "没有这个单位", "198.51.100.1"])
def test_unfiled_pending_and_revoked_find_nothing(client, filed, query: str) -> None:
    assert _lookup(client, query) == []


def test_missing_filing_is_404_json(client, filed) -> None:
    response = client.get("/api/v1/public/filings/津ICP备99999999号")
    assert response.status_code == 404 and "message" in response.get_json()


def test_no_personal_data_anywhere_public(client, filed) -> None:
    responses = [client.get("/", query_string={"q": "天津"}), client.get("/api/v1/public/lookup?q=天津"),
                 client.get("/api/v1/public/lookup?q=www.alpha.cn"),
                 client.get(f"/api/v1/public/filings/{filed['number']}"),
                 client.post("/api/v1/public/certificates/verify", data=filed["token"]),
                 post(client, "/certificates/verify", {"certificate": filed["token"]})]
    for response in responses:
        body = response.get_data(as_text=True)
        assert response.status_code == 200 and "天津阿尔法" in body
        for value in PERSONAL:
            assert value not in body, (response.request.path, value)


def test_independent_verifier_against_the_published_keys(client, filed) -> None:
    """Plain `cryptography`, not the app's code: the JWKS from the public URL verifies bazs.cert."""
    import base64

    def unb64(text: str) -> bytes:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))

    keys = {k["kid"]: k for k in client.get("/api/v1/public/keys").get_json()["keys"]}
    head, body, signature = filed["token"].split(".")
    header = json.loads(unb64(head))
    assert header["alg"] == "EdDSA"
    key = Ed25519PublicKey.from_public_bytes(unb64(keys[header["kid"]]["x"]))
    key.verify(unb64(signature), f"{head}.{body}".encode())
    assert json.loads(unb64(body))["entity_number"] == filed["number"]


def test_certificate_statuses(app, client, filed) -> None:
    verify = lambda token: client.post("/api/v1/public/certificates/verify", data=token).get_json()  # noqa: E731
    assert verify(filed["token"])["status"] == "valid"
    head, _body, signature = filed["token"].split(".")
    tampered = verify(f"{head}.{certificates.b64url(b'{}')}.{signature}")
    assert tampered["status"] == "invalid" and tampered["reason"]
    assert verify("garbage")["status"] == "invalid"
    with app.app_context():
        workflow.issuing.issue_certificates([db.session.query(Entity).filter_by(number=filed["number"]).one()])
        db.session.commit()
    assert verify(filed["token"])["status"] == "superseded"


def test_verify_page_needs_csrf_but_the_api_does_not(client, filed) -> None:
    assert client.post("/certificates/verify", data={"certificate": filed["token"]}).status_code == 400
    assert client.post("/api/v1/public/certificates/verify", data=filed["token"]).status_code == 200
    page = post(client, "/certificates/verify", {"certificate": filed["token"]}).get_data(as_text=True)
    assert "有效" in page and filed["number"] in page


def test_home_page_is_public_and_chinese(client) -> None:
    body = client.get("/").get_data(as_text=True)
    assert "是否备案查询" in body and "/login" in body and "/register" in body


def test_lookup_refuses_an_empty_query(client) -> None:
    assert client.get("/api/v1/public/lookup?q=").status_code == 400


def test_domains_of_cancelled_websites_are_not_public(app, client, filed) -> None:
    with app.app_context():
        db.session.scalars(select(Domain).where(Domain.name == "www.alpha.cn")).one().live = False
        db.session.commit()
    (record,) = _lookup(client, "alpha.cn")
    assert "www.alpha.cn" not in record["websites"][0]["domains"]


def test_code_tables_pages_api_and_download(client) -> None:
    import io

    from openpyxl import load_workbook

    names = [t["name"] for t in client.get("/api/v1/public/code-tables").get_json()["tables"]]
    assert len(names) == 13 and "provinces" in names and "domain_type" in names  # SPEC §10 + ip_registry, domain_type
    values = client.get("/api/v1/public/code-tables/access_method").get_json()["values"]
    assert [v["name"] for v in values] == ["专线", "主机托管", "虚拟主机", "其他"]
    assert "天津市" in client.get("/code-tables/provinces").get_data(as_text=True)
    download = client.get("/code-tables/provinces.xlsx")
    assert download.mimetype.startswith("application/vnd.openxmlformats")
    assert "filename*=UTF-8''" in download.headers["Content-Disposition"]
    rows = list(load_workbook(io.BytesIO(download.data)).active.iter_rows(values_only=True))
    assert len(rows) == 32 and ("120000", "天津市", "津") in rows
    assert client.get("/code-tables/nonsense").status_code == 404
    assert client.get("/api/v1/public/code-tables/nonsense").status_code == 404


def test_openapi_document_lists_the_endpoints(client) -> None:
    document = client.get("/api/v1/openapi.json").get_json()
    assert document["openapi"].startswith("3.") and "/api/v1/public/lookup" in document["paths"]


def test_api_rate_limit_answers_429_with_retry_after(app) -> None:
    app.config["API_RATE_LIMIT_PER_MINUTE"] = 3
    client = app.test_client()
    environ = {"REMOTE_ADDR": "192.0.2.99"}
    codes = [client.get("/api/v1/public/keys", environ_base=environ).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    limited = client.get("/api/v1/public/keys", environ_base=environ)
    assert int(limited.headers["Retry-After"]) >= 1 and "message" in limited.get_json()
    assert client.get("/api/v1/public/keys", environ_base={"REMOTE_ADDR": "192.0.2.100"}).status_code == 200


def test_api_errors_are_json(client) -> None:
    response = client.get("/api/v1/public/no-such-endpoint")
    assert response.status_code == 404 and "message" in response.get_json()


def test_the_lookup_page_shows_idn_domains_in_unicode(client, filed) -> None:
    """The API keeps the stored punycode; the page shows what a person reads, with the punycode beside."""
    page = client.get("/", query_string={"q": "例子.中国"}).get_data(as_text=True)
    assert "例子.中国 (xn--fsqu00a.xn--fiqs8s)" in page


def test_an_id_past_what_a_column_holds_is_not_found_not_an_error(client) -> None:
    """/notices/<int:…> with 23 digits: the driver cannot bind it (SQLite raised OverflowError, a 500)."""
    assert client.get("/api/v1/public/notices/99999999999999999999999").status_code == 404
    assert client.get("/api/v1/public/notices/9223372036854775807").status_code == 404  # past a 32-bit column
    assert client.get("/api/v1/public/notices/2147483647").status_code == 404  # the largest id: looked up
