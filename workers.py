"""The worker (`flask --app app outbox run`) and the leases that let N of them, on N nodes, share one database.

Each pass runs every step once. Two kinds of step:

- steps over a queue claim their rows themselves, so every worker may run them at once: the outbox
  (`notify.deliver_due`: FOR UPDATE SKIP LOCKED on PostgreSQL, SQLite's write lock otherwise) and the
  imports (`workflow.imports`: one job per claim, a lease per job renewed while it runs);
- singleton steps (reminders, housekeeping, IP findings, domain reconciliation) run in one worker at a time:
  the worker first claims the step's row in `worker_leases` (a conditional UPDATE, or an INSERT of a missing
  row that does nothing on conflict), renews it from a heartbeat thread while the step runs, and releases it
  after. A worker that dies mid-step stops renewing; another takes the step once the lease has expired.

A lease is a promise kept with clocks: the nodes' clocks must agree (NTP) to well under WORKER_LEASE_SECONDS.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import current_app
from sqlalchemy import Engine, or_, update
from sqlalchemy.dialects import postgresql, sqlite

import audit
import notify
import security
import workflow
from extensions import db
from models import WorkerLease, utcnow
from workflow import domain_reconcile, ip_findings

log = logging.getLogger(__name__)
#: who holds a lease: unique per worker process across the nodes
HOLDER = f"{socket.gethostname()}:{os.getpid()}"
#: what a pass reports for a singleton step another worker is running
HELD_ELSEWHERE = "held elsewhere"


# --- leases ---------------------------------------------------------------------------------------------

def _insert_if_missing(connection: Any, name: str, holder: str, seconds: float) -> bool:
    """The step's first claim ever: INSERT … ON CONFLICT DO NOTHING (both databases), so two workers
    creating the row at once never fail — one inserts, the other finds the row and claims it conditionally."""
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    now = utcnow()
    statement = dialect.insert(WorkerLease).values(name=name, holder=holder, heartbeat=now,
                                                   lease_until=now + timedelta(seconds=seconds))
    return connection.execute(statement.on_conflict_do_nothing(index_elements=["name"])).rowcount == 1


def claim(name: str, seconds: float, holder: str = HOLDER, engine: Engine | None = None) -> bool:
    """Take the lease `name` for `seconds` if it is free, expired or already ours; True when we hold it.
    Its own short transaction, committed at once, whatever the caller's session is doing."""
    with (engine or db.engine).begin() as connection:
        if _insert_if_missing(connection, name, holder, seconds):
            return True
        now = utcnow()
        taken = connection.execute(update(WorkerLease).where(
            WorkerLease.name == name, or_(WorkerLease.lease_until <= now, WorkerLease.holder == holder)).values(
            holder=holder, lease_until=now + timedelta(seconds=seconds), heartbeat=now))
        return taken.rowcount == 1


def renew(name: str, seconds: float, holder: str = HOLDER, engine: Engine | None = None) -> bool:
    """Push our lease `seconds` further; False when it is no longer ours (it expired and was taken)."""
    now = utcnow()
    with (engine or db.engine).begin() as connection:
        return connection.execute(update(WorkerLease).where(WorkerLease.name == name, WorkerLease.holder == holder)
                                  .values(lease_until=now + timedelta(seconds=seconds), heartbeat=now)).rowcount == 1


def release(name: str, holder: str = HOLDER, engine: Engine | None = None) -> None:
    """End our lease now (the holder stays recorded); nothing if it is not ours."""
    with (engine or db.engine).begin() as connection:
        connection.execute(update(WorkerLease).where(WorkerLease.name == name, WorkerLease.holder == holder)
                           .values(lease_until=utcnow()))


class _Heartbeat(threading.Thread):
    """Renews a lease every third of its length while the step runs, on its own connection."""

    def __init__(self, engine: Engine, name: str, seconds: float, holder: str) -> None:
        super().__init__(name=f"lease:{name}", daemon=True)
        self.engine, self.lease, self.seconds, self.holder = engine, name, seconds, holder
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.seconds / 3):
            try:
                if not renew(self.lease, self.seconds, self.holder, self.engine):
                    log.warning("worker: lease %s lost to another worker while its step ran", self.lease)
                    return
            except Exception:  # the database unreachable for a moment: the next beat tries again
                log.exception("worker: could not renew lease %s", self.lease)

    def stop(self) -> None:
        self.stopped.set()
        self.join()


@contextmanager
def holding(name: str, seconds: float, holder: str = HOLDER) -> Iterator[bool]:
    """Claim the lease, keep it renewed inside the block, release it after; yields whether we hold it."""
    if not claim(name, seconds, holder):
        yield False
        return
    beat = _Heartbeat(db.engine, name, seconds, holder)
    beat.start()
    try:
        yield True
    finally:
        beat.stop()
        try:
            release(name, holder)
        except Exception:  # it expires by itself
            log.exception("worker: could not release lease %s", name)


# --- the loop -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Step:
    """One thing a pass does; `singleton` steps run under their lease (one worker at a time)."""

    name: str
    run: Callable[[], Any]
    singleton: bool


#: looked up when run (`lambda`), so that a step replaced at run time (tests) is the one called
STEPS: tuple[Step, ...] = (
    Step("outbox", lambda: notify.deliver_due(), singleton=False),
    Step("imports", lambda: workflow.run_import_jobs(), singleton=False),
    Step("reminders", lambda: workflow.send_deadline_reminders(), singleton=True),
    Step("purged", lambda: security.purge_spent_guards(), singleton=True),
    Step("ip_findings", lambda: ip_findings.run_if_due(), singleton=True),
    Step("domain_checks", lambda: domain_reconcile.reconcile_domain_changes(), singleton=True),
    Step("import_files", lambda: workflow.imports.purge_files(), singleton=True),
    Step("audit", lambda: audit.sequence_pending(), singleton=True),
)


def run_step(step: Step, holder: str = HOLDER) -> Any:
    """The step's figures; HELD_ELSEWHERE when another worker runs it; "failed" (logged) when it raised —
    the pass goes on: mail never waits on an import, nor on a database gone for a moment."""
    try:
        if not step.singleton:
            return step.run()
        with holding(step.name, current_app.config["WORKER_LEASE_SECONDS"], holder) as mine:
            return step.run() if mine else HELD_ELSEWHERE
    except Exception:
        db.session.rollback()
        current_app.logger.exception("worker: %s failed", step.name)
        return "failed"


def run_pass(holder: str = HOLDER, steps: tuple[Step, ...] = STEPS) -> dict[str, Any]:
    """Every step once, in order; the figures by step."""
    return {step.name: run_step(step, holder) for step in steps}


def run_forever(interval: float, stop: threading.Event | None = None) -> None:
    """Passes `interval` seconds apart until SIGTERM or SIGINT, which end the loop after the current pass (its
    leases released); a worker killed harder leaves its leases to expire."""
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    while not stop.is_set():
        run_pass()
        stop.wait(interval)
