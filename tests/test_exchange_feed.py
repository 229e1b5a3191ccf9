"""The event feed of the data-exchange API (issue 16 §4): does each outcome reach the users it concerns and no one
else (an ISP that stopped serving a filing gets nothing later)? Do paging, acknowledgement and redelivery hold
over real HTTP? Does the snapshot stream every filing the caller serves, once, after a header with the feed
position?"""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from sqlalchemy import select

import workflow
import workflow.ip_findings as ip_findings
from exchange_api import feed
from extensions import db
from models import Certificate, CertificateStatus, Entity, ExchangeEvent, ExchangeFeedHead
from tests.domain_factories import registrar as domain_registrar
from tests.domain_factories import report
from tests.exchange_helpers import call, credential_for
from tests.filing_factories import entity_data, filed_by_isp, website_data
from tests.helpers import user_named
from tests.ip_factories import block, reporter
from workflow.domain_reconcile import reconcile_domain_changes

HOLDERS = ("isp", "isp2", "isp_bj", "icp", "bureau")


@pytest.fixture
def tokens(app, people) -> dict[str, str]:
    """A credential (every scope its role may hold) for both 天津 ISPs, the 北京 ISP, the ICP owner and the bureau."""
    with app.app_context():
        return {key: credential_for(people[key])[1] for key in HOLDERS}


def feed_of(target: Any, token: str, **params: Any) -> list[dict[str, Any]]:
    status, body, _headers = call(target, "GET", "/events", token, params={"limit": 1000, **params})
    assert status == 200, body
    return body["events"]


def kinds(target: Any, token: str) -> list[str]:
    return [event["kind"] for event in feed_of(target, token)]


def only(target: Any, tokens: dict[str, str], wanted: dict[str, list[str]]) -> None:
    """Each holder's feed holds exactly the kinds listed for it (none for the others)."""
    assert {key: kinds(target, token) for key, token in tokens.items()} == {key: wanted.get(key, []) for key in tokens}


def _approved_by_two_isps(people: dict[str, str], n: int, sites: int = 1) -> int:
    """A filing of the first 天津 ISP whose websites the second one serves too, verified by it and approved."""
    isp, isp2, bureau = (user_named(people[key]) for key in ("isp", "isp2", "bureau"))
    websites = [website_data(f"site{n}x{index}", [isp.id, isp2.id]) for index in range(sites)]
    application = workflow.save_filing_draft(isp, entity_data(n), websites)
    workflow.submit_application(isp, application)
    workflow.isp_verify(isp2, application)
    workflow.approve(bureau, application)
    db.session.commit()
    return application.entity_id


# --- who gets what ------------------------------------------------------------------------------------------------

def test_an_approval_reaches_the_filing_isp_with_its_numbers_and_certificate_and_no_one_else(app, client, people,
                                                                                               tokens) -> None:
    with app.app_context():
        application = filed_by_isp(user_named(people["isp"]), 61)
        db.session.commit()
        workflow.approve(user_named(people["bureau"]), application)
        db.session.commit()
        number, entity_id = application.entity.number, application.entity_id
        certificate = db.session.scalar(select(Certificate.id).where(Certificate.entity_id == entity_id,
                                                                    Certificate.status == CertificateStatus.CURRENT))
    only(client, tokens, {"isp": ["application.approved"]})
    (event,) = feed_of(client, tokens["isp"])
    payload = event["payload"]
    assert (event["object_type"], event["object_id"]) == ("application", str(application.id))
    assert payload | {"domains": None} == {
        "application_id": application.id, "application_kind": "new_filing", "state": "approved",
        "entity_id": entity_id, "unit_name": "天津测试科技有限公司61", "status": "active", "number": number,
        "licence_number": None, "certificate_id": certificate, "domains": None,
        "websites": [{"id": payload["websites"][0]["id"], "number": f"{number}-1", "status": "active"}]}
    assert payload["domains"] == {"site61.cn": "unreported"}  # the registrant check's verdict (tests: "warn")


def test_a_return_by_the_isp_and_a_rejection_by_the_bureau_reach_the_owner_and_the_isp_with_reasons(
        app, client, people, tokens) -> None:
    with app.app_context():
        icp, isp2 = user_named(people["icp"]), user_named(people["isp2"])
        application = workflow.save_filing_draft(icp, entity_data(62), [website_data("site62", [isp2.id])])
        workflow.submit_application(icp, application)
        workflow.isp_return(isp2, application, "网站名称与主体不符")
        db.session.commit()
    only(client, tokens, {"icp": ["application.returned"], "isp2": ["application.returned"]})
    assert feed_of(client, tokens["icp"])[0]["payload"]["reasons"] == {"isp": "网站名称与主体不符"}
    with app.app_context():
        application = db.session.merge(application)
        workflow.submit_application(user_named(people["icp"]), application)
        workflow.isp_verify(user_named(people["isp2"]), application)
        workflow.reject(user_named(people["bureau"]), application, {"unit_name": "单位名称与证件不符"})
        db.session.commit()
    rejected = feed_of(client, tokens["isp2"])[-1]
    assert rejected["kind"] == "application.rejected" and rejected["payload"]["state"] == "draft"
    assert rejected["payload"]["reasons"] == {"unit_name": "单位名称与证件不符"}
    assert kinds(client, tokens["icp"]) == ["application.returned", "application.rejected"]
    assert kinds(client, tokens["isp"]) == kinds(client, tokens["bureau"]) == []


def test_an_isp_that_no_longer_serves_a_filing_gets_none_of_its_later_events(app, client, people, tokens) -> None:
    with app.app_context():
        entity_id = _approved_by_two_isps(people, 63)
        website = db.session.get(Entity, entity_id).websites[0]
        workflow.cancel_access(user_named(people["isp"]), website)  # at once: the second ISP still serves it
        db.session.commit()
        number = website.entity.number
        workflow.revoke_by_number(user_named(people["bureau"]), number, "提供虚假材料")
        db.session.commit()
    only(client, tokens, {"isp": ["application.approved"], "isp2": ["application.approved", "filing.revoked"]})
    revoked = feed_of(client, tokens["isp2"])[-1]
    assert revoked["payload"] | {"certificate_id": None} == {
        "entity_id": entity_id, "website_id": None, "number": number, "whole": True, "status": "revoked",
        "reason": "提供虚假材料", "certificate_id": None}


def test_a_cancelled_website_is_an_event_with_the_filings_new_certificate(app, client, people, tokens) -> None:
    with app.app_context():
        entity_id = _approved_by_two_isps(people, 64, sites=2)
        entity = db.session.get(Entity, entity_id)
        isp = user_named(people["isp"])
        application = workflow.request_cancellation(isp, entity, entity.websites[1], "不再运营")
        db.session.commit()
        workflow.approve(user_named(people["bureau"]), application)
        db.session.commit()
        current = db.session.scalar(select(Certificate.id).where(Certificate.entity_id == entity_id,
                                                                 Certificate.status == CertificateStatus.CURRENT))
        website_number = entity.websites[1].number
    for key in ("isp", "isp2"):
        assert kinds(client, tokens[key]) == ["application.approved", "filing.cancelled", "application.approved"]
    cancelled = feed_of(client, tokens["isp"])[1]["payload"]
    assert (cancelled["number"], cancelled["whole"], cancelled["status"]) == (website_number, False, "active")
    assert cancelled["certificate_id"] == current  # the filing's certificate re-issued without the website
    approved = feed_of(client, tokens["isp"])[2]["payload"]
    assert (approved["application_kind"], approved["certificate_id"]) == ("cancel_website", None)


def test_registrant_check_verdicts_reach_the_filings_isp(app, client, people, tokens) -> None:
    """Approved under "warn" with an unreported domain: the worker flags it; the registrar's report resolves it."""
    with app.app_context():
        application = filed_by_isp(user_named(people["isp"]), 65)
        db.session.commit()
        workflow.approve(user_named(people["bureau"]), application)
        db.session.commit()
        reconcile_domain_changes()
        report(domain_registrar("reg_feed"), "site65.cn", application.entity.certificate_number,
               registrant_name=application.entity.unit_name)
        reconcile_domain_changes()
    assert kinds(client, tokens["isp"]) == ["application.approved", "domain.flagged", "domain.resolved"]
    flagged, resolved = feed_of(client, tokens["isp"])[1:]
    assert (flagged["payload"]["domain"], flagged["payload"]["verdict"]) == ("site65.cn", "unreported")
    assert (resolved["payload"]["domain"], resolved["payload"]["verdict"]) == ("site65.cn", "consistent")
    assert kinds(client, tokens["isp2"]) == []


def test_ip_findings_reach_the_reporting_unit_when_opened_and_resolved(app, client, people, tokens) -> None:
    with app.app_context():
        isp = user_named(people["isp"])
        unit = reporter("ipr_feed")
        unit.isp_account_id = isp.id
        db.session.commit()
        unit_token = credential_for("ipr_feed")[1]
        workflow.approve(user_named(people["bureau"]), filed_by_isp(isp, 66))
        db.session.commit()
        ip_findings.recompute_findings()
        ip_findings.recompute_findings()  # unchanged: no new event
    (opened,) = feed_of(client, unit_token)
    assert opened["kind"] == "ip.finding_opened" and opened["object_type"] == "access"
    assert {key: opened["payload"][key] for key in ("kind", "code", "range")} == {
        "kind": "unreported", "code": "1063", "range": "203.0.113.1–203.0.113.20"}
    with app.app_context():
        block(user_named("ipr_feed"), "203.0.113.0", "203.0.113.255")
        ip_findings.recompute_findings()
    assert kinds(client, unit_token) == ["ip.finding_opened", "ip.finding_resolved"]
    assert "ip.finding_opened" not in kinds(client, tokens["isp"])


def test_users_without_a_credential_get_no_rows(app, people) -> None:
    """The feed is the API's: an outcome for users without a credential writes no event."""
    with app.app_context():
        workflow.approve(user_named(people["bureau"]), filed_by_isp(user_named(people["isp"]), 67))
        db.session.commit()
        assert db.session.scalar(select(db.func.count()).select_from(ExchangeEvent)) == 0


# --- paging, acknowledgement, redelivery --------------------------------------------------------------------------

def test_paging_acknowledgement_and_redelivery_over_http(app, live_server, people, tokens) -> None:
    with app.app_context():
        isp = user_named(people["isp"])
        applications = [filed_by_isp(isp, n) for n in range(70, 75)]
        db.session.commit()
        workflow.batch_approve(user_named(people["bureau"]), applications)
        db.session.commit()
    token = tokens["isp"]
    status, first, _ = call(live_server, "GET", "/events", token, params={"limit": 2})
    assert status == 200 and len(first["events"]) == 2 and first["more"] and first["after"] == 0
    ids = [event["id"] for event in first["events"]]
    assert ids == sorted(ids) and first["next_after"] == ids[-1]
    _, again, _ = call(live_server, "GET", "/events", token, params={"limit": 2})
    assert [event["id"] for event in again["events"]] == ids  # not acknowledged: delivered again
    status, acked, _ = call(live_server, "POST", "/events/ack", token, json={"up_to": ids[-1]})
    assert status == 200 and acked == {"acked_event_id": ids[-1]}
    _, rest, _ = call(live_server, "GET", "/events", token, params={"limit": 10})
    assert len(rest["events"]) == 3 and not rest["more"] and rest["acked_event_id"] == ids[-1]
    assert all(event["id"] > ids[-1] for event in rest["events"])
    assert call(live_server, "POST", "/events/ack", token, json={"up_to": ids[0]})[1] == {"acked_event_id": ids[-1]}
    with app.app_context():
        head = db.session.get(ExchangeFeedHead, 1).last_seq
    status, refused, _ = call(live_server, "POST", "/events/ack", token, json={"up_to": head + 1})
    assert status == 409 and refused["field"] == "up_to"
    _, reread, _ = call(live_server, "GET", "/events", token, params={"after": 0, "limit": 1})
    assert [event["id"] for event in reread["events"]] == ids[:1]


BAD_QUERIES = ({"limit": 0}, {"limit": 1001}, {"limit": "many"}, {"after": -1}, {"since": 3})
WITHOUT_SCOPE = (("GET", "/events", None), ("POST", "/events/ack", {"up_to": 0}),
                 ("PUT", "/webhook", {"url": "https://a.cn/"}), ("GET", "/webhook", None), ("DELETE", "/webhook", None))


def test_a_bad_query_is_a_400_naming_the_field(client, tokens) -> None:
    for params in BAD_QUERIES:
        status, body, _ = call(client, "GET", "/events", tokens["isp"], params=params)
        assert (status, body["field"]) == (400, next(iter(params))), params


def test_without_the_events_scope_or_a_credential_the_feed_is_refused(app, client, people) -> None:
    with app.app_context():
        token = credential_for(people["isp"], scopes=("filings",))[1]
    for method, path, body in WITHOUT_SCOPE:
        status, answer, _ = call(client, method, path, token, json=body)
        assert (status, answer["code"]) == (403, "403"), path
        assert call(client, method, path, None, json=body)[0] == 401


# --- the snapshot -------------------------------------------------------------------------------------------------

def _lines(response: requests.Response) -> list[dict[str, Any]]:
    return [json.loads(line) for line in response.iter_lines() if line]


def test_the_snapshot_streams_every_served_filing_once_after_the_feed_position(app, live_server, people, tokens,
                                                                               monkeypatch) -> None:
    """Pages of one website (so that the two-website filing spans pages); another ISP's filing and an ended one
    left out."""
    monkeypatch.setattr(feed, "SNAPSHOT_PAGE", 1)
    with app.app_context():
        isp, bureau = user_named(people["isp"]), user_named(people["bureau"])
        two_sites = _approved_by_two_isps(people, 80, sites=2)
        pending = filed_by_isp(isp, 81)
        ended = filed_by_isp(isp, 82)
        workflow.approve(bureau, ended)
        db.session.commit()
        workflow.revoke_by_number(bureau, ended.entity.number, "测试")
        workflow.approve(user_named(people["bureau_bj"]), filed_by_isp(user_named(people["isp_bj"]), 83, "110000"))
        db.session.commit()
        pending_id = pending.entity_id
    with requests.get(f"{live_server.url}/api/v1/exchange/snapshot", headers={"Authorization": tokens["isp"]},
                      stream=True, timeout=30) as response:
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("application/x-ndjson")
        lines = _lines(response)
    for line in lines:
        feed.SnapshotLine.model_validate(line)
    header, *filings, end = lines
    assert header["type"] == "header" and header["basis"] == "served"
    with app.app_context():
        assert header["feed_position"] == db.session.get(ExchangeFeedHead, 1).last_seq > 0
    assert end == {"type": "end", "filings": 2}
    assert sorted(line["entity_id"] for line in filings) == sorted([two_sites, pending_id])
    served = next(line for line in filings if line["entity_id"] == two_sites)
    assert served["status"] == "active" and served["number"].startswith("津ICP备") and served["certificate_id"]
    assert [len(site["accesses"]) for site in served["websites"]] == [2, 2]
    assert served["websites"][0]["domains"] == ["www.site80x0.cn", "site80x0.cn"]
    assert served["websites"][0]["accesses"][0] | {"id": 0, "isp_id": 0} == {
        "id": 0, "isp_id": 0, "isp": people["isp"], "method": "2", "server_province_code": "120000",
        "ip_ranges": ["203.0.113.1-203.0.113.20"]}
    other = served["websites"][0]["accesses"][1]  # another ISP's access: its name only, as in the console
    assert other["isp"] != people["isp"] and (other["method"], other["server_province_code"], other["ip_ranges"]) == (
        None, None, None)
    waiting = next(line for line in filings if line["entity_id"] == pending_id)
    assert waiting["number"] is None and waiting["application"]["state"] == "bureau_review"


def test_the_snapshot_of_an_owner_and_of_a_bureau(app, client, people, tokens) -> None:
    with app.app_context():
        icp, isp2 = user_named(people["icp"]), user_named(people["isp2"])
        entity_id = workflow.save_filing_draft(icp, entity_data(84), [website_data("site84", [isp2.id])]).entity_id
        db.session.commit()
    status, text, _headers = call(client, "GET", "/snapshot", tokens["icp"])
    header, filing, end = (json.loads(line) for line in text.splitlines())
    assert status == 200 and header["basis"] == "owned" and end["filings"] == 1
    assert filing["entity_id"] == entity_id and filing["application"]["state"] == "draft"
    status, body, _ = call(client, "GET", "/snapshot", tokens["bureau"])
    assert status == 403 and body["code"] == "403"
