"""Health and metrics (issue 15): `/healthz` (the process answers), `/readyz` (database reachable, migrations at
head, storage writable) and `/metrics` (Prometheus text format, prometheus-client).

The probes touch no session, need no sign-in or CSRF token and take any Host header (a load balancer or
Prometheus calls a node by its address, which TRUSTED_HOSTS may not list; they build no URL from it). `/metrics`
answers only addresses in METRICS_ALLOWED_NETWORKS or a request with `Authorization: Bearer METRICS_TOKEN`;
anyone else gets 404, as for a page that does not exist.

Request latency is a histogram by Flask endpoint (the route's name, never the raw path: a bounded number of
series) and status class. Under gunicorn with several workers, set PROMETHEUS_MULTIPROC_DIR (an empty folder,
before the processes start): each process writes its samples there and a scrape of any process sums them all.
The queue figures are read from the database at scrape time, a few indexed queries, so they are the same
whichever process or node answers.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from alembic.script import ScriptDirectory
from flask import Blueprint, Flask, abort, current_app, g, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select, text
from werkzeug.wrappers import Response

import audit
import storage
import workflow.inspections as inspections
from extensions import cached, csrf, db
from models import (
    CLOSED_APPLICATION_STATES,
    Application,
    ApplicationState,
    CheckCode,
    ImportJob,
    InspectionFinding,
    InspectionRun,
    JobState,
    MessageStatus,
    NoticeState,
    OutboxMessage,
    Province,
    RectificationNotice,
    RunState,
    WorkerLease,
    utcnow,
)

bp = Blueprint("observability", __name__)
PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
#: /readyz gives up on the database after this long (PostgreSQL statement_timeout)
DATABASE_TIMEOUT_MS = 2000
#: the outbox statuses that are a queue (sent messages are history: never counted, so a scrape stays cheap)
OUTBOX_QUEUE = (MessageStatus.QUEUED, MessageStatus.SENDING, MessageStatus.FAILED)
#: the failing websites per check are recounted at most this often (the other figures at every scrape)
FINDINGS_RECOUNT_SECONDS = 60
#: the rectification notices still waiting for someone (closed ones are history: never counted)
NOTICE_QUEUE = (NoticeState.OPEN, NoticeState.ANSWERED)
OPEN_APPLICATION_STATES = tuple(state for state in ApplicationState if state not in CLOSED_APPLICATION_STATES)

REQUEST_SECONDS = Histogram("beian_http_request_duration_seconds",
                            "Time to answer a request, by Flask endpoint and status class (2xx, 4xx, ...)",
                            ("endpoint", "status"))


# --- the probes ----------------------------------------------------------------------------------------

@bp.route("/healthz")
def healthz() -> Response:
    """The process is up and serving; nothing else is looked at."""
    return Response("ok\n", mimetype="text/plain")


@bp.route("/readyz")
def readyz() -> tuple[Response, int]:
    """Ready for traffic: every check "ok", else 503 naming the checks that failed."""
    checks = {name: _outcome(check) for name, check in READINESS_CHECKS.items()}
    failing = sorted(name for name, outcome in checks.items() if outcome != "ok")
    return jsonify({"status": "failing" if failing else "ok", "failing": failing, "checks": checks}), \
        503 if failing else 200


def _outcome(check: Callable[[], str]) -> str:
    """A check's own verdict, or the exception's class (never its text: the probe may be seen by anyone)."""
    try:
        return check()
    except Exception as error:
        current_app.logger.warning("readyz: %s", error)
        return f"error: {type(error).__name__}"


def _database() -> str:
    with db.engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text(f"SET LOCAL statement_timeout = {DATABASE_TIMEOUT_MS}"))
        connection.execute(text("SELECT 1"))
    return "ok"


@cache
def _head_revisions(directory: str) -> frozenset[str]:
    """The migrations' head(s), read from the files once per process."""
    return frozenset(ScriptDirectory(directory).get_heads())


def _migrations() -> str:
    """The database's alembic_version equals the head of the migrations this code ships with."""
    heads = _head_revisions(current_app.extensions["migrate"].directory)
    with db.engine.connect() as connection:
        current = frozenset(connection.scalars(text("SELECT version_num FROM alembic_version")))
    return "ok" if current == heads else f"at {','.join(sorted(current)) or 'none'}, head {','.join(sorted(heads))}"


def _storage() -> str:
    """The file store (FILE_STORAGE: local folders, or the database) accepts a new file."""
    return "ok" if storage.current().writable() else "not writable"


READINESS_CHECKS: dict[str, Callable[[], str]] = {"database": _database, "migrations": _migrations,
                                                  "storage": _storage}


# --- metrics -------------------------------------------------------------------------------------------

@bp.route("/metrics")
def metrics() -> Response:
    if not _may_scrape():
        abort(404)
    return Response(generate_latest(_scrape_registry()), mimetype=CONTENT_TYPE_LATEST)


def _may_scrape() -> bool:
    """From an allowed network (the client's address: behind nginx, PROXY_FIX_X_FOR makes it the real one), or
    with the bearer token."""
    token = current_app.config.get("METRICS_TOKEN") or ""
    given = request.headers.get("Authorization", "")
    if token and hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return True
    try:
        address = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return False
    return any(address in network for network in allowed_networks(current_app.config["METRICS_ALLOWED_NETWORKS"]))


@cache
def allowed_networks(listed: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """METRICS_ALLOWED_NETWORKS ("127.0.0.1/32,::1/128") parsed once."""
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in listed.split(",") if part.strip())


def _scrape_registry() -> CollectorRegistry:
    """The request histogram (this process's, or every process's in multiprocess mode) and the queue figures."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(REQUEST_SECONDS)
    registry.register(QueueCollector())
    registry.register(InspectionCollector())
    return registry


class QueueCollector(Collector):
    """The registry's queues, read when scraped: one GROUP BY (or one indexed count) per figure."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = utcnow()
        yield _by_label("beian_applications_open", "Open applications by state", "state",
                        select(Application.state, func.count()).where(_in_every_province(), Application.state.in_(
                            OPEN_APPLICATION_STATES)).group_by(Application.state))
        yield _by_label("beian_import_jobs", "Import jobs by state", "state",
                        select(ImportJob.state, func.count()).group_by(ImportJob.state))
        yield _by_label("beian_outbox_messages", "Messages not yet sent, by status", "status",
                        select(OutboxMessage.status, func.count()).where(
                            OutboxMessage.status.in_(OUTBOX_QUEUE)).group_by(OutboxMessage.status))
        due = db.session.execute(select(func.count(), func.min(OutboxMessage.next_attempt_at)).where(
            OutboxMessage.status == MessageStatus.QUEUED, OutboxMessage.next_attempt_at <= now)).one()
        yield GaugeMetricFamily("beian_outbox_due", "Outbox backlog: queued messages due now", value=due[0])
        yield GaugeMetricFamily("beian_outbox_oldest_due_seconds", "How long the oldest due message has waited",
                                value=(now - due[1]).total_seconds() if due[1] else 0)
        yield _jobs_running(now)
        yield GaugeMetricFamily("beian_approvals_last_minute", "Applications approved in the last 60 seconds",
                                value=approvals_since(now - timedelta(minutes=1)))
        yield GaugeMetricFamily("beian_audit_events_waiting", "Audit events written but not yet chained by the "
                                "sequencer", value=audit.waiting_count())


class InspectionCollector(Collector):
    """The website inspector (issue 18 §6), read when scraped. Runs are few (one per clerk's request or per
    province a scheduled pass), so their sums cost nothing; the findings, one row per failing website and check,
    are counted per check from ix_inspection_findings_check (index only on PostgreSQL); the overdue notices over
    ix_rectification_notices_state_deadline."""

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        checked, seconds = db.session.execute(select(func.coalesce(func.sum(InspectionRun.checked), 0),
                                                     func.coalesce(func.sum(InspectionRun.seconds), 0.0))).one()
        yield CounterMetricFamily("beian_inspection_websites_checked", "Websites inspected, summed over every run",
                                  value=checked)
        yield CounterMetricFamily("beian_inspection_seconds", "Seconds spent inspecting websites, summed per website "
                                  "(threads overlap: more than the wall-clock time)", value=seconds)
        yield GaugeMetricFamily("beian_inspection_seconds_per_website", "Mean seconds one website's checks take, "
                                "over every run", value=seconds / checked if checked else 0)
        yield _by_label("beian_inspection_runs", "Inspection runs by state", "state",
                        select(InspectionRun.state, func.count()).group_by(InspectionRun.state), every=RunState)
        failing = GaugeMetricFamily("beian_inspection_failing_websites", "Websites failing a check now (open "
                                    "findings), by check; recounted at most once a minute", labels=("check",))
        for check, count in cached("metrics:inspection_failing", FINDINGS_RECOUNT_SECONDS, failing_by_check).items():
            failing.add_metric((check,), count)
        yield failing
        yield _by_label("beian_rectification_notices", "Rectification notices not yet closed, by state", "state",
                        select(RectificationNotice.state, func.count()).where(
                            RectificationNotice.state.in_(NOTICE_QUEUE)).group_by(RectificationNotice.state),
                        every=NOTICE_QUEUE)
        yield GaugeMetricFamily("beian_rectification_notices_overdue", "Rectification notices still open past their "
                                "deadline", value=db.session.scalar(select(func.count()).select_from(
                                    RectificationNotice).where(inspections.overdue_condition())) or 0)


def _in_every_province() -> Any:
    """`province_code IN (every province)`: the planner then reads an index led by province_code
    (ix_applications_*) one short range per province, index only, instead of the whole table."""
    return Application.province_code.in_(select(Province.code).scalar_subquery())


def failing_by_check() -> dict[str, int]:
    """Open findings per check, every check present: an index-only scan of ix_inspection_findings_check, which
    grows with the failing websites (0.3–0.5 s at 3,000,000 findings on PostgreSQL), hence kept a minute."""
    counts = dict.fromkeys((check.value for check in CheckCode), 0)
    counts.update({str(check): count for check, count in db.session.execute(
        select(InspectionFinding.check, func.count()).group_by(InspectionFinding.check))})
    return counts


def _by_label(name: str, documentation: str, label: str, query: Any, every: Iterable[str] = ()) -> GaugeMetricFamily:
    """A gauge per value of `label`, and 0 for each value of `every` the query did not find (a series that vanished
    at 0 would leave a graph at its last value and an alert on it firing). Rows an import is still staging are
    counted (they are being written); not hiding them keeps the count index-only."""
    family = GaugeMetricFamily(name, documentation, labels=(label,))
    counts = {str(value): count for value, count in db.session.execute(query.execution_options(include_staged=True))}
    for value in every:
        counts.setdefault(str(value), 0)
    for value, count in counts.items():
        family.add_metric((value,), count)  # the enums are StrEnums: their value
    return family


def _jobs_running(now: Any) -> GaugeMetricFamily:
    """Import jobs running, and each singleton worker step whose lease is held now (leases.py)."""
    family = GaugeMetricFamily("beian_jobs_running", "Jobs running now: imports, and each singleton worker step",
                               labels=("job",))
    running = db.session.scalar(select(func.count()).where(ImportJob.state == JobState.RUNNING))
    family.add_metric(("imports",), running or 0)
    for name, until in db.session.execute(select(WorkerLease.name, WorkerLease.lease_until).order_by(WorkerLease.name)):
        family.add_metric((name,), 1 if until > now else 0)
    return family


def approvals_since(moment: Any) -> int:
    """Applications approved since `moment`: over ix_applications_decided (province, state, decided_at), it costs
    the approvals counted, not the table's size (0.8 ms at 5,000,000 applications). A counter incremented by the
    approval would count per process, be lost on restart and need a hook in the workflow; this query is the same
    on every node."""
    return db.session.scalar(select(func.count()).select_from(Application).where(
        _in_every_province(), Application.state == ApplicationState.APPROVED, Application.decided_at >= moment)
        .execution_options(include_staged=True)) or 0


# --- wiring ----------------------------------------------------------------------------------------------

def _start_timer() -> None:
    g.observed_since = time.perf_counter()


def _observe(response: Response) -> Response:
    started = g.pop("observed_since", None)
    if started is not None:
        endpoint = request.endpoint or "unmatched"  # a 404 without a route: one series, not one per path
        REQUEST_SECONDS.labels(endpoint, f"{response.status_code // 100}xx").observe(time.perf_counter() - started)
    return response


class AnyHostForProbes:
    """WSGI: the probes are served whatever the Host header (see the module's docstring); every other path
    keeps the TRUSTED_HOSTS check."""

    def __init__(self, wsgi_app: Callable[..., Iterable[bytes]], host: str) -> None:
        self.wsgi_app, self.host = wsgi_app, host

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") in PROBE_PATHS:
            environ["HTTP_HOST"] = self.host
        return self.wsgi_app(environ, start_response)


def init_app(app: Flask) -> None:
    """The routes (no CSRF: they only read), the request timer (first of the before-request hooks, so the
    time includes theirs), and the probes' Host exemption."""
    csrf.exempt(bp)
    app.register_blueprint(bp)
    app.before_request_funcs.setdefault(None, []).insert(0, _start_timer)
    app.after_request(_observe)
    app.wsgi_app = AnyHostForProbes(app.wsgi_app, urlsplit(app.config["PUBLIC_BASE_URL"]).netloc)  # type: ignore[method-assign]
