"""`flask --app app seed-demo --filings N`: realistic filings in every province, ISP and state, fast.

Rows are written in batches with explicit ids (Core inserts, no ORM objects): 1,000,000 filings
fit in minutes on SQLite. Approved filings get real numbers (the counters are advanced past them)
and real signed certificates. Accounts it needs (two ISPs and a bureau per province, a news
pre-approval authority) are created through the workflow, with the password given.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, select, text

import audit
import bulkcopy
import certificates
import deadlines
import ipindex
import public_records
import workflow
from extensions import db
from models import (
    Access,
    AccessRange,
    Application,
    ApplicationKind,
    ApplicationState,
    Certificate,
    CertificateStatus,
    Domain,
    DomainReport,
    Entity,
    FilingStatus,
    IspVerification,
    NumberCounter,
    PreapprovalItem,
    Province,
    ReviewState,
    Role,
    User,
    Website,
    utcnow,
)
from numbering import filing_number, website_number
from validators import credit_code_check_char, org_code_check_char

BATCH = 10000
WORDS = ("华信", "恒通", "瑞丰", "中科", "博远", "云海", "天成", "海川", "鼎新", "创联", "星辰", "安和")
TRADES = ("科技", "信息技术", "网络", "文化传媒", "电子商务", "教育咨询", "软件", "数据服务")
#: share of filings in each state: mostly approved, the rest spread over the queues
STATES = [ApplicationState.APPROVED] * 7 + [ApplicationState.BUREAU_REVIEW, ApplicationState.ISP_REVIEW,
                                              ApplicationState.DRAFT]
#: the demo registrars (issue 14): a national one and two provincial ones, each reporting a third of the domains
REGISTRARS = (("demo_registrar_1", None, "演示一号域名注册服务有限公司"),
              ("demo_registrar_2", "110000", "演示二号网络域名注册有限公司"),
              ("demo_registrar_3", "440000", "演示三号互联网域名服务有限公司"))
#: the registrant check's mix, per 100 filings (i * 7919 % 100 visits every residue once per 100 filings):
#: reported to someone else, not reported, expiring within 3 months; the rest consistent, one in ten of them
#: registered to the entity's responsible person
MISMATCHED, MISSING, EXPIRING = range(0, 3), range(3, 5), range(5, 7)


@dataclass
class Staff:
    isps: dict[str, list[int]]  # province code → ISP user ids
    created: list[str]
    registrars: list[tuple[int, str]]  # (user id, organisation) of the demo registrars


def credit_code(n: int) -> str:
    """A valid unified social credit code for the n-th demo entity (distinct for n < 10^8)."""
    for last in "0123456789ABCDEFGHJKLMNPQRTUWXY":
        body = f"{n % 10**7:07d}{last}"
        organisation = body + org_code_check_char(body)
        if organisation[-1] != "X":
            first17 = f"9{(n // 10**7) % 10}110000{organisation}"
            return first17 + credit_code_check_char(first17)
    raise AssertionError("no body without an X check character")


#: what a province's name ends with, longest first: 内蒙古自治区 → 内蒙古, 广西壮族自治区 → 广西, 黑龙江省 → 黑龙江
PROVINCE_SUFFIXES = ("维吾尔自治区", "壮族自治区", "回族自治区", "特别行政区", "自治区", "省", "市")


def short_name(province_name: str) -> str:
    """A province's name as a company name carries it (not cut to two characters: 内蒙, 黑龙)."""
    return next((province_name.removesuffix(suffix) for suffix in PROVINCE_SUFFIXES if province_name.endswith(suffix)),
                province_name)


def ensure_staff(password: str) -> Staff:
    provinces = list(db.session.scalars(select(Province).order_by(Province.sort_order)))
    existing = set(db.session.scalars(select(User.username).where(User.username.like("demo_%"))))
    created = []
    accounts = [(f"demo_isp_{p.code[:2]}_{i}", Role.ISP, p, f"{short_name(p.name)}第{i}数据中心有限公司")
                for p in provinces for i in (1, 2)]
    accounts += [(f"demo_bureau_{p.code[:2]}", Role.BUREAU, p, f"{p.name}通信管理局") for p in provinces]
    accounts += [(username, Role.DOMAIN_REPORTER, db.session.get(Province, code) if code else None, organisation)
                 for username, code, organisation in REGISTRARS]
    for username, role, province, organisation in accounts:
        if username not in existing:
            workflow.create_user(None, workflow.UserData(
                username=username, role=role, password=password, province_code=province.code if province else None,
                organisation=organisation, contact_name="演示联系人", mobile="13800000000",
                email=f"{username}@demo.example.cn"))
            created.append(username)
    if "demo_news" not in existing:
        workflow.create_user(None, workflow.UserData(
            username="demo_news", role=Role.PREAPPROVAL, password=password, preapproval_category="1",
            contact_name="演示联系人", mobile="13800000000", email="demo_news@demo.example.cn"))
        created.append("demo_news")
    db.session.commit()
    isps: dict[str, list[int]] = {}
    for user_id, province_code in db.session.execute(select(User.id, User.province_code).where(
            User.role == Role.ISP, User.username.like("demo_isp_%"))):
        isps.setdefault(province_code, []).append(user_id)
    registrars = list(db.session.execute(select(User.id, User.organisation).where(
        User.username.in_([username for username, _code, _name in REGISTRARS])).order_by(User.username)).all())
    return Staff(isps=isps, created=created, registrars=[(user_id, name) for user_id, name in registrars])


def _reserve_ids(model: type, count: int) -> int:
    """The first of `count` ids for rows inserted with explicit ids. On PostgreSQL the table's sequence is
    moved past them first, so that the registry's own inserts (by the sequence), during the seed and after it,
    never take one; SQLite gives the next rowid after the highest anyway."""
    table = model.__table__.name
    highest = db.session.scalar(select(func.max(model.id))) or 0
    if db.engine.dialect.name != "postgresql":
        return highest + 1
    sequence = db.session.scalar(text("SELECT pg_get_serial_sequence(:table, 'id')"), {"table": table})
    last = db.session.scalar(text(f"SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {sequence}"))
    db.session.scalar(text("SELECT setval(:sequence, :last)"),
                      {"sequence": sequence, "last": max(highest, last) + count})
    return max(highest, last) + 1


@dataclass(frozen=True)
class ProvinceRef:
    code: str
    name: str
    abbr: str


@dataclass(frozen=True)
class Plan:
    """What every batch of a run shares. Batches are independent of each other (their random draws are seeded
    by their first index, their filing numbers start where the batches before them end), so that worker
    processes can write them in any order."""
    start: int
    provinces: list[ProvinceRef]
    staff: Staff
    ring: certificates.KeyRing
    ids: dict[str, int]
    year: int
    states: list[ApplicationState]
    now: datetime
    filings: int


def _batch_states(first: int, last: int, states: list[ApplicationState], rng: random.Random) -> list[ApplicationState]:
    """The states of filings first..last-1: the first draws of the batch's generator, so that `seed` can count
    each batch's approved filings (and so its filing numbers) without building its rows."""
    return [states[rng.randrange(len(states))] for _ in range(first, last)]


def _filed_at(plan: Plan, i: int) -> datetime:
    """When filing i was made: over the last year, in the order of the filings (as numbers are given), so
    that the indexes on dates grow at their ends as a registry's do, rather than each row landing on a random
    page of them (at millions of rows most such pages are outside PostgreSQL's shared buffers)."""
    return plan.now - timedelta(minutes=(plan.start + plan.filings - i) * 525_600 // plan.filings)


def _certificate_id(i: int, rng: random.Random) -> str:
    """A random UUID (version 4) whose first 32 bits are i, so that the primary key grows at its end (the
    same reason as `_filed_at`)."""
    return str(uuid.UUID(int=(i << 96) | rng.getrandbits(80), version=4))


def _batch(plan: Plan, first: int, last: int, seq: dict[str, int]) -> dict[str, list[dict]]:
    """The rows of filings first..last-1; `seq` holds each province's last filing number before them."""
    rng = random.Random(first)
    provinces, staff, ring, ids, year, start, now = (plan.provinces, plan.staff, plan.ring, plan.ids, plan.year,
                                                     plan.start, plan.now)
    seq = dict(seq)
    batch: dict[str, list[dict]] = {name: [] for name in TABLES}
    for i, state in zip(range(first, last), _batch_states(first, last, plan.states, rng), strict=True):
        province = provinces[i % len(provinces)]
        isp_id = rng.choice(staff.isps[province.code])
        approved = state == ApplicationState.APPROVED
        entity_id, website_id = ids["entity"] + i - start, ids["website"] + i - start
        number = None
        if approved:
            seq[province.code] += 1
            number = filing_number(province.abbr, year, seq[province.code])
        brand = f"{province.name[:2]}{WORDS[i % len(WORDS)]}{TRADES[i % len(TRADES)]}"
        name, site_name = f"{brand}有限公司{i}", f"{brand}{i}官网"
        domain = f"demo{i}.cn"
        when = _filed_at(plan, i)
        batch["entities"].append({
            "id": entity_id, "owner_id": None, "province_code": province.code, "unit_name": name,
            "unit_nature": "4", "certificate_type": "1", "certificate_number": credit_code(i),
            "address": f"{province.name}某区某路{i % 999 + 1}号", "responsible_name": "张三",
            "responsible_id_number": "11010519491231002X", "responsible_mobile": "13900000000",
            "responsible_email": f"owner{i}@demo.example.cn", "commercial": False,
            "status": FilingStatus.ACTIVE if approved else FilingStatus.DRAFT, "number": number,
            "licence_number": None, "website_seq": 1 if approved else 0,
            "approved_at": when if approved else None, "created_at": when})
        batch["websites"].append({
            "id": website_id, "entity_id": entity_id, "name": site_name, "home_url": f"http://www.{domain}/",
            "service_content": "2", "languages": "1", "responsible_name": "张三",
            "responsible_mobile": "13900000000", "bbs": False, "bbs_sections": "",
            "status": FilingStatus.ACTIVE if approved else FilingStatus.DRAFT,
            "number": website_number(number, 1) if approved else None, "approved_at": when if approved else None})
        batch["domains"] += [{"website_id": website_id, "name": name, "live": True, "registered": domain}
                             for name in (f"www.{domain}", domain)]
        batch["domain_reports"] += _domain_reports(i, batch["entities"][-1], staff.registrars[i % 3], now)
        access_id, address = ids["access"] + i - start, f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
        batch["accesses"].append({"id": access_id, "website_id": website_id, "isp_id": isp_id, "method": "2",
                                  "server_province_code": province.code, "ip_ranges": f"{address}-{address}",
                                  "live": True})
        if approved:  # indexed for the public lookup by IP, as the approval does
            batch["access_ranges"] += [{"access_id": access_id, "bucket": bucket, "start_key": low, "end_key": high}
                                       for bucket, low, high in ipindex.range_rows(address)]
        application_id = ids["application"] + i - start
        batch["applications"].append({
            "id": application_id, "entity_id": entity_id, "province_code": province.code,
            "kind": ApplicationKind.NEW_FILING, "state": state, "submitted_by_id": isp_id,
            "decided_by_id": None, "decided_at": when if approved else None, "reasons": "{}",
            **_submission(state, when, now, i)})
        if state != ApplicationState.DRAFT:
            batch["verifications"].append({
                "application_id": application_id, "isp_id": isp_id,
                "state": ReviewState.PENDING if state == ApplicationState.ISP_REVIEW else ReviewState.CONFIRMED,
                "reason": "", "at": None if state == ApplicationState.ISP_REVIEW else when})
        if i % 50 == 0:
            batch["preapprovals"].append({"website_id": website_id, "entity_id": entity_id,
                                          "province_code": province.code, "category": "1",
                                          "document_number": f"新闻[{year}]{i}号",
                                          "state": ReviewState.CONFIRMED if approved else ReviewState.PENDING,
                                          "reason": "", "reviewer_id": None, "reviewed_at": None})
        if approved:
            certificate_id = _certificate_id(i, rng)
            payload = {"certificate_id": certificate_id, "kind": "filing", "entity_number": number,
                       "licence_number": None, "unit_name": name, "province": province.name,
                       "websites": [{"number": website_number(number, 1), "name": site_name,
                                     "domains": [f"www.{domain}", domain], "home_url": f"http://www.{domain}/"}],
                       "issuer": f"{province.name}通信管理局", "issued_at": when.strftime("%Y-%m-%d")}
            batch["certificates"].append({"id": certificate_id, "entity_id": entity_id,
                                          "kid": ring.current_kid(), "token": ring.sign(payload),
                                          "status": CertificateStatus.CURRENT, "issued_at": when})
    return batch


def _domain_reports(i: int, entity: dict, registrar: tuple[int, str], now: datetime) -> list[dict]:
    """The report of a demo filing's registered domain (which covers its www. name too), in the mix of
    MISMATCHED, MISSING and EXPIRING."""
    bucket = i * 7919 % 100
    if bucket in MISSING:
        return []
    today = now.date()
    registered = today - timedelta(days=30 + i * 7 % 2000)
    expires = today + timedelta(days=10 + i % 80 if bucket in EXPIRING else 120 + i * 13 % 3000)
    if bucket in MISMATCHED:
        name, number, kind = f"{entity['unit_name'][:2]}另一家网络有限公司", credit_code(i + 50_000_000), "1"
    elif bucket % 10 == 9:
        name, number, kind = entity["responsible_name"], entity["responsible_id_number"], "16"
    else:
        name, number, kind = entity["unit_name"], entity["certificate_number"], "1"
    return [_report(f"demo{i}.cn", registrar, name, number, kind, entity, registered, expires, now)]


def _report(domain: str, registrar: tuple[int, str], name: str, number: str, kind: str, entity: dict,
            registered: date, expires: date, now: datetime) -> dict:
    return {"registrar_id": registrar[0], "domain": domain, "domain_type": "2", "registered_on": registered,
            "expires_on": expires, "registrar_name": registrar[1], "name_servers": "ns1.demodns.cn\nns2.demodns.cn",
            "status": "normal", "registrant_name": name, "registrant_organisation": entity["unit_name"],
            "registrant_certificate_type": kind, "registrant_certificate_number": number,
            "registrant_address": entity["address"], "registrant_province_code": entity["province_code"],
            "registrant_city": "", "registrant_email": entity["responsible_email"], "registrant_phone": "010-12345678",
            "admin_name": entity["responsible_name"], "admin_organisation": entity["unit_name"],
            "admin_certificate_type": "", "admin_certificate_number": "", "admin_address": entity["address"],
            "admin_province_code": entity["province_code"], "admin_city": "",
            "admin_email": entity["responsible_email"], "admin_phone": entity["responsible_mobile"], "payer_name": "",
            "created_at": now, "updated_at": now}


def _submission(state: ApplicationState, when: datetime, now: datetime, i: int) -> dict[str, datetime | None]:
    """Submitted 0–30 days before the decision; the bureau's queue entered within the last 35 days, so that
    its deadlines (deadlines.py) spread from overdue to 20 working days ahead."""
    if state == ApplicationState.DRAFT:
        return {"submitted_at": None, "bureau_since": None, "due_at": None}
    if state == ApplicationState.BUREAU_REVIEW:
        since = now - timedelta(minutes=i * 7919 % (35 * 1440))
        return {"submitted_at": since, "bureau_since": since, "due_at": deadlines.due_at(since)}
    decided = state == ApplicationState.APPROVED
    return {"submitted_at": when - timedelta(minutes=i * 7919 % (30 * 1440)) if decided else when,
            "bureau_since": None, "due_at": None}


TABLES = {"entities": Entity, "websites": Website, "domains": Domain, "accesses": Access,
          "applications": Application, "verifications": IspVerification, "preapprovals": PreapprovalItem,
          "certificates": Certificate, "access_ranges": AccessRange, "domain_reports": DomainReport}


def _numbering(plan: Plan, filings: int, seq: dict[str, int]) -> list[tuple[int, int, dict[str, int]]]:
    """The batches of a run, (first, last, each province's last filing number before the batch), counted from
    the batches' states alone; `seq` ends at the run's last numbers."""
    batches = []
    for first in range(plan.start, plan.start + filings, BATCH):
        last = min(plan.start + filings, first + BATCH)
        batches.append((first, last, dict(seq)))
        states = _batch_states(first, last, plan.states, random.Random(first))
        for i, state in zip(range(first, last), states, strict=True):
            if state == ApplicationState.APPROVED:
                seq[plan.provinces[i % len(plan.provinces)].code] += 1
    return batches


def _write_batch(plan: Plan, first: int, last: int, seq: dict[str, int]) -> int:
    """Build and insert one batch in a transaction of its own; the number of domain reports it wrote."""
    batch = _batch(plan, first, last, seq)
    for name, rows in batch.items():
        bulkcopy.insert_rows(TABLES[name].__table__, rows)
    public_records.touch(row["id"] for row in batch["entities"] if row["status"] == FilingStatus.ACTIVE)
    db.session.commit()
    return len(batch["domain_reports"])


#: the run's plan, inherited by the forked worker processes (it holds the signing key: never pickled)
_PLAN: Plan | None = None


def _start_worker() -> None:
    """In a forked worker: its own database connections, never the parent's sockets."""
    db.session.remove()
    db.engine.dispose(close=False)


def _write_in_worker(batch: tuple[int, int, dict[str, int]]) -> int:
    assert _PLAN is not None
    return _write_batch(_PLAN, *batch)


def _write_all(plan: Plan, batches: list[tuple[int, int, dict[str, int]]], workers: int) -> int:
    """Write the batches, in `workers` forked processes when more than one (each COPYing on its own
    connection, so that building rows and PostgreSQL's inserting run on both cores)."""
    if workers <= 1:
        return sum(_write_batch(plan, *batch) for batch in batches)
    global _PLAN
    db.session.commit()
    db.session.remove()
    _PLAN = plan
    try:
        with multiprocessing.get_context("fork").Pool(workers, initializer=_start_worker) as pool:
            return sum(pool.imap_unordered(_write_in_worker, batches))
    finally:
        _PLAN = None


def _provinces(province_code: str | None) -> list[ProvinceRef]:
    return [ProvinceRef(p.code, p.name, p.abbr) for p in db.session.scalars(select(Province).where(
        Province.code == province_code if province_code else Province.active).order_by(Province.sort_order))]


def _save_counters(provinces: list[ProvinceRef], year: int, seq: dict[str, int]) -> None:
    for province in provinces:
        counter = db.session.scalar(select(NumberCounter).where(
            NumberCounter.province_code == province.code, NumberCounter.kind == "filing",
            NumberCounter.year == year % 100))
        if counter is None:
            db.session.add(NumberCounter(province_code=province.code, kind="filing", year=year % 100,
                                         last=seq[province.code]))
        else:
            counter.last = seq[province.code]


def seed(filings: int, password: str, state: ApplicationState | None = None,
         province_code: str | None = None, workers: int | None = None) -> dict[str, object]:
    """Add `filings` filings; by default in every state and province, or only in the ones given. `workers`:
    processes writing batches (default: the cores + 1 on PostgreSQL; 1 on SQLite, which has one writer at a
    time)."""
    staff = ensure_staff(password)
    provinces = _provinces(province_code)
    year = utcnow().year
    seq = {province.code: db.session.scalar(select(NumberCounter.last).where(
        NumberCounter.province_code == province.code, NumberCounter.kind == "filing",
        NumberCounter.year == year % 100)) or 0 for province in provinces}
    ids = {"entity": _reserve_ids(Entity, filings), "website": _reserve_ids(Website, filings),
           "application": _reserve_ids(Application, filings), "access": _reserve_ids(Access, filings)}
    plan = Plan(start=ids["entity"],  # also makes names, domains and credit codes unique across runs
                provinces=provinces, staff=staff, ring=certificates.keyring(), ids=ids, year=year,
                states=[state] if state else STATES, now=utcnow(), filings=filings)
    batches = _numbering(plan, filings, seq)
    if workers is None:  # one more than the cores: while a worker waits for its COPY another builds rows
        workers = (os.cpu_count() or 1) + 1 if db.engine.dialect.name == "postgresql" else 1
    _save_counters(provinces, year, seq)  # first: a run that fails half-way leaves gaps, never a number twice
    db.session.commit()
    reported = _write_all(plan, batches, workers)
    audit.record_many([("demo.seeded", {"object_type": "demo", "changes": {"filings": filings},
                                        "actor_username": "cli"})])
    db.session.commit()
    return {"filings": filings, "accounts_created": len(staff.created), "approved_share": "70%",
            "domain_reports": reported, "registrant_check": "93% consistent, 3% mismatched, 2% unreported, "
                                                            "2% expiring within 3 months",
            "counters": json.dumps({p.abbr: seq[p.code] for p in provinces[:3]}, ensure_ascii=False)}
