"""Domain reports at scale (issue 14), with BENCH_DOMAIN_N reported domains (5,000,000): the filings `seed-demo`
makes (approved, their domains reported by the demo registrars) and bulk-generated reports of thirty other
registrars up to N. On a copy of that database (SQLite), or on the shared database of BENCH_DATABASE_URL:

- the import of a file of BENCH_DOMAIN_ROWS (100,000) domain rows — the worker's job from the queued upload to
  the committed reports, their queued changes and audit events — in a process of its own so that its peak
  memory (max RSS) is its own; BENCH_REPEAT runs (3), the imported rows removed between them;
- the registrant check in a batch approval of 1,000 applications (DOMAIN_REGISTRANT_CHECK "warn"): the time
  spent inside `workflow.batch_approve` in `workflow.registrant`'s functions (the reports preloaded, each
  application's verdicts, the failing ones queued, the verdicts audited), against the rest of the batch;
- the reconciliation (`workflow.domain_reconcile.reconcile_domain_changes`) after 100,000 changed reports of
  filed domains (one in ten now registered to someone else: flagged and e-mailed).

    python bench/domain_reports.py
    BENCH_DOMAIN_N=500000 BENCH_DOMAIN_ROWS=20000 BENCH_DOMAIN_CHANGED=20000 BENCH_REPEAT=1 \
        python bench/domain_reports.py
    BENCH_DIR=/var/tmp/bench python bench/domain_reports.py   # keeps the seeded database there for the next run
    BENCH_DATABASE_URL=postgresql+psycopg://… python bench/domain_reports.py   # on that database (bench/common.py)

On the shared database (the 5,000,000 filings of `bench/common.py`, whose seed reports most of the N domains)
the generated reports up to N are added once and kept, like the filings. Each measurement then undoes what it
changed, so that every run (and every other benchmark) finds the same database: the imported reports and their
queued changes are deleted by their registrar and names; the changed reports get their registrant back (the
certificate numbers replaced are kept in a file of the instance folder until then, so that a run that dies is
undone by the next one), and the reconciliation's queued changes, flags and e-mails are deleted by id above
the marks taken before. Copying the database for each run (CREATE DATABASE … TEMPLATE) would copy 22 GB; a
database of its own would not hold the 5,000,000 filings. Kept: the audit events (the chain is append-only)
and the BENCH_REPEAT × 1,000 filings each batch approval adds and approves in 天津, as `bench/filings.py` does.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask import Flask

from bench import common

N = int(os.environ.get("BENCH_DOMAIN_N", "5000000"))
ROWS = int(os.environ.get("BENCH_DOMAIN_ROWS", "100000"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))
CHANGED = int(os.environ.get("BENCH_DOMAIN_CHANGED", "100000"))
BATCH = 1000
FILED = CHANGED * 511 // 1000  # approved demo filings: two domains each, 98 % of them reported (> CHANGED)
PASSWORD = "Bench-pass-1"
IMPORTER = "bench_registrar"
DB = "domains.db"


def _peak_mb() -> float:
    """This process's peak resident memory (VmHWM: ru_maxrss would include the parent's, whose peak a child
    inherits on Linux)."""
    status = Path("/proc/self/status")
    if status.exists():
        return next(int(line.split()[1]) for line in status.read_text().splitlines() if line.startswith("VmHWM")) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build_app(folder: Path, **config: Any) -> Flask:
    from app import create_app, ensure_first_miit_account
    from extensions import db
    from seed_data import seed_code_tables

    url = common.database_url(folder / DB)
    app = create_app({"INSTANCE_PATH": str(common.instance_folder(folder, url)), "SQLALCHEMY_DATABASE_URI": url,
                      "SECRET_KEY": "bench", "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000", "TESTING": True,
                      "MIIT_ADMIN_PASSWORD": PASSWORD, "IMPORT_MAX_ROWS": max(200_000, ROWS + 10_000), **config})
    with app.app_context():
        common.migrate(app)
        seed_code_tables()
        ensure_first_miit_account()
        db.session.commit()
    return app


# --- the seeded database ------------------------------------------------------------------------------------

TLDS = (("cn", "2"), ("com.cn", "2"), ("com", "1"), ("net", "1"), ("xn--fiqs8s", "3"), ("top", "4"))  # 中国


def _registrars(app: Flask) -> list[tuple[int, str]]:
    """The thirty registrars of the generated reports and the importing one, those missing created."""
    from sqlalchemy import select

    from extensions import db
    from models import Role, User
    from tests.helpers import make_user

    with app.app_context():
        present = set(db.session.scalars(select(User.username).where(
            User.username.like("bench_reg_%") | (User.username == IMPORTER))))
        for n in range(1, 31):
            if f"bench_reg_{n:02d}" not in present:
                make_user(f"bench_reg_{n:02d}", Role.DOMAIN_REPORTER, None,
                          organisation=f"基准第{n}域名注册服务有限公司")
        if IMPORTER not in present:
            make_user(IMPORTER, Role.DOMAIN_REPORTER, "120000", organisation="基准导入域名注册服务有限公司")
        return [(user_id, name) for user_id, name in db.session.execute(select(User.id, User.organisation).where(
            User.username.like("bench_reg_%")).order_by(User.id))]


def _generated(first: int, count: int, registrars: list[tuple[int, str]]) -> Any:
    """Reports of domains no filing uses, as rows of the table (dates as SQLAlchemy stores them in SQLite)."""
    today, stamp = date.today(), time.strftime("%Y-%m-%d %H:%M:%S.000000")
    for n in range(first, first + count):
        tld, kind = TLDS[n % len(TLDS)]
        registrar_id, registrar_name = registrars[n % len(registrars)]
        domain = f"reg{n}.{tld}"
        registered = today - timedelta(days=n % 3650)
        expires = today + timedelta(days=1 + n * 7 % 3650)
        status = "deleted" if n % 100 == 0 else "suspended" if n % 100 == 1 else "normal"
        yield (registrar_id, domain, kind, registered.isoformat(), expires.isoformat(), registrar_name,
               "ns1.dns.example\nns2.dns.example", status, f"某某网络科技有限公司{n}", f"某某网络科技有限公司{n}", "1",
               f"9111{n:014d}", f"某省某市某路{n % 999}号", None, "", f"dns{n}@example.cn", "010-12345678", "王五", "",
               "", "", "", None, "", f"admin{n}@example.cn", "13912345678", "", stamp, stamp)


GENERATED_COLUMNS = (
    "registrar_id", "domain", "domain_type", "registered_on", "expires_on", "registrar_name", "name_servers", "status",
    "registrant_name", "registrant_organisation", "registrant_certificate_type", "registrant_certificate_number",
    "registrant_address", "registrant_province_code", "registrant_city", "registrant_email", "registrant_phone",
    "admin_name", "admin_organisation", "admin_certificate_type", "admin_certificate_number", "admin_address",
    "admin_province_code", "admin_city", "admin_email", "admin_phone", "payer_name", "created_at", "updated_at")


def _bulk_insert(path: Path, registrars: list[tuple[int, str]], count: int) -> None:
    """`count` generated reports by plain sqlite3: the table's indexes dropped, the rows inserted 50,000 per
    statement batch, the indexes created again."""
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA synchronous=OFF")
    indexes = connection.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND "
                                 "tbl_name = 'domain_reports' AND sql IS NOT NULL").fetchall()
    for name, _sql in indexes:
        connection.execute(f'DROP INDEX "{name}"')
    columns = ", ".join(GENERATED_COLUMNS)
    sql = f"INSERT INTO domain_reports ({columns}) VALUES ({', '.join('?' * 29)})"
    for first in range(1, count + 1, 50_000):
        connection.executemany(sql, _generated(first, min(50_000, count + 1 - first), registrars))
        connection.commit()
    for _name, index_sql in indexes:
        connection.execute(index_sql)
    connection.commit()
    connection.close()


def database() -> Path:
    """The seeded folder: built once per N in $BENCH_DIR when set, else in a temporary folder."""
    import demo
    from extensions import db
    from models import ApplicationState

    base = Path(os.environ["BENCH_DIR"]) if os.environ.get("BENCH_DIR") else Path(tempfile.mkdtemp())
    folder = base / f"domain-reports-{N}"
    if (folder / "ready").exists():
        print(f"reusing {folder}")
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    app = build_app(folder)
    started = time.perf_counter()
    with app.app_context():
        summary = demo.seed(FILED, PASSWORD, ApplicationState.APPROVED)
        db.session.remove()
    print(f"seed-demo --filings {FILED:,} (approved): {summary['domain_reports']:,} reports, "
          f"{time.perf_counter() - started:.0f} s")
    started = time.perf_counter()
    generated = N - summary["domain_reports"]
    _bulk_insert(folder / DB, _registrars(app), generated)
    print(f"{generated:,} generated reports of 30 registrars: {time.perf_counter() - started:.0f} s")
    (folder / "ready").touch()
    return folder


def shared_database(work: Path) -> Flask:
    """The shared database with its filings (`common.ensure_filings`) and N reports: the generated ones it lacks
    copied in (`COPY`), once, and kept."""
    from sqlalchemy import func, select, text

    from extensions import db
    from models import DomainReport
    from rawsql import copy_rows

    app = build_app(work)
    registrars = _registrars(app)
    undo_changed_reports(app)  # of a run that died
    remove_imported(app)
    with app.app_context():
        common.ensure_filings(common.LARGE_FILINGS)
        missing = N - _count(app)
        if missing > 0:
            started = time.perf_counter()
            generated = db.session.scalar(select(func.count()).select_from(DomainReport).where(
                DomainReport.registrar_id.in_([registrar_id for registrar_id, _name in registrars]))) or 0
            copy_rows(db.session.connection(), DomainReport.__table__, GENERATED_COLUMNS,
                      _generated(generated + 1, missing, registrars))
            db.session.commit()
            db.session.execute(text("ANALYZE domain_reports"))
            db.session.commit()
            print(f"{missing:,} generated reports of 30 registrars: {time.perf_counter() - started:.0f} s")
    return app


# --- the import ---------------------------------------------------------------------------------------------

def make_file(path: Path, rows: int) -> None:
    """ROWS valid rows of new domains, as a registrar fills the template."""
    import xlsxwriter

    import domain_import
    from tests.filing_factories import credit_code

    today = date.today()
    workbook = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    sheet = workbook.add_worksheet(domain_import.DATA_SHEET)
    sheet.write_row(0, 0, domain_import.HEADERS)
    for n in range(1, rows + 1):
        sheet.write_row(n, 0, [
            f"bulk{n}.cn", "国家和地区顶级域名", (today - timedelta(days=n % 3000)).isoformat(),
            (today + timedelta(days=30 + n % 3000)).isoformat(), "基准导入域名注册服务有限公司",
            "ns1.bench.cn;ns2.bench.cn", "正常", f"导入基准科技有限公司{n}", f"导入基准科技有限公司{n}",
            "统一社会信用代码证书", credit_code(3_000_000 + n), f"天津市和平区某路{n % 999 + 1}号", "天津市", "天津市",
            f"dns{n}@bulk.example.cn", "022-12345678", "王五", "", "居民身份证", "11010519491231002X", "",
            "天津市", "天津市", f"admin{n}@bulk.example.cn", "13912345678", ""])
    workbook.close()


def child_import(folder: str, path: str) -> dict[str, Any]:
    from sqlalchemy import select

    import workflow.domain_imports as domain_imports
    from extensions import db
    from models import JobState, User

    app = build_app(Path(folder))
    writing: list[float] = []
    write = domain_imports.write_reports

    def timed(*args: Any, **kwargs: Any) -> int:
        started = time.perf_counter()
        try:
            return write(*args, **kwargs)
        finally:
            writing.append(time.perf_counter() - started)

    domain_imports.write_reports = timed
    with app.app_context():
        before = _peak_mb()
        started = time.perf_counter()
        with open(path, "rb") as stream:
            job = domain_imports.queue_domain_import(db.session.scalar(select(User).where(User.username == IMPORTER)),
                                                     "bench.xlsx", stream)
        db.session.commit()
        domain_imports.run_domain_import(job)
        errors = json.loads(job.errors)
        return {"seconds": time.perf_counter() - started, "rows": job.total_rows, "imported": job.imported,
                "done": job.state == JobState.DONE, "first_error": errors[0] if errors else None,
                "write_seconds": sum(writing), "peak_mb": _peak_mb(), "before_mb": before}


def remove_imported(app: Flask) -> None:
    """The imported rows gone (reports and queued changes), so that each run imports into the same database."""
    from sqlalchemy import delete, select

    from extensions import db
    from models import DomainChange, DomainReport, User

    with app.app_context():
        importer = select(User.id).where(User.username == IMPORTER).scalar_subquery()
        db.session.execute(delete(DomainReport).where(DomainReport.registrar_id == importer))
        db.session.execute(delete(DomainChange).where(DomainChange.domain.like("bulk%")))
        db.session.commit()


def run_child(kind: str, *arguments: str) -> dict[str, Any]:
    output = subprocess.run([sys.executable, __file__, "--child", kind, *arguments], check=True,
                            capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


# --- the verdicts of a batch approval -----------------------------------------------------------------------

def child_batch(folder: str) -> dict[str, Any]:
    """1,000 new applications in bureau review (demo filings, their domains reported in the demo mix), approved
    in one batch under "warn"; the time spent in `workflow.registrant` inside it."""
    from sqlalchemy import select, update

    import demo
    import workflow
    import workflow.registrant as registrant
    from extensions import db
    from models import Application, ApplicationState, PreapprovalItem, ReviewState, User, Website

    app = build_app(Path(folder), DOMAIN_REGISTRANT_CHECK="warn")
    spent: list[float] = []
    for name in ("preload_reports", "application_checks", "queue_failing", "audited", "blocker_messages"):
        setattr(registrant, name, _timed(getattr(registrant, name), spent))
    with app.app_context():
        first = db.session.scalar(select(Application.id).order_by(Application.id.desc()).limit(1)) or 0
        websites_before = db.session.scalar(select(Website.id).order_by(Website.id.desc()).limit(1)) or 0
        demo.seed(BATCH, PASSWORD, ApplicationState.BUREAU_REVIEW, "120000")
        db.session.execute(update(PreapprovalItem).where(PreapprovalItem.website_id > websites_before)
                           .values(state=ReviewState.CONFIRMED))  # the authority agreed
        db.session.commit()
        bureau = db.session.scalar(select(User).where(User.username == "demo_bureau_12"))
        applications = list(db.session.scalars(select(Application).where(
            Application.id > first, Application.state == ApplicationState.BUREAU_REVIEW).order_by(Application.id)))
        started = time.perf_counter()
        approved = workflow.batch_approve(bureau, applications)
        db.session.commit()
        total = time.perf_counter() - started
    return {"applications": len(applications), "approved": len(approved), "total": total, "checks": sum(spent)}


def _timed(function: Any, spent: list[float]) -> Any:
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            spent.append(time.perf_counter() - started)

    return timed


# --- the reconciliation -------------------------------------------------------------------------------------

CHANGED_SUFFIX = "（变更）"
OTHER_REGISTRANT = "91110000000000000X"


def _changed_file(app: Flask) -> Path:
    return Path(app.instance_path) / "bench-domain-reports-changed.json"


def change_reports(app: Flask) -> int:
    """CHANGED reports of filed (demo) domains changed as a registrar would: one in ten to another registrant
    (flagged), the rest a new registrant name; each queued as `change_report` queues it. What was queued
    before is marked done, so that the worker finds exactly these. What `undo_changed_reports` needs is written
    to a file first."""
    from sqlalchemy import DateTime, case, insert, literal, select, update

    from extensions import db
    from models import DomainChange, DomainFlag, DomainReport, OutboxMessage, utcnow

    with app.app_context():
        now = utcnow()
        pending = list(db.session.scalars(select(DomainChange.id).where(DomainChange.processed_at.is_(None))))
        ids = list(db.session.scalars(select(DomainReport.id).where(
            DomainReport.domain.like("%demo%"), DomainReport.status != "deleted").order_by(DomainReport.id)
            .limit(CHANGED)))
        certificates = dict(db.session.execute(select(DomainReport.id, DomainReport.registrant_certificate_number)
                                               .where(DomainReport.id.in_([i for i in ids if i % 10 == 0]))).all())
        marks = common.highest_ids(DomainChange, DomainFlag, OutboxMessage)
        _changed_file(app).write_text(json.dumps({
            "ids": ids, "certificates": certificates, "pending": pending,
            "marks": {model.__tablename__: mark for model, mark in marks.items()}}))
        for first in range(0, len(pending), 10_000):
            db.session.execute(update(DomainChange).where(DomainChange.id.in_(pending[first:first + 10_000]))
                               .values(processed_at=now))
        for first in range(0, len(ids), 10_000):
            chunk = DomainReport.id.in_(ids[first:first + 10_000])
            db.session.execute(update(DomainReport).where(chunk).values(
                registrant_certificate_number=case((DomainReport.id % 10 == 0, OTHER_REGISTRANT),
                                                   else_=DomainReport.registrant_certificate_number),
                registrant_name=DomainReport.registrant_name + CHANGED_SUFFIX, updated_at=now))
            db.session.execute(insert(DomainChange).from_select(
                ["domain", "what", "at"], select(DomainReport.domain, literal("registrant"),
                                                 literal(now, DateTime)).where(chunk)))
        db.session.commit()
    return len(ids)


def undo_changed_reports(app: Flask) -> None:
    """On a shared database: the changed reports as they were, the queue as it was (the changes queued before
    waiting again), and what the reconciliation added (its flags and e-mails) deleted."""
    from sqlalchemy import bindparam, func, update

    from extensions import db
    from models import DomainChange, DomainFlag, DomainReport, OutboxMessage

    saved = _changed_file(app)
    if not saved.exists():
        return
    changed = json.loads(saved.read_text())
    with app.app_context():
        ids, pending = changed["ids"], changed["pending"]
        name = DomainReport.registrant_name
        for first in range(0, len(ids), 10_000):
            db.session.execute(update(DomainReport).where(
                DomainReport.id.in_(ids[first:first + 10_000]), name.like(f"%{CHANGED_SUFFIX}")).values(
                registrant_name=func.substr(name, 1, func.length(name) - len(CHANGED_SUFFIX))))
        table = DomainReport.__table__
        db.session.connection().execute(
            update(table).where(table.c.id == bindparam("report_id")).values(
                registrant_certificate_number=bindparam("certificate")),
            [{"report_id": int(report_id), "certificate": certificate}
             for report_id, certificate in changed["certificates"].items()])
        db.session.commit()
        marks = {model: changed["marks"][model.__tablename__] for model in (DomainChange, DomainFlag, OutboxMessage)}
        common.delete_added(marks)
        for first in range(0, len(pending), 10_000):
            db.session.execute(update(DomainChange).where(DomainChange.id.in_(pending[first:first + 10_000]))
                               .values(processed_at=None))
        db.session.commit()
    saved.unlink()


def child_reconcile(folder: str) -> dict[str, Any]:
    from workflow.domain_reconcile import reconcile_domain_changes

    app = build_app(Path(folder))
    with app.app_context():
        started = time.perf_counter()
        figures = reconcile_domain_changes()
        return {**figures, "seconds": time.perf_counter() - started, "peak_mb": _peak_mb()}


# --- the run ------------------------------------------------------------------------------------------------

def _count(app: Flask) -> int:
    from sqlalchemy import func, select

    from extensions import db
    from models import DomainReport

    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(DomainReport)) or 0


def imports(app: Flask, work: Path) -> None:
    path = work / "domain-import.xlsx"
    started = time.perf_counter()
    make_file(path, ROWS)
    print(f"generated {ROWS:,} domain rows × 26 columns ({path.stat().st_size / 1e6:.1f} MB) in "
          f"{time.perf_counter() - started:.0f} s")
    runs = []
    for _ in range(REPEAT):
        remove_imported(app)
        runs.append(run_child("import", str(work), str(path)))
        assert runs[-1]["done"] and runs[-1]["imported"] == ROWS, runs[-1]
    remove_imported(app)
    median = sorted(runs, key=lambda run: run["seconds"])[len(runs) // 2]
    print(f"import of {ROWS:,} domain rows (upload → committed: reports, queued changes, audit events): "
          + ", ".join(f"{run['seconds']:.1f} s" for run in runs) + f"; median {median['seconds']:.1f} s = "
          f"{ROWS / median['seconds']:,.0f} rows/s, peak {max(run['peak_mb'] for run in runs):.0f} MB "
          f"(app alone {median['before_mb']:.0f} MB), the write transaction {median['write_seconds']:.1f} s  "
          "[targets ≤ 60 s, ≤ 300 MB]")


def main() -> None:
    from workflow import domain_reconcile  # noqa: F401 - the reconciliation must exist before anything is built

    work = Path(tempfile.mkdtemp(prefix="beian-domains-", dir=os.environ.get("BENCH_DIR")))
    if common.shared():
        app = shared_database(work)
    else:
        shutil.copy(database() / DB, work / DB)
        app = build_app(work)
    try:
        measure(app, work)
    finally:
        if common.shared():
            undo_changed_reports(app)
        shutil.rmtree(work)


def measure(app: Flask, work: Path) -> None:
    database_name = "SQLite" if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite") else "PostgreSQL"
    print(f"\ndomain reports ({database_name}): {_count(app):,} reports")
    imports(app, work)
    batches = [run_child("batch", str(work)) for _ in range(REPEAT)]
    share = statistics.median(run["checks"] / (run["total"] - run["checks"]) for run in batches)
    print(f"batch approval of {BATCH:,} applications (warn): " + ", ".join(
        f"{run['total']:.1f} s of which verdicts {run['checks']:.2f} s" for run in batches)
        + f"; the verdicts add {share:.1%} to the rest of the batch  [target ≤ 10 %]")
    changed = change_reports(app)
    result = run_child("reconcile", str(work))
    print(f"reconciliation after {changed:,} changed reports of filed domains: {result['seconds']:.1f} s, "
          f"{result['websites']:,} websites checked, {result['flagged']:,} flagged, {result['emails']:,} e-mails, "
          f"peak {result['peak_mb']:.0f} MB  [target ≤ 120 s]")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child = {"import": child_import, "batch": child_batch, "reconcile": child_reconcile}[sys.argv[2]]
        print(json.dumps(child(*sys.argv[3:]), ensure_ascii=False, default=str))
    else:
        main()
