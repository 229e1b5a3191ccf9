"""Issue 15: an import worker that stalls past its lease (SIGSTOP, a long pause, a partition) and then resumes
writes nothing: the worker that took the job over imports every row exactly once. Two workers are two apps
(own engine, sessions and `g`) on one database; a stall is a hook in which the lease runs out and the other
worker takes the job over."""

from __future__ import annotations

import io
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select, text, update

import importer
import workflow
import workflow.domain_imports as domain_imports
import workflow.ip_imports as ip_imports
from app import create_app
from extensions import db
from models import (
    Application,
    AuditEvent,
    DomainReport,
    Entity,
    ImportJob,
    IpBlock,
    JobState,
    Role,
    User,
    Website,
    utcnow,
)
from tests.conftest import _config
from tests.domain_factories import registrar
from tests.helpers import TIANJIN, make_user, user_named
from tests.import_files import plain_xlsx, valid_row
from tests.ip_import_files import ip_file
from tests.test_domain_import import domain_row, template_with
from workflow import imports

ON_POSTGRESQL = bool(os.environ.get("TEST_DATABASE_URL"))
ROWS = 5  # with CHUNK = 2: three staging transactions of websites, three of applications
WAITING_ON_A_LOCK = ("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                     "AND wait_event_type = 'Lock'")


@pytest.fixture
def second(app: Flask, tmp_path) -> Iterator[Flask]:
    """Another worker process's app on the same database (and the same upload folder)."""
    other = create_app(_config(tmp_path, app.config["SQLALCHEMY_DATABASE_URI"]))
    yield other
    with other.app_context():
        db.engine.dispose()


@pytest.fixture
def filings_job(app: Flask, users: dict[str, str], monkeypatch) -> int:
    """A queued filings import of ROWS rows, staged two websites per transaction without pauses."""
    monkeypatch.setattr(imports, "CHUNK", 2)
    monkeypatch.setattr(imports, "WRITE_PAUSE", 0)
    with app.app_context():
        make_user("tj_importer", Role.ISP, TIANJIN, organisation="天津导入网络公司", can_import=True)
        job = workflow.queue_import(user_named("tj_importer"), "备案.xlsx",
                                    io.BytesIO(plain_xlsx([valid_row(n) for n in range(1, ROWS + 1)])))
        db.session.commit()
        return job.id


def _expire_lease(job_id: int) -> None:
    db.session.execute(update(ImportJob).where(ImportJob.id == job_id).values(
        lease_until=utcnow() - timedelta(seconds=1)))
    db.session.commit()


def _take_over(other: Flask, job_id: int) -> None:
    """The stalled worker's lease runs out; another worker claims the job and runs it to the end."""
    with other.app_context():
        _expire_lease(job_id)
        assert workflow.run_import_jobs() == 1


def _stall_after(monkeypatch, owner: Any, name: str, when_stalled: Callable[[], None]) -> None:
    """The first call of `owner.name` does its work, then the worker stalls: `when_stalled` runs (the lease
    expires, another worker acts) before the call returns. Later calls — the other worker's — are the real ones."""
    real = getattr(owner, name)

    def stalled(*args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(owner, name, real)
        result = real(*args, **kwargs)
        when_stalled()
        return result

    monkeypatch.setattr(owner, name, stalled)


def _stall_at_first_pause(monkeypatch, when_stalled: Callable[[], None]) -> None:
    """The worker stalls in its first pause between staging transactions (its first chunk committed); the pauses
    after that one, the other worker's included, take no time."""
    def pause(_seconds: float) -> None:
        monkeypatch.setattr(imports, "time", SimpleNamespace(sleep=lambda _seconds: None))
        when_stalled()

    monkeypatch.setattr(imports, "time", SimpleNamespace(sleep=pause))


@contextmanager
def _resumed(app: Flask, job_id: int, attempts: int = 1) -> Iterator[ImportJob]:
    """Worker 1 back from its stall, in its own app context, still holding the claim it made (its `attempts`)."""
    with app.app_context():
        imports._claims()[job_id] = attempts
        yield db.session.get(ImportJob, job_id)
        db.session.rollback()


def _staged(model: Any) -> int:
    """The model's rows, staged or visible; the transaction ended after (on SQLite, a worker's open transaction
    holds the write lock: the other worker would wait for it)."""
    count = db.session.scalar(select(func.count()).select_from(model).execution_options(include_staged=True))
    db.session.rollback()
    return count


def _events(action: str) -> int:
    return db.session.scalar(select(func.count()).where(AuditEvent.action == action))


def _outcome(app: Flask, job_id: int) -> tuple[Any, ...]:
    """The job's row as the job page shows it, and every row the import writes, staged or visible."""
    with app.app_context():
        job = db.session.get(ImportJob, job_id)
        return (job.state, job.attempts, job.imported, job.error_count, job.errors, job.finished_at,
                job.annotated_name, job.lease_until, job.staging, _staged(Entity), _staged(Website),
                _staged(Application), _events("application.imported"), _events("import.done"),
                _events("import.refused"))


def _imported_once(app: Flask, job_id: int, rows: int = ROWS) -> None:
    with app.app_context():
        job = db.session.get(ImportJob, job_id)
        assert (job.state, job.attempts, job.imported, job.error_count) == (JobState.DONE, 2, rows, 0)
        visible = db.session.scalar(select(func.count()).select_from(Entity))
        assert (visible, _staged(Entity), _staged(Website), _staged(Application)) == (rows,) * 4
        assert (_events("application.imported"), _events("import.done"), _events("import.refused")) == (rows, 1, 0)


# --- the filings import ------------------------------------------------------------------------------------

def test_a_worker_resuming_after_a_takeover_stops_and_the_file_is_imported_once(
        app: Flask, second: Flask, filings_job: int, monkeypatch, caplog) -> None:
    """Worker 1 stages the first two websites and stalls past its lease; worker 2 takes over, removes them and
    imports the file. Worker 1 resumes: its next staging transaction is refused (LeaseLost), it writes,
    removes and fails nothing, and its loop goes on."""
    at_stall: list[int] = []

    def stalled() -> None:
        at_stall.append(_staged(Entity))
        _take_over(second, filings_job)

    _stall_at_first_pause(monkeypatch, stalled)
    with app.app_context(), caplog.at_level(logging.WARNING):
        assert workflow.run_import_jobs() == 1
    assert at_stall == [2]
    _imported_once(app, filings_job)
    assert f"import job {filings_job}: taken over by another worker" in caplog.text


def _progress(job: ImportJob, _actor: User) -> None:
    imports._progress(job, done_rows=1, phase="checking")


def _make_visible(job: ImportJob, actor: User) -> None:
    with imports._writing(job):
        job.imported = 1
        imports._finish(job, actor, JobState.DONE)


def _fail_in_loop(job: ImportJob, _actor: User) -> None:
    imports._fail(job, "导入时发生内部错误（RuntimeError），未导入任何数据；请联系管理员。")


def _fail_raced(job: ImportJob, actor: User) -> None:
    imports._fail_with(job, actor, imports._file_error(imports.RACED))


def _refuse(job: ImportJob, actor: User) -> None:
    with imports.uploaded_file(job) as path:
        imports.refuse(job, actor, path, [importer.CellError(2, 1, "x", "错")])


def _fail_other_kind(job: ImportJob, actor: User) -> None:
    imports.fail(job, actor, imports._file_error("无导入权限。"))


@pytest.mark.parametrize("step", [_progress, _make_visible, _fail_in_loop, _fail_raced, _refuse, _fail_other_kind])
def test_every_write_of_a_run_whose_job_was_taken_over_is_refused(
        app: Flask, second: Flask, filings_job: int, step: Callable[[ImportJob, User], None]) -> None:
    """Whichever write worker 1 resumes with — progress, the final transaction, failing the job (after an error,
    after a unique-index clash), refusing the file — LeaseLost, and the job stays as worker 2 left it."""
    with app.app_context():
        assert imports._claim_next() == filings_job  # worker 1 claims it (attempts 1), then stalls
    _take_over(second, filings_job)
    done = _outcome(app, filings_job)
    with _resumed(app, filings_job) as job, pytest.raises(imports.LeaseLost):
        step(job, user_named("tj_importer"))
    assert _outcome(app, filings_job) == done
    _imported_once(app, filings_job)


def test_a_resumed_worker_failing_keeps_what_the_new_owner_staged(
        app: Flask, second: Flask, filings_job: int, monkeypatch) -> None:
    """The review's case: worker 1 resumes into a unique-index clash while worker 2 is staging; failing its run
    would remove every staged row of the job — worker 2's too. It is refused; worker 2 finishes the file."""
    with app.app_context():
        assert imports._claim_next() == filings_job
        _expire_lease(filings_job)
    kept: list[tuple[int, int]] = []

    def worker_1_resumes() -> None:  # worker 2 has staged its first chunk
        before = _staged(Entity)
        with _resumed(app, filings_job) as job, pytest.raises(imports.LeaseLost):
            _fail_raced(job, user_named("tj_importer"))
        kept.append((before, _staged(Entity)))

    _stall_at_first_pause(monkeypatch, worker_1_resumes)
    with second.app_context():
        assert workflow.run_import_jobs() == 1
    assert kept == [(2, 2)]
    _imported_once(app, filings_job)


def test_a_job_run_at_once_is_claimed_and_one_a_worker_holds_is_not_run(app: Flask, filings_job: int) -> None:
    """The CLI runs a queued job at once: claimed first, as a worker would. A job a worker holds is not run."""
    with app.app_context():
        job = db.session.get(ImportJob, filings_job)
        imports.run_import(job)
        assert (job.state, job.attempts, job.imported) == (JobState.DONE, 1, ROWS)
        assert imports._claims() == {}  # released after the run
        job.state, job.lease_until = JobState.RUNNING, utcnow() + timedelta(minutes=5)
        db.session.commit()
        with pytest.raises(imports.LeaseLost):
            imports.run_import(job)
        assert db.session.get(ImportJob, filings_job).attempts == 1


@pytest.mark.skipif(not ON_POSTGRESQL, reason="SQLite serialises every write transaction with its write lock")
def test_a_worker_stalled_inside_a_write_is_not_taken_over_under_it(
        app: Flask, second: Flask, filings_job: int) -> None:
    """Worker 1 stalls inside a fenced transaction after its lease ran out: the fence's row lock keeps worker 2
    off the job (FOR UPDATE SKIP LOCKED passes it over) until that transaction ends, with the lease renewed."""
    with app.app_context():
        assert imports._claim_next() == filings_job
        _expire_lease(filings_job)
        job = db.session.get(ImportJob, filings_job)
        with imports._writing(job):
            job.phase = "checking"
            with second.app_context():
                assert workflow.run_import_jobs() == 0
        with second.app_context():
            assert workflow.run_import_jobs() == 0  # renewed by the fence: worker 1 is alive
        assert db.session.get(ImportJob, filings_job).attempts == 1


@pytest.mark.skipif(not ON_POSTGRESQL, reason="SQLite serialises every write transaction with its write lock")
def test_a_fence_meeting_a_takeover_in_progress_waits_and_sees_it(app: Flask, second: Flask, filings_job: int) -> None:
    """Worker 1 resumes while worker 2 is claiming the job (not yet committed): the fence waits on the claim's
    row lock, then reads the committed row — another attempt — and refuses."""
    with app.app_context():
        assert imports._claim_next() == filings_job
        _expire_lease(filings_job)
    outcome: list[BaseException | None] = []

    def worker_1_resumes() -> None:
        with _resumed(app, filings_job) as job:
            try:
                _progress(job, user_named("tj_importer"))
                outcome.append(None)
            except BaseException as error:  # handed to the test's thread
                outcome.append(error)

    with second.app_context():
        with imports._writing():  # worker 2's claim, committed at the end of the block
            assert imports._claim(filings_job, utcnow())
            resumed = threading.Thread(target=worker_1_resumes)
            resumed.start()
            with db.engine.connect() as watcher:
                for _ in range(400):  # until worker 1 waits on the row lock (the bound only stops a broken test)
                    if watcher.scalar(text(WAITING_ON_A_LOCK)):
                        break
                    threading.Event().wait(0.05)
        resumed.join(20)
    assert len(outcome) == 1 and isinstance(outcome[0], imports.LeaseLost)
    with app.app_context():
        assert db.session.get(ImportJob, filings_job).attempts == 2


# --- the IP and domain imports: one write transaction, after the checks ---------------------------------------

def test_an_ip_import_resumed_after_a_takeover_writes_nothing(app: Flask, second: Flask, users, tmp_path,
                                                              monkeypatch) -> None:
    path = ip_file(tmp_path / "ip.xlsx", [{"start": "198.18.0.0", "end": "198.18.255.255",
                                            "origin": "互联网地址注册机构", "registry_code": "APNIC"}])
    with app.app_context(), path.open("rb") as stream:
        job_id = ip_imports.queue_ip_import(user_named(users["ip_reporter"]), path.name, stream).id
        db.session.commit()
    _stall_after(monkeypatch, ip_imports, "_check", lambda: _take_over(second, job_id))
    with app.app_context():
        assert workflow.run_import_jobs() == 1  # worker 1: checked, stalled, its write refused
        job = db.session.get(ImportJob, job_id)
        assert (job.state, job.attempts, job.imported, job.error_count) == (JobState.DONE, 2, 1, 0)
        assert db.session.scalar(select(func.count()).select_from(IpBlock)) == 1
        assert (_events("ip.block.added"), _events("import.done")) == (1, 1)


def test_a_domain_import_resumed_after_a_takeover_writes_nothing(app: Flask, second: Flask, users,
                                                                 monkeypatch) -> None:
    data = template_with(app, [domain_row("fenced.cn")])
    with app.app_context():
        registrar("reg_a", organisation="甲域名注册服务有限公司")
        job_id = domain_imports.queue_domain_import(user_named("reg_a"), "域名.xlsx", io.BytesIO(data)).id
        db.session.commit()
    _stall_after(monkeypatch, domain_imports, "check_file", lambda: _take_over(second, job_id))
    with app.app_context():
        assert workflow.run_import_jobs() == 1
        job = db.session.get(ImportJob, job_id)
        assert (job.state, job.attempts, job.imported, job.error_count) == (JobState.DONE, 2, 1, 0)
        assert db.session.scalar(select(func.count()).select_from(DomainReport)) == 1
        assert (_events("domain.reported"), _events("import.done")) == (1, 1)
