"""专项查询 (issue 17 §1) at 1,000,000 filings: the median of each search kind, for a national account and for a
天津 one (target ≤ 200 ms), the page as the investigator gets it (a POST: search, register line, audit event,
rendering).

    python bench/special_query.py                    # seeds 1,000,000 filings in a temporary folder (6–15 min)
    BENCH_SPECIAL_QUERY_DB=/tmp/h5/bench1m python bench/special_query.py   # a folder holding a seeded beian.db
    BENCH_DATABASE_URL=postgresql+psycopg://…/beian_5m python bench/special_query.py   # the shared database

The folder's database is brought to the head revision (the migration adds the search indexes: minutes at
1,000,000 filings) and gets two accounts (bench_sq_national, bench_sq_12) and, on its newest 天津 filing, a
responsible person no other filing has (and a licence number and a filed access range, which the demo filings
lack); the register lines a run writes are deleted at the end (its audit events
stay: the chain is append-only). Use a copy of a database you want to keep as it was.

Two kinds of value are measured: one held by one filing, and the demo's shared responsible person (张三, ID and
mobile of every demo filing: 1,000,000 matches), the worst case of an exact search — the page reads its first
100 along the index, whatever the number of matches.
"""

from __future__ import annotations

import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import event, insert, select, update

import ipindex
import workflow
from bench import common
from bench.run import full_scans
from extensions import db
from models import Access, AccessRange, Domain, Entity, FilingStatus, Role, SpecialQueryLog, User, Website

TARGET_MS = 200
TIANJIN = "120000"
ACCOUNTS = {"bench_sq_national": None, "bench_sq_12": TIANJIN}
WHY = {"reason": "性能测试", "case_number": "BENCH-1"}
#: the one filing's own responsible person (written on the newest 天津 filing)
UNIQUE = {"responsible_name": "欧阳测试", "responsible_id_number": "12010119900307123X",
          "responsible_mobile": "13312340000", "responsible_email": "bench.unique@example.cn"}
#: the newest 天津 filing's licence number, if none has one, and its access range, if it has none (the demo's)
LICENCE, RANGE, ADDRESS = "津ICP证990001号", "198.18.7.1-198.18.7.20", "198.18.7.5"
BIG_TABLES = re.compile(r"\bFROM (entities|websites|domains|accesses|access_ranges|domain_reports)\b")


def prepare(app) -> dict[str, str]:
    """The accounts, the unique responsible person, and the terms to search for (of the newest 天津 filing)."""
    with app.app_context():
        for username, province in ACCOUNTS.items():
            if db.session.scalar(select(User.id).where(User.username == username)) is None:
                workflow.create_user(None, workflow.UserData(
                    username=username, role=Role.SPECIAL_QUERY, password=common.DEMO_PASSWORD,
                    province_code=province, contact_name="测试", mobile="13900000000",
                    email=f"{username}@example.cn"))
        entity = db.session.scalar(select(Entity).where(
            Entity.province_code == TIANJIN, Entity.status == FilingStatus.ACTIVE, Entity.number.is_not(None))
            .order_by(Entity.id.desc()).limit(1))
        licensed = db.session.scalar(select(Entity.licence_number).where(Entity.licence_number.is_not(None))
                                     .order_by(Entity.id.desc()).limit(1))
        db.session.execute(update(Entity).where(Entity.id == entity.id).values(
            **UNIQUE, licence_number=entity.licence_number or licensed or LICENCE))
        website = db.session.scalar(select(Website).where(Website.entity_id == entity.id).limit(1))
        domain = db.session.scalar(select(Domain.name).where(Domain.website_id == website.id).limit(1))
        _filed_range(website)
        db.session.commit()
        terms = {
            "unit_name": ("unit name prefix", entity.unit_name[:4]),
            "unit_name_whole": ("unit name (whole)", entity.unit_name),
            "number": ("filing number", entity.number),
            "number_prefix": ("number prefix 津ICP备", entity.number[:5]),
            "website_number": ("website number", website.number or f"{entity.number}-1"),
            "licence": ("licence number", entity.licence_number or licensed or LICENCE),
            "domain": ("domain", domain),
            "ip": ("IP address", ADDRESS),
            "person_name": ("person (1 filing)", UNIQUE["responsible_name"]),
            "id_number": ("ID number (1 filing)", UNIQUE["responsible_id_number"]),
            "mobile": ("mobile (1 filing)", UNIQUE["responsible_mobile"]),
            "email": ("e-mail (1 filing)", UNIQUE["responsible_email"]),
            "credit_code": ("credit code", entity.certificate_number),
            "person_name_shared": ("person 张三 (every demo filing)", "张三"),
            "id_number_shared": ("ID number (every demo filing)", "11010519491231002X"),
            "mobile_shared": ("mobile (every demo filing)", "13900000000"),
        }
    return terms


def _filed_range(website: Website) -> None:
    """The demo filings have no access ranges: the newest 天津 filing's access gets one, indexed as an approval
    indexes it (`ipindex.range_rows`), so that the address search finds it."""
    access = db.session.scalar(select(Access).where(Access.website_id == website.id, Access.live).limit(1))
    if access is None or access.ip_ranges:
        return
    access.ip_ranges = RANGE
    db.session.execute(insert(AccessRange), [{"access_id": access.id, "bucket": bucket, "start_key": first,
                                              "end_key": last} for bucket, first, last in ipindex.range_rows(RANGE)])


def kind_of(key: str) -> str:
    return {"unit_name_whole": "unit_name", "number_prefix": "number", "website_number": "number",
            "licence": "number"}.get(key, key.removesuffix("_shared"))


def signed_in(app, username: str):
    client = app.test_client()
    client.get("/captcha.png")
    response = client.post("/login", data={"username": username, "password": common.DEMO_PASSWORD,
                                           "captcha": "BNCH"})
    assert response.status_code == 302, "sign-in failed"
    return client


def timed_post(app, client, data: dict[str, str], runs: int = 5) -> tuple[float, list, str]:
    """The median of `runs` POSTs of the query page after one not counted, the statements of the first, the
    last page."""
    statements: list[tuple[str, object]] = []

    def capture(_conn, _cursor, statement, parameters, _context, _many):
        statements.append((statement, parameters))

    timings = []
    for attempt in range(runs + 1):
        with app.app_context():
            if attempt == 0:
                event.listen(db.engine, "before_cursor_execute", capture)
            started = time.perf_counter()
            response = client.post("/admin/special-query/", data=data)
            timings.append((time.perf_counter() - started) * 1000)
            if attempt == 0:
                event.remove(db.engine, "before_cursor_execute", capture)
        assert response.status_code == 200, response.status_code
    return statistics.median(timings[1:]), statements, response.get_data(as_text=True)


def scans(app, statements: list[tuple[str, object]]) -> list[str]:
    """Full scans of the big tables (bench/run.py's `full_scans`), without the sorts of a few found rows."""
    with app.app_context():
        found = full_scans([(sql, params) for sql, params in statements if BIG_TABLES.search(sql)])
    return [line for line in found if "TEMP B-TREE" not in line]


SUMMARY = re.compile(r"备案主体 (\S+) 个，域名报备 (\S+) 条，IP报备记录 (\S+) 条")


def main() -> None:
    folder = Path(os.environ.get("BENCH_SPECIAL_QUERY_DB") or tempfile.mkdtemp(prefix="beian-special-query-"))
    started = time.perf_counter()
    app = common.open_app(folder, "beian.db")
    with app.app_context():
        common.ensure_filings(common.LARGE_FILINGS)
        size = db.session.scalar(select(Entity.id).order_by(Entity.id.desc()).limit(1))
        mark = common.highest_ids(SpecialQueryLog)
    print(f"database ready in {time.perf_counter() - started:.0f} s", flush=True)
    terms = prepare(app)
    clients = {username: signed_in(app, username) for username in ACCOUNTS}
    print(f"\n{'search':34} {'national ms':>12} {'天津 ms':>9}  found (national / 天津)   table scans at {size:,}")
    failed, medians = [], []
    for key, (label, term) in terms.items():
        row, found = [], []
        for client in clients.values():
            median, statements, page = timed_post(app, client, {"kind": kind_of(key), "term": term, **WHY})
            summary = SUMMARY.search(page)
            found.append("/".join(summary.groups()) if summary else "refused")
            row.append((median, scans(app, statements)))
        medians += [median for median, _ in row]
        scanned = sorted({line for _, lines in row for line in lines})
        print(f"{label:34} {row[0][0]:12.1f} {row[1][0]:9.1f}  {' · '.join(found):24} "
              f"{', '.join(scanned) or 'no scan'}", flush=True)
        if any(median > TARGET_MS for median, _ in row) or scanned:
            failed.append(label)
    print(f"\nmedian over the searches: {statistics.median(medians):.1f} ms; over {TARGET_MS} ms or a table scan: "
          f"{failed or 'none'}")
    with app.app_context():
        print(f"register lines removed: {common.delete_added(mark)}")


if __name__ == "__main__":
    main()
