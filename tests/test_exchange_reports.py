"""The IP and domain reports through the data-exchange API (issue 16 §2): every operation accepted and refused
with the specification's result codes, over real HTTP; scopes; the workflow's own role check behind them; a
batch of 1,000 with a few bad records; and a state machine over allocations checking that every answer agrees
with the database (accepted ⇒ there, refused ⇒ nothing changed)."""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import func, select

import ipindex
from exchange_api import reports
from extensions import db
from models import (
    ApiCredential,
    AuditEvent,
    DomainReport,
    DomainStatus,
    IpAllocation,
    IpBlock,
    IpSelfBrought,
    Role,
)
from models import DomainChange as DomainChangeRow
from tests import exchange_helpers
from tests.domain_factories import registrar, report, report_data
from tests.exchange_helpers import Caller, call, credential_for
from tests.helpers import TIANJIN, make_user, user_named
from tests.ip_factories import USER_UNIT, block, reporter

live_server = exchange_helpers.live_server  # the fixture, under its name
IP_PATHS = [f"/ip/{kind}{action}" for kind in ("blocks", "allocations", "self-brought")
            for action in ("", "/change", "/delete")]
DOMAIN_PATHS = ["/domains", "/domains/change", "/domains/delete"]
ALLOCATED = {**USER_UNIT, "allocated_on": "2026-01-05"}  # 分配方式 1 with its user unit, as JSON


def codes(answer: dict[str, Any]) -> list[str]:
    """Each record's result: "ok", or its refusal's code."""
    return ["ok" if result["status"] == "accepted" else result["code"] for result in answer["results"]]


def keys(start: str, end: str) -> tuple[str, str]:
    return ipindex.hex_key(ipindex.address_key(start)), ipindex.hex_key(ipindex.address_key(end))


@pytest.fixture
def world(app) -> dict[str, Any]:
    """Two IP reporting units (10.1/16 and 10.2/16), two registrars (reg_b reports other.cn), a credential each."""
    app.config["EXCHANGE_RATE_LIMIT_PER_MINUTE"] = 1_000_000
    with app.app_context():
        unit_a, unit_b = reporter("ip_a"), reporter("ip_b")
        block(unit_a, "10.1.0.0", "10.1.255.255")
        block(unit_b, "10.2.0.0", "10.2.255.255")
        registrar("reg_a"), registrar("reg_b")
        report(user_named("reg_b"), "other.cn", "91120000MA05TEST0B")
        return {name: credential_for(name)[1] for name in ("ip_a", "ip_b", "reg_a", "reg_b")}


def raw_credential(username: str, scopes: str) -> str:
    """A credential made in the database, for a role the API does not serve (to show the workflow's own checks)."""
    secret = "s" * 40
    db.session.add(ApiCredential(user_id=user_named(username).id, name="raw", key_id=f"bk_{username}",
                                 secret_hash=hashlib.sha256(secret.encode()).hexdigest(), scopes=scopes,
                                 allowed_networks="", next_sequence=1, acked_event_id=0, webhook_delivered_id=0,
                                 webhook_attempts=0, webhook_last_error="", last_used_ip=""))
    db.session.commit()
    return f"Bearer bk_{username}.{secret}"


# --- IP reports -------------------------------------------------------------------------------------------------

def test_ip_reports_added_changed_and_deleted_over_http(app, world, live_server):
    """Can an IP reporting unit's system do through the API all it does in the console?"""
    unit = Caller(live_server, world["ip_a"])
    added = unit.write("/ip/blocks", [{"start": "10.3.0.0", "end": "10.3.0.255", "registry_code": "APNIC"}])
    block_id = added["results"][0]["ids"]["block_id"]
    changed = unit.write("/ip/blocks/change", [{"start": "10.3.0.0", "end": "10.3.1.255",
                                                "registry_code": "亚太互联网络信息中心（APNIC）", "remark": "扩大",
                                                "target": {"start": "10.3.0.0", "end": "10.3.0.255"}}])
    assert codes(changed) == ["ok"] and changed["results"][0]["ids"] == {"block_id": block_id}
    given = unit.write("/ip/allocations", [{"start": "10.3.1.0", "end": "10.3.1.127", "method": "1", **ALLOCATED},
                                           {"start": "10.3.1.128", "end": "10.3.1.255", "method": "预留"}])
    assert codes(given) == ["ok", "ok"]
    first, second = (result["ids"]["allocation_id"] for result in given["results"])
    assert codes(unit.write("/ip/allocations/change", [  # by its own range (no target), then by id
        {"start": "10.3.1.0", "end": "10.3.1.127", "method": "1", **ALLOCATED, "user_name": "新用户单位"},
        {"start": "10.3.1.128", "end": "10.3.1.200", "method": "3", "usage": "1", "allocated_on": "2026-02-01",
         "target": {"id": second}}])) == ["ok", "ok"]
    brought = unit.write("/ip/self-brought", [{"start": "192.0.2.0", "end": "192.0.2.255", "source_name": "某云",
                                               **ALLOCATED, "redirect_server": True}])
    brought_id = brought["results"][0]["ids"]["self_brought_id"]
    assert codes(unit.write("/ip/self-brought/change", [{"start": "192.0.2.0", "end": "192.0.2.127",
                                                          "source_name": "某云", **ALLOCATED, "redirect_server": True,
                                                          "target": {"id": brought_id}}])) == ["ok"]
    status, found = unit.read("/ip/lookup", address="10.3.1.5")
    assert status == 200 and [step["kind"] for step in found["chain"]] == ["block", "allocation"]
    assert found["chain"][1]["user_name"] == "新用户单位"
    with app.app_context():
        record = db.session.get(IpAllocation, second)
        assert (record.method, record.end_key, record.allocated_on) == ("3", keys("10.3.1.200", "10.3.1.200")[0],
                                                                         date(2026, 2, 1))
        assert db.session.get(IpBlock, block_id).remark == "扩大"
        assert db.session.get(IpSelfBrought, brought_id).redirect_server is True
        assert db.session.scalar(select(func.count()).where(AuditEvent.action == "ip.allocation.changed")) == 2
    assert codes(unit.write("/ip/allocations/delete", [{"id": first}, {"start": "10.3.1.128",
                                                                        "end": "10.3.1.200"}])) == ["ok", "ok"]
    assert codes(unit.write("/ip/self-brought/delete", [{"start": "192.0.2.0", "end": "192.0.2.127"}])) == ["ok"]
    assert codes(unit.write("/ip/blocks/delete", [{"id": block_id}])) == ["ok"]
    with app.app_context():
        assert db.session.get(IpBlock, block_id) is None and db.session.get(IpSelfBrought, brought_id) is None
        assert db.session.scalar(select(func.count()).select_from(IpAllocation)) == 0


def test_ip_refusals_carry_the_specifications_codes(app, world, live_server):
    """Is each bad record refused with its code, the field and a Chinese message — and only it?"""
    unit, other = Caller(live_server, world["ip_a"]), Caller(live_server, world["ip_b"])
    blocks = unit.write("/ip/blocks", [
        {"start": "10.5.0.9", "end": "10.5.0.1", "registry_code": "APNIC"},  # start > end
        {"start": "10.1.9.0", "end": "10.1.9.255", "registry_code": "APNIC"},  # inside its own block
        {"start": "10.2.9.0", "end": "10.2.9.255", "registry_code": "APNIC"},  # inside ip_b's
        {"start": "10.5.0.0", "end": "10.5.0.255", "registry_code": "APNIC", "colour": "red"},  # not in the schema
        {"start": "10.5.0.0", "end": "10.5.0.255", "registry_code": "APNIC"},
    ])
    assert codes(blocks) == ["2002", "2003", "2056", "2000", "ok"]
    assert blocks["accepted"] == 1 and blocks["refused"] == 4
    assert blocks["results"][0]["field"] == "end" and "起始" in blocks["results"][0]["message"]
    assert blocks["results"][3]["field"] == "colour"
    given = unit.write("/ip/allocations", [
        {"start": "10.9.0.0", "end": "10.9.0.255", "method": "4"},  # outside its blocks
        {"start": "10.1.1.0", "end": "10.1.1.255", "method": "4"},
        {"start": "10.1.1.128", "end": "10.1.2.0", "method": "4"},  # overlaps the one just accepted
        {"start": "10.1.3.0", "end": "10.1.3.255", "method": "1", "user_name": "缺少其他必填项"},
    ])
    assert codes(given) == ["2005", "ok", "2003", "2001"]
    assert {problem["field"] for problem in given["results"][3]["problems"]} >= {"usage", "contact_email"}
    theirs = other.write("/ip/allocations", [{"start": "10.2.1.0", "end": "10.2.1.255", "method": "4"}])
    their_id = theirs["results"][0]["ids"]["allocation_id"]
    with app.app_context():
        their_block = db.session.scalar(select(IpBlock.id).where(IpBlock.start_key == keys("10.2.0.0", "10.2.0.0")[0]))
    assert codes(unit.write("/ip/allocations/change", [
        {"start": "10.2.1.0", "end": "10.2.1.255", "method": "3", "target": {"id": their_id}},
        {"start": "10.1.7.0", "end": "10.1.7.255", "method": "4"},  # no allocation of this range
        {"start": "10.1.7.0", "end": "10.1.7.255", "method": "4", "target": {"id": 999_999}},
        {"start": "10.1.7.0", "end": "10.1.7.255", "method": "4", "target": {"id": 1, "start": "10.1.1.0"}},
    ])) == ["2054", "2055", "2055", "2000"]
    assert codes(unit.write("/ip/allocations/delete", [{"id": their_id}, {"start": "10.1.8.0", "end": "10.1.8.1"},
                                                       {}])) == ["2054", "2055", "2000"]
    assert codes(unit.write("/ip/blocks/delete", [{"id": their_block}, {"start": "10.1.0.0",
                                                                        "end": "10.1.255.255"}])) == ["2054", "2005"]
    assert codes(unit.write("/ip/self-brought/delete", [{"start": "192.0.2.0"}])) == ["2055"]
    assert codes(unit.write("/ip/self-brought", [{"start": "192.0.2.0", "end": "192.0.2.9", **ALLOCATED}])) == [
        "2001"]  # neither the source unit nor its name
    with app.app_context():
        assert db.session.get(IpAllocation, their_id).method == "4"
        assert db.session.scalar(select(func.count()).select_from(IpAllocation)) == 2
        assert db.session.scalar(select(func.count()).select_from(IpBlock)) == 3


def test_the_lookup_shows_a_unit_its_own_records_and_an_overseer_the_chain(app, world, client):
    unit, other = Caller(client, world["ip_a"]), Caller(client, world["ip_b"])
    assert codes(unit.write("/ip/allocations", [{"start": "10.1.5.0", "end": "10.1.5.255", "method": "2",
                                                 "target_unit": "ip_b"}])) == ["ok"]
    assert codes(other.write("/ip/allocations", [{"start": "10.1.5.0", "end": "10.1.5.127", "method": "3",
                                                  "usage": "2", "allocated_on": "2026-01-01"}])) == ["ok"]
    status, mine = unit.read("/ip/lookup", address="10.1.5.7")
    assert status == 200 and [(step["kind"], step["unit"]) for step in mine["chain"]] == [
        ("block", "ip_a"), ("allocation", "ip_a")]
    assert mine["chain"][1]["target_unit"] == "ip_b"
    status, theirs = other.read("/ip/lookup", address="10.1.5.7")
    assert [(step["kind"], step["unit"]) for step in theirs["chain"]] == [("block", "ip_b"), ("allocation", "ip_b")]
    with app.app_context():  # a role that may look up addresses in the console sees the whole chain
        make_user("ip_overseer", Role.BUREAU, TIANJIN)
        overseer = Caller(client, raw_credential("ip_overseer", "ip"))
    status, chain = overseer.read("/ip/lookup", address="10.1.5.7")
    assert [(step["kind"], step["unit"]) for step in chain["chain"]] == [
        ("block", "ip_a"), ("allocation", "ip_a"), ("block", "ip_b"), ("allocation", "ip_b")]
    status, nobody = unit.read("/ip/lookup", address="10.2.0.1")
    assert status == 404 and nobody["code"] == "2055" and nobody["field"] == "address"
    status, bad = unit.read("/ip/lookup", address="10.1.5.300")
    assert status == 400 and bad["field"] == "address"
    with app.app_context():
        looked = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "ip.lookup")).all()
        assert len(looked) == 4 and {event.actor_username for event in looked} == {"ip_a", "ip_b", "ip_overseer"}


# --- domain reports ---------------------------------------------------------------------------------------------

def domain_record(domain: str, number: str, **changes: Any) -> dict[str, Any]:
    data = report_data(domain, number)
    values = {name: getattr(data, name) for name in data.__dataclass_fields__}
    return {**{name: value.isoformat() if isinstance(value, date) else value for name, value in values.items()
               if value not in ("", None)}, **changes}


def test_domain_reports_added_changed_deleted_and_refused_over_http(app, world, live_server):
    registrar_a = Caller(live_server, world["reg_a"])
    today = date.today()
    added = registrar_a.write("/domains", [
        domain_record("example.cn", "91120000MA05TEST0A"),
        domain_record("late.cn", "91120000MA05TEST0C", expires_on=(today - timedelta(days=1)).isoformat()),
        domain_record("early.cn", "91120000MA05TEST0D", registered_on=(today + timedelta(days=1)).isoformat()),
        domain_record("mail.cn", "91120000MA05TEST0E", registrant_email="not-an-address"),
        domain_record("other.cn", "91120000MA05TEST0F"),  # reg_b's
        domain_record("typed.cn", "91120000MA05TEST0G", expires_on="soon"),
        domain_record("example.cn", "91120000MA05TEST0A"),  # again
    ])
    assert codes(added) == ["ok", "3004", "3035", "3013", "3001", "3000", "3001"]
    report_id = added["results"][0]["ids"]["report_id"]
    with app.app_context():
        other_id = db.session.scalar(select(DomainReport.id).where(DomainReport.domain == "other.cn"))
    assert codes(registrar_a.write("/domains/change", [
        domain_record("example.cn", "91120000MA05TEST0A", registrant_name="新注册者", status="暂停解析"),
        domain_record("other.cn", "91120000MA05TEST0F"),  # by its domain: another registrar's
        domain_record("other.cn", "91120000MA05TEST0F", target={"id": other_id}),
        domain_record("none.cn", "91120000MA05TEST0F"),  # reported by nobody
    ])) == ["ok", "3037", "3037", "3001"]
    status, mine = registrar_a.read("/domains/report", domain="EXAMPLE.cn")
    assert status == 200 and mine["id"] == report_id and mine["registrant_name"] == "新注册者"
    assert mine["status"] == "suspended" and mine["expires_on"] == (today + timedelta(days=730)).isoformat()
    status, theirs = registrar_a.read("/domains/report", domain="other.cn")
    assert status == 404 and theirs["code"] == "3001"
    assert codes(registrar_a.write("/domains/delete", [{"domain": "other.cn"}, {"id": other_id},
                                                       {"domain": "example.cn"}, {"id": report_id}])) == [
        "3037", "3037", "ok", "3001"]
    with app.app_context():
        assert db.session.get(DomainReport, report_id).status == DomainStatus.DELETED
        assert db.session.get(DomainReport, other_id).status == DomainStatus.NORMAL
        assert db.session.scalar(select(func.count()).select_from(DomainReport)) == 2


def test_the_workflows_role_check_stands_behind_the_scopes(app, world, client):
    """A credential holding a scope its role may not (the role table changed later): the workflow still refuses."""
    with app.app_context():
        for credential in db.session.scalars(select(ApiCredential)):
            credential.scopes = "domain,events,ip"
        db.session.commit()
    refused = Caller(client, world["ip_a"]).write("/domains", [domain_record("x.cn", "91120000MA05TEST0X")])
    assert codes(refused) == ["3036"] and refused["results"][0]["message"]
    assert codes(Caller(client, world["reg_a"]).write("/ip/blocks", [{"start": "10.7.0.0",
                                                                      "registry_code": "APNIC"}])) == ["2001"]
    status, body = Caller(client, world["ip_a"]).read("/domains/report", domain="other.cn")
    assert status == 404 and body["code"] == "3036"


def test_a_call_outside_the_credentials_scope_is_a_403(app, world, client):
    """Every operation, with a registrar's credential on the IP paths (and the reverse) and a feed-only one."""
    with app.app_context():
        _, feed_only = credential_for("ip_a", scopes=("events",))
    for path in [*IP_PATHS, *DOMAIN_PATHS, "/ip/lookup", "/domains/report"]:
        wrong = world["reg_a"] if path.startswith("/ip") else world["ip_a"]
        method, extra = ("GET", {"params": {"address": "10.1.0.1", "domain": "other.cn"}}) if path in (
            "/ip/lookup", "/domains/report") else ("POST", {"json": {"sequence": 1, "records": [{"id": 1}]}})
        for token in (wrong, feed_only):
            status, body, _ = call(client, method, path, token, **extra)
            assert (status, body["code"]) == (403, "403") and "权限范围" in body["message"], path
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(ApiCredential).where(
            ApiCredential.next_sequence > 1)) == 0  # nothing was taken as a call


# --- a batch of 1,000 ---------------------------------------------------------------------------------------------

BAD = {17: "2005", 404: "2002", 405: "2003", 999: "2000"}


def allocation_batch() -> list[dict[str, Any]]:
    records = [{"start": f"10.1.{index // 16}.{index % 16 * 16}", "end": f"10.1.{index // 16}.{index % 16 * 16 + 15}",
                "method": "1", **ALLOCATED} for index in range(1000)]
    records[17] = {**records[17], "start": "10.3.0.0", "end": "10.3.0.15"}  # outside the unit's blocks
    records[404] = {**records[404], "end": "10.0.0.1"}  # before its start
    records[405] = {**records[405], "start": records[403]["start"]}  # overlaps record 403
    records[999] = {**records[999], "allocated_on": "not a date"}
    return records


def test_a_batch_of_1000_allocations_with_a_few_bad_records(app, world, client, capsys):
    unit = Caller(client, world["ip_a"])
    started = time.perf_counter()
    answer = unit.write("/ip/allocations", allocation_batch())
    elapsed = time.perf_counter() - started
    assert answer["accepted"] == 996 and answer["refused"] == 4
    assert {index: code for index, code in enumerate(codes(answer)) if code != "ok"} == BAD
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(IpAllocation)) == 996
    with capsys.disabled():
        print(f"\n1,000 allocations in one batch: {elapsed:.2f} s ({1000 / elapsed:,.0f} records/s)")


def test_a_batch_of_1000_domain_reports_with_a_few_bad_records(app, world, client, capsys):
    records = [domain_record(f"batch{index}.cn", f"91120000MA{index:08d}") for index in range(1000)]
    records[3]["expires_on"] = (date.today() - timedelta(days=1)).isoformat()
    records[500] = domain_record("other.cn", "91120000MA05TEST0Z")
    records[998] = dict(records[997])
    started = time.perf_counter()
    answer = Caller(client, world["reg_a"]).write("/domains", records)
    elapsed = time.perf_counter() - started
    assert {index: code for index, code in enumerate(codes(answer)) if code != "ok"} == {
        3: "3004", 500: "3001", 998: "3001"}
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(DomainReport)) == 998
    with capsys.disabled():
        print(f"\n1,000 domain reports in one batch: {elapsed:.2f} s ({1000 / elapsed:,.0f} records/s)")


def test_each_record_has_the_outcome_it_has_when_the_batch_goes_record_by_record(app, world, client):
    """A refused record blocks nothing after it; a record that overlaps (or repeats) an accepted one is refused."""
    unit, registrar_a = Caller(client, world["ip_a"]), Caller(client, world["reg_a"])
    assert codes(unit.write("/ip/allocations", [
        {"start": "10.1.1.0", "end": "10.1.1.255", "method": "1"},  # its user unit missing
        {"start": "10.1.1.0", "end": "10.1.1.127", "method": "4"},  # the same addresses: fine once that is refused
        {"start": "10.1.2.0", "end": "10.1.2.255", "method": "4"},
        {"start": "10.1.2.128", "end": "10.1.2.255", "method": "4"},  # overlaps the one before
        {"start": "10.1.3.0", "end": "10.1.3.255", "method": "4"},
    ])) == ["2001", "ok", "ok", "2003", "ok"]
    expired = (date.today() - timedelta(days=1)).isoformat()
    assert codes(registrar_a.write("/domains", [
        domain_record("twice.cn", "91120000MA05TEST01", expires_on=expired),
        domain_record("twice.cn", "91120000MA05TEST01"),
        domain_record("again.cn", "91120000MA05TEST02"),
        domain_record("again.cn", "91120000MA05TEST02"),
        domain_record("alone.cn", "91120000MA05TEST03"),
    ])) == ["3004", "ok", "ok", "3001", "ok"]


def clean_allocations(second: int, count: int) -> list[dict[str, Any]]:
    """Allocations in 10.<second>.0.0/16 of every method (re-allocations to ip_c)."""
    methods = [("1", ALLOCATED), ("3", {"usage": "2", "allocated_on": "2026-01-01"}), ("4", {}),
               ("2", {"target_unit": "ip_c"})]
    return [{"start": f"10.{second}.{index // 16}.{index % 16 * 16}", "remark": f"第 {index} 条",
             "end": f"10.{second}.{index // 16}.{index % 16 * 16 + 15}", "method": methods[index % 4][0],
             **methods[index % 4][1]} for index in range(count)]


def through_the_workflow(app, username: str, handler, model, records: list[dict[str, Any]]) -> None:
    """The records one by one through the workflow, as a batch with a bad record is run."""
    with app.test_request_context():
        outcomes = reports.in_savepoints(user_named(username), [(index, model.model_validate(record))
                                                              for index, record in enumerate(records)], handler)
        assert not [outcome for outcome in outcomes if isinstance(outcome, Exception)]
        db.session.commit()


def stored(rows, *leave_out: str) -> list[tuple[Any, ...]]:
    """The rows' values, without their ids, times and the columns left out."""
    skipped = {"id", "created_at", "updated_at", *leave_out}
    return sorted(tuple(str(getattr(row, column.key)) for column in row.__table__.columns
                        if column.key not in skipped) for row in rows)


def test_a_clean_batch_is_written_at_once_as_the_workflow_writes_each_record(app, world, client, capsys):
    """A batch whose every record passes is checked and inserted as the imports do it — leaving exactly what the
    workflow leaves record by record (the records, re-allocations' blocks, queued reconciliations, audit)."""
    with app.app_context():
        reporter("ip_c"), registrar("reg_c")
        block(user_named("ip_b"), "10.3.0.0", "10.3.255.255")
    started = time.perf_counter()
    answer = Caller(client, world["ip_a"]).write("/ip/allocations", clean_allocations(1, 1000))
    allocations_elapsed = time.perf_counter() - started
    assert answer["accepted"] == 1000
    started = time.perf_counter()
    answer = Caller(client, world["reg_a"]).write("/domains", [domain_record(f"clean{index}.cn",
                                                                             f"91120000MA{index:08d}")
                                                               for index in range(1000)])
    reports_elapsed = time.perf_counter() - started
    assert answer["accepted"] == 1000
    through_the_workflow(app, "ip_b", reports.add_ip_allocation, reports.AllocationRecord, clean_allocations(3, 200))
    through_the_workflow(app, "reg_c", reports.add_domain_report, reports.DomainRecord,
                         [domain_record(f"clean{index}.com", f"91120000MA{index:08d}") for index in range(200)])
    with app.app_context():
        unit_a, unit_b = user_named("ip_a").id, user_named("ip_b").id
        fast = db.session.scalars(select(IpAllocation).where(IpAllocation.unit_id == unit_a)
                                  .order_by(IpAllocation.start_key).limit(200))
        slow = db.session.scalars(select(IpAllocation).where(IpAllocation.unit_id == unit_b))
        varying = ("unit_id", "block_id", "target_unit_id", "start_key", "end_key")
        assert stored(fast, *varying) == stored(slow, *varying)
        received = db.session.scalars(select(IpBlock).where(IpBlock.derived.is_(True))).all()
        assert sorted(block.source_unit_id for block in received) == [unit_a] * 250 + [unit_b] * 50
        fast_reports = db.session.scalars(select(DomainReport).where(DomainReport.domain.in_(
            [f"clean{index}.cn" for index in range(200)])))
        slow_reports = db.session.scalars(select(DomainReport).where(DomainReport.domain.like("clean%.com")))
        assert stored(fast_reports, "registrar_id", "domain") == stored(slow_reports, "registrar_id", "domain")
        events = Counter(db.session.scalars(select(AuditEvent.action).where(AuditEvent.action.in_(
            ("ip.allocation.added", "domain.reported")))))
        assert events == {"ip.allocation.added": 1200, "domain.reported": 1201}  # other.cn: the fixture's
        assert db.session.scalar(select(func.count()).select_from(DomainChangeRow).where(
            DomainChangeRow.what == "reported")) == 1201
    with capsys.disabled():
        print(f"\n1,000 allocations in one clean batch: {allocations_elapsed:.2f} s "
              f"({1000 / allocations_elapsed:,.0f} records/s); 1,000 domain reports: {reports_elapsed:.2f} s "
              f"({1000 / reports_elapsed:,.0f} records/s)")


# --- a state machine over allocations -------------------------------------------------------------------------------

UNITS = ("ip_a", "ip_b")
CELL = st.integers(min_value=0, max_value=31)  # 10.1.0.0–10.1.1.255 on a grid of 16: inside ip_a's block, not ip_b's
SIZE = st.integers(min_value=1, max_value=3)
METHOD = st.sampled_from(("1", "3", "4"))


def cell_range(cell: int, size: int) -> tuple[str, str]:
    first, last = cell * 16, min(511, cell * 16 + size * 16 - 1)
    return f"10.1.{first // 256}.{first % 256}", f"10.1.{last // 256}.{last % 256}"


def allocation_record(cell: int, size: int, method: str) -> dict[str, Any]:
    start, end = cell_range(cell, size)
    extra = ALLOCATED if method == "1" else {"usage": "1", "allocated_on": "2026-01-01"} if method == "3" else {}
    return {"start": start, "end": end, "method": method, **extra}


class AllocationsThroughTheApi(RuleBasedStateMachine):
    """Batches of one to three records by either unit; the model changes only by the accepted ones."""

    app: Any = None
    callers: dict[str, Caller] = {}
    unit_ids: dict[str, int] = {}

    def __init__(self) -> None:
        super().__init__()
        self.model: dict[int, tuple[int, str, str, str]] = {}  # id → (unit, start key, end key, method)

    def teardown(self) -> None:
        with self.app.app_context():
            db.session.execute(IpAllocation.__table__.delete())
            db.session.commit()

    def send(self, who: str, path: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self.callers[who].write(path, records)["results"]

    def known(self, index: int) -> int | None:
        ids = sorted(self.model)
        return ids[index % len(ids)] if ids else None

    @rule(who=st.sampled_from(UNITS), batch=st.lists(st.tuples(CELL, SIZE, METHOD), min_size=1, max_size=3))
    def add(self, who: str, batch: list[tuple[int, int, str]]) -> None:
        records = [allocation_record(*item) for item in batch]
        for record, result in zip(records, self.send(who, "/ip/allocations", records), strict=True):
            if result["status"] == "accepted":
                self.model[result["ids"]["allocation_id"]] = (self.unit_ids[who], *keys(record["start"],
                                                                                         record["end"]),
                                                             record["method"])

    @rule(who=st.sampled_from(UNITS), index=st.integers(0, 50), by_range=st.booleans(), cell=CELL, size=SIZE,
          method=METHOD, missing=st.booleans())
    def change(self, who: str, index: int, by_range: bool, cell: int, size: int, method: str,
               missing: bool) -> None:
        record_id = self.known(index)
        if record_id is None or missing:
            target = {"id": 10**9}
        elif by_range:
            _, start_key, end_key, _ = self.model[record_id]
            target = {"start": ipindex.address_text(start_key), "end": ipindex.address_text(end_key)}
        else:
            target = {"id": record_id}
        record = {**allocation_record(cell, size, method), "target": target}
        result = self.send(who, "/ip/allocations/change", [record])[0]
        if result["status"] == "accepted":
            self.model[result["ids"]["allocation_id"]] = (self.unit_ids[who], *keys(record["start"], record["end"]),
                                                         method)

    @rule(who=st.sampled_from(UNITS), index=st.integers(0, 50), by_range=st.booleans())
    def delete(self, who: str, index: int, by_range: bool) -> None:
        record_id = self.known(index)
        if record_id is None:
            return
        _, start_key, end_key, _ = self.model[record_id]
        target = {"start": ipindex.address_text(start_key), "end": ipindex.address_text(end_key)} if by_range \
            else {"id": record_id}
        result = self.send(who, "/ip/allocations/delete", [target])[0]
        if result["status"] == "accepted":
            del self.model[result["ids"]["allocation_id"]]

    @invariant()
    def the_database_is_what_the_answers_said(self) -> None:
        with self.app.app_context():
            stored = {row.id: (row.unit_id, row.start_key, row.end_key, row.method)
                      for row in db.session.scalars(select(IpAllocation))}
        assert stored == self.model


def test_allocations_through_the_api_agree_with_the_database(app, world, client):
    with app.app_context():
        AllocationsThroughTheApi.unit_ids = {name: user_named(name).id for name in UNITS}
    AllocationsThroughTheApi.app = app
    AllocationsThroughTheApi.callers = {name: Caller(client, world[name]) for name in UNITS}
    run_state_machine_as_test(AllocationsThroughTheApi, settings=settings(
        max_examples=15, stateful_step_count=10, deadline=None, derandomize=True,
        suppress_health_check=list(HealthCheck)))
