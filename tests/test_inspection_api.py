"""Website inspection through the data-exchange API (issue 18 §3, §4): can an ISP report the domains and addresses
seen on its network and learn, record by record, which are filed, unfiled or not a value at all? Does it see the
rectification notices of exactly the websites it serves now — open first, paged by cursor — and can it answer
them, while an ISP that does not serve the website, or whose access ended, is refused? Do the notices reach its
event feed? Each call goes through the envelope (credential, scope, sequence numbers) over real HTTP."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

import workflow
from extensions import db
from models import RectificationAnswer, RectificationNotice, UnfiledSighting, Website
from tests.exchange_helpers import Caller, call, credential_for
from tests.helpers import user_named
from tests.inspection_factories import filed_website
from validators import normalise_domain
from workflow import inspections

MESSAGE = "请在首页底部展示备案号并链接至备案管理系统。"
CHINESE = normalise_domain("未备案.中国")  # as the registry keeps it: punycode


def outcomes(answer: dict[str, Any]) -> list[Any]:
    """Each record's result: its ids when accepted, its code when refused."""
    return [result["ids"] if result["status"] == "accepted" else result["code"] for result in answer["results"]]


@pytest.fixture
def world(app: Flask, people: dict[str, str], live_server: Any) -> dict[str, Any]:
    """Two 天津 websites served by both 天津 ISPs, one by the first only; a credential (every scope its role may hold)
    for each ISP, the 北京 ISP, the two bureaus and the ICP owner; the callers over real HTTP."""
    app.config["EXCHANGE_RATE_LIMIT_PER_MINUTE"] = 1_000_000
    with app.app_context():
        shared = [filed_website(people, isps=("isp", "isp2")).id for _ in range(2)]
        own = filed_website(people).id
        callers = {key: Caller(live_server, credential_for(people[key])[1])
                   for key in ("isp", "isp2", "isp_bj", "bureau", "bureau_bj", "icp")}
    return {"shared": shared, "own": own, "callers": callers, "people": people}


def _notice(app: Flask, people: dict[str, str], website_id: int, checks: tuple[str, ...] = ("number", "link"),
            days: int = 15) -> int:
    with app.app_context():
        website = db.session.get(Website, website_id)
        notice = inspections.issue_notice(user_named(people["bureau"]), website, list(checks), MESSAGE,
                                          inspections.beijing_today() + timedelta(days=days))
        db.session.commit()
        return notice.id


# --- 未备案网站 --------------------------------------------------------------------------------------------------

def test_an_isp_learns_per_record_which_values_are_filed(app: Flask, world: dict[str, Any]) -> None:
    """A filed domain (its bare name: the www. variant is filed), an address inside a filed access range, an
    unfiled domain and address, a Chinese domain, and a value that is neither: each answered on its own."""
    isp = world["callers"]["isp"]
    with app.app_context():
        filed = db.session.get(Website, world["own"]).domains[0].name  # www.siteN.cn
    records = [{"value": filed.removeprefix("www.")}, {"value": "203.0.113.7"}, {"value": "Shop.Unfiled-Example.CN"},
               {"value": "198.51.100.9"}, {"value": "未备案.中国"}, {"value": "not a domain!"}]
    answer = isp.write("/unfiled", records)
    assert answer["accepted"] == 5 and answer["refused"] == 1
    assert outcomes(answer) == [
        {"value": filed.removeprefix("www."), "result": "filed"}, {"value": "203.0.113.7", "result": "filed"},
        {"value": "shop.unfiled-example.cn", "result": "unfiled", "times": 1},
        {"value": "198.51.100.9", "result": "unfiled", "times": 1},
        {"value": CHINESE, "result": "unfiled", "times": 1}, "1002"]
    assert answer["results"][5]["field"] == "value" and answer["results"][5]["message"]
    again = isp.write("/unfiled", [{"value": "shop.unfiled-example.cn"}])
    assert outcomes(again) == [{"value": "shop.unfiled-example.cn", "result": "unfiled", "times": 2}]
    with app.app_context():
        sightings = {row.value: row.times for row in db.session.scalars(select(UnfiledSighting))}
    assert sightings == {"shop.unfiled-example.cn": 2, "198.51.100.9": 1, CHINESE: 1}


def test_a_bureau_reports_too_and_a_record_of_the_wrong_shape_is_refused_alone(world: dict[str, Any]) -> None:
    answer = world["callers"]["bureau"].write("/unfiled", [{"value": "bureau-seen.cn"}, {"value": 7},
                                                           {"value": "x.cn", "kind": "domain"}])
    assert outcomes(answer) == [{"value": "bureau-seen.cn", "result": "unfiled", "times": 1}, "1000", "1000"]


def test_an_icp_account_holding_the_filings_scope_is_refused_record_by_record(app: Flask,
                                                                              world: dict[str, Any]) -> None:
    """The scope lets the call in; the workflow's permission table refuses the owner (not a reporter): nothing
    stored."""
    answer = world["callers"]["icp"].write("/unfiled", [{"value": "a.cn"}, {"value": "b.cn"}])
    assert outcomes(answer) == ["1004", "1004"]
    with app.app_context():
        assert db.session.scalar(select(UnfiledSighting.id)) is None


def test_a_credential_without_the_filings_scope_gets_403(app: Flask, world: dict[str, Any]) -> None:
    with app.app_context():
        _id, events_only = credential_for(world["people"]["isp"], ("events",))
    status, body, _ = call(world["callers"]["isp"].target, "POST", "/unfiled", events_only,
                           json={"sequence": 1, "records": [{"value": "a.cn"}]})
    assert status == 403 and "filings" in body["message"]
    status, _body, _ = call(world["callers"]["isp"].target, "GET", "/rectifications", events_only)
    assert status == 403


# --- 整改通知: the list --------------------------------------------------------------------------------------------

def test_an_isp_sees_the_notices_of_the_websites_it_serves_now(app: Flask, world: dict[str, Any]) -> None:
    """Both 天津 ISPs see the notice of a website they both serve, only the first the one of its own website; the
    北京 ISP nothing; once the second ISP's access ends, the shared notice leaves its list too."""
    people, callers = world["people"], world["callers"]
    shared = _notice(app, people, world["shared"][0])
    own = _notice(app, people, world["own"], checks=("cert",))

    def ids(key: str) -> list[int]:
        status, body = callers[key].read("/rectifications")
        assert status == 200, body
        return [notice["id"] for notice in body["notices"]]

    assert ids("isp") == [shared, own] and ids("isp2") == [shared] and ids("isp_bj") == []
    assert ids("bureau") == [shared, own] and ids("bureau_bj") == []
    with app.app_context():
        workflow.cancel_access(user_named(people["isp2"]), db.session.get(Website, world["shared"][0]))
        db.session.commit()
    assert ids("isp2") == [] and ids("isp") == [shared, own]


def test_a_notice_carries_the_website_the_findings_and_the_answers(app: Flask, world: dict[str, Any]) -> None:
    notice_id = _notice(app, world["people"], world["own"], checks=("number",))
    callers = world["callers"]
    callers["isp"].write("/rectifications/answers", [{"notice_id": notice_id, "result": "rectified",
                                                      "detail": "已在首页底部展示备案号"}])
    status, body = callers["isp"].read("/rectifications")
    assert status == 200
    [notice] = body["notices"]
    with app.app_context():
        website = db.session.get(Website, world["own"])
        number, domains = website.number, sorted(domain.name for domain in website.domains)
    assert notice["website_number"] == number and sorted(notice["domains"]) == domains
    assert notice["checks"] == ["number"] and notice["message"] == MESSAGE and notice["state"] == "answered"
    assert notice["overdue"] is False
    assert notice["deadline"] == (inspections.beijing_today() + timedelta(days=15)).isoformat()
    assert [(a["isp"], a["result"], a["result_words"], a["detail"]) for a in notice["answers"]] == [
        (world["people"]["isp"], "rectified", "已整改", "已在首页底部展示备案号")]
    assert body["next_cursor"] is None


def test_open_notices_come_first_and_the_cursor_pages_through_all(app: Flask, world: dict[str, Any]) -> None:
    """Three notices: the first answered, the second open, the third closed → open, answered, closed; one a page,
    the cursor visits each once; the state filter keeps one state; an overdue notice says so."""
    people, bureau, isp = world["people"], world["callers"]["bureau"], world["callers"]["isp"]
    first, second = (_notice(app, people, website_id) for website_id in world["shared"])
    third = _notice(app, people, world["own"])
    isp.write("/rectifications/answers", [{"notice_id": first, "result": "filing_updated"}])
    with app.app_context():
        inspections.close_notice(user_named(people["bureau"]), db.session.get(RectificationNotice, third))
        # time has passed
        db.session.get(RectificationNotice, second).deadline = inspections.beijing_today() - timedelta(days=1)
        db.session.commit()
    seen, cursor = [], None
    for _ in range(4):
        status, body = bureau.read("/rectifications", limit=1, **({"cursor": cursor} if cursor else {}))
        assert status == 200, body
        seen += [(notice["id"], notice["state"], notice["overdue"]) for notice in body["notices"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [(second, "open", True), (first, "answered", False), (third, "closed", False)]
    status, body = bureau.read("/rectifications", state="closed")
    assert [notice["id"] for notice in body["notices"]] == [third]


def test_bad_list_parameters_are_a_400(world: dict[str, Any]) -> None:
    for params in ({"cursor": "9.1"}, {"cursor": "x"}, {"limit": 0}, {"limit": 1000}, {"state": "lost"},
                   {"other": "1"}):
        status, body = world["callers"]["isp"].read("/rectifications", **params)
        assert status == 400 and body["message"], params


# --- 整改通知: the answers ------------------------------------------------------------------------------------------

def test_answers_are_recorded_or_refused_with_their_codes(app: Flask, world: dict[str, Any]) -> None:
    """An ISP serving the website answers (and may answer again); the 北京 ISP and an unknown notice: 1004; a
    dispute without its explanation: 1002 on `detail`; an unknown result: 1000; a closed notice: 1008."""
    people, callers = world["people"], world["callers"]
    notice_id = _notice(app, people, world["shared"][0])
    closed = _notice(app, people, world["shared"][1])
    with app.app_context():
        inspections.close_notice(user_named(people["bureau"]), db.session.get(RectificationNotice, closed))
        db.session.commit()
    answer = callers["isp"].write("/rectifications/answers", [
        {"notice_id": notice_id, "result": "rectified", "detail": "已整改"},
        {"notice_id": notice_id, "result": "disputed"},
        {"notice_id": notice_id, "result": "fixed"},
        {"notice_id": 999_999, "result": "rectified"},
        {"notice_id": closed, "result": "rectified"},
        {"notice_id": notice_id, "result": "disputed", "detail": "网站首页已展示备案号，检查时网络异常"}])
    got = outcomes(answer)
    assert got[0]["notice_id"] == notice_id and got[0]["state"] == "answered" and got[5]["answer_id"] > got[0][
        "answer_id"]
    assert got[1:5] == ["1002", "1000", "1004", "1008"]
    assert answer["results"][1]["field"] == "detail"
    other = callers["isp_bj"].write("/rectifications/answers", [{"notice_id": notice_id, "result": "rectified"}])
    assert outcomes(other) == ["1004"]
    bureau = callers["bureau"].write("/rectifications/answers", [{"notice_id": notice_id, "result": "rectified"}])
    assert outcomes(bureau) == ["1004"]  # the bureau closes notices; it does not answer them
    with app.app_context():
        assert [a.result.value for a in db.session.scalars(select(RectificationAnswer))] == ["rectified", "disputed"]


def test_an_isp_whose_access_ended_can_no_longer_answer(app: Flask, world: dict[str, Any]) -> None:
    people, callers = world["people"], world["callers"]
    notice_id = _notice(app, people, world["shared"][0])
    with app.app_context():
        workflow.cancel_access(user_named(people["isp2"]), db.session.get(Website, world["shared"][0]))
        db.session.commit()
    answer = callers["isp2"].write("/rectifications/answers", [{"notice_id": notice_id, "result": "access_stopped"}])
    assert outcomes(answer) == ["1004"]


def test_a_repeated_sequence_number_records_the_answer_once(app: Flask, world: dict[str, Any]) -> None:
    notice_id = _notice(app, world["people"], world["own"])
    isp = world["callers"]["isp"]
    body = {"sequence": 1, "records": [{"notice_id": notice_id, "result": "rectified"}]}
    first = call(isp.target, "POST", "/rectifications/answers", isp.token, json=body)
    again = call(isp.target, "POST", "/rectifications/answers", isp.token, json=body)
    assert first[0] == again[0] == 200 and first[1] == again[1] and again[2]["X-Exchange-Replayed"] == "true"
    with app.app_context():
        assert len(db.session.scalars(select(RectificationAnswer)).all()) == 1


# --- the feed and the document -------------------------------------------------------------------------------------

def test_notices_issued_answered_and_closed_reach_the_isps_feed(app: Flask, world: dict[str, Any]) -> None:
    people, callers = world["people"], world["callers"]
    notice_id = _notice(app, people, world["shared"][0])
    callers["isp"].write("/rectifications/answers", [{"notice_id": notice_id, "result": "rectified"}])
    with app.app_context():
        inspections.close_notice(user_named(people["bureau"]), db.session.get(RectificationNotice, notice_id))
        db.session.commit()

    def feed(key: str) -> list[tuple[str, Any]]:
        status, body = callers[key].read("/events", limit=1000)
        assert status == 200, body
        return [(event["kind"], event["payload"].get("notice_id")) for event in body["events"]
                if event["kind"].startswith("rectification.")]

    expected = [("rectification.issued", notice_id), ("rectification.answered", notice_id),
                ("rectification.closed", notice_id)]
    assert feed("isp") == feed("isp2") == expected
    assert feed("isp_bj") == []


def test_the_openapi_document_describes_the_three_operations(client) -> None:
    document = client.get("/api/v1/openapi.json").get_json()
    unfiled = document["paths"]["/api/v1/exchange/unfiled"]["post"]
    record = unfiled["requestBody"]["content"]["application/json"]["schema"]["properties"]["records"]["items"]
    assert record == {"$ref": "#/components/schemas/UnfiledRecord"}
    assert "value" in document["components"]["schemas"]["UnfiledRecord"]["properties"]
    listed = document["paths"]["/api/v1/exchange/rectifications"]["get"]
    assert {parameter["name"] for parameter in listed["parameters"]} == {"cursor", "state", "limit"}
    answers = document["paths"]["/api/v1/exchange/rectifications/answers"]["post"]
    schema = document["components"]["schemas"]["AnswerRecord"]
    assert answers["operationId"] == "answer_rectifications" and set(schema["required"]) == {"notice_id", "result"}
