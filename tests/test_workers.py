"""Issue 15 part 3: N workers on one database run each job exactly once; a dead worker's job is taken over after
its lease. Two workers are two threads, each with its own app (its own engine, pool and sessions)."""

from __future__ import annotations

import io
import os
import threading
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select, update

import leases
import notify
import workers
import workflow
from app import create_app
from extensions import db
from models import (
    DomainChange,
    Entity,
    ImportJob,
    JobState,
    MessageStatus,
    OutboxMessage,
    Role,
    WorkerLease,
    utcnow,
)
from tests.conftest import _config
from tests.helpers import TIANJIN, make_user, user_named
from tests.import_files import plain_xlsx, valid_row
from workflow import imports

ON_POSTGRESQL = bool(os.environ.get("TEST_DATABASE_URL"))
WAIT = 20  # seconds a thread waits for the other before the test fails (never reached when all is well)


@pytest.fixture
def second(app: Flask, tmp_path) -> Flask:
    """Another worker process's app on the same database."""
    other = create_app(_config(tmp_path, app.config["SQLALCHEMY_DATABASE_URI"]))
    yield other
    with other.app_context():
        db.engine.dispose()


@pytest.fixture
def importer_isp(app: Flask, users: dict[str, str]) -> str:
    with app.app_context():
        make_user("tj_importer", Role.ISP, TIANJIN, organisation="天津导入网络公司", can_import=True)
    return "tj_importer"


def _queue_import(app: Flask, first_row: int, rows: int) -> int:
    data = plain_xlsx([valid_row(n) for n in range(first_row, first_row + rows)])
    with app.app_context():
        job = workflow.queue_import(user_named("tj_importer"), "备案.xlsx", io.BytesIO(data))
        db.session.commit()
        return job.id


def _in_threads(*jobs: tuple[Flask, Callable[[], Any]]) -> list[Any]:
    """Run each callable in its own thread inside its app's context, all released at once; their results
    (a thread's exception is raised here)."""
    barrier = threading.Barrier(len(jobs))
    results: list[Any] = [None] * len(jobs)

    def run(index: int, app: Flask, job: Callable[[], Any]) -> None:
        with app.app_context():
            barrier.wait(WAIT)
            try:
                results[index] = job()
            except BaseException as error:  # handed to the test's thread
                results[index] = error
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run, args=(i, app, job)) for i, (app, job) in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT * 3)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


# --- the lease ----------------------------------------------------------------------------------------

def test_a_lease_is_held_by_one_worker_until_released_or_expired(ctx) -> None:
    """Can a second worker take a step the first holds? Only after the first released it or let it expire."""
    assert leases.claim("reminders", 60, "node-a:1")
    assert not leases.claim("reminders", 60, "node-b:2")
    assert leases.claim("reminders", 60, "node-a:1")  # ours: renewed
    leases.release("reminders", "node-b:2")  # not b's: nothing happens
    assert not leases.claim("reminders", 60, "node-b:2")
    leases.release("reminders", "node-a:1")
    assert leases.claim("reminders", 60, "node-b:2")
    assert not leases.renew("reminders", 60, "node-a:1") and leases.renew("reminders", 60, "node-b:2")


def test_an_expired_lease_is_taken_over_and_the_old_holder_knows(ctx) -> None:
    assert leases.claim("domain_checks", 60, "node-a:1")
    db.session.execute(update(WorkerLease).values(lease_until=utcnow() - timedelta(seconds=1)))
    db.session.commit()  # node-a died: nobody renewed it
    assert leases.claim("domain_checks", 60, "node-b:2")
    assert not leases.renew("domain_checks", 60, "node-a:1")  # node-a, back, finds it taken
    lease = db.session.get(WorkerLease, "domain_checks")
    assert lease.holder == "node-b:2" and lease.lease_until > utcnow() + timedelta(seconds=50)


def test_two_workers_creating_a_lease_at_once_get_it_once(app: Flask, second: Flask) -> None:
    """The first claim of a step inserts its row: at the same moment from two workers, one wins, none fails."""
    for name in (f"step{n}" for n in range(10)):
        won = _in_threads((app, lambda name=name: leases.claim(name, 60, "node-a:1")),
                          (second, lambda name=name: leases.claim(name, 60, "node-b:2")))
        assert sorted(won) == [False, True], name
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(WorkerLease)) == 10


def test_the_heartbeat_renews_the_lease_while_the_step_runs(app: Flask) -> None:
    """A step longer than its lease keeps it: the heartbeat pushes lease_until while the step runs."""
    app.config["WORKER_LEASE_SECONDS"] = 0.3

    def lease_until() -> Any:
        """Read, then end the transaction: outside a request SQLite's transactions take the write lock (BEGIN
        IMMEDIATE), which the heartbeat needs while the step waits."""
        try:
            return db.session.scalar(select(WorkerLease.lease_until).where(WorkerLease.name == "slow"))
        finally:
            db.session.rollback()

    def long_step() -> str:
        first, pause = lease_until(), threading.Event()
        for _ in range(WAIT * 20):  # polls until renewed; the bound only stops a broken heartbeat
            if lease_until() > first:
                return "renewed"
            pause.wait(0.05)
        return "never renewed"

    with app.app_context():
        assert workers.run_step(workers.Step("slow", long_step, singleton=True), "node-a:1") == "renewed"
        assert lease_until() <= utcnow()  # released after the step


# --- singleton steps across two workers -----------------------------------------------------------------

def test_a_singleton_step_runs_in_one_worker_while_the_other_skips_it(app: Flask, second: Flask) -> None:
    """While worker A runs the reminders, does worker B run them too? No: B reports them held elsewhere."""
    inside, done = threading.Event(), threading.Event()
    runs: list[str] = []

    def step_of(holder: str) -> workers.Step:
        def run() -> str:
            runs.append(holder)
            inside.set()
            assert done.wait(WAIT)
            return "ran"
        return workers.Step("reminders", run, singleton=True)

    def worker_a() -> Any:
        return workers.run_step(step_of("node-a:1"), "node-a:1")

    def worker_b() -> Any:
        assert inside.wait(WAIT)
        try:
            return workers.run_step(step_of("node-b:2"), "node-b:2")
        finally:
            done.set()

    assert _in_threads((app, worker_a), (second, worker_b)) == ["ran", workers.HELD_ELSEWHERE]
    assert runs == ["node-a:1"]
    with second.app_context():  # A released it: B's next pass runs it
        assert workers.run_step(step_of("node-b:2"), "node-b:2") == "ran"


def test_a_dead_workers_step_is_taken_over_after_its_lease(app: Flask, second: Flask) -> None:
    ran: list[str] = []
    step = workers.Step("ip_findings", lambda: ran.append("b") or "ran", singleton=True)
    with app.app_context():
        assert leases.claim("ip_findings", 60, "node-a:1")  # then node-a is killed mid-step
    with second.app_context():
        assert workers.run_step(step, "node-b:2") == workers.HELD_ELSEWHERE and ran == []
        db.session.execute(update(WorkerLease).values(lease_until=utcnow() - timedelta(seconds=1)))
        db.session.commit()
        assert workers.run_step(step, "node-b:2") == "ran" and ran == ["b"]


def test_a_stalled_domain_check_whose_lease_was_taken_writes_nothing(ctx) -> None:
    """Worker A's domain-check step stalls past its lease; worker B takes the lease over; A resumes. Does A go
    on e-mailing and marking the queue beside B? No: its next transaction's fence refuses, nothing is written."""
    db.session.add(DomainChange(domain="stalled-example.cn", what="registrant"))
    db.session.commit()

    def stalled_then_resumed() -> Any:
        db.session.execute(update(WorkerLease).where(WorkerLease.name == "domain_checks").values(
            lease_until=utcnow() - timedelta(seconds=1)))
        db.session.commit()  # A's heartbeat could not renew in time (A was paused) ...
        assert leases.claim("domain_checks", 60, "node-b:2")  # ... and B took the step over
        return workflow.domain_reconcile.reconcile_domain_changes()

    figures = workers.run_pass("node-a:1", (workers.Step("domain_checks", stalled_then_resumed, singleton=True),))
    assert figures == {"domain_checks": workers.LEASE_LOST}
    assert db.session.scalar(select(DomainChange.processed_at)) is None  # left for B, untouched by A
    assert db.session.scalar(select(func.count()).select_from(OutboxMessage)) == 0
    assert db.session.get(WorkerLease, "domain_checks").holder == "node-b:2"  # A released nothing of B's
    db.session.rollback()  # end the reads' transaction (on SQLite it holds the write lock B's claim needs)
    assert workers.run_pass("node-b:2", (workers.Step(
        "domain_checks", workflow.domain_reconcile.reconcile_domain_changes, singleton=True),))["domain_checks"][
        "changes"] == 1


def test_outside_a_leased_step_the_fence_lets_the_command_run(ctx) -> None:
    """`flask domain-reconcile` (no worker, no lease) is not refused by the fence."""
    db.session.add(DomainChange(domain="by-hand-example.cn", what="registrant"))
    db.session.commit()
    assert workflow.domain_reconcile.reconcile_domain_changes()["changes"] == 1


def test_a_failing_singleton_step_is_reported_and_frees_its_lease(ctx) -> None:
    def broken() -> None:
        raise RuntimeError("database gone")

    figures = workers.run_pass("node-a:1", (workers.Step("domain_checks", broken, singleton=True),
                                            workers.Step("after", lambda: 1, singleton=False)))
    assert figures == {"domain_checks": "failed", "after": 1}
    assert leases.claim("domain_checks", 60, "node-b:2")  # released, not left to expire


def test_the_loop_ends_after_the_pass_in_which_it_was_asked_to_stop(ctx, monkeypatch) -> None:
    stop, passes = threading.Event(), []

    def one_pass(*_args: Any) -> dict[str, Any]:
        passes.append(1)
        if len(passes) == 2:
            stop.set()  # as SIGTERM does
        return {}

    monkeypatch.setattr(workers, "run_pass", one_pass)
    workers.run_forever(0, stop)
    assert len(passes) == 2


# --- queues across two workers ----------------------------------------------------------------------------

def test_two_workers_send_each_message_once(app: Flask, second: Flask, monkeypatch) -> None:
    with app.app_context():
        for n in range(250):
            notify.queue_sms("13800001111", f"消息{n}")
        db.session.commit()
    sent: list[tuple[str, int]] = []

    def drain() -> int:
        passes = 0
        while db.session.scalar(select(func.count()).where(OutboxMessage.status == MessageStatus.QUEUED)):
            notify.deliver_due(limit=50)
            passes += 1
        return passes

    def record(message: OutboxMessage, _config: dict[str, Any]) -> None:
        sent.append((threading.current_thread().name, message.id))

    monkeypatch.setitem(notify.SENDERS, notify.MessageChannel.SMS, record)
    _in_threads((app, drain), (second, drain))
    ids = Counter(message_id for _thread, message_id in sent)
    assert len(ids) == 250 and set(ids.values()) == {1}
    with app.app_context():
        assert db.session.scalar(select(func.count()).where(OutboxMessage.status == MessageStatus.SENT)) == 250


def test_two_workers_run_each_import_once(app: Flask, second: Flask, importer_isp: str) -> None:
    job_ids = [_queue_import(app, 1 + 3 * n, 3) for n in range(4)]

    def drain() -> int:
        ran = 0
        while (count := workflow.run_import_jobs(limit=1)):
            ran += count
        return ran

    ran = _in_threads((app, drain), (second, drain))
    assert sum(ran) == 4
    with app.app_context():
        jobs = db.session.scalars(select(ImportJob).where(ImportJob.id.in_(job_ids))).all()
        assert {(job.state, job.attempts, job.imported) for job in jobs} == {(JobState.DONE, 1, 3)}
        assert db.session.scalar(select(func.count()).select_from(Entity)) == 12


@pytest.mark.skipif(not ON_POSTGRESQL, reason="FOR UPDATE SKIP LOCKED is PostgreSQL's")
def test_a_job_being_claimed_is_skipped_not_waited_for(app: Flask, second: Flask, importer_isp: str) -> None:
    """On PostgreSQL, while worker A holds the oldest job's row locked, worker B claims the next one at once."""
    first, following = _queue_import(app, 1, 1), _queue_import(app, 2, 1)
    with app.app_context():
        locked = db.session.scalar(select(ImportJob.id).where(ImportJob.id == first).with_for_update())
        with second.app_context():
            assert imports._claim_next() == following
        db.session.rollback()
        assert locked == first and imports._claim_next() == first


def test_a_job_whose_worker_died_mid_stage_is_finished_by_another_and_imported_once(
        app: Flask, second: Flask, importer_isp: str, monkeypatch) -> None:
    """Worker 1 stages the first websites and is killed; after the lease, worker 2 removes what 1 staged and
    imports the whole file: every row once."""
    monkeypatch.setattr(imports, "CHUNK", 2)
    job_id = _queue_import(app, 1, 5)
    real = imports._Staging.websites
    calls: list[int] = []

    def killed_after_one_chunk(self: Any, chunk: list[Any]) -> None:
        calls.append(len(chunk))
        if len(calls) == 2:
            raise KeyboardInterrupt  # the process dies: no handler in the worker runs
        real(self, chunk)

    monkeypatch.setattr(imports._Staging, "websites", killed_after_one_chunk)
    with app.app_context(), pytest.raises(KeyboardInterrupt):
        workflow.run_import_jobs()
    monkeypatch.setattr(imports._Staging, "websites", real)
    with second.app_context():
        staged = db.session.scalar(select(func.count()).select_from(Entity).execution_options(include_staged=True))
        # the first chunk at least (PostgreSQL's stager writes a chunk's entities before its websites, and the next
        # chunk's entities meanwhile), all of it hidden
        assert staged >= 2 and db.session.scalar(select(func.count()).select_from(Entity)) == 0
        assert workflow.run_import_jobs() == 0  # the lease still runs: worker 1 may be alive
        db.session.execute(update(ImportJob).values(lease_until=utcnow() - timedelta(seconds=1)))
        db.session.commit()
        assert workflow.run_import_jobs() == 1
        job = db.session.get(ImportJob, job_id)
        assert (job.state, job.attempts, job.imported) == (JobState.DONE, 2, 5)
        every = db.session.scalar(select(func.count()).select_from(Entity).execution_options(include_staged=True))
        assert every == 5 and db.session.scalar(select(func.count()).select_from(Entity)) == 5
