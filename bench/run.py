"""Console hot paths at scale: N users and N audit events, list pages timed, query plans checked.

    make bench                       # N = 1,000,000 on SQLite in a temporary folder
    BENCH_N=200000 make bench        # smaller
    BENCH_DATABASE_URL=postgresql+psycopg://... make bench   # adds what that database lacks (bench/common.py)

Prints, per page: the median of 5 requests (ms) and whether any of its queries scans a whole
table (SQLite: EXPLAIN QUERY PLAN "SCAN <table>" without an index; PostgreSQL: "Seq Scan").
"""

from __future__ import annotations

import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import event, func, insert, select, text

import audit
from bench import common
from extensions import db
from models import AuditEvent, Role, User, UserStatus
from seed_data import PROVINCES
from workflow import UserData, create_user, hash_password

N = int(os.environ.get("BENCH_N", "1000000"))
BATCH = 20000
PASSWORD = "Bench-pass-1"
CSRF_RE = re.compile(r'name="csrf_token"(?: type="hidden")? value="([^"]+)"')


def build_app(folder: Path):
    return common.open_app(folder, "bench.db", PASSWORD_HASH_METHOD="pbkdf2:sha256:1000")


def staff() -> None:
    """The signing-in accounts (bench_ names: a shared database has its own `miit`), unless there."""
    if db.session.scalar(select(User.id).where(User.username == "bench_miit")):
        return
    for username, role, province in [("bench_miit", Role.MIIT, None), ("bench_tj_bureau", Role.BUREAU, "120000")]:
        create_user(None, UserData(username=username, role=role, password=PASSWORD, province_code=province,
                                   contact_name="基准", mobile="13800000000", email="b@example.cn"))
    for i in range(200):
        create_user(None, UserData(username=f"isp{i:04d}", role=Role.ISP, password=PASSWORD,
                                   province_code=PROVINCES[i % 31][0], contact_name="基准",
                                   mobile="13800000000", email="b@example.cn"))
    db.session.commit()


def bulk_users(n: int) -> None:
    """N ICP accounts icp0000000…, those a shared database lacks."""
    present = db.session.scalar(select(func.count()).select_from(User).where(User.role == Role.ICP)) or 0
    digest = hash_password(PASSWORD)
    statuses = [UserStatus.ACTIVE] * 8 + [UserStatus.PENDING, UserStatus.DISABLED]
    for start in range(present, n, BATCH):
        rows = [{"username": f"icp{i:07d}", "password_hash": digest, "role": Role.ICP,
                 "province_code": PROVINCES[i % 31][0], "organisation": f"单位{i}", "contact_name": "张三",
                 "mobile": "13900000000", "email": f"u{i}@example.cn", "status": statuses[i % 10],
                 "can_import": False, "session_epoch": 0, "created_at": audit.utcnow()}
                for i in range(start, min(n, start + BATCH))]
        db.session.execute(insert(User), rows)
        db.session.commit()


def bulk_audit(n: int) -> None:
    """Events up to N in all, written unchained in batches (as `audit.record_many` writes them, faster), then
    chained and signed by the sequencer (its rate printed)."""
    present = db.session.scalar(select(func.count()).select_from(AuditEvent)) or 0
    for start in range(present, n, BATCH):
        rows = []
        for i in range(start, min(n, start + BATCH)):
            row = SimpleNamespace(
                at=audit.utcnow(), actor_id=None, actor_username=f"icp{i % 50000:07d}", actor_role="icp",
                province_code=PROVINCES[i % 31][0], action="auth.sign_in", object_type="user",
                object_id=str(i), changes="{}", ip="10.0.0.1")
            row.content_hash = audit.content_hash(row)
            rows.append(vars(row))
        db.session.execute(insert(AuditEvent), rows)
        db.session.commit()
    started = time.perf_counter()
    integrated = audit.sequence_pending(limit=None)["integrated"]
    seconds = time.perf_counter() - started
    print(f"audit sequencer: {integrated:,} events chained and signed in {seconds:.1f} s "
          f"({integrated / max(seconds, 1e-9):,.0f} events/s)")


#: on PostgreSQL a sequential scan of fewer rows than this (the 31 provinces, an empty queue) is the right plan
SMALL_TABLE_ROWS = 10_000


def _estimated_rows(plan_line: str) -> int:
    found = re.search(r"rows=(\d+)", plan_line)
    return int(found.group(1)) if found else 0


def full_scans(statements: list[tuple[str, object]]) -> list[str]:
    found = []
    sqlite = db.engine.dialect.name == "sqlite"
    with db.engine.connect() as connection:
        for sql, params in statements:
            if not sql.lstrip().upper().startswith("SELECT"):
                continue
            plan = connection.exec_driver_sql(("EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN ") + sql,
                                              params).fetchall()
            lines = [str(row[-1] if sqlite else row[0]).strip() for row in plan]
            # a scan in output order that stops at LIMIT reads only the rows it shows
            stops_early = " LIMIT " in sql.upper() and not any("TEMP B-TREE" in line for line in lines)
            for line in lines:
                if (sqlite and re.match(r"SCAN \w+$", line) and not stops_early) or (
                        not sqlite and "Seq Scan" in line and _estimated_rows(line) > SMALL_TABLE_ROWS):
                    found.append(line)
                if "TEMP B-TREE FOR ORDER BY" in line:
                    found.append(line)
    return found


def timed_get(client, path: str, runs: int = 5, warm_up: bool = False,
              context: Callable[[], AbstractContextManager] = nullcontext) -> tuple[float, list, Any]:
    """The median of `runs` GETs of `path` (after one more, not counted, if `warm_up`), each inside `context()`;
    the SQL statements of the first, and the last response."""
    statements: list[tuple[str, object]] = []

    def capture(_conn, _cursor, statement, parameters, _context, _many):
        statements.append((statement, parameters))

    timings = []
    for attempt in range(runs + warm_up):
        with context():
            if attempt == 0:
                event.listen(db.engine, "before_cursor_execute", capture)
            started = time.perf_counter()
            response = client.get(path)
            timings.append((time.perf_counter() - started) * 1000)
            if attempt == 0:
                event.remove(db.engine, "before_cursor_execute", capture)
        assert response.status_code == 200, (path, response.status_code)
    return statistics.median(timings[int(warm_up):]), statements, response


def measure(client, path: str) -> tuple[float, list[str]]:
    median, statements, _response = timed_get(client, path)
    return median, full_scans(statements)


def signed_in(app, username: str):
    client = app.test_client()
    client.get("/captcha.png")
    response = client.post("/login", data={"username": username, "password": PASSWORD, "captcha": "BNCH"})
    assert response.status_code == 302
    return client


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="beian-bench-"))
    app = build_app(folder)
    with app.app_context():
        staff()
        started = time.perf_counter()
        bulk_users(N)
        users_s = time.perf_counter() - started
        started = time.perf_counter()
        bulk_audit(N)
        audit_s = time.perf_counter() - started
        for table in ("users", "audit_events"):  # what it loaded: a database-wide ANALYZE on a shared database
            db.session.execute(text(f"ANALYZE {table}"))  # waits for (or deadlocks with) others' CREATE INDEX
        db.session.commit()
        started = time.perf_counter()
        report = audit.verify_chain()
        verify_s = time.perf_counter() - started
    print(f"database: {app.config['SQLALCHEMY_DATABASE_URI'].split('@')[-1]}")
    print(f"loaded {N:,} ICP users in {users_s:.1f} s, {N:,} audit events in {audit_s:.1f} s")
    print(f"audit verify: {report.checked:,} events in {verify_s:.1f} s, intact={report.intact}")
    miit, bureau = signed_in(app, "bench_miit"), signed_in(app, "bench_tj_bureau")
    pages = [
        ("MIIT dashboard", miit, "/admin/"),
        ("MIIT 报备用户 page 1", miit, "/admin/filing_users/"),
        ("MIIT 报备用户 page 200", miit, "/admin/filing_users/?page=199"),
        ("MIIT 报备用户 sorted by created_at", miit, "/admin/filing_users/?sort=7&desc=1"),
        ("MIIT username starts with icp01234", miit, "/admin/filing_users/?flt0_0=icp01234"),
        ("MIIT username equals icp0500000", miit, "/admin/filing_users/?flt0_1=icp0500000"),
        ("MIIT filter province 天津 + pending", miit, "/admin/filing_users/?flt0_3=120000&flt1_4=pending"),
        ("bureau 天津 报备用户", bureau, "/admin/filing_users/"),
        ("bureau 天津 dashboard", bureau, "/admin/"),
        ("MIIT audit log page 1", miit, "/admin/audit_log/"),
        ("MIIT audit log by user", miit, "/admin/audit_log/?flt0_0=icp0001234"),
        ("bureau 天津 audit log", bureau, "/admin/audit_log/"),
        ("MIIT audit export (filtered)", miit, "/admin/audit_log/export/xlsx/?flt0_0=icp0001234"),
    ]
    print(f"\n{'page':45} {'median ms':>10}  full scans / sorts")
    for title, client, path in pages:
        with app.app_context():
            median, scans = measure(client, path)
        print(f"{title:45} {median:10.1f}  {', '.join(scans) or 'none'}")


if __name__ == "__main__":
    main()
