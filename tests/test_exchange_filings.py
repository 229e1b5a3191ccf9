"""The filing operations of the data-exchange API (issue 16 §2): every operation accepted and refused — wrong
scope, not served, wrong state, bad field, unknown code — a batch whose bad records leave the others accepted,
an ISP that cannot touch filings it does not serve, an ICP credential filing only for itself; over real HTTP for
the batches, with the test client elsewhere. And the new filing's loop (submit → ISP return → corrected →
resubmitted → approved) as a state machine driven through the API, the registry's invariants checked each step.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

import workflow
from extensions import db
from models import Application, ApplicationKind, ApplicationState, Entity, FilingStatus, IspVerification, Role
from tests.exchange_helpers import LiveServer, call, credential_for, live_server  # noqa: F401  (fixture)
from tests.filing_factories import entity_data, website_data
from tests.helpers import make_user, user_named
from workflow import filing_batch
from workflow.checks import preloaded_checks
from workflow.errors import WorkflowError
from workflow.filing_batch import Filed, one_by_one, submit_new_filings

_serial = itertools.count(70_000)


def entity_json(n: int, **overrides: Any) -> dict[str, Any]:
    return {**vars(entity_data(n)), **overrides}


def website_json(name: str, isps: tuple[str | None, ...] = (None,), **overrides: Any) -> dict[str, Any]:
    """A website record; each access names its ISP by account name (None: the caller)."""
    accesses = [{"method": "2", "server_province_code": "120000",
                 "ip_ranges": [{"start": "203.0.113.1", "end": "203.0.113.20"}], **({"isp": isp} if isp else {})}
                for isp in isps]
    return {"name": f"{name}网站", "domains": [f"www.{name}.cn", f"{name}.cn"], "home_url": f"http://www.{name}.cn/",
            "service_content": "2", "accesses": accesses, **overrides}


def filing_json(n: int | None = None, isps: tuple[str | None, ...] = (None,), **entity: Any) -> dict[str, Any]:
    n = next(_serial) if n is None else n
    return {"entity": entity_json(n, **entity), "websites": [website_json(f"api{n}", isps)]}


@dataclass
class Caller:
    """One credential's calls, with its sequence numbers."""

    target: FlaskClient | LiveServer
    token: str
    sequence: int = 1
    answers: list[Any] = field(default_factory=list)

    def post(self, path: str, *records: dict[str, Any]) -> list[dict[str, Any]]:
        status, body, _ = call(self.target, "POST", path, self.token, json={"sequence": self.sequence,
                                                                             "records": list(records)})
        assert status == 200, body
        assert body["atomic"] == "per_record" and body["next_sequence"] == self.sequence + 1
        self.sequence += 1
        return body["results"]

    def one(self, path: str, record: dict[str, Any]) -> dict[str, Any]:
        return self.post(path, record)[0]

    def status(self, **params: str) -> tuple[int, Any]:
        status, body, _ = call(self.target, "GET", "/filings/status", self.token, params=params)
        return status, body


def caller(app, target: FlaskClient | LiveServer, username: str, scopes: tuple[str, ...] | None = None) -> Caller:
    with app.app_context():
        return Caller(target, credential_for(username, scopes)[1])


def refused(result: dict[str, Any], code: str, field_name: str | None = None) -> bool:
    assert result["status"] == "refused", result
    assert result["code"] == code and result.get("field") == field_name, result
    assert result["message"] and all(p["code"] and p["message"] for p in result["problems"])
    return True


def approved_filing(people: dict[str, str], n: int, isps: tuple[str, ...] = ("isp",)) -> Entity:
    """An ICP owner's filing verified by its ISPs and approved by the 天津 bureau, committed."""
    owner = user_named(people["icp"])
    application = workflow.save_filing_draft(owner, entity_data(n), [website_data(
        f"old{n}", [user_named(people[key]).id for key in isps])])
    workflow.submit_application(owner, application)
    for key in isps:
        workflow.isp_verify(user_named(people[key]), application)
    workflow.approve(user_named(people["bureau"]), application)
    db.session.commit()
    return application.entity


# --- new filings ---------------------------------------------------------------------------------------------

@pytest.fixture
def server(request: pytest.FixtureRequest) -> LiveServer:
    """The live server fixture (imported from exchange_helpers) under another name."""
    return request.getfixturevalue("live_server")


def test_a_batch_over_http_keeps_the_good_records_and_refuses_each_bad_one(app, people, server):
    isp = caller(app, server, people["isp"])
    good = [filing_json() for _ in range(3)]
    taken_domain = filing_json()
    taken_domain["websites"][0]["domains"] = ["www." + good[0]["websites"][0]["domains"][1]]
    results = isp.post("/filings", good[0], filing_json(unit_nature="99"), good[1], taken_domain,
                       {**filing_json(), "surprise": 1}, filing_json(certificate_number=good[1]["entity"][
                           "certificate_number"]), good[2], filing_json(responsible_mobile="12345"))
    assert [r["status"] for r in results] == ["accepted", "refused", "accepted", "refused", "refused", "refused",
                                              "accepted", "refused"]
    assert refused(results[1], "1003", "entity.unit_nature")
    assert refused(results[3], "1005", "websites.0.domains")
    assert refused(results[4], "1000", "surprise")
    assert refused(results[5], "1006", "entity.certificate_number")
    assert refused(results[7], "1002", "entity.responsible_mobile")
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Entity)) == 3
        for result in (results[0], results[2], results[6]):
            application = db.session.get(Application, result["ids"]["application_id"])
            assert application.entity_id == result["ids"]["entity_id"]
            # the submitting ISP counts as verified: straight to the bureau, as from the console
            assert application.state == ApplicationState.BUREAU_REVIEW
            assert application.created_by_id == user_named(people["isp"]).id and application.entity.owner_id is None


def test_every_problem_of_a_record_is_listed_with_its_code(app, people, client):
    isp = caller(app, client, people["isp"])
    record = filing_json(province_code="990000", responsible_email="nope")
    record["websites"][0]["service_content"] = "zz"
    record["websites"][0]["accesses"][0]["method"] = "zz"
    (result,) = isp.post("/filings", record)
    problems = {(p["field"], p["code"]) for p in result["problems"]}
    assert {("entity.province_code", "1003"), ("entity.responsible_email", "1002"),
            ("websites.0.service_content", "1003"), ("websites.0.accesses.0.method", "1003")} <= problems


def test_an_isp_files_only_for_websites_it_serves(app, people, client):
    isp = caller(app, client, people["isp"])
    (result,) = isp.post("/filings", filing_json(isps=(people["isp2"],)))
    assert refused(result, "1012", "websites")
    (unknown,) = isp.post("/filings", filing_json(isps=(None, "no_such_isp")))
    assert refused(unknown, "1003", "websites.0.accesses.1.isp")
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Entity)) == 0


def test_an_icp_credential_files_only_for_itself(app, people, client):
    icp = caller(app, client, people["icp"])
    (result,) = icp.post("/filings", filing_json(isps=(people["isp"],)))
    assert result["status"] == "accepted"
    (no_isp,) = icp.post("/filings", filing_json())  # an ICP user is no access provider
    assert refused(no_isp, "1003", "websites.0.accesses.0.isp")
    with app.app_context():
        application = db.session.get(Application, result["ids"]["application_id"])
        assert application.entity.owner_id == user_named(people["icp"]).id
        assert application.state == ApplicationState.ISP_REVIEW  # its ISP verifies next
        make_user("other_icp", Role.ICP)
    other = caller(app, client, "other_icp")
    (foreign,) = other.post("/filings", {**filing_json(isps=(people["isp"],)),
                                         "application_id": result["ids"]["application_id"]})
    assert refused(foreign, "1004")


def test_without_the_filings_scope_nothing_is_read_or_written(app, people, client):
    events_only = caller(app, client, people["isp"], scopes=("events",))
    status, body, _ = call(client, "POST", "/filings", events_only.token, json={"sequence": 1,
                                                                                "records": [filing_json()]})
    assert status == 403 and body["code"] == "403"
    assert events_only.status(number="津ICP备1号")[0] == 403
    reporter = caller(app, client, people["ip_reporter"])
    assert call(client, "POST", "/filings", reporter.token, json={"sequence": 1, "records": [filing_json()]})[0] == 403


# --- the batch's set-based writer writes what the console's path writes -----------------------------------------

NOT_COMPARED = re.compile(r"^(id|seq|at|.*_id|.*_at|.*hash.*|bureau_since|certificate_number|token|changes)$")


def _numbered(table: Any) -> bool:
    """Tables whose rows have an integer id (the marks below compare ids)."""
    return "id" in table.c and table.c.id.type.python_type is int


def _table_rows(low: dict[str, int], high: dict[str, int] | None = None) -> dict[str, list[tuple[Any, ...]]]:
    """The rows of every table with ids in (low, high], without ids, instants and hashes, serial numbers masked."""
    found = {}
    for table in filter(_numbered, db.metadata.sorted_tables):
        columns = [c for c in table.c if not NOT_COMPARED.match(c.name)]
        if not columns:
            continue
        query = select(*columns).where(table.c.id > low[table.name])
        if high is not None:
            query = query.where(table.c.id <= high[table.name])
        found[table.name] = sorted((tuple(re.sub(r"\d{5}", "N", v) if isinstance(v, str) else v for v in row)
                                    for row in db.session.execute(query)), key=repr)
    return found


def _marks() -> dict[str, int]:
    return {table.name: db.session.scalar(select(func.max(table.c.id))) or 0
            for table in filter(_numbered, db.metadata.sorted_tables)}


@pytest.mark.parametrize("who", ["isp", "icp"])
def test_the_batch_writes_what_one_by_one_writes_in_every_table(people, ctx, who):
    isp, isp2 = user_named(people["isp"]), user_named(people["isp2"])
    actor = user_named(people[who])

    def filings(base: int) -> list[tuple[workflow.EntityData, list[workflow.WebsiteData]]]:
        return [(entity_data(base), [website_data(f"cmp{base}", [isp.id], preapprovals=[("1", "津审〔2026〕1号")])]),
                (entity_data(base + 1), [website_data(f"cmp{base + 1}", [isp.id, isp2.id]),
                                         website_data(f"cmpb{base + 1}", [isp.id])]),
                (entity_data(base + 2), [website_data(f"cmp{base + 2}", [isp.id], bbs=True, bbs_sections="论坛")]),
                (entity_data(base + 3), [website_data(f"cmp{base + 3}", [isp.id], service_content="zz")])]

    start = _marks()
    alone = one_by_one(actor, filings(72_100))
    middle = _marks()
    batch = submit_new_filings(actor, filings(72_200))
    assert [type(outcome) for outcome in alone] == [type(outcome) for outcome in batch]
    assert isinstance(batch[0], Filed) and isinstance(batch[3], WorkflowError)
    written_alone, written_batch = _table_rows(start, middle), _table_rows(middle)
    assert sum(map(len, written_batch.values())) > 20
    for name, rows in written_alone.items():
        assert written_batch[name] == rows, name


def test_a_value_taken_meanwhile_sends_the_batch_one_by_one(people, ctx, monkeypatch):
    """What a concurrent writer taking a domain between the checks and the INSERT does (the unique index refuses
    the multi-row INSERT): the batch's writes roll back and each filing goes alone, the loser refused."""
    isp = user_named(people["isp"])
    taken = [(entity_data(72_300), [website_data("race72300", [isp.id])])]
    assert isinstance(one_by_one(isp, taken)[0], Filed)

    def racing_write(actor, accepted):  # the checks ran before the other writer committed: the INSERT fails
        assert len(accepted) == 2
        raise IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed: domains.name"))

    monkeypatch.setattr(filing_batch, "preloaded_checks", lambda filings: preloaded_checks([]))
    monkeypatch.setattr(filing_batch, "_write", racing_write)
    outcomes = submit_new_filings(isp, [(entity_data(72_301), [website_data("race72300", [isp.id])]),
                                        (entity_data(72_302), [website_data("race72302", [isp.id])])])
    assert isinstance(outcomes[0], WorkflowError) and outcomes[0].field == "websites-0-domains"
    assert isinstance(outcomes[1], Filed)


# --- the ISP's verification -----------------------------------------------------------------------------------

def test_verification_by_the_named_isp_only_once_and_a_return_needs_a_reason(app, people, client):
    icp, isp, isp2 = (caller(app, client, people[key]) for key in ("icp", "isp", "isp2"))
    first, second = (r["ids"]["application_id"] for r in icp.post(
        "/filings", filing_json(isps=(people["isp"],)), filing_json(isps=(people["isp"],))))
    assert refused(isp2.one("/verifications", {"application_id": first, "result": "verify"}), "1004")
    assert refused(isp.one("/verifications", {"application_id": 2**31 - 1, "result": "verify"}), "1004")
    verified = isp.one("/verifications", {"application_id": first, "result": "verify"})
    assert verified["ids"] == {"application_id": first, "state": "bureau_review"}
    assert refused(isp.one("/verifications", {"application_id": first, "result": "verify"}), "1008")
    assert refused(isp.one("/verifications", {"application_id": second, "result": "return"}), "1002", "reason")
    returned = isp.one("/verifications", {"application_id": second, "result": "return", "reason": "手机号码有误"})
    assert returned["ids"]["state"] == "draft"
    assert refused(isp.one("/verifications", {"application_id": second, "result": "maybe"}), "1000", "result")


def test_under_the_block_policy_an_unreported_domain_stops_the_verification(app, people, client):
    app.config["DOMAIN_REGISTRANT_CHECK"] = "block"
    icp, isp = caller(app, client, people["icp"]), caller(app, client, people["isp"])
    (filed,) = icp.post("/filings", filing_json(isps=(people["isp"],)))
    result = isp.one("/verifications", {"application_id": filed["ids"]["application_id"], "result": "verify"})
    assert refused(result, "1011") and "未报备" in result["message"]


# --- after approval -----------------------------------------------------------------------------------------------

def test_a_new_website_by_the_serving_isp(app, people, client):
    with app.app_context():
        number = approved_filing(people, 71_001).number
    isp, isp2 = caller(app, client, people["isp"]), caller(app, client, people["isp2"])
    result = isp.one("/websites", {"number": number, "website": website_json("extra71001")})
    assert result["status"] == "accepted" and set(result["ids"]) == {"application_id", "website_id"}
    assert refused(isp2.one("/websites", {"number": number, "website": website_json("x71001")}), "1012", "number")
    assert refused(isp.one("/websites", {"number": "津ICP备0000000号", "website": website_json("y")}), "1004",
                   "number")
    with app.app_context():
        number2 = approved_filing(people, 71_002).number
    lonely = isp.one("/websites", {"number": number2, "website": website_json("z71002", isps=(people["isp2"],))})
    assert refused(lonely, "1012", "website.accesses")


def test_changes_of_each_kind_refused_while_one_is_in_progress(app, people, client):
    with app.app_context():
        entity = approved_filing(people, 71_011)
        number, site = entity.number, entity.websites[0].number
        other = approved_filing(people, 71_012)
        taken = other.websites[0].domains[0].name
    isp, isp2 = caller(app, client, people["isp"]), caller(app, client, people["isp2"])
    assert refused(isp.one("/changes", {"kind": "add_domains", "number": site, "domains": [taken]}), "1005",
                   "domains")
    assert refused(isp.one("/changes", {"kind": "responsible", "number": number, "responsible_mobile": "1"}),
                   "1002", "responsible_name")
    assert refused(isp2.one("/changes", {"kind": "add_domains", "number": site, "domains": ["a.example.cn"]}),
                   "1012", "number")
    assert refused(isp.one("/changes", {"kind": "add_domains", "number": number, "domains": ["a.example.cn"]}),
                   "1004", "number")  # a website's change needs the website's number
    accepted = isp.one("/changes", {"kind": "add_domains", "number": site, "domains": ["news.example71011.cn"]})
    assert accepted["status"] == "accepted"
    edit = {"kind": "edit_website", "number": site, "name": "新名称", "home_url": "http://www.old71011.cn/",
            "service_content": "2"}
    assert refused(isp.one("/changes", edit), "1008")  # the first change is still waiting for the bureau
    with app.app_context():
        application = db.session.get(Application, accepted["ids"]["application_id"])
        assert application.kind == ApplicationKind.CHANGE and application.state == ApplicationState.BUREAU_REVIEW
        workflow.approve(user_named(people["bureau"]), application)
        db.session.commit()
    edited = isp.one("/changes", edit)
    assert edited["status"] == "accepted", edited


def test_a_cancellation_by_the_owner_or_its_isp(app, people, client):
    with app.app_context():
        entity = approved_filing(people, 71_021)
        number, site = entity.number, entity.websites[0].number
        make_user("stranger_icp", Role.ICP)
    icp, isp2 = caller(app, client, people["icp"]), caller(app, client, people["isp2"])
    stranger = caller(app, client, "stranger_icp")
    assert refused(icp.one("/cancellations", {"number": site, "reason": " "}), "1002", "reason")
    assert refused(stranger.one("/cancellations", {"number": number, "reason": "不再运营"}), "1012", "number")
    assert refused(isp2.one("/cancellations", {"number": site, "reason": "不再运营"}), "1012", "number")
    result = icp.one("/cancellations", {"number": site, "reason": "网站不再运营"})
    with app.app_context():
        application = db.session.get(Application, result["ids"]["application_id"])
        assert application.kind == ApplicationKind.CANCEL_WEBSITE
        workflow.approve(user_named(people["bureau"]), application)
        db.session.commit()
    assert refused(icp.one("/cancellations", {"number": number, "reason": "再注销"}), "1004", "number")


def test_a_new_access_needs_the_owners_code_and_a_cancelled_one_is_immediate_while_another_serves(
        app, people, client):
    with app.app_context():
        entity = approved_filing(people, 71_031)
        site = entity.websites[0].number
        code = workflow.owner_access_code(user_named(people["icp"]), entity)
        db.session.commit()
    isp, isp2 = caller(app, client, people["isp"]), caller(app, client, people["isp2"])
    access = {"method": "2", "server_province_code": "120000", "ip_ranges": [{"start": "198.51.100.7"}]}
    assert refused(isp2.one("/accesses", {"number": site, "access": access, "access_code": "AAAA-BBBB-CCCC"}),
                   "1010", "access_code")
    assert refused(isp.one("/accesses", {"number": site, "access": access, "access_code": code}), "1008")
    assert refused(isp2.one("/accesses", {"number": site, "access": {**access, "method": "zz"},
                                          "access_code": code}), "1003", "access.method")
    added = isp2.one("/accesses", {"number": site, "access": access, "access_code": code})
    assert added["status"] == "accepted"
    with app.app_context():
        workflow.approve(user_named(people["bureau"]), db.session.get(Application, added["ids"]["application_id"]))
        db.session.commit()
    assert refused(caller(app, client, people["isp_bj"]).one("/accesses/cancel", {"number": site}), "1012", "number")
    assert isp2.one("/accesses/cancel", {"number": site})["ids"] == {"application_id": None, "immediate": True}
    last = isp.one("/accesses/cancel", {"number": site})
    assert last["ids"]["immediate"] is False and last["ids"]["application_id"]


# --- the status of a filing -------------------------------------------------------------------------------------------

def test_the_status_shows_only_what_the_caller_may_see(app, people, client):
    with app.app_context():
        entity = approved_filing(people, 71_041)
        number, certificate, site = entity.number, entity.certificate_number, entity.websites[0]
        domain, site_number = site.domains[0].name, site.number
    isp, isp_bj, icp = (caller(app, client, people[key]) for key in ("isp", "isp_bj", "icp"))
    for params in ({"number": number}, {"number": site_number}, {"certificate": certificate},
                   {"domain": domain.upper()}):
        status, body = isp.status(**params)
        assert status == 200 and [f["number"] for f in body["filings"]] == [number], params
        assert body["filings"][0]["status"] == "active"
        assert body["filings"][0]["applications"][0]["state"] == "approved"
    assert isp_bj.status(number=number) == (200, {"filings": []})  # another ISP's customer
    assert icp.status(domain=domain)[1]["filings"][0]["websites"][0]["number"] == site_number
    assert isp.status()[0] == 400
    assert isp.status(domain="not a domain")[0] == 400


# --- the loop of a new filing as a state machine ---------------------------------------------------------------------

class FilingLoop(RuleBasedStateMachine):
    """An ICP owner files through the API naming its ISP; the ISP returns or verifies through the API; the owner
    corrects and submits again; the bureau approves through the workflow. After every step the API's status
    answer, the application's state and the registry's rows agree with what the machine expects."""

    def __init__(self) -> None:
        super().__init__()
        self.app, self.people, self.icp, self.isp = HARNESS["app"], HARNESS["people"], HARNESS["icp"], HARNESS["isp"]
        self.expected: dict[int, str] = {}  # application id → the state it must be in
        self.certificates: dict[int, str] = {}

    def _in(self, state: str) -> list[int]:
        return sorted(i for i, s in self.expected.items() if s == state)

    @initialize()
    def first_filing(self) -> None:
        self.submit(fix_mobile=True)

    @precondition(lambda self: len(self.expected) < 3)  # a few filings, taken round the loop
    @rule(fix_mobile=st.booleans())
    def submit(self, fix_mobile: bool) -> None:
        RAN["submit"] += 1
        record = filing_json(isps=(self.people["isp"],), responsible_mobile="13912345678" if fix_mobile else "1")
        (result,) = self.icp.post("/filings", record)
        if not fix_mobile:
            assert refused(result, "1002", "entity.responsible_mobile")
            return
        application_id = result["ids"]["application_id"]
        self.expected[application_id] = "isp_review"
        self.certificates[application_id] = record["entity"]["certificate_number"]

    @precondition(lambda self: self._in("isp_review"))
    @rule(data=st.data(), verify=st.booleans())
    def isp_decides(self, data: st.DataObject, verify: bool) -> None:
        RAN["isp_decides"] += 1
        application_id = data.draw(st.sampled_from(self._in("isp_review")))
        record = {"application_id": application_id, "result": "verify" if verify else "return",
                  **({} if verify else {"reason": "请补充网站负责人"})}
        assert self.isp.one("/verifications", record)["status"] == "accepted"
        self.expected[application_id] = "bureau_review" if verify else "draft"

    @precondition(lambda self: self._in("draft"))
    @rule(data=st.data())
    def correct_and_resubmit(self, data: st.DataObject) -> None:
        RAN["correct_and_resubmit"] += 1
        application_id = data.draw(st.sampled_from(self._in("draft")))
        record = filing_json(isps=(self.people["isp"],))
        record["entity"]["certificate_number"] = self.certificates[application_id]
        record["websites"][0]["responsible_name"] = "李四"
        (result,) = self.icp.post("/filings", {**record, "application_id": application_id})
        assert result["status"] == "accepted" and result["ids"]["application_id"] == application_id, result
        self.expected[application_id] = "isp_review"

    @precondition(lambda self: self._in("draft") or self._in("approved"))
    @rule(data=st.data())
    def isp_cannot_decide_out_of_turn(self, data: st.DataObject) -> None:
        RAN["isp_cannot_decide_out_of_turn"] += 1
        application_id = data.draw(st.sampled_from(self._in("draft") + self._in("approved")))
        assert refused(self.isp.one("/verifications", {"application_id": application_id, "result": "verify"}),
                       "1008")

    @precondition(lambda self: self._in("bureau_review"))
    @rule(data=st.data())
    def bureau_approves(self, data: st.DataObject) -> None:
        RAN["bureau_approves"] += 1
        application_id = data.draw(st.sampled_from(self._in("bureau_review")))
        with self.app.app_context():
            workflow.approve(user_named(self.people["bureau"]), db.session.get(Application, application_id))
            db.session.commit()
        self.expected[application_id] = "approved"

    @invariant()
    def registry_agrees(self) -> None:
        with self.app.app_context():
            for application_id, state in self.expected.items():
                application = db.session.get(Application, application_id)
                assert application.state.value == state
                entity = application.entity
                assert entity.status == (FilingStatus.ACTIVE if state == "approved" else FilingStatus.DRAFT)
                assert (entity.number is not None) == (state == "approved")
                assert db.session.scalar(select(func.count()).select_from(Application).where(
                    Application.entity_id == entity.id)) == 1  # corrected in place, never a second filing
                verification = db.session.scalars(select(IspVerification).where(
                    IspVerification.application_id == application_id)).one()
                assert verification.isp.username == self.people["isp"]
        for application_id, state in self.expected.items():
            status, body = self.isp.status(certificate=self.certificates[application_id])
            (filing,) = body["filings"]
            assert status == 200 and filing["applications"][0]["state"] == state
            if state == "draft":  # returned by the ISP, with its reason
                assert filing["applications"][0]["reasons"] == {"isp": "请补充网站负责人"}


HARNESS: dict[str, Any] = {}
RAN: Counter[str] = Counter()  # the rules that ran: the loop must not become vacuous


def test_the_filing_loop_through_the_api(app, people, client):
    HARNESS.update(app=app, people=people, icp=caller(app, client, people["icp"]),
                   isp=caller(app, client, people["isp"]))
    try:
        run_state_machine_as_test(FilingLoop, settings=settings(
            max_examples=6, stateful_step_count=10, deadline=None, derandomize=True,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]))
    finally:
        HARNESS.clear()
    assert min(RAN[name] for name in ("isp_decides", "correct_and_resubmit", "isp_cannot_decide_out_of_turn",
                                      "bureau_approves")) > 0, RAN


def test_a_record_that_is_not_an_object_of_the_operation_is_a_1000(app, people, client):
    isp = caller(app, client, people["isp"])
    for path in ("/filings", "/websites", "/accesses", "/accesses/cancel", "/changes", "/cancellations",
                 "/verifications"):
        (result,) = isp.post(path, {"unexpected": True})
        assert result["status"] == "refused" and result["code"] == "1000", path


def test_the_certificate_is_downloaded_by_those_who_serve_or_own_the_filing(app, people, client):
    with app.app_context():
        number = approved_filing(people, 91).number
    for who, expected in (("isp", 200), ("icp", 200), ("bureau", 200), ("isp2", 404), ("bureau_bj", 404)):
        status, body, _ = call(client, "GET", "/certificate", caller(app, client, people[who]).token,
                               params={"number": number})
        assert status == expected, (who, body)
        if expected == 404:
            assert body["code"] == "1004" and body["field"] == "number"
    status, body, _ = call(client, "GET", "/certificate", caller(app, client, people["isp"]).token,
                           params={"number": number})
    verified = client.post("/api/v1/public/certificates/verify", data=body["token"]).get_json()
    assert verified["status"] == "valid" and body["certificate_id"]
    assert call(client, "GET", "/certificate", caller(app, client, people["isp"]).token,
                params={"number": "津ICP备99999999号"})[0] == 404
