"""Issue 15: state shared by several nodes — two `create_app` objects stand for two nodes (separate instance
folders, one database, one Redis): files in the database, the statistics cache and the rate limits in Redis, the
sign-in throttle in the database."""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from flask import Flask, request
from openpyxl import load_workbook
from sqlalchemy import func, select

import storage
import workflow
from app import create_app
from dashboard_statistics import scope_of, stored_statistics
from extensions import db
from models import Entity, ImportJob, JobState, Role, Throttle, utcnow
from tests.conftest import _config
from tests.helpers import TIANJIN, make_user, post, sign_in, user_named
from tests.import_files import filled_template, valid_row

IMPORTER = "tj_importer"


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """TEST_REDIS_URL, else a redis-server of our own on a free loopback port (no data saved), stopped after."""
    if configured := os.environ.get("TEST_REDIS_URL"):
        yield configured
        return
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (Debian package: redis-server); set TEST_REDIS_URL or install it")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                              stdout=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:  # waiting for the server to listen, not for time to pass
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                pytest.fail("redis-server did not start")
    yield f"redis://127.0.0.1:{port}/0"
    server.terminate()
    server.wait()


@pytest.fixture
def shared_redis(redis_url: str) -> str:
    redis.Redis.from_url(redis_url).flushdb()
    return redis_url


@pytest.fixture
def node_b(database_url: str, tmp_path: Path):
    """`node_b(**settings)`: another app on the same database, with an instance folder of its own."""
    made: list[Flask] = []

    def make(**settings: object) -> Flask:
        node = _config(tmp_path / f"node-b{len(made)}", database_url) | settings
        made.append(other := create_app(node))
        return other

    yield make
    for other in made:
        with other.app_context():
            db.engine.dispose()


def _files_in(app: Flask) -> list[Path]:
    folder = Path(app.config["INSTANCE_PATH"]) / "imports"
    return list(folder.iterdir()) if folder.exists() else []


def _upload(app: Flask, data: bytes) -> int:
    """Through the console of `app`, as the importing ISP; the job's id."""
    client = app.test_client()
    assert sign_in(client, IMPORTER).status_code == 302
    response = post(client, "/admin/import/", {"file": (io.BytesIO(data), "备案.xlsx")},
                    content_type="multipart/form-data")
    assert response.status_code == 302, response.get_data(as_text=True)
    return int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])


def _job(app: Flask, job_id: int) -> ImportJob:
    with app.app_context():
        job = db.session.get(ImportJob, job_id)
        db.session.expunge(job)
        return job


@pytest.fixture
def importer_isp(app: Flask) -> str:
    with app.app_context():
        make_user(IMPORTER, Role.ISP, TIANJIN, organisation="天津导入网络公司", can_import=True)
    return IMPORTER


# --- files: uploaded on A, run by B's worker, the marked file read on B ---------------------------------------

def test_an_import_uploaded_on_a_is_run_by_bs_worker_and_its_marked_file_read_on_b(app, node_b, importer_isp) -> None:
    app.config["FILE_STORAGE"] = "database"
    b = node_b(FILE_STORAGE="database")
    bad = valid_row(2)
    bad[8] = "1391234567"  # row 3: a 10-digit mobile
    refused = _upload(app, filled_template(app, [valid_row(1), bad]))
    imported = _upload(app, filled_template(app, [valid_row(3)]))
    with b.app_context():
        assert workflow.run_import_jobs() == 2
    assert _files_in(app) == [] and _files_in(b) == []  # nothing on either node's disk (B's copy is gone)
    assert _job(b, imported).state == JobState.DONE and _job(b, imported).imported == 1
    with b.app_context():
        assert db.session.scalar(select(func.count(Entity.id))) == 1
    job = _job(b, refused)
    assert job.state == JobState.FAILED and job.annotated_name
    client = b.test_client()
    sign_in(client, IMPORTER)
    marked = client.get(f"/admin/import/job/{refused}/marked.xlsx")
    assert marked.status_code == 200 and marked.content_length == len(marked.data)
    sheet = load_workbook(io.BytesIO(marked.data)).active
    assert [(c.row, c.column) for row in sheet.iter_rows() for c in row if c.comment] == [(3, 9)]


def test_with_local_files_another_nodes_worker_refuses_the_job_naming_the_setting(app, node_b, importer_isp) -> None:
    """FILE_STORAGE=local keeps the upload on the node that received it: B's worker cannot read it."""
    job_id = _upload(app, filled_template(app, [valid_row(1)]))
    b = node_b()
    with b.app_context():
        assert workflow.run_import_jobs() == 1
    job = _job(b, job_id)
    assert job.state == JobState.FAILED and "FILE_STORAGE=database" in job.errors
    with app.app_context():
        assert db.session.scalar(select(func.count(Entity.id))) == 0


@pytest.mark.parametrize("kind", ["local", "database"])
def test_housekeeping_deletes_the_files_of_old_finished_jobs_only(app, importer_isp, kind) -> None:
    app.config["FILE_STORAGE"] = kind
    bad = valid_row(1)
    bad[8] = "1391234567"
    finished = _upload(app, filled_template(app, [bad]))
    with app.app_context():
        workflow.run_import_jobs()
        storage.current().put("imports/orphan", io.BytesIO(b"left by a crash"))
        db.session.commit()
    queued = _upload(app, filled_template(app, [valid_row(2)]))
    with app.app_context():
        files = storage.current()
        assert workflow.imports.purge_files(now=utcnow() + timedelta(days=29)) == 0  # not old enough
        assert workflow.imports.purge_files(now=utcnow() + timedelta(days=31)) == 3
        done, waiting = db.session.get(ImportJob, finished), db.session.get(ImportJob, queued)
        assert done.annotated_name is None and not files.exists(f"imports/{done.stored_name}")
        assert not files.exists("imports/orphan")
        assert waiting.state == JobState.QUEUED and files.exists(f"imports/{waiting.stored_name}")


# --- the statistics cache, in Redis; the dashboards' statistics, in the database ---------------------------------

def test_the_dashboard_statistics_are_stored_once_for_every_node(app, node_b, users) -> None:
    a, b = node_b(), node_b()
    with a.app_context():
        first = stored_statistics(scope_of(user_named(users["bureau"])))
    with b.app_context():
        assert stored_statistics(scope_of(user_named(users["bureau"]))) == first  # computed on A, read on B
        assert stored_statistics(scope_of(user_named(users["miit"]))).at > first.at  # another scope, another row


def test_an_unreachable_cache_costs_the_computation_not_the_page(node_b, users) -> None:
    down = node_b(CACHE_TYPE="RedisCache", CACHE_REDIS_URL="redis://127.0.0.1:9/0")  # nothing listens on port 9
    client = down.test_client()
    sign_in(client, users["bureau"])
    page = client.get("/admin/ip-statistics/")  # the IP statistics are kept in the cache
    assert page.status_code == 200 and "IP" in page.get_data(as_text=True)


# --- rate limits, in Redis ------------------------------------------------------------------------------------

def _codes(app: Flask, path: str, times: int, address: str = "192.0.2.77") -> list[int]:
    client = app.test_client()
    return [client.get(path, environ_base={"REMOTE_ADDR": address}).status_code for _ in range(times)]


def test_the_api_limit_is_counted_across_nodes(node_b, shared_redis) -> None:
    a, b = (node_b(RATELIMIT_STORAGE_URI=shared_redis, API_RATE_LIMIT_PER_MINUTE=3) for _ in range(2))
    assert _codes(a, "/api/v1/public/keys", 2) == [200, 200]
    assert _codes(b, "/api/v1/public/keys", 2) == [200, 429]
    assert _codes(a, "/api/v1/public/keys", 1) == [429]
    assert _codes(a, "/?q=example.cn", 1) == [429]  # the HTML lookup spends the API's budget
    assert _codes(b, "/api/v1/public/keys", 1, address="192.0.2.78") == [200]


def test_the_captcha_limit_is_counted_across_nodes(node_b, shared_redis) -> None:
    a, b = (node_b(RATELIMIT_STORAGE_URI=shared_redis, CAPTCHA_RATE_LIMIT_PER_MINUTE=2) for _ in range(2))
    assert _codes(a, "/captcha.png", 1) + _codes(b, "/captcha.png", 2) == [200, 200, 429]


def test_memory_limits_count_per_node(node_b) -> None:
    """The default (memory://): each node counts alone — what RATELIMIT_STORAGE_URI=redis://… fixes."""
    a, b = (node_b(API_RATE_LIMIT_PER_MINUTE=2) for _ in range(2))
    assert _codes(a, "/api/v1/public/keys", 2) + _codes(b, "/api/v1/public/keys", 2) == [200] * 4


def test_the_old_setting_name_is_still_read(monkeypatch) -> None:
    from config import from_environment

    monkeypatch.delenv("RATELIMIT_STORAGE_URI", raising=False)
    monkeypatch.setenv("RATE_LIMIT_STORAGE_URI", "redis://old:6379")
    assert from_environment()["RATELIMIT_STORAGE_URI"] == "redis://old:6379"
    monkeypatch.setenv("RATELIMIT_STORAGE_URI", "redis://new:6379")
    assert from_environment()["RATELIMIT_STORAGE_URI"] == "redis://new:6379"


# --- the sign-in throttle: in the database ----------------------------------------------------------------------

def test_sign_in_failures_are_counted_across_nodes(app, node_b, users) -> None:
    address, b = "203.0.113.66", node_b()
    for node in (app, b, app):
        client = node.test_client()
        client.environ_base["REMOTE_ADDR"] = address
        sign_in(client, users["isp"], "Wrong-pass-1")
    with b.app_context():
        pair = db.session.get(Throttle, f"pair:{users['isp']}|{address}")
        assert pair.failures == 3 and pair.locked_until > utcnow()  # the third failure (on A) slowed it down
    client = b.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    assert "失败次数过多" in sign_in(client, users["isp"]).get_data(as_text=True)  # refused on B as well


def test_an_unreachable_rate_limit_store_lets_requests_through_and_says_so(node_b, caplog) -> None:
    """The shared counter store down (Redis stopped): the public API keeps answering, the failure is logged."""
    b = node_b(RATELIMIT_STORAGE_URI="redis://127.0.0.1:1/0", API_RATE_LIMIT_PER_MINUTE=1)
    client = b.test_client()
    assert [client.get("/api/v1/public/ping").status_code for _ in range(3)] == [200, 200, 200]
    assert "rate limit storage unavailable" in caplog.text


@pytest.mark.parametrize(("hops", "seen"), [(0, "127.0.0.1"), (1, "203.0.113.9")])
def test_the_client_address_behind_one_proxy(node_b, hops: int, seen: str) -> None:
    """PROXY_FIX_X_FOR=1 (behind nginx): the client's address is nginx's X-Forwarded-For; 0: the peer's."""
    b = node_b(PROXY_FIX_X_FOR=hops)
    b.add_url_rule("/test-client-address", "test_client_address", lambda: request.remote_addr or "")
    answer = b.test_client().get("/test-client-address", headers={"X-Forwarded-For": "203.0.113.9"})
    assert answer.get_data(as_text=True) == seen
