"""The worker (`flask --app app outbox run`): N of them, on N nodes, share one database.

Each pass runs every step once. Two kinds of step:

- steps over a queue claim their rows themselves, so every worker may run them at once: the outbox
  (`notify.deliver_due`: FOR UPDATE SKIP LOCKED on PostgreSQL, SQLite's write lock otherwise), the
  imports (`workflow.imports`: one job per claim, a lease per job renewed while it runs) and the website
  inspections (`workflow.inspections`: likewise, one run per claim for a slice of time);
- singleton steps (reminders, housekeeping, IP findings, domain reconciliation, the rolling inspection schedule,
  the audit sequencer, the dashboards' statistics, the public records' rebuild after a code's new name) run in
  one worker at a time, under a lease (`leases`).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import current_app

import audit
import dashboard_statistics
import notify
import public_records
import security
import webhooks
import workflow
from extensions import db
from leases import HOLDER, StepLeaseLost, holding
from workflow import domain_reconcile, exchange, inspections, ip_findings

log = logging.getLogger(__name__)
#: what a pass reports for a singleton step another worker is running
HELD_ELSEWHERE = "held elsewhere"
#: what a pass reports for a singleton step stopped because another worker took its lease over meanwhile
LEASE_LOST = "lease lost"


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
    Step("inspections", lambda: inspections.run_inspection_jobs(), singleton=False),
    Step("inspection_schedule", lambda: inspections.schedule_due(), singleton=True),
    Step("reminders", lambda: workflow.send_deadline_reminders(), singleton=True),
    Step("purged", lambda: security.purge_spent_guards(), singleton=True),
    Step("ip_findings", lambda: ip_findings.run_if_due(), singleton=True),
    Step("domain_checks", lambda: domain_reconcile.reconcile_domain_changes(), singleton=True),
    Step("import_files", lambda: workflow.imports.purge_files(), singleton=True),
    Step("audit", lambda: audit.sequence_pending(), singleton=True),
    Step("statistics", lambda: dashboard_statistics.refresh_if_due(), singleton=True),
    Step("public_records", lambda: public_records.rebuild_due(), singleton=True),
    Step("exchange_answers", lambda: exchange.purge_answers(), singleton=True),
    Step("exchange_feed", lambda: exchange.sequence_events(), singleton=True),
    Step("webhooks", lambda: webhooks.deliver_due(), singleton=True),
)


def run_step(step: Step, holder: str = HOLDER) -> Any:
    """The step's figures; HELD_ELSEWHERE when another worker runs it; "failed" (logged) when it raised —
    the pass goes on: mail never waits on an import, nor on a database gone for a moment."""
    try:
        if not step.singleton:
            return step.run()
        with holding(step.name, current_app.config["WORKER_LEASE_SECONDS"], holder) as mine:
            return step.run() if mine else HELD_ELSEWHERE
    except StepLeaseLost:
        db.session.rollback()
        current_app.logger.warning("worker: %s stopped, its lease was taken over by another worker", step.name)
        return LEASE_LOST
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
