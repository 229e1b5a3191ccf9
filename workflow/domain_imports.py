"""域名报备的批量导入与导出 (SPEC §8, §11): a registrar uploads the template; the worker checks every row with
the rules of `workflow/domains.py` (`report_problems`, one live report per domain, a domain twice in the file)
and imports nothing if one is wrong, else every row at once. The same job machinery as the filings import
(`workflow/imports.py`: queue, lease, progress, the marked file), jobs of kind "domains".

Checking only reads, so it holds no write lock; it also prepares each row that passes as its insert row (filled
by the workflow's own `_fill`: certificate numbers upper-cased, …). The write is then one transaction doing
nothing but inserting: the reports, a `DomainChange` per report for the reconciliation, and the job's outcome —
all of it or nothing. A registrar reporting one of the file's domains meanwhile is caught by the unique index of
live reports: the job then fails and nothing is written. The audit events (`domain.reported`, as `add_report`
records them) follow in short transactions, as in the filings import: the chain cannot take events back.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import IO, Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

import audit
import domain_import
import permissions
import workflow.domains as domains
import workflow.imports as imports
import xlsx_reader
from domain_import import CellError, Checked, RowChecker
from extensions import begin_write, db
from models import DomainChange, DomainReport, DomainStatus, ImportJob, JobState, Role, User, utcnow
from permissions import Action
from rawsql import BulkInsert
from workflow.errors import NotFound

KIND = "domains"
PROGRESS_EVERY = 5000
RACED = "导入期间有其他注册服务机构报备了文件中的域名，未导入任何数据；请重新上传以查看具体冲突。"
REPORT_COLUMNS = tuple(column.key for column in DomainReport.__table__.columns if column.key != "id")
_REPORTS = BulkInsert(DomainReport.__table__, REPORT_COLUMNS)
_CHANGES = BulkInsert(DomainChange.__table__, ("domain", "what", "at", "processed_at"))


def queue_domain_import(actor: User, filename: str, stream: IO[bytes]) -> ImportJob:
    """Store the upload and queue it for the worker, as a job of kind "domains" (3036 for anyone but an
    active registrar)."""
    domains.require_registrar(actor)
    return imports.queue_import(actor, filename, stream, kind=KIND)


# --- checking ---------------------------------------------------------------------------------------------

def check_file(job: ImportJob, actor: User, path: Path, stamp: datetime) -> RowChecker:
    """Read and check every row (only reads: no write lock), the progress written to the job; the rows that pass
    kept as insert rows (`_row`), so that the write does nothing but insert."""
    rows, declared = domain_import.read_file(path)
    imports._progress(job, total_rows=declared, phase="checking")
    sqlite = db.session.get_bind().dialect.name == "sqlite"
    checker = RowChecker(actor, lambda checked: insert_row(actor, checked, stamp, sqlite))
    done = 0
    for done, (number, cells) in enumerate(rows, start=1):
        checker.check(number, cells)
        if done % PROGRESS_EVERY == 0:
            imports._progress(job, done_rows=done)
    imports._progress(job, done_rows=done, total_rows=max(declared, done), phase="importing")
    checker.finish()
    return checker


# --- writing ----------------------------------------------------------------------------------------------

def insert_row(actor: User, checked: Checked, stamp: datetime, sqlite: bool) -> dict[str, Any]:
    """The report as `add_report` fills it (the workflow's `_fill`: stripped, certificate numbers upper-cased,
    name servers one per line), as an insert row."""
    record = SimpleNamespace()
    domains._fill(record, checked.data, checked.domain)  # type: ignore[arg-type]
    values = {**vars(record), "registrar_id": actor.id, "created_at": stamp, "updated_at": stamp}
    row = {name: values.get(name) for name in REPORT_COLUMNS}
    if sqlite:  # as SQLAlchemy stores a date in SQLite (not sqlite3's deprecated adapter)
        row |= {name: row[name].isoformat() for name in domain_import.DATE_FIELDS if isinstance(row[name], date)}
    return row


def write_reports(actor: User, chunks: Iterator[list[dict[str, Any]]]) -> int:
    """Every checked row in the caller's transaction: the report, and its DomainChange ("reported", as
    add_report queues it). Returns how many."""
    domains.require_registrar(actor)
    count, now = 0, utcnow()
    for chunk in chunks:
        _REPORTS.run(chunk)
        _CHANGES.run([{"domain": row["domain"], "what": "reported", "at": now, "processed_at": None} for row in chunk])
        count += len(chunk)
    return count


def audit_reports(actor: User, after: int, stamp: datetime, job_id: int) -> None:
    """In the import's write transaction: one audit event per imported report (domain.reported, as add_report
    records it), CHUNK per insert — the reports and their events committed together (events written after, in
    transactions of their own, were lost with a worker killed between two of them). The new reports are the
    registrar's bearing the check's stamp, after the greatest id before the write."""
    last = after
    while True:
        rows = db.session.execute(select(DomainReport.id, DomainReport.domain).where(
            DomainReport.id > last, DomainReport.registrar_id == actor.id, DomainReport.created_at == stamp)
            .order_by(DomainReport.id).limit(imports.CHUNK)).all()
        audit.record_many([("domain.reported", {
            "object_type": "domain_report", "object_id": report_id, "province_code": actor.province_code,
            "actor": actor, "changes": {"domain": name, "import_job": job_id}}) for report_id, name in rows])
        if len(rows) < imports.CHUNK:
            return
        last = rows[-1][0]


# --- the job ----------------------------------------------------------------------------------------------

def run_domain_import(job: ImportJob) -> ImportJob:
    """Check the whole file, then import all of it or nothing (one write transaction: the reports, their queued
    changes and the job's outcome), then the audit events. Never raises for a bad file."""
    with imports.claimed(job), imports.uploaded_file(job) as path:
        return _run_domain_import(job, path)


def _run_domain_import(job: ImportJob, path: Path) -> ImportJob:
    actor = db.session.get(User, job.user_id)
    imports._progress(job, phase="reading", imported=0)
    if actor is None or not permissions.can(actor, Action.DOMAIN_REPORT):
        return imports.fail(job, actor, [_file_error("无导入权限（只有域名注册服务机构可以报备域名）。", "3036")])
    checker: RowChecker | None = None
    stamp = utcnow()  # the new reports' created_at: how the audit step finds them
    try:
        with imports._reading():
            checker = check_file(job, actor, path, stamp)
            if checker.errors:
                return imports.refuse(job, actor, path, checker.errors, domain_import.write_marked)
        with imports._writing(job):
            before = db.session.scalar(select(func.max(DomainReport.id))) or 0
            job.imported = write_reports(actor, checker.rows())
            imports._finish(job, actor, JobState.DONE)
            audit_reports(actor, before, stamp, job.id)
    except xlsx_reader.ImportRefused as refused:
        return imports.fail(job, actor, [_file_error(refused.message)])
    except domains.DomainError as refused:  # the registrar disabled meanwhile
        return imports.fail(job, actor, [_file_error(message, code) for _field, code, message in refused.coded])
    except (IntegrityError, db.engine.dialect.loaded_dbapi.IntegrityError):  # the bulk inserts are the driver's
        return imports.fail(job, actor, [_file_error(RACED)])
    finally:
        if checker is not None:
            checker.close()
    return job


def _file_error(message: str, code: str = "") -> CellError:
    return CellError(0, 0, "", code, message)


# --- export -----------------------------------------------------------------------------------------------

def _reports(actor: User) -> Iterator[tuple[DomainReport, str]]:
    """The live reports the actor sees, 1,000 at a time in domain order, each with its registrar's username."""
    names = {user_id: username for user_id, username in db.session.execute(
        select(User.id, User.username).where(User.role == Role.DOMAIN_REPORTER))}
    query = (select(DomainReport).where(permissions.domain_report_scope(actor),
                                        DomainReport.status != DomainStatus.DELETED)
             .order_by(DomainReport.domain).execution_options(yield_per=1000))
    for partition in db.session.execute(query).scalars().partitions():
        for report in partition:
            yield report, names.get(report.registrar_id, "")
            db.session.expunge(report)


def export_reports(actor: User, target: Path) -> int:
    """The live reports the actor sees — a registrar its own, a bureau its province's, MIIT all — written to
    `target` in the template's columns (an overseer's with the registrar's account in a last column). Audited
    and committed; returns how many rows."""
    registrar = permissions.can(actor, Action.DOMAIN_REPORT)
    if not (registrar or permissions.can(actor, Action.DOMAIN_LIST)):
        raise NotFound()
    written = domain_import.write_export(target, _reports(actor), overseer=not registrar)
    begin_write()
    audit.record("export", object_type="domain_reports", actor=actor, changes={"rows": written})
    db.session.commit()
    return written
