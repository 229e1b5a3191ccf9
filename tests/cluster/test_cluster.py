"""The multi-node test (issue 15), against a running `make cluster`: two app nodes behind nginx, two workers,
one PostgreSQL, one Redis. Run by `make cluster-test` (and by `.ci/run` after the suites).

Node A and node B are also reached directly (127.0.0.1:5001 / 5002) to prove that what one node made, the other
one reads: sessions, captchas, rate-limit counts, attachments, imports, signing keys. The tests run in file order
and share the cluster's database; each makes its own accounts and rows (unique per run).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import os
import re
import secrets
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from openpyxl import Workbook

import importer
from security import CAPTCHA_ALPHABET
from tests.filing_factories import credit_code

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "deploy" / "cluster.sh"
NGINX = os.environ["CLUSTER_URL"].rstrip("/")
NODE_A = f"http://127.0.0.1:{os.environ.get('NODE_A_PORT', '5001')}"
NODE_B = f"http://127.0.0.1:{os.environ.get('NODE_B_PORT', '5002')}"
RUN_DIR = Path(os.environ.get("CLUSTER_DIR", ROOT / ".cluster")) / "run"
PASSWORD = "Cluster-pass-2026"
RUN = (10 + secrets.randbelow(70)) * 10**6  # keeps this run's codes and domains apart from earlier runs'; never 0


# --- the cluster's settings and helpers -------------------------------------------------------------------------

def cluster(*args: str, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(CLUSTER), *args], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          check=check, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def settings() -> dict[str, str]:
    lines = cluster("env", "a").stdout.splitlines()
    found = dict(line.split("=", 1) for line in lines if "=" in line)
    secrets_file = Path(found["BEIAN_INSTANCE_PATH"]).parent / "secrets.env"
    found.update(line.split("=", 1) for line in secrets_file.read_text().splitlines() if "=" in line)
    return found


@pytest.fixture(scope="module")
def database(settings: dict[str, str]) -> Iterator[psycopg.Connection]:
    url = settings["DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as connection:
        yield connection


def scalar(database: psycopg.Connection, sql: str, *params: Any) -> Any:
    row = database.execute(sql, params).fetchone()
    return row[0] if row else None


def csrf_token(page: str) -> str:
    found = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page) or re.search(
        r'value="([^"]+)"[^>]*name="csrf_token"', page)
    assert found, "no CSRF token on the page"
    return found.group(1)


def solve_captcha(browser: requests.Session, settings: dict[str, str], database: psycopg.Connection) -> str:
    """The captcha picture's answer, found as the server checks it: the HMAC of the session's captcha id and the
    answer, stored in the shared database (the test knows the cluster's SECRET_KEY; 31⁴ candidates)."""
    app = Flask("cluster-test")
    app.secret_key = settings["SECRET_KEY"]
    serializer = SecureCookieSessionInterface().get_signing_serializer(app)
    captcha_id = serializer.loads(browser.cookies["session"])["captcha_id"]
    stored = scalar(database, "SELECT answer_hash FROM captchas WHERE id = %s", captcha_id)
    keyed = hmac.new(settings["SECRET_KEY"].encode(), f"{captcha_id}:".encode(), hashlib.sha256)
    for a in CAPTCHA_ALPHABET:
        for b in CAPTCHA_ALPHABET:
            for c in CAPTCHA_ALPHABET:
                for d in CAPTCHA_ALPHABET:
                    candidate = keyed.copy()
                    candidate.update(f"{a}{b}{c}{d}".encode())
                    if candidate.hexdigest() == stored:
                        return f"{a}{b}{c}{d}"
    raise AssertionError("captcha not solvable")


def sign_in(settings: dict[str, str], database: psycopg.Connection, username: str, password: str,
            *, form_from: str = NGINX, captcha_from: str = NGINX, post_to: str = NGINX) -> requests.Session:
    browser = requests.Session()
    token = csrf_token(browser.get(f"{form_from}/login", timeout=10).text)
    assert browser.get(f"{captcha_from}/captcha.png", timeout=10).headers["Content-Type"] == "image/png"
    answer = solve_captcha(browser, settings, database)
    response = browser.post(f"{post_to}/login", data={"username": username, "password": password,
                                                      "captcha": answer, "csrf_token": token},
                            allow_redirects=False, timeout=10)
    assert response.status_code == 302 and "/admin" in response.headers["Location"], response.text[:500]
    return browser


def post_form(browser: requests.Session, base: str, path: str, data: dict[str, Any] | None = None,
              files: Any = None) -> requests.Response:
    token = csrf_token(browser.get(f"{base}{path}", timeout=10).text)
    return browser.post(f"{base}{path}", data={**(data or {}), "csrf_token": token}, files=files,
                        allow_redirects=False, timeout=60)


def create_staff(username: str, role: str, *, can_import: bool = False) -> None:
    args = ["flask", "a", "create-user", "--username", username, "--role", role, "--province", "120000",
            "--contact-name", "集群测试", "--mobile", "13900001111", "--email", f"{username}@cluster.example.cn"]
    cluster(*args, *(["--can-import"] if can_import else []), env={"NEW_USER_PASSWORD": PASSWORD})


def pid_of(name: str) -> int:
    return int((RUN_DIR / f"{name}.pid").read_text())


def wait_for(condition: Callable[[], Any], seconds: float, what: str, every: float = 0.5) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if found := condition():
            return found
        time.sleep(every)
    raise AssertionError(f"not within {seconds} s: {what}")


def miit(settings: dict[str, str], database: psycopg.Connection) -> requests.Session:
    return sign_in(settings, database, "miit", settings["MIIT_ADMIN_PASSWORD"])


# --- the tests ----------------------------------------------------------------------------------------------------

def test_ready_through_nginx_and_each_node() -> None:
    for base in (NGINX, NODE_A, NODE_B):
        response = requests.get(f"{base}/readyz", timeout=10)
        assert response.status_code == 200, response.text
    assert requests.get(f"{NGINX}/metrics", timeout=10).status_code == 404  # never through the public entrance


def test_a_session_and_a_captcha_made_on_a_are_valid_on_b(settings, database) -> None:
    browser = sign_in(settings, database, "miit", settings["MIIT_ADMIN_PASSWORD"],
                      form_from=NODE_A, captcha_from=NODE_A, post_to=NODE_B)  # the captcha made on A, answered on B
    for base in (NODE_A, NODE_B):
        page = browser.get(f"{base}/admin/", timeout=10)
        assert page.status_code == 200 and "miit" in page.text


def test_the_api_rate_limit_is_counted_across_both_nodes(settings) -> None:
    limit = int(settings["API_RATE_LIMIT_PER_MINUTE"])
    client = {"X-Forwarded-For": f"198.51.100.{secrets.randbelow(250) + 1}, 203.0.113.{secrets.randbelow(250) + 1}"}
    answers = [requests.get(f"{(NODE_A, NODE_B)[n % 2]}/api/v1/public/ping", headers=client, timeout=10).status_code
               for n in range(limit + 1)]
    assert answers[:limit] == [200] * limit and answers[limit] == 429  # one budget, not one per node or process


def test_an_attachment_uploaded_via_a_downloads_via_b(settings, database) -> None:
    content = b"%PDF-1.4\n" + secrets.token_bytes(300_000)
    browser = sign_in(settings, database, "miit", settings["MIIT_ADMIN_PASSWORD"], post_to=NODE_A)
    title = f"集群测试通知{RUN + secrets.randbelow(10**6)}"
    response = post_form(browser, NODE_A, "/admin/notices/new/",
                         {"category": "bulletin", "title": title, "body": "<p>正文</p>"},
                         files={"new_attachments": ("集群附件.pdf", io.BytesIO(content), "application/pdf")})
    assert response.status_code == 302, response.text[:800]
    attachment_id = scalar(database, "SELECT a.id FROM notice_attachments a JOIN notices n ON n.id = a.notice_id "
                                     "WHERE n.title = %s", title)
    downloaded = browser.get(f"{NODE_B}/admin/notices/attachment/{attachment_id}", timeout=10)
    assert downloaded.status_code == 200 and downloaded.content == content


def _import_file(rows: int) -> bytes:
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet()
    sheet.append([column.header for column in importer.COLUMNS])
    for i in range(rows):
        n = RUN + i
        sheet.append(["天津市", f"天津集群科技有限公司{n}", "企业", "统一社会信用代码证书", credit_code(10**7 + n),
                      f"天津市南开区集群路{n}号", "王五", "11010519491231002X", "13912345678", f"cl{n}@example.cn",
                      f"集群网站{n}", f"www.cluster{n}.cn", f"http://www.cluster{n}.cn/", "单位门户网站", "主机托管",
                      "天津市", "203.0.113.1", "203.0.113.9", "", "", ""])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def test_an_import_uploaded_via_a_runs_once_though_its_worker_is_killed(settings, database) -> None:
    """Worker B is paused, so worker A takes the job; A is killed halfway; B, resumed, takes the job over after
    the lease and finishes it; the result is read via node B and nothing is imported twice."""
    rows = 20_000
    username = f"cl_isp_{RUN // 10**6}_{secrets.randbelow(10**6)}"
    create_staff(username, "isp", can_import=True)
    browser = sign_in(settings, database, username, PASSWORD)
    os.kill(pid_of("worker-b"), signal.SIGSTOP)
    try:
        response = post_form(browser, NODE_A, "/admin/import/",
                             files={"file": ("集群导入.xlsx", io.BytesIO(_import_file(rows)), importer.XLSX_MIME)})
        assert response.status_code == 302, response.text[:800]
        job_id = int(re.search(r"/job/(\d+)", response.headers["Location"]).group(1))

        def status() -> dict[str, Any]:
            return browser.get(f"{NODE_B}/admin/import/job/{job_id}.json", timeout=10).json()

        wait_for(lambda: status()["state"] == "running" and status()["done_rows"] > 0, 120, "worker A started",
                 every=0.1)
        os.kill(pid_of("worker-a"), signal.SIGKILL)
    finally:
        os.kill(pid_of("worker-b"), signal.SIGCONT)
    finished = wait_for(lambda: (s := status())["state"] in ("done", "failed") and s, 300,
                        "worker B finished the job")
    assert finished["state"] == "done" and finished["imported"] == rows, finished
    websites = scalar(database, "SELECT count(*) FROM domains WHERE name LIKE %s", f"www.cluster{RUN // 10**6}%")
    assert websites == rows  # each row once
    attempts = scalar(database, "SELECT attempts FROM import_jobs WHERE id = %s", job_id)
    assert attempts == 2  # taken by A, taken over by B
    cluster("start")  # the killed worker comes back


def test_a_key_rotated_on_a_signs_and_verifies_on_b_within_60_seconds(settings, database) -> None:
    seeded_after = scalar(database, "SELECT coalesce(max(id), 0) FROM applications")  # the demo's, domains reported
    cluster("flask", "a", "seed-demo", "--filings", "20", "--province", "120000", "--state", "bureau_review",
            env={"DEMO_PASSWORD": PASSWORD})
    rotated = cluster("flask", "a", "keys", "rotate").stdout
    kid = re.search(r"new signing key: (\S+)", rotated).group(1)
    assert kid in json.dumps(requests.get(f"{NODE_B}/api/v1/public/keys", timeout=10).json())
    bureau = sign_in(settings, database, "demo_bureau_12", PASSWORD, post_to=NODE_B)
    rotated_at = time.monotonic()

    def signed_on_b_with_the_new_key() -> str | None:
        application_id = scalar(database, "SELECT a.id FROM applications a JOIN entities e ON e.id = a.entity_id "
                                          "WHERE a.state = 'bureau_review' AND e.province_code = '120000' "
                                          "AND a.id > %s ORDER BY a.id LIMIT 1", seeded_after)
        post_form(bureau, NODE_B, f"/admin/bureau_queue/approve/?id={application_id}", {"number": ""})
        token = scalar(database, "SELECT c.token FROM certificates c JOIN applications a ON a.entity_id = c.entity_id "
                                 "WHERE a.id = %s AND c.status = 'current'", application_id)
        return token if token and _kid_of(token) == kid else None

    token = wait_for(signed_on_b_with_the_new_key, 60, "node B signs with the rotated key", every=3)
    assert time.monotonic() - rotated_at <= 60
    verified = requests.post(f"{NODE_A}/api/v1/public/certificates/verify", data=token, timeout=10).json()
    assert verified["status"] == "valid", verified


def children_of(parent: int) -> list[int]:
    """The processes whose parent is `parent` (gunicorn's workers), from /proc (no procps needed)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == parent:
                found.append(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue  # ended meanwhile
    return found


def _kid_of(token: str) -> str:
    header = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"]


def test_requests_through_nginx_keep_succeeding_when_a_node_is_killed() -> None:
    master = pid_of("node-a")
    for pid in [master, *children_of(master)]:
        os.kill(pid, signal.SIGKILL)
    try:
        answers = [requests.get(f"{NGINX}{path}", timeout=10).status_code
                   for _ in range(20) for path in ("/login", "/api/v1/public/code-tables")]
        assert answers == [200] * 40
    finally:
        cluster("start")  # node A comes back


def test_the_audit_chain_verifies_after_all_of_it() -> None:
    verified = cluster("flask", "a", "audit", "verify", check=False)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "intact" in verified.stdout
