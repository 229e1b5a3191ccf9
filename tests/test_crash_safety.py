"""Issue 19 §4: processes killed with SIGKILL halfway leave nothing half-written.

- the worker killed in the middle of a 10,000-row import, at a random moment once rows are staged: nothing of the
  file is visible, its lease is taken over, the next run imports every row exactly once; a job whose runs keep
  being killed (here while checking) is marked failed with a clear message and its staged rows are removed;
- the web server killed in the middle of a batch approval (it runs in the request: `batch_approve_chunked` from
  the console) — `flask run` once, and a gunicorn worker twice (its master starts another and the site goes on) —
  at random points: every chunk committed whole or not at all, no filing number given twice or skipped (the
  counter equals the numbers issued), no certificate without its approved filing, the rest approved by a second
  submission;
- the SMTP server closing the connection in the middle of DATA: the message is retried and delivered. When the
  server had the whole message but the connection dropped before its reply, the message is sent again: the
  recipient gets it twice (SMTP cannot tell "not received" from "received, reply lost").

After each kill `flask audit verify` passes. The processes are subprocesses on the test's database, with the
test's instance folder (the same signing keys and uploads), configured through tests/crash_app.py."""

from __future__ import annotations

import io
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import func, select, update

import certificates
import notify
import workflow
from extensions import db
from models import (
    Application,
    ApplicationState,
    AuditEvent,
    Certificate,
    CertificateStatus,
    Entity,
    ImportJob,
    JobState,
    MessageStatus,
    NumberCounter,
    OutboxMessage,
    Role,
    utcnow,
)
from numbering import FILING_RE
from tests.conftest import _config
from tests.filing_factories import filed_by_isp
from tests.helpers import CAPTCHA, PASSWORD, make_user, user_named
from tests.import_files import plain_xlsx, valid_row
from workflow import imports

ROOT = Path(__file__).resolve().parents[1]
IMPORT_ROWS = 10_000
BATCH = 120  # applications of the batch approval …
CHUNK = 10  # … approved CHUNK per transaction
SEED = int(os.environ.get("CRASH_SEED") or time.time_ns() % 10**6)
RANDOM = random.Random(SEED)


@pytest.fixture(autouse=True)
def _seed() -> None:
    print(f"CRASH_SEED={SEED}")  # shown with a failure: the same kill points again


# --- processes ----------------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def process(app: Flask, command: list[str], **overrides: Any) -> Iterator[subprocess.Popen]:
    """A subprocess of the app on the test's database and instance folder; killed (SIGKILL) at the end if the
    test did not kill it first."""
    config = {**_config(Path(app.config["INSTANCE_PATH"]).parent, app.config["SQLALCHEMY_DATABASE_URI"]),
              **overrides}
    env = {**os.environ, "CRASH_APP_CONFIG": json.dumps(config), "PYTHONPATH": str(ROOT)}
    started = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               start_new_session=True)
    try:
        yield started
    finally:
        if started.poll() is None:
            os.killpg(started.pid, signal.SIGKILL)
        started.wait(10)
        started.stderr.close()


def _flask(*args: str) -> list[str]:
    return [sys.executable, "-m", "flask", "--app", "tests.crash_app", *args]


def _until(condition: Callable[[], Any], what: str, seconds: float = 90) -> Any:
    """Poll until `condition` is true (the bound only stops a broken test)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if found := condition():
            return found
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def _kill_after_jitter(pid: int) -> None:
    time.sleep(RANDOM.uniform(0, 0.3))
    os.kill(pid, signal.SIGKILL)


def _audit_verifies(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["audit", "verify"])
    assert result.exit_code == 0 and "audit chain intact" in result.output, result.output


# --- (a) the worker killed in the middle of a 10,000-row import --------------------------------------------------

def _read(app: Flask, read: Callable[[], Any]) -> Any:
    with app.app_context():
        try:
            return read()
        finally:
            db.session.rollback()


def _job(app: Flask, job_id: int) -> tuple[JobState, int, str, int]:
    def read() -> tuple[JobState, int, str, int]:
        job = db.session.get(ImportJob, job_id)
        return job.state, job.attempts, job.phase, job.done_rows

    return _read(app, read)


def _staged_entities(app: Flask) -> int:
    return _read(app, lambda: db.session.scalar(select(func.count()).select_from(Entity).execution_options(
        include_staged=True)))


def _visible_entities(app: Flask) -> int:
    return _read(app, lambda: db.session.scalar(select(func.count()).select_from(Entity)))


def _imported_events(app: Flask) -> int:
    return _read(app, lambda: db.session.scalar(select(func.count()).where(
        AuditEvent.action == "application.imported")))


def _expire_lease(app: Flask, job_id: int) -> None:
    """The dead worker's lease runs out (as IMPORT_LEASE_SECONDS after its last renewal)."""
    with app.app_context():
        db.session.execute(update(ImportJob).where(ImportJob.id == job_id).values(
            lease_until=utcnow() - timedelta(seconds=1)))
        db.session.commit()


#: where a run of the import is killed: while checking the rows, once staged rows are written
KILL_POINTS: dict[str, Callable[[Flask, int, int], bool]] = {
    "checking": lambda app, job_id, attempt: _job(app, job_id)[1:3] == (attempt, "checking"),
    "staging": lambda app, job_id, attempt: _job(app, job_id)[1] == attempt and _staged_entities(app) > 0,
}


@cache
def _import_file() -> bytes:
    return plain_xlsx([valid_row(n) for n in range(1, IMPORT_ROWS + 1)])


@pytest.fixture
def big_import(app: Flask, users: dict[str, str]) -> int:
    with app.app_context():
        certificates.keyring()
        make_user("tj_importer", Role.ISP, "120000", organisation="天津导入网络公司", can_import=True)
        job = workflow.queue_import(user_named("tj_importer"), "备案.xlsx", io.BytesIO(_import_file()))
        db.session.commit()
        return job.id


def _killed_run(app: Flask, job_id: int, attempt: int, point: str) -> None:
    """A worker claims the job (its `attempt`-th run) and is killed at `point`; nothing of the file is visible."""
    with process(app, _flask("outbox", "run", "--interval", "0.1")) as worker:
        _until(lambda: KILL_POINTS[point](app, job_id, attempt), f"run {attempt} of the import at {point}")
        _kill_after_jitter(worker.pid)
        worker.wait(10)
    state, attempts, _phase, _done = _job(app, job_id)
    assert (state, attempts, _visible_entities(app)) == (JobState.RUNNING, attempt, 0)
    _expire_lease(app, job_id)


def test_a_worker_killed_in_an_import_leaves_nothing_and_the_next_run_imports_every_row_once(
        app: Flask, big_import: int) -> None:
    _killed_run(app, big_import, 1, "staging")
    with process(app, _flask("outbox", "run", "--interval", "0.1")):
        _until(lambda: _job(app, big_import)[0] == JobState.DONE, "the second run to finish", seconds=240)
        # the events are committed with the rows' visibility: the moment the job is seen done, every one is there
        # (written after it, in transactions of their own, a kill between them left applications without one)
        assert _imported_events(app) == IMPORT_ROWS
    with app.app_context():
        job = db.session.get(ImportJob, big_import)
        assert (job.attempts, job.imported, job.error_count, job.staging) == (2, IMPORT_ROWS, 0, False)
    assert _visible_entities(app) == _staged_entities(app) == IMPORT_ROWS
    _audit_verifies(app)


def test_an_import_whose_worker_is_killed_each_time_is_failed_with_a_clear_message(
        app: Flask, big_import: int, monkeypatch) -> None:
    monkeypatch.setattr(imports, "MAX_ATTEMPTS", 1)  # the run after one kill is the last (3 in production)
    _killed_run(app, big_import, 1, "checking")
    with app.app_context():
        assert workflow.run_import_jobs() == 1
        job = db.session.get(ImportJob, big_import)
        assert (job.state, job.staging) == (JobState.FAILED, False)
        assert "导入多次中断（处理进程异常退出），已停止" in job.errors
    assert _staged_entities(app) == 0
    _audit_verifies(app)


# --- (b), (c) the web server killed in the middle of a batch approval ----------------------------------------------

@pytest.fixture
def queued(app: Flask, users: dict[str, str]) -> list[int]:
    """BATCH applications in 天津's bureau review."""
    with app.app_context():
        certificates.keyring()
        isp = user_named(users["isp"])
        ids = [filed_by_isp(isp, n).id for n in range(1, BATCH + 1)]
        db.session.commit()
        return ids


def _signed_in(base: str, username: str) -> requests.Session:
    session = requests.Session()
    page = _until(lambda: _get(session, f"{base}/login"), "the server to answer", seconds=60)
    session.get(f"{base}/captcha.png")
    answer = session.post(f"{base}/login", data={"csrf_token": _csrf(page), "username": username,
                                                 "password": PASSWORD, "captcha": CAPTCHA}, allow_redirects=False)
    assert answer.status_code == 302, answer.text
    return session


def _get(session: requests.Session, url: str) -> str | None:
    try:
        return session.get(url, timeout=10).text
    except requests.RequestException:  # not listening yet, or (gunicorn) no worker booted yet
        return None


def _csrf(page: str) -> str:
    return re.search(r'name="csrf_token"(?: type="hidden")? value="([^"]+)"', page).group(1)


def _approve_in_console(base: str, username: str, ids: list[int]) -> threading.Thread:
    """The bureau's batch approval posted from the console, in a thread (it ends when the server dies)."""
    session = _signed_in(base, username)
    chosen = ",".join(map(str, ids))
    page = session.get(f"{base}/admin/bureau_queue/batch-approve/", params={"ids": chosen}).text

    def post() -> None:
        with suppress(requests.ConnectionError):  # the server was killed
            session.post(f"{base}/admin/bureau_queue/batch-approve/", data={"ids": chosen, "csrf_token": _csrf(page)},
                         timeout=120)

    thread = threading.Thread(target=post)
    thread.start()
    return thread


def _approved(app: Flask) -> int:
    return _read(app, lambda: db.session.scalar(select(func.count()).where(
        Application.state == ApplicationState.APPROVED)))


def _waiting(app: Flask, ids: list[int]) -> list[int]:
    return _read(app, lambda: list(db.session.scalars(select(Application.id).where(
        Application.id.in_(ids), Application.state == ApplicationState.BUREAU_REVIEW).order_by(Application.id))))


def _nothing_half_written(app: Flask) -> int:
    """Every approved application with its number, its current certificate and its audit event, whole chunks
    only; the filing numbers given are exactly 1 … the counter (none twice, none skipped); no certificate of a
    filing that is not approved. Returns how many are approved."""
    with app.app_context():
        approved = db.session.scalars(select(Application).where(Application.state == ApplicationState.APPROVED)).all()
        numbers = [a.entity.number for a in approved]
        assert all(numbers) and len(set(numbers)) == len(numbers)
        counter = db.session.scalar(select(NumberCounter.last).where(
            NumberCounter.province_code == "120000", NumberCounter.kind == "filing")) or 0
        assert sorted(int(FILING_RE.fullmatch(n)["seq"]) for n in numbers) == list(range(1, counter + 1))
        certified = db.session.execute(select(Certificate.entity_id, Entity.number).join(Entity).where(
            Certificate.status == CertificateStatus.CURRENT)).all()
        assert sorted(number for _id, number in certified) == sorted(numbers)
        events = db.session.scalar(select(func.count()).where(AuditEvent.action == "application.approved"))
        assert events == len(approved) and len(approved) % CHUNK == 0
        db.session.rollback()
    _audit_verifies(app)
    return len(approved)


def _kill_mid_batch(app: Flask, base: str, bureau: str, ids: list[int], kill: Callable[[], None]) -> int:
    """Post the waiting applications, kill the server once a random number of chunks has been approved."""
    before, waiting = _approved(app), _waiting(app, ids)
    target = before + RANDOM.randint(1, len(waiting) // 2)  # in the first half: the next kill has room too
    posting = _approve_in_console(base, bureau, waiting)
    _until(lambda: _approved(app) >= target, f"{target} approvals")
    kill()
    posting.join(30)
    done = _nothing_half_written(app)
    assert before < done < before + len(waiting)  # killed in the middle
    return done


def _serve_with_flask(app: Flask, port: int) -> Any:
    return process(app, _flask("run", "--port", str(port), "--no-reload", "--no-debugger"),
                   BATCH_APPROVE_CHUNK=CHUNK)


def test_the_web_server_killed_in_a_batch_approval_leaves_whole_chunks_and_numbers_without_gaps(
        app: Flask, users: dict[str, str], queued: list[int]) -> None:
    """`flask run` killed at a random point of the console's batch approval; a second server approves the rest."""
    port = _free_port()
    with _serve_with_flask(app, port) as server:
        _kill_mid_batch(app, f"http://127.0.0.1:{port}", users["bureau"], queued,
                        lambda: os.killpg(server.pid, signal.SIGKILL))
    with _serve_with_flask(app, port):
        _approve_in_console(f"http://127.0.0.1:{port}", users["bureau"], _waiting(app, queued)).join(120)
    assert _nothing_half_written(app) == BATCH and _waiting(app, queued) == []


def _gunicorn_workers(master: int) -> list[int]:
    return [int(pid) for pid in Path(f"/proc/{master}/task/{master}/children").read_text().split()]


def test_a_gunicorn_worker_killed_in_a_batch_approval_is_replaced_and_the_rest_approved(
        app: Flask, users: dict[str, str], queued: list[int]) -> None:
    """The worker process serving the request killed (as the OOM killer would) at two random points; the master
    starts a new worker, which serves the second submission of what is still waiting."""
    port = _free_port()
    command = [str(ROOT / ".venv/bin/gunicorn"), "--workers", "1", "--threads", "4", "--bind", f"127.0.0.1:{port}",
               "--timeout", "120", "tests.crash_app:app"]
    base = f"http://127.0.0.1:{port}"
    with process(app, command, BATCH_APPROVE_CHUNK=CHUNK) as master:
        for _kill in range(2):
            worker = _until(lambda: _gunicorn_workers(master.pid), "a gunicorn worker")[0]
            _kill_mid_batch(app, base, users["bureau"], queued, lambda worker=worker: os.kill(worker, signal.SIGKILL))
        _approve_in_console(base, users["bureau"], _waiting(app, queued)).join(120)
    assert _nothing_half_written(app) == BATCH and _waiting(app, queued) == []


# --- SMTP closing the connection in the middle of DATA ----------------------------------------------------------

class FlakySmtp:
    """A loopback SMTP server speaking just enough of RFC 5321. The first session is cut during DATA — after
    `first_cut` bytes of the message, or (None) after the whole message and its final dot, before the reply —
    the sessions after it deliver. `received` holds every complete message."""

    def __init__(self, first_cut: int | None) -> None:
        self.first_cut, self.sessions, self.received = first_cut, 0, []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _address = self.listener.accept()
            except OSError:
                return
            with connection:
                self.sessions += 1
                self._session(connection.makefile("rwb"), self.first_cut if self.sessions == 1 else -1)

    def _session(self, stream: Any, cut: int | None) -> None:
        def reply(line: str) -> None:
            stream.write(f"{line}\r\n".encode())
            stream.flush()

        reply("220 flaky.test ESMTP")
        while line := stream.readline():
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                reply("250 flaky.test")
            elif verb == b"DATA":
                reply("354 go ahead")
                if not self._data(stream, cut):
                    return  # the connection is dropped
                reply("250 queued")
            elif verb == b"QUIT":
                reply("221 bye")
                return
            else:
                reply("250 ok")

    def _data(self, stream: Any, cut: int | None) -> bool:
        message = b""
        while (line := stream.readline()) not in (b".\r\n", b""):
            message += line
            if cut is not None and cut >= 0 and len(message) >= cut:
                return False
        if cut is None:
            self.received.append(message)
            return False
        self.received.append(message)
        return True

    def close(self) -> None:
        self.listener.close()


@pytest.mark.parametrize(("cut", "copies"), [(200, 1), (None, 2)], ids=["cut-mid-data", "cut-before-reply"])
def test_smtp_dropping_the_connection_in_data_is_retried_and_delivered(app: Flask, cut: int | None,
                                                                       copies: int) -> None:
    """Cut in the middle of the message: retried, delivered once. Cut after the whole message, before the
    server's reply: retried and delivered — a second time (the duplicate SMTP allows, documented)."""
    server = FlakySmtp(cut)
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=server.port, MAIL_TIMEOUT_SECONDS=5,
                      OUTBOX_BACKOFF_SECONDS=0)
    with app.app_context():
        message = notify.queue_email("owner@example.cn", "备案审核结果", "您的备案申请已通过。" + "正文" * 200)
        db.session.commit()
        assert notify.deliver_due() == {"sent": 0, "retry": 1}
        assert (message.status, message.attempts) == (MessageStatus.QUEUED, 1) and "SMTP" in message.last_error
        assert notify.deliver_due() == {"sent": 1, "retry": 0}
        assert db.session.get(OutboxMessage, message.id).status == MessageStatus.SENT
    server.close()
    assert len(server.received) == copies and server.sessions == 2
    assert all(b"Subject:" in received for received in server.received)
