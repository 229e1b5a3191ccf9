"""Leases: how N workers on N nodes share singleton work through one database (`worker_leases`).

A worker claims a step's row (a conditional UPDATE, or an INSERT of a missing row that does nothing on
conflict), renews it from a heartbeat thread while the step runs, and releases it after. A worker that dies
stops renewing; another takes the step once the lease has expired.

A heartbeat alone cannot stop a worker that *stalled* (a long pause, SIGSTOP, a partition) and resumes after
its lease was taken: it would finish its step beside the new holder. A step whose work must happen once (the
domain check's e-mails) therefore calls `fence()` first in each of its transactions: a conditional UPDATE of
its lease row that renews it only if this worker still holds it, else `StepLeaseLost` — the transaction is
rolled back and nothing is written. The UPDATE's row lock then holds off a takeover until that transaction ends.

A lease is a promise kept with clocks: the nodes' clocks must agree (NTP) to well under WORKER_LEASE_SECONDS.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, or_, update
from sqlalchemy.dialects import postgresql, sqlite

from extensions import db
from models import WorkerLease, utcnow

log = logging.getLogger(__name__)
#: who holds a lease: unique per worker process across the nodes
HOLDER = f"{socket.gethostname()}:{os.getpid()}"


class StepLeaseLost(Exception):
    """This worker's lease on a singleton step was taken over by another worker: stop, write nothing."""


@dataclass(frozen=True)
class Held:
    name: str
    seconds: float
    holder: str


#: the lease the running step holds in this context (None outside a worker's singleton step: the CLI, tests)
_held: ContextVar[Held | None] = ContextVar("held_lease", default=None)


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
    token = _held.set(Held(name, seconds, holder))
    try:
        yield True
    finally:
        _held.reset(token)
        db.session.rollback()  # a transaction the step left open may hold the lease row (fence): the beat waits on it
        beat.stop()
        try:
            release(name, holder)
        except Exception:  # it expires by itself
            log.exception("worker: could not release lease %s", name)


def fence() -> None:
    """First statement of a step's write transaction: renew our lease in this transaction if it is still ours,
    else StepLeaseLost (nothing written). Outside a leased step (the CLI) it does nothing."""
    held = _held.get()
    if held is None:
        return
    now = utcnow()
    renewed = db.session.execute(update(WorkerLease).where(
        WorkerLease.name == held.name, WorkerLease.holder == held.holder).values(
        lease_until=now + timedelta(seconds=held.seconds), heartbeat=now))
    if renewed.rowcount != 1:
        db.session.rollback()
        raise StepLeaseLost(held.name)
