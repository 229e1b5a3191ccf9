"""批量导入 (SPEC §8, FAQ 45): an ISP holding the import right, or a bureau (its province), uploads a
spreadsheet; the worker checks every row first and imports nothing if one is wrong, else imports every
row as applications in bureau review (the importing ISP counts as verified).

All or nothing, without holding SQLite's write lock for the whole import: the reading and checking only read; the
rows that pass are written, while the file is still being read, by a stager (`_Stager`; on PostgreSQL a thread,
`_ThreadedStager`) in short transactions *staged* — every row carries the job's id (`import_job_id`) and every ORM
query hides the rows of a job still staging (`_hide_staged`) — and one small final transaction makes them all
visible at once (the job done, `staging` off). A refused job's staged rows are deleted. The registry's unique
indexes see staged rows, so two imports (or an import and a filing) can never take the same domain or certificate
number: the later one fails and its rows are removed; the same indexes make the registry check unnecessary for a
file staged whole (it runs, to name the rows, for a file refused).

The worker survives any job: an unexpected exception marks that job failed with the reason and the loop
goes on; a job left running by a dead worker (its lease not renewed) is taken over.

Fencing: a worker that only stalled (SIGSTOP, a long pause, a partition) past its lease must not write once it
resumes — the new owner has removed its staged rows and started over. A claim sets `attempts` one higher, and that
count is the run's fencing token: every write transaction of a run (`_writing(job)`, here and in the IP and domain
imports) begins by renewing the lease on the condition that the job is still running under that token. When it is
not, the run raises `LeaseLost` before writing anything: it removes nothing and fails nothing (the job is the
new owner's), and the worker loop logs it and goes on. The UPDATE locks the job's row (PostgreSQL) or takes
the write lock (SQLite), so a takeover — which updates the same row — waits for the transaction in progress
and the transaction after it sees the takeover. PostgreSQL's two staging connections check the token under a
shared lock of the row instead (`_fence(shared=True)`: a takeover waits for both the same way, and they do not wait
for each other); the run's progress writes renew the lease meanwhile.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import queue
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sized
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

from flask import current_app, g
from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, delete, event, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria

import audit
import deadlines
import importer
import permissions
import storage
import xlsx_reader
from extensions import db, write_intent
from models import (
    Access,
    Application,
    ApplicationKind,
    ApplicationState,
    Domain,
    Entity,
    FilingStatus,
    ImportJob,
    IspVerification,
    JobState,
    PreapprovalItem,
    ReviewState,
    SpecialContentEvent,
    SpecialContentItem,
    User,
    Website,
    utcnow,
)
from permissions import Action
from rawsql import BulkInsert
from validators import registered_domain
from workflow import special_content
from workflow.errors import NotFound, WorkflowError

PROGRESS_EVERY = 5000
CHUNK = 5000  # rows per insert statement, and websites (with their entities and applications) per staging transaction
WRITE_PAUSE = 0.15  # seconds between staging transactions: more than SQLite's longest busy-wait step (100 ms)
PAGE_ERRORS = 10_000  # errors kept for the job's page; the marked file has all of them
MAX_ATTEMPTS = 3  # a job whose runs keep killing the worker is failed rather than taken over forever
STAGED_MODELS = (Entity, Website, PreapprovalItem, Access, Application, IspVerification, SpecialContentItem,
                 SpecialContentEvent)
RACED = "导入期间有域名或证件号码被其他备案占用，请重新上传。"
NO_RIGHT = "无导入权限。"
MISSING = ("找不到上传的文件（已被清理，或保存在另一台服务器上：多台服务器须设置 FILE_STORAGE=database），"
           "未导入任何数据；请重新上传。")


# --- staged rows: hidden from every query until their job is done -------------------------------------

def _visible(cls: Any) -> Any:
    return or_(cls.import_job_id.is_(None),
               cls.import_job_id.not_in(select(ImportJob.id).where(ImportJob.staging.is_(True))))


_HIDDEN = tuple(with_loader_criteria(model, _visible, include_aliases=True) for model in STAGED_MODELS)


@event.listens_for(Session, "do_orm_execute")
def _hide_staged(state: ORMExecuteState) -> None:
    """Every ORM select (lists, scopes, lookups, counts, relationships) leaves out the rows of an import
    still staging; the import itself reads them with `execution_options(include_staged=True)`."""
    if state.is_select and not state.is_column_load and not state.is_relationship_load \
            and not state.execution_options.get("include_staged"):
        state.statement = state.statement.options(*_HIDDEN)


# --- transactions: reading takes no write lock, writing is short -------------------------------------

@contextmanager
def _reading() -> Iterator[None]:
    """The job's transactions only read (SQLite: BEGIN, not BEGIN IMMEDIATE) unless `_writing` says otherwise; the
    transaction before is ended first (on SQLite it may hold the write lock, which the stager needs)."""
    db.session.commit()
    with write_intent(False):
        try:
            yield
        finally:
            db.session.rollback()


@contextmanager
def _writing(job: ImportJob | None = None, shared: bool = False) -> Iterator[None]:
    """One short write transaction (SQLite's write lock taken up front), committed at the end; for a running
    job's writes, fenced first (`_fence`; `shared`: without renewing the lease, so that two of the run's
    transactions may be open at once). A read transaction is ended first: SQLite cannot upgrade a read snapshot
    once another process has written — so a run sets the job's attributes inside the block, never before it."""
    db.session.commit()
    with write_intent(True):
        try:
            if job is not None:
                _fence(job, shared)
            yield
            db.session.commit()
        except BaseException:
            db.session.rollback()
            raise


def pause_between_writes() -> None:
    """Between two write transactions of an import (filings, IP or domain reports) on SQLite, time for other
    writers to take its one write lock. PostgreSQL has no such lock (a writer waits only for the rows it touches):
    there the pause would only idle — 9 s of a 100,000-row import. (Still a call to `time.sleep`, of 0 s: the point
    where the tests make a worker stall.)"""
    time.sleep(WRITE_PAUSE if db.engine.dialect.name == "sqlite" else 0)


def _lease() -> Any:
    return utcnow() + timedelta(seconds=current_app.config["IMPORT_LEASE_SECONDS"])


# --- fencing: a run writes only while its claim is the job's latest -----------------------------------------

class LeaseLost(Exception):
    """This run's job was taken over by another worker (this one stalled past its lease): the run stops at once
    and writes nothing more — the new owner does the work."""

    def __init__(self, job_id: int) -> None:
        super().__init__(f"import job {job_id} was taken over by another worker")
        self.job_id = job_id


def _claims() -> dict[int, int]:
    """The jobs this worker (its app context) runs, each with its fencing token: the `attempts` its claim set.
    Kept here rather than read from the job: a commit expires the job's attributes, and reloading them would
    give the new owner's count."""
    return g.setdefault("import_claims", {})


def _fence(job: ImportJob, shared: bool = False) -> None:
    """The first statement of each write transaction of a run: the lease renewed if the job is still running
    under this run's claim, else `LeaseLost` (the caller's transaction is rolled back, nothing written).

    `shared` (PostgreSQL's two staging connections): the job's row read FOR SHARE instead of updated, so that the
    run's two open transactions do not wait for each other; a takeover — an UPDATE of that row — still waits for
    both to end, and every transaction after it sees it. The lease is then renewed by the run's other writes."""
    mine = (ImportJob.id == job.id, ImportJob.attempts == _claims().get(job.id), ImportJob.state == JobState.RUNNING)
    if shared:
        held = db.session.scalar(select(ImportJob.id).where(*mine).with_for_update(read=True))
        if held is None:
            raise LeaseLost(job.id)
        return
    renewed = db.session.execute(update(ImportJob).where(*mine).values(lease_until=_lease())
                                 .execution_options(synchronize_session=False)).rowcount
    if renewed != 1:
        raise LeaseLost(job.id)


# --- queueing and the worker ----------------------------------------------------------------------------

def jobs_dir() -> Path:
    """The folder where FILE_STORAGE=local keeps the uploads and marked files (the CLI names them there)."""
    return storage.LocalStore(current_app.config["INSTANCE_PATH"], None).folder("imports")


def upload_key(job: ImportJob) -> str:
    return f"imports/{job.stored_name}"


def marked_key(job: ImportJob) -> str:
    return f"imports/{job.annotated_name}"


@contextmanager
def uploaded_file(job: ImportJob) -> Iterator[Path]:
    """The upload as a local path for the parsers while the job runs (a temporary copy with FILE_STORAGE=database,
    deleted after): the worker of any node runs the upload of any node."""
    with storage.current().local_copy(upload_key(job)) as path:
        yield path


#: who may queue a job of each kind (ImportJob.kind): filings, IP reports (`workflow.ip_imports`) or domain
#: reports (`workflow.domain_imports`)
MAY_QUEUE = {"filings": permissions.may_import, "ip": lambda actor: permissions.can(actor, Action.IP_REPORT),
             "domains": lambda actor: permissions.can(actor, Action.DOMAIN_REPORT)}


def queue_import(actor: User, filename: str, stream: IO[bytes], kind: str = "filings") -> ImportJob:
    """Store the upload (`storage`: generated name, streamed a chunk at a time) and queue it for the worker; the
    file is stored in the caller's transaction (gone again if it rolls back)."""
    if not MAY_QUEUE[kind](actor):
        raise NotFound()
    job = ImportJob(user_id=actor.id, filename=filename[-255:] or "import.xlsx", stored_name=uuid.uuid4().hex,
                    state=JobState.QUEUED, kind=kind)
    try:
        stored = storage.current().put(upload_key(job), stream, limit=current_app.config["MAX_CONTENT_LENGTH"])
    except storage.TooLarge as error:
        raise WorkflowError(str(_l("The file is too large.")), "file") from error
    if not stored.size:
        storage.current().delete(upload_key(job))
        raise WorkflowError(str(_l("Choose the file to import.")), "file")
    job.sha256, job.size = stored.sha256, stored.size
    db.session.add(job)
    db.session.flush()
    audit.record("import.queued", object_type="import", object_id=job.id, actor=actor,
                 changes={"file": job.filename, "sha256": job.sha256, "bytes": job.size})
    return job


def purge_files(now: datetime | None = None) -> int:
    """Housekeeping (a worker step): the upload and the marked file of every job finished more than
    IMPORT_FILES_KEEP_DAYS days ago, and files of that age no job names (a crash between storing and queueing);
    a job whose marked file is gone no longer offers it. Queued and running jobs keep theirs. Returns how many
    files were deleted."""
    cutoff = (now or utcnow()) - timedelta(days=current_app.config["IMPORT_FILES_KEEP_DAYS"])
    keys = storage.current().keys_older_than("imports", cutoff)
    deleted = 0
    for start in range(0, len(keys), 500):
        names = [key.split("/", 1)[1] for key in keys[start:start + 500]]
        with _writing():
            kept: set[str | None] = set()
            for stored, annotated, finished in db.session.execute(select(
                    ImportJob.stored_name, ImportJob.annotated_name, ImportJob.finished_at).where(
                    or_(ImportJob.stored_name.in_(names), ImportJob.annotated_name.in_(names)))):
                if finished is None or finished >= cutoff:
                    kept |= {stored, annotated}
            gone = [name for name in names if name not in kept]
            for name in gone:
                storage.current().delete(f"imports/{name}")
            db.session.execute(update(ImportJob).where(ImportJob.annotated_name.in_(gone)).values(annotated_name=None))
        deleted += len(gone)
    return deleted


def _claimable(now: Any) -> Any:
    """Queued, or running under a lease nobody renewed (its worker died)."""
    return or_(ImportJob.state == JobState.QUEUED,
               and_(ImportJob.state == JobState.RUNNING, ImportJob.lease_until < now))


def _claim(job_id: int, now: datetime) -> bool:
    """In the caller's write transaction: the job, if still claimable, set running under a new lease with one
    more attempt — that count kept as this run's fencing token."""
    attempts = db.session.scalar(update(ImportJob).where(ImportJob.id == job_id, _claimable(now)).values(
        state=JobState.RUNNING, lease_until=_lease(), attempts=ImportJob.attempts + 1)
        .returning(ImportJob.attempts).execution_options(synchronize_session=False))
    if attempts is not None:
        _claims()[job_id] = attempts
    return attempts is not None


def _claim_next() -> int | None:
    """Take the oldest claimable job; two workers never take the same one. PostgreSQL: the row locked with
    FOR UPDATE SKIP LOCKED (a job another worker is claiming is passed over, not waited for). SQLite: the
    write lock taken up front serialises the claims, and the update is conditional all the same."""
    now = utcnow()
    oldest = select(ImportJob.id).where(_claimable(now)).order_by(ImportJob.id).limit(1)
    if db.engine.dialect.name == "postgresql":
        oldest = oldest.with_for_update(skip_locked=True)
    with _writing():
        job_id = db.session.scalar(oldest)
        return job_id if job_id is not None and _claim(job_id, now) else None


@contextmanager
def claimed(job: ImportJob) -> Iterator[None]:
    """Around a run: the job claimed by this worker — by the worker loop already, or here for a job run at once
    (the CLI, the tests), released after. LeaseLost when another worker holds it."""
    job_id = job.id  # read once: after the run, reading the expired job would begin a transaction
    if job_id in _claims():
        yield
        return
    with _writing():
        if not _claim(job_id, utcnow()):
            raise LeaseLost(job_id)
    try:
        yield
    finally:
        _claims().pop(job_id, None)


def run_import_jobs(limit: int = 3) -> int:
    """The worker's part: run the claimable jobs, oldest first; returns how many ran. Never raises for a job."""
    ran = 0
    while ran < limit and (job_id := _claim_next()) is not None:
        ran += 1
        try:
            _run_or_fail(db.session.get(ImportJob, job_id))
        except LeaseLost:
            db.session.rollback()
            current_app.logger.warning("import job %s: taken over by another worker after this one stalled past "
                                       "its lease; left to it, nothing more written", job_id)
        finally:
            _claims().pop(job_id, None)
    return ran


def _run_or_fail(job: ImportJob) -> None:
    """Run a job this worker claimed; whatever goes wrong in it marks it failed — except LeaseLost (not ours)."""
    try:
        if _claims()[job.id] > MAX_ATTEMPTS:
            _fail(job, "导入多次中断（处理进程异常退出），已停止；请检查文件后重新上传。")
        elif job.kind == "ip":
            from workflow.ip_imports import run_ip_import  # it builds on this module

            run_ip_import(job)
        elif job.kind == "domains":
            from workflow.domain_imports import run_domain_import  # it builds on this module

            run_domain_import(job)
        else:
            run_import(job)
    except LeaseLost:
        raise
    except storage.FileMissing:
        db.session.rollback()
        _fail(job, MISSING)
    except Exception as error:  # one job, whatever happens in it, never stops the worker
        db.session.rollback()
        current_app.logger.exception("import job %s failed", job.id)
        _fail(job, f"导入时发生内部错误（{type(error).__name__}），未导入任何数据；请联系管理员。")


def _fail(job: ImportJob, message: str) -> None:
    """Mark a job failed with the reason, its staged rows removed; if even that fails (the database is
    unavailable), the lease runs out and a worker takes the job over later. LeaseLost passes: not ours."""
    try:
        _remove_staged(job)
        with _writing(job):
            _finish(job, db.session.get(User, job.user_id), JobState.FAILED, _file_error(message))
    except LeaseLost:
        raise
    except Exception:  # see the docstring
        db.session.rollback()
        current_app.logger.exception("import job %s could not be marked failed", job.id)


def _file_error(message: str) -> list[importer.CellError]:
    return [importer.CellError(0, 0, "", message)]


def _progress(job: ImportJob, **values: Any) -> None:
    """What the job's page polls, and the lease renewed (`_fence`: the worker is alive)."""
    with _writing(job):
        for key, value in values.items():
            setattr(job, key, value)


def _finish(job: ImportJob, actor: User | None, state: JobState, errors: Iterable[importer.CellError] = ()) -> None:
    """In the caller's write transaction: the outcome, the first PAGE_ERRORS errors and how many in all."""
    listed = [error.as_dict() for error in itertools.islice(errors, PAGE_ERRORS)]
    count = len(errors) if isinstance(errors, Sized) else len(listed)
    job.state, job.finished_at, job.lease_until, job.staging = state, utcnow(), None, False
    job.errors, job.error_count = json.dumps(listed, ensure_ascii=False), count
    audit.record("import.done" if state == JobState.DONE else "import.refused", object_type="import",
                 object_id=job.id, actor=actor, changes={
                     "file": job.filename, "sha256": job.sha256, "rows": job.total_rows, "imported": job.imported,
                     "errors": count})


def run_import(job: ImportJob) -> ImportJob:
    """Check the whole file, then import all of it or nothing. Never raises for a bad file."""
    with claimed(job), uploaded_file(job) as path:
        return _run_import(job, path)


def _run_import(job: ImportJob, path: Path) -> ImportJob:
    actor = db.session.get(User, job.user_id)
    _remove_staged(job)  # a run taken over from a dead worker starts again from nothing
    _progress(job, phase="reading", imported=0)
    if actor is None or not permissions.may_import(actor):
        with _writing(job):
            _finish(job, actor, JobState.FAILED, _file_error(NO_RIGHT))
        return job
    checker: importer.RowChecker | None = None
    try:
        with _reading():
            with _stager(job, actor) as stager:
                checker = importer.RowChecker(actor, stager.stage)
                _check(actor, path, checker, stager)
            if not checker.entities and not checker.errors:
                checker.errors.append(importer.CellError(2, 0, "", "文件中没有数据行。"))
            if checker.errors or stager.clashed:
                return _refuse_staged(job, actor, path, checker)
        staged = stager.staged
        assert staged is not None
        with _writing(job):  # the one transaction that makes every staged row visible, with their audit events
            if not permissions.may_import(actor):  # the right as it is now: it may have been withdrawn meanwhile
                raise xlsx_reader.ImportRefused(NO_RIGHT)
            job.imported = len(staged.entity_ids)
            _finish(job, actor, JobState.DONE)
            _audit_applications(actor, staged)
    except xlsx_reader.ImportRefused as refused:
        _fail_with(job, actor, _file_error(refused.message))
    except (IntegrityError, db.engine.dialect.loaded_dbapi.IntegrityError):  # the bulk inserts are the driver's
        _fail_with(job, actor, _file_error(RACED))
    finally:
        if checker is not None:
            checker.close()
    return job


def _refuse_staged(job: ImportJob, actor: User, path: Path, checker: importer.RowChecker) -> ImportJob:
    """A file with a wrong row, or whose staging met a unique index or an unknown ISP: the staged rows removed, then
    the registry check names the domains and certificate numbers taken and the ISPs unknown, with their rows. A
    file staged whole needs no such check: the unique indexes (`uq_domains_live_name`, `uq_entities_certificate_taken`,
    the registry check's very conditions) admitted every row, and the stager resolved every ISP. When the check finds
    nothing wrong, what the index refused was taken meanwhile (RACED)."""
    db.session.rollback()  # the reading's snapshot (SQLite) predates the stager's writes
    _remove_staged(job)
    checker.check_registry()
    if not checker.errors:
        raise xlsx_reader.ImportRefused(RACED)
    return refuse(job, actor, path, checker.errors)


def _check(actor: User, path: Path, checker: importer.RowChecker, stager: _Stager) -> None:
    """Reading and checking, which only read; the checked rows go to the stager as they pass, and so does the
    progress (the stager's transactions hold the job's row: the reader writes nothing)."""
    kind = xlsx_reader.check_container(path)
    header, rows, count = xlsx_reader.read_rows(path, kind)
    stager.progress(total_rows=count, phase="checking")
    _check_header(header)
    done = 0
    for done, (number, cells) in enumerate(rows, start=1):
        checker.check(number, cells)
        if done % PROGRESS_EVERY == 0:
            stager.progress(done_rows=done)
    checker.hand_over()
    stager.progress(done_rows=done, total_rows=max(count, done), phase="importing")


def _fail_with(job: ImportJob, actor: User | None, errors: list[importer.CellError]) -> None:
    db.session.rollback()
    _remove_staged(job)
    with _writing(job):
        _finish(job, actor, JobState.FAILED, errors)


def _check_header(header: list[str]) -> None:
    expected = [column.header for column in importer.COLUMNS]
    if header[:len(expected)] != expected:
        raise xlsx_reader.ImportRefused("第一行不是导入模板的表头；请下载最新的导入模板，在其中填写。")


#: writes the upload back with its wrong cells marked: (upload, errors, target)
MarkFile = Callable[[Path, Iterable[Any], Path], None]


def refuse(job: ImportJob, actor: User, path: Path, errors: importer.ErrorLog,
           mark: MarkFile = importer.write_annotated) -> ImportJob:
    """Every error listed (the first PAGE_ERRORS on the page), and the file back with all of them marked (by the
    kind's `mark`: the filings', IP or domain sheets'), stored with the job's outcome in one transaction."""
    with tempfile.TemporaryDirectory(prefix="beian-marked-") as folder:
        marked = Path(folder) / "marked.xlsx"
        if any(error.row for error in errors):
            mark(path, errors, marked)
        with _writing(job):
            if marked.exists():
                job.annotated_name = f"{job.stored_name}-marked.xlsx"
                with marked.open("rb") as content:
                    storage.current().put(marked_key(job), content)
            _finish(job, actor, JobState.FAILED, errors)
    return job


def fail(job: ImportJob, actor: User | None, errors: list[Any]) -> ImportJob:
    """A job of another kind (IP, domains) refused as a whole: nothing it wrote is kept."""
    db.session.rollback()
    with _writing(job):
        _finish(job, actor, JobState.FAILED, errors)
    return job


# --- staging --------------------------------------------------------------------------------------------

_INSERTS: dict[str, BulkInsert] = {}


def _insert(model: Any, rows: Iterable[dict[str, Any]]) -> None:
    """executemany on the session's connection (no ORM objects, no RETURNING), a chunk at a time: the
    rows are generated as they are written, never all at once."""
    rows = iter(rows)
    while chunk := list(itertools.islice(rows, CHUNK)):
        key = f"{model.__tablename__}:{','.join(chunk[0])}"
        if key not in _INSERTS:
            _INSERTS[key] = BulkInsert(model.__table__, chunk[0])
        _INSERTS[key].run(chunk)


def _staged(statement: Any) -> Any:
    return statement.execution_options(include_staged=True)


def _new_ids(model: Any, before: int, job_id: int) -> list[int]:
    """The ids of the rows this job just inserted into `model` after id `before`, in insertion order (ids grow in
    the order of a multi-row insert or a COPY; other writers' rows in between are not the job's): one range scan
    of the primary key."""
    return list(db.session.scalars(_staged(select(model.id).where(
        model.id > before, model.import_job_id == job_id).order_by(model.id))))


class _NotStageable(Exception):
    """A row names an ISP that is no active ISP account: nothing more is staged (the registry check names it)."""


class _Stager:
    """Writes the checked rows staged while the file is still being read and checked, CHUNK websites per short
    fenced transaction (with SQLite's pause between them); in the reader's thread, between its rows. A unique index
    refusing a chunk (a domain or certificate number taken), or a row naming no active ISP, stops the staging
    (`clashed`); the registry check after the reading names the rows.

    This one serves SQLite, which works inside the worker's process: a thread gained nothing there — it lost: a
    100,000-row import took 1.10 × openpyxl's read instead of 0.97, and a writer waited for the lock up to 2.6 s
    instead of 1.8 s (the stager waiting for the interpreter lock while holding SQLite's). PostgreSQL's is
    `_ThreadedStager`."""

    def __init__(self, job: ImportJob, actor: User) -> None:
        self._job, self._actor = job, actor
        self.clashed = False
        self.staged: _Staging | None = None

    def __enter__(self) -> _Stager:
        self._begin(self._job, self._actor)
        return self

    def __exit__(self, failure: type[BaseException] | None, *exc: object) -> None:
        return None

    def stage(self, websites: list[importer.ImportedWebsite]) -> None:
        self._stage(self._job, websites)

    def progress(self, **values: Any) -> None:
        _progress(self._job, **values)

    def _begin(self, job: ImportJob, actor: User) -> None:
        self.staged = _Staging(job.id, actor)
        with _writing(job):
            job.staging = True

    def _stage(self, job: ImportJob, websites: list[importer.ImportedWebsite]) -> None:
        assert self.staged is not None
        for start in range(0, len(websites), CHUNK):
            chunk = websites[start:start + CHUNK]
            try:
                with _writing(job):
                    self.staged.entities(chunk)
                    self.staged.websites(chunk)
            except (IntegrityError, db.engine.dialect.loaded_dbapi.IntegrityError, _NotStageable):
                self.clashed = True
                return
            pause_between_writes()


class _ThreadedStager(_Stager):
    """PostgreSQL's stager: two threads of its own (each with its own app context, session and connection), so that
    the database's work — the inserts and the maintenance of the tables' indexes, most of an import's writing there
    — runs beside the reading instead of after it, and beside the worker's own formatting of the rows (the server
    works in its own process). The first takes the rows from a short queue and writes each chunk's entities and
    applications; the second writes that chunk's websites, domains, pre-approval items, special content, accesses
    and verifications while the first writes the next chunk's entities (with one connection, the worker and the
    server each stood idle for a third of the import, waiting for the other). Their transactions fence with a shared
    lock of the job's row (`_fence(shared=True)`), so that neither waits for the other.

    The first thread also writes the job's progress, which renews the lease: once per chunk, between handing a
    chunk over and writing the next (the update waits for the second thread's transaction, which it then no longer
    overlaps), or at once when the second thread has nothing to do. Whatever either thread raises — `LeaseLost`, a
    database error, a worker being killed — is raised again in the reader's thread at its next hand-over or at the
    end; the block waits for both threads to end, and when the reader fails, what is still queued is not staged."""

    def __init__(self, job: ImportJob, actor: User) -> None:
        super().__init__(job, actor)
        self._app = current_app._get_current_object()  # type: ignore[attr-defined]
        self._claims = dict(_claims())
        self._queue: queue.Queue[tuple[str, Any] | None] = queue.Queue(maxsize=2)
        self._halves: queue.Queue[list[importer.ImportedWebsite] | None] = queue.Queue(maxsize=1)
        self._failure: BaseException | None = None
        self._abandoned = False
        self._pending: dict[str, Any] = {}  # progress not yet written
        self._handed = self._written = 0  # chunks handed to the second thread (by the first) and written by it
        self._thread = threading.Thread(target=self._run, args=(job.id, actor.id), name=f"import-{job.id}-stager",
                                        daemon=True)
        self._second = threading.Thread(target=self._run_second, args=(job.id,),
                                        name=f"import-{job.id}-stager-websites", daemon=True)

    def __enter__(self) -> _Stager:
        self._thread.start()
        return self

    def __exit__(self, failure: type[BaseException] | None, *exc: object) -> None:
        """Both threads ended before anything else happens (the staged rows may be removed next), then a failure of
        theirs raised — the end handed over even when one failed meanwhile."""
        self._abandoned = failure is not None
        self._put(None, raising=False)
        self._thread.join()
        if failure is None:
            self._raise_failure()

    def stage(self, websites: list[importer.ImportedWebsite]) -> None:
        self._put(("websites", websites))

    def progress(self, **values: Any) -> None:
        self._put(("progress", values))

    def _put(self, item: tuple[str, Any] | None, raising: bool = True) -> None:
        check = self._raise_failure if raising else _nothing
        _put_while_alive(self._queue, item, self._thread, check)
        check()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _failed(self, failure: BaseException) -> None:
        self._failure = self._failure or failure  # the first thread's to fail

    def _stopped(self) -> bool:
        return self.clashed or self._abandoned or self._failure is not None

    @contextmanager
    def _job_context(self, job_id: int) -> Iterator[ImportJob]:
        """A thread's own app context (its own session and connection) holding the run's claims, and the job."""
        with self._app.app_context():
            _claims().update(self._claims)
            yield db.session.get(ImportJob, job_id)

    def _run(self, job_id: int, actor_id: int) -> None:
        try:
            with self._job_context(job_id) as job:
                self._begin(job, db.session.get(User, actor_id))
                self._second.start()
                try:
                    while (item := self._queue.get()) is not None:
                        if item[0] == "progress":
                            self._pending.update(item[1])
                            if self._written == self._handed:  # the second thread idle: nothing to wait for
                                self._write_progress(job)
                        elif not self._stopped():
                            self._stage(job, item[1])
                except BaseException as failure:
                    self._failed(failure)  # the second thread stages nothing more
                    raise
                finally:
                    self._hand(None)
                    self._second.join()
                self._write_progress(job)
        except BaseException as failure:  # handed to the reader's thread
            self._failed(failure)

    def _stage(self, job: ImportJob, websites: list[importer.ImportedWebsite]) -> None:
        assert self.staged is not None
        for start in range(0, len(websites), CHUNK):
            if self._stopped():
                return
            chunk = websites[start:start + CHUNK]
            try:
                with _writing(job, shared=True):
                    self.staged.entities(chunk)
            except (IntegrityError, db.engine.dialect.loaded_dbapi.IntegrityError, _NotStageable):
                self.clashed = True
                return
            self._write_progress(job)  # after the second thread's previous chunk, before this one
            self._hand(chunk)
            pause_between_writes()

    def _write_progress(self, job: ImportJob) -> None:
        """Also after a clash: the reader checks the rest of the file, whose progress renews the lease meanwhile."""
        if self._failure is None and not self._abandoned:
            values, self._pending = self._pending, {}
            _progress(job, **values)

    def _hand(self, chunk: list[importer.ImportedWebsite] | None) -> None:
        if _put_while_alive(self._halves, chunk, self._second) and chunk is not None:
            self._handed += 1

    def _run_second(self, job_id: int) -> None:
        try:
            with self._job_context(job_id) as job:
                db.session.commit()  # no transaction left open while waiting for the first chunk
                while (chunk := self._halves.get()) is not None:
                    try:
                        if not self._stopped():
                            self._stage_websites(job, chunk)
                    finally:
                        self._written += 1
        except BaseException as failure:  # handed to the reader's thread
            self._failed(failure)

    def _stage_websites(self, job: ImportJob, chunk: list[importer.ImportedWebsite]) -> None:
        assert self.staged is not None
        try:
            with _writing(job, shared=True):
                self.staged.websites(chunk)
        except (IntegrityError, db.engine.dialect.loaded_dbapi.IntegrityError):
            self.clashed = True


def _nothing() -> None:
    return None


def _put_while_alive(channel: queue.Queue[Any], item: Any, consumer: threading.Thread,
                     check: Callable[[], None] = _nothing) -> bool:
    """`item` put on `channel` while the thread that empties it is alive, `check` run before each try (every
    0.2 s while the channel is full); False when the thread ended first."""
    while consumer.is_alive():
        check()
        with contextlib.suppress(queue.Full):
            channel.put(item, timeout=0.2)
            return True
    return False


def _stager(job: ImportJob, actor: User) -> _Stager:
    return _Stager(job, actor) if db.engine.dialect.name == "sqlite" else _ThreadedStager(job, actor)


class _Staging:
    """The rows of one import, written chunk by chunk. New rows are found again by a range of ids (`_new_ids`:
    a chunk's rows are the job's rows past the largest id before it, in insertion order) rather than by
    RETURNING, which SQLite answers one row at a time — and COPY not at all."""

    def __init__(self, job_id: int, actor: User) -> None:
        self.job_id, self.actor_id, self.now = job_id, actor.id, utcnow()
        self.isp_ids = {actor.username: actor.id}  # ISP username → id, resolved as rows name them
        self.entity_ids: dict[str, int] = {}  # certificate number → id
        self.provinces: dict[int, str] = {}  # entity id → province
        self.application_of: dict[int, int] = {}  # entity id → its application's id
        self.verified: set[tuple[int, int]] = set()  # (entity id, ISP id) with its verification written

    def entities(self, chunk: list[importer.ImportedWebsite]) -> None:
        """A chunk's first half: the new entities, with their applications (the ISPs the rows name resolved)."""
        if unknown := {w.isp_username for w in chunk} - self.isp_ids.keys():
            self.isp_ids.update(importer.active_isp_ids(unknown))
            if not unknown <= self.isp_ids.keys():
                raise _NotStageable
        new = [w.entity for w in chunk if w.entity is not None]
        before = db.session.scalar(_staged(select(func.max(Entity.id)))) or 0  # the new rows come after
        _insert(Entity, ({**dict(zip(importer.ENTITY_KEYS[1:], fields[1:], strict=True)), "province_code": fields[0],
                          "owner_id": None, "commercial": False, "status": FilingStatus.DRAFT, "website_seq": 0,
                          "number": None, "licence_number": None, "approved_at": None, "created_at": self.now,
                          "import_job_id": self.job_id} for fields in new))
        fresh = []
        for entity_id, number, province in db.session.execute(_staged(select(
                Entity.id, Entity.certificate_number, Entity.province_code).where(
                Entity.id > before, Entity.import_job_id == self.job_id).order_by(Entity.id))):
            self.entity_ids[number], self.provinces[entity_id] = entity_id, province
            fresh.append(entity_id)
        self._applications(fresh)

    def websites(self, chunk: list[importer.ImportedWebsite]) -> None:
        """A chunk's second half, after its first: the websites with their domains, pre-approval items, special
        content, accesses and ISP verifications."""
        before = db.session.scalar(_staged(select(func.max(Website.id)))) or 0
        owners = [self.entity_ids[w.certificate_number] for w in chunk]
        job_id = self.job_id
        _insert(Website, ({"entity_id": owner, "name": w.name, "home_url": w.home_url,
                           "service_content": w.service_content, "languages": "1", "responsible_name": "",
                           "responsible_mobile": "", "bbs": False, "bbs_sections": "", "status": FilingStatus.DRAFT,
                           "number": None, "approved_at": None, "import_job_id": job_id}
                          for owner, w in zip(owners, chunk, strict=True)))
        sites = list(zip(_new_ids(Website, before, job_id), owners, chunk, strict=True))
        _insert(Domain, ({"website_id": wid, "name": name, "live": True, "registered": registered_domain(name)}
                         for wid, _o, w in sites for name in w.domains))
        _insert(PreapprovalItem, ({"website_id": wid, "entity_id": owner, "province_code": self.provinces[owner],
                                   "category": c, "document_number": d, "state": ReviewState.PENDING, "reason": "",
                                   "reviewer_id": None, "reviewed_at": None, "import_job_id": job_id}
                                  for wid, owner, w in sites for c, d in w.preapprovals))
        special_content.insert_opened(((wid, owner, self.provinces[owner], w.name, False, "", w.service_content)
                                       for wid, owner, w in sites), self.actor_id, job_id)
        _insert(Access, ({"website_id": wid, "isp_id": self.isp_ids[w.isp_username], "method": w.access_method,
                          "server_province_code": w.server_province_code, "live": True,
                          "ip_ranges": "\n".join(f"{s}-{e}" for s, e in w.ip_ranges), "import_job_id": job_id}
                         for wid, _o, w in sites))
        self._verifications((owner, self.isp_ids[w.isp_username]) for _wid, owner, w in sites)

    def _applications(self, entity_ids: list[int]) -> None:
        """One application in bureau review per new entity."""
        actor_id, now, due = self.actor_id, self.now, deadlines.due_at(self.now)
        before = db.session.scalar(_staged(select(func.max(Application.id)))) or 0
        _insert(Application, ({
            "entity_id": entity_id, "province_code": self.provinces[entity_id], "kind": ApplicationKind.NEW_FILING,
            "state": ApplicationState.BUREAU_REVIEW, "created_by_id": actor_id, "submitted_by_id": actor_id,
            "submitted_at": now, "decided_by_id": None, "decided_at": None, "reasons": "{}", "proposal": "{}",
            "bureau_since": now, "due_at": due,
            "import_job_id": self.job_id} for entity_id in entity_ids))
        applications = _new_ids(Application, before, self.job_id)
        self.application_of.update(zip(entity_ids, applications, strict=True))

    def _verifications(self, pairs: Iterable[tuple[int, int]]) -> None:
        """Each ISP an entity's websites name counted as verified on its application, once."""
        new = [pair for pair in dict.fromkeys(pairs) if pair not in self.verified]
        self.verified.update(new)
        _insert(IspVerification, ({"application_id": self.application_of[entity_id], "isp_id": isp_id,
                                   "state": ReviewState.CONFIRMED, "reason": "", "at": self.now,
                                   "import_job_id": self.job_id} for entity_id, isp_id in new))


def _audit_applications(actor: User, staged: _Staging) -> None:
    """In the transaction that makes the import visible: one audit event per imported application, inserted CHUNK
    at a time. The same transaction, so that a worker killed at any point leaves either the visible import with
    every event or neither (events written after it, in transactions of their own, were lost with a worker killed
    between two of them — and the job, done, was never taken up again). The applications are the ones the stager
    wrote, with their provinces, in order: nothing read back."""
    applications = iter(sorted((application_id, staged.provinces[entity_id])
                               for entity_id, application_id in staged.application_of.items()))
    while chunk := list(itertools.islice(applications, CHUNK)):
        audit.record_many([("application.imported", {
            "object_type": "application", "object_id": application_id, "province_code": province,
            "actor": actor}) for application_id, province in chunk])


def _remove_staged(job: ImportJob) -> None:
    """Delete what a job staged (children first), CHUNK rows per short fenced transaction; nothing when it
    staged nothing. Its rows stay hidden meanwhile (the job is still marked staging until the end)."""
    job_id = job.id
    if not db.session.scalar(select(ImportJob.staging).where(ImportJob.id == job_id)):
        return
    websites = select(Website.id).where(Website.import_job_id == job_id)
    steps = [(IspVerification, IspVerification.import_job_id == job_id),
             (Application, Application.import_job_id == job_id),
             (Access, Access.import_job_id == job_id),
             (PreapprovalItem, PreapprovalItem.import_job_id == job_id),
             (SpecialContentItem, SpecialContentItem.import_job_id == job_id),
             (SpecialContentEvent, SpecialContentEvent.import_job_id == job_id),
             (Domain, Domain.website_id.in_(websites)),
             (Website, Website.import_job_id == job_id),
             (Entity, Entity.import_job_id == job_id)]
    for model, condition in steps:
        while ids := list(db.session.scalars(_staged(select(model.id).where(condition).limit(CHUNK)))):
            with _writing(job):
                db.session.execute(delete(model).where(model.id.in_(ids)))
    with _writing(job):
        db.session.execute(update(ImportJob).where(ImportJob.id == job_id).values(staging=False))
