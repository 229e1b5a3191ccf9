"""Issue 15 part 5: /healthz, /readyz and /metrics — what they answer, each failing check named, and who may
scrape the metrics."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask_migrate import stamp
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select, text, update

import audit
import leases
import notify
import workflow
from app import MIGRATIONS_DIR, create_app
from extensions import db
from models import (
    Application,
    ApplicationState,
    ImportJob,
    JobState,
    MessageStatus,
    Role,
    utcnow,
)
from tests.conftest import _config
from tests.filing_factories import entity_data, filed_by_isp, website_data
from tests.helpers import TIANJIN, make_user

LOCAL = {"REMOTE_ADDR": "127.0.0.1"}
OUTSIDE = {"REMOTE_ADDR": "203.0.113.7"}
BASE = Path(__file__).resolve().parent.parent


def _samples(body: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text page: (name, sorted labels) → value."""
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(body) for sample in family.samples}


def _scrape(app: Flask) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = app.test_client().get("/metrics", environ_base=LOCAL)
    assert response.status_code == 200 and response.mimetype == "text/plain"
    return _samples(response.get_data(as_text=True))


def _app_on(tmp_path: Path, url: str, **settings: object) -> Flask:
    return create_app(_config(tmp_path, url) | settings)


# --- /healthz and /readyz ---------------------------------------------------------------------------------

def test_healthz_answers_without_the_database(tmp_path: Path) -> None:
    """Is the process up even when its database is not? /healthz says so without asking the database."""
    app = _app_on(tmp_path, f"sqlite:///{tmp_path / 'missing' / 'no.db'}")
    response = app.test_client().get("/healthz")
    assert response.status_code == 200 and response.get_data(as_text=True) == "ok\n"


def test_readyz_is_ok_when_every_check_passes(client) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json == {"status": "ok", "failing": [],
                             "checks": {"database": "ok", "migrations": "ok", "storage": "ok"}}


def test_readyz_names_an_unreachable_database(tmp_path: Path) -> None:
    app = _app_on(tmp_path, f"sqlite:///{tmp_path / 'missing' / 'no.db'}")  # its folder does not exist
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["failing"] == ["database", "migrations"]
    assert response.json["checks"]["database"] == "error: OperationalError"  # the class, never the message


def test_readyz_names_migrations_behind_the_code(tmp_path: Path) -> None:
    """A database stamped at an older revision (a node started before `flask db upgrade`) is not ready."""
    url = os.environ.get("TEST_DATABASE_URL")
    settings: dict[str, object] = {}
    if url:  # a throwaway schema of the test database
        app = _app_on(tmp_path, url)
        with app.app_context(), db.engine.begin() as connection:
            connection.execute(text("DROP SCHEMA IF EXISTS readyz_check CASCADE; CREATE SCHEMA readyz_check"))
        settings = {"SQLALCHEMY_ENGINE_OPTIONS": {"connect_args": {"options": "-csearch_path=readyz_check"}}}
    app = _app_on(tmp_path, url or f"sqlite:///{tmp_path / 'old.db'}", **settings)
    with app.app_context():
        stamp(directory=MIGRATIONS_DIR, revision="b14e0001d0a1")
    response = app.test_client().get("/readyz")
    assert response.status_code == 503 and response.json["failing"] == ["migrations"]
    assert response.json["checks"]["migrations"].startswith("at b14e0001d0a1, head ")
    with app.app_context():
        db.engine.dispose()


def test_readyz_names_storage_that_cannot_be_written(tmp_path: Path, database_url: str) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the attachments folder should be")
    app = _app_on(tmp_path, database_url, ATTACHMENT_DIR=str(blocker))
    response = app.test_client().get("/readyz")
    assert response.status_code == 503 and response.json["failing"] == ["storage"]
    assert response.json["checks"]["storage"] == "not writable"


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_probes_accept_any_host_and_keep_the_security_headers(client, path: str) -> None:
    """A balancer probes a node by its address, which TRUSTED_HOSTS does not list; other pages still refuse it."""
    response = client.get(path, headers={"Host": "10.0.0.5:8001"}, environ_base=LOCAL)
    assert response.status_code == 200
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert "Set-Cookie" not in response.headers
    assert client.get("/", headers={"Host": "10.0.0.5:8001"}).status_code == 400


def test_probes_need_no_sign_in_and_no_csrf_token(client) -> None:
    assert client.head("/healthz").status_code == 200
    assert client.post("/healthz").status_code == 405  # read-only: no form, hence no token to forge


# --- /metrics: who may read it ------------------------------------------------------------------------------

def test_metrics_are_hidden_from_other_addresses(client) -> None:
    """Can the public read the metrics? No: 404 (the Chinese error page), as if there were none."""
    response = client.get("/metrics", environ_base=OUTSIDE)
    assert response.status_code == 404 and "未找到" in response.get_data(as_text=True)
    assert b"beian_" not in response.data


def test_metrics_with_the_token_from_anywhere(app: Flask) -> None:
    app.config["METRICS_TOKEN"] = "scrape-secret"
    client = app.test_client()
    allowed = client.get("/metrics", environ_base=OUTSIDE, headers={"Authorization": "Bearer scrape-secret"})
    assert allowed.status_code == 200 and b"beian_outbox_due" in allowed.data
    for wrong in ("Bearer scrape-secreT", "scrape-secret", "Bearer ", ""):
        assert client.get("/metrics", environ_base=OUTSIDE, headers={"Authorization": wrong}).status_code == 404


def test_metrics_from_a_configured_network(app: Flask) -> None:
    app.config["METRICS_ALLOWED_NETWORKS"] = "10.8.0.0/16, ::1/128"
    client = app.test_client()
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "10.8.3.4"}).status_code == 200
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "10.9.3.4"}).status_code == 404
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code == 404  # not listed now


def test_without_a_token_configured_no_bearer_header_opens_it(app: Flask) -> None:
    assert app.config["METRICS_TOKEN"] == ""
    response = app.test_client().get("/metrics", environ_base=OUTSIDE, headers={"Authorization": "Bearer "})
    assert response.status_code == 404


# --- /metrics: what it says ------------------------------------------------------------------------------------

def test_a_request_is_timed_under_its_endpoint_not_its_path(app: Flask) -> None:
    key = ("beian_http_request_duration_seconds_count", (("endpoint", "observability.healthz"), ("status", "2xx")))
    missing = ("beian_http_request_duration_seconds_count", (("endpoint", "unmatched"), ("status", "4xx")))
    before = _scrape(app)
    client = app.test_client()
    client.get("/healthz")
    client.get("/no/such/page/12345")
    after = _scrape(app)
    assert after[key] - before.get(key, 0) == 1
    assert after[missing] - before.get(missing, 0) == 1
    labels = {value for _name, pairs in after for _label, value in pairs}
    assert not any("no/such" in value or "12345" in value for value in labels)  # the raw path never is a label


def test_the_queue_gauges_match_the_database(app: Flask, users: dict[str, str]) -> None:
    with app.app_context():
        isp = make_user("tj_gauge_isp", Role.ISP, TIANJIN, organisation="天津计量网络公司")
        waiting = [filed_by_isp(isp, n) for n in range(1, 4)]
        workflow.save_filing_draft(isp, entity_data(9), [website_data("site9", [isp.id])])
        db.session.flush()
        db.session.execute(update(Application).where(Application.id == waiting[0].id).values(
            state=ApplicationState.APPROVED, decided_at=utcnow() - timedelta(seconds=20)))
        db.session.execute(update(Application).where(Application.id == waiting[1].id).values(
            state=ApplicationState.APPROVED, decided_at=utcnow() - timedelta(minutes=5)))
        notify.queue_sms("13800001111", "到期")
        later = notify.queue_sms("13800001112", "稍后")
        failed = notify.queue_sms("13800001113", "失败")
        sent = notify.queue_sms("13800001114", "已发")
        db.session.flush()
        later.next_attempt_at = utcnow() + timedelta(hours=1)
        failed.status, sent.status = MessageStatus.FAILED, MessageStatus.SENT
        db.session.add_all([ImportJob(user_id=isp.id, filename="a.xlsx", stored_name=f"s{n}", sha256="", size=1,
                                      state=state) for n, state in enumerate(
            (JobState.QUEUED, JobState.RUNNING, JobState.DONE, JobState.DONE))])
        db.session.commit()
        by_state = dict(db.session.execute(select(Application.state, func.count()).group_by(Application.state)).all())
    samples = _scrape(app)
    assert by_state == {ApplicationState.DRAFT: 1, ApplicationState.BUREAU_REVIEW: 1, ApplicationState.APPROVED: 2}
    assert samples[("beian_applications_open", (("state", "draft"),))] == 1
    assert samples[("beian_applications_open", (("state", "bureau_review"),))] == 1
    assert ("beian_applications_open", (("state", "approved"),)) not in samples  # history, not a queue
    assert samples[("beian_approvals_last_minute", ())] == 1
    with app.app_context():
        assert samples[("beian_audit_events_waiting", ())] == audit.waiting_count() > 0  # the filings' events
        audit.sequence_pending()
    assert _scrape(app)[("beian_audit_events_waiting", ())] == 0
    assert samples[("beian_import_jobs", (("state", "done"),))] == 2
    assert samples[("beian_import_jobs", (("state", "queued"),))] == 1
    assert samples[("beian_jobs_running", (("job", "imports"),))] == 1
    assert samples[("beian_outbox_messages", (("status", "queued"),))] == 2
    assert samples[("beian_outbox_messages", (("status", "failed"),))] == 1
    assert ("beian_outbox_messages", (("status", "sent"),)) not in samples
    assert samples[("beian_outbox_due", ())] == 1 and samples[("beian_outbox_oldest_due_seconds", ())] >= 0


def test_a_singleton_step_running_shows_in_jobs_running(app: Flask) -> None:
    with app.app_context():
        assert leases.claim("reminders", 60, "node-a:1") and leases.claim("purged", 60, "node-a:1")
        leases.release("purged", "node-a:1")
    samples = _scrape(app)
    assert samples[("beian_jobs_running", (("job", "reminders"),))] == 1
    assert samples[("beian_jobs_running", (("job", "purged"),))] == 0


def test_gunicorn_workers_are_summed_in_multiprocess_mode(app: Flask, tmp_path: Path, database_url: str,
                                                         monkeypatch) -> None:
    """With PROMETHEUS_MULTIPROC_DIR, a request served by one process is counted by a scrape of another."""
    folder = tmp_path / "prometheus"
    folder.mkdir()
    script = ("import sys\nfrom pathlib import Path\nfrom app import create_app\nfrom tests.conftest import _config\n"
              "create_app(_config(Path(sys.argv[1]), sys.argv[2])).test_client().get('/healthz')\n")
    subprocess.run([sys.executable, "-c", script, str(tmp_path), database_url], cwd=BASE, check=True, timeout=120,
                   env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)}, capture_output=True)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(folder))
    samples = _scrape(app)  # this process served nothing in multiprocess mode: the count is the other's
    assert samples[("beian_http_request_duration_seconds_count",
                    (("endpoint", "observability.healthz"), ("status", "2xx")))] == 1
    assert samples[("beian_outbox_due", ())] == 0  # the queue figures come from the database as always
