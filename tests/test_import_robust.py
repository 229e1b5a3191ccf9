"""Issue 11 (items 11, 14–16): entity declarations anywhere in any encoding, malformed files, a worker that
survives any job and takes over a dead worker's, errors by the hundred thousand, staged rows nobody sees."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import time
from datetime import timedelta
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

import importer
import notify
import workflow
import xlsx_reader
from extensions import db
from models import Application, Domain, Entity, ImportJob, JobState, OutboxMessage, Role, Website, utcnow
from tests.helpers import TIANJIN, make_user, user_named
from tests.import_files import (
    doctype_after_comment,
    edited_sheet,
    in_utf16,
    plain_xlsx,
    valid_row,
    with_shared_string,
)
from workflow import imports

SQLITE_ONLY = pytest.mark.skipif(bool(os.environ.get("TEST_DATABASE_URL")), reason="SQLite's write lock")


@pytest.fixture
def importer_isp(app, users):
    with app.app_context():
        make_user("tj_importer", Role.ISP, TIANJIN, organisation="天津导入网络公司", can_import=True)
    return "tj_importer"


def queue(app, data: bytes, username: str = "tj_importer") -> int:
    with app.app_context():
        job = workflow.queue_import(user_named(username), "备案.xlsx", io.BytesIO(data))
        db.session.commit()
        return job.id


def run(app, data: bytes) -> ImportJob:
    job_id = queue(app, data)
    with app.app_context():
        workflow.run_import(db.session.get(ImportJob, job_id))
        return _job(app, job_id)


def _job(app, job_id: int) -> ImportJob:
    with app.app_context():
        job = db.session.get(ImportJob, job_id)
        db.session.expunge(job)
        return job


def _messages(job: ImportJob) -> list[str]:
    return [error["message"] for error in json.loads(job.errors)]


def _count(app, model: Any) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).execution_options(include_staged=True))


# --- item 11: DOCTYPE anywhere, in any encoding ------------------------------------------------------

@pytest.mark.parametrize(("make", "part"), [
    (lambda source: doctype_after_comment(source), "xl/workbook.xml"),
    (lambda source: doctype_after_comment(source, "xl/worksheets/sheet1.xml"), "xl/worksheets/sheet1.xml"),
    (lambda source: in_utf16(source, "xl/workbook.xml"), "xl/workbook.xml"),
    (lambda source: in_utf16(source, "xl/_rels/workbook.xml.rels"), "xl/_rels/workbook.xml.rels"),
])
def test_a_doctype_after_a_long_comment_or_in_utf16_is_refused(app, importer_isp, make, part) -> None:
    job = run(app, make(plain_xlsx([valid_row(1)])))
    assert job.state == JobState.FAILED and _count(app, Entity) == 0
    assert _messages(job) == [f"文件中的 {part} 含有 XML 文档类型声明（可能是实体炸弹），已拒绝。"]


def test_the_same_parts_without_a_doctype_are_imported(app, importer_isp) -> None:
    """A long comment and a UTF-16 workbook part are legal XML: only the declaration is refused."""
    source = plain_xlsx([valid_row(1)])
    job = run(app, in_utf16(doctype_after_comment(source, doctype=False), "xl/_rels/workbook.xml.rels",
                            doctype=False))
    assert job.state == JobState.DONE and job.imported == 1, job.errors


def test_a_sheet_in_utf16_is_refused_clearly(app, importer_isp) -> None:
    job = run(app, in_utf16(plain_xlsx([valid_row(1)]), "xl/worksheets/sheet1.xml", doctype=False))
    assert _messages(job) == ["文件中的 xl/worksheets/sheet1.xml 不是 UTF-8 编码的文本，文件已损坏。"]


def test_malformed_xml_is_refused_naming_the_part(app, importer_isp) -> None:
    job = run(app, edited_sheet(plain_xlsx([valid_row(1)]), "</sheetData>", "</sheetDat>"))
    assert _messages(job)[0].startswith("文件中的 xl/worksheets/sheet1.xml 不是有效的 XML")


# --- item 14: malformed cells refused naming the cell ----------------------------------------------------

@pytest.mark.parametrize(("index", "message"), [
    ("5", "单元格 B2 引用的第 5 个共享字符串不存在（文件只有 1 个），文件已损坏。"),
    ("abc", "单元格 B2 的共享字符串编号“abc”无效，文件已损坏。"),
])
def test_a_bad_shared_string_index_is_refused_naming_the_cell(app, importer_isp, index, message) -> None:
    job = run(app, with_shared_string(plain_xlsx([valid_row(1)]), "B2", index))
    assert job.state == JobState.FAILED and _messages(job) == [message]


def test_a_valid_shared_string_is_read(app) -> None:
    with app.app_context():
        path = workflow.imports.jobs_dir() / "shared.xlsx"
        path.write_bytes(with_shared_string(plain_xlsx([valid_row(1)]), "B2", "0"))
        _header, rows, _count = xlsx_reader.read_rows(path)
        assert next(rows)[1][1] == "天津&1"


@pytest.mark.parametrize(("old", "new", "message"), [
    ('r="B2"', 'r="ZZZZZZZZZZZZ2"', "单元格引用 ZZZZZZZZZZZZ2 无效（超出工作表的最后一列 XFD），文件已损坏。"),
    ('r="B2"', 'r="BZ2"', "单元格 BZ2 超出导入模板的范围（最多 64 列）；请只在模板的各列中填写。"),
    ('r="A3"', 'r="A1"', "单元格 A1 出现在第 2 行之后，文件已损坏。"),
])
def test_malformed_cells_are_refused_naming_the_cell(app, importer_isp, old, new, message) -> None:
    job = run(app, edited_sheet(plain_xlsx([valid_row(1), valid_row(2)]), old, new))
    assert job.state == JobState.FAILED and _messages(job) == [message] and _count(app, Entity) == 0


# --- item 14: the worker survives, the outbox keeps flowing, leases ---------------------------------------

def test_the_worker_survives_a_crashing_job_and_still_delivers_mail(app, importer_isp, monkeypatch) -> None:
    bad = queue(app, plain_xlsx([valid_row(1)]))
    good = queue(app, plain_xlsx([valid_row(2)]))
    with app.app_context():
        notify.queue_email("owner@example.cn", "重置密码", "链接")
        db.session.commit()
    real, stored_name = xlsx_reader.check_container, _job(app, bad).stored_name

    def crash_on_the_first(path):
        if path.name == stored_name:
            raise MemoryError()  # anything at all, as a parser bug would
        return real(path)

    monkeypatch.setattr(xlsx_reader, "check_container", crash_on_the_first)
    result = app.test_cli_runner().invoke(args=["outbox", "run", "--once"])
    assert result.exit_code == 0, result.output
    counts = json.loads(result.output)
    assert counts["outbox"]["sent"] == 1 and counts["imports"] == 2
    failed, done = _job(app, bad), _job(app, good)
    assert failed.state == JobState.FAILED and failed.lease_until is None
    assert _messages(failed) == ["导入时发生内部错误（MemoryError），未导入任何数据；请联系管理员。"]
    assert done.state == JobState.DONE and done.imported == 1
    with app.app_context():
        assert db.session.scalar(select(OutboxMessage.status)) == "sent"


def test_the_worker_survives_a_failing_outbox(app, importer_isp, monkeypatch) -> None:
    queue(app, plain_xlsx([valid_row(1)]))

    def broken(*_args):
        raise RuntimeError("smtp library bug")

    monkeypatch.setattr(notify, "deliver_due", broken)
    result = app.test_cli_runner().invoke(args=["outbox", "run", "--once"])
    counts = json.loads(result.output)
    assert result.exit_code == 0 and {name: counts[name] for name in ("outbox", "imports", "reminders", "purged")} \
        == {"outbox": "failed", "imports": 1, "reminders": 0, "purged": 0}
    assert counts["ip_findings"] != "failed" and counts["domain_checks"]["changes"] == 0


def _left_running(app, job_id: int, lease: timedelta, attempts: int = 1) -> None:
    with app.app_context():
        job = db.session.get(ImportJob, job_id)
        job.state, job.lease_until, job.attempts = JobState.RUNNING, utcnow() + lease, attempts
        db.session.commit()


def test_a_dead_workers_job_is_taken_over_once_its_lease_expires(app, importer_isp) -> None:
    job_id = queue(app, plain_xlsx([valid_row(1)]))
    _left_running(app, job_id, timedelta(seconds=30))  # its worker may still be alive
    with app.app_context():
        assert workflow.run_import_jobs() == 0
    assert _job(app, job_id).state == JobState.RUNNING
    _left_running(app, job_id, timedelta(seconds=-1))  # not renewed: the worker is gone
    with app.app_context():
        assert workflow.run_import_jobs() == 1
    job = _job(app, job_id)
    assert job.state == JobState.DONE and job.imported == 1 and job.attempts == 2


def test_a_job_that_keeps_killing_workers_is_failed(app, importer_isp) -> None:
    job_id = queue(app, plain_xlsx([valid_row(1)]))
    _left_running(app, job_id, timedelta(seconds=-1), attempts=imports.MAX_ATTEMPTS)
    with app.app_context():
        assert workflow.run_import_jobs() == 1
    assert _messages(_job(app, job_id))[0].startswith("导入多次中断") and _count(app, Entity) == 0


def test_the_lease_is_configurable_and_renewed(app, importer_isp, monkeypatch) -> None:
    app.config["IMPORT_LEASE_SECONDS"] = 1234
    queue(app, plain_xlsx([valid_row(1)]))
    leases = []
    real = imports._progress

    def watch(job, **values):
        real(job, **values)
        leases.append((job.lease_until - utcnow()).total_seconds())

    monkeypatch.setattr(imports, "_progress", watch)
    with app.app_context():
        workflow.run_import_jobs()
    assert leases and all(1200 < lease <= 1234 for lease in leases)


# --- item 15: errors by the thousand, linear ---------------------------------------------------------

def test_every_row_wrong_lists_the_first_errors_and_marks_them_all(app, importer_isp, monkeypatch) -> None:
    monkeypatch.setattr(imports, "PAGE_ERRORS", 100)
    rows = []
    for n in range(1, 3001):
        row = valid_row(n)
        row[8] = "1391234567"  # every mobile one digit short
        rows.append(row)
    started = time.perf_counter()
    job = run(app, plain_xlsx(rows))
    assert time.perf_counter() - started < 60
    errors = json.loads(job.errors)
    assert job.error_count == 3000 and len(errors) == 100 and errors[0]["row"] == 2 and errors[-1]["row"] == 101
    with app.app_context():
        marked = load_workbook(workflow.imports.jobs_dir() / job.annotated_name, read_only=False)
    flagged = [(c.row, c.column) for row in marked.active.iter_rows(min_col=9, max_col=9) for c in row if c.comment]
    assert flagged == [(n, 9) for n in range(2, 3002)]
    assert marked.active.cell(1, 22).value == "错误说明"
    assert marked.active.cell(3001, 22).value.startswith("负责人手机号码：")
    client = app.test_client()
    from tests.helpers import sign_in

    sign_in(client, importer_isp)
    page = client.get(f"/admin/import/job/{job.id}").get_data(as_text=True)
    assert "3000" in page and page.count("1391234567") == 100


def test_the_error_log_sorts_by_row_and_column() -> None:
    log = importer.ErrorLog()
    for row, column in ((9, 2), (3, 5), (3, 1), (0, 0)):
        log.append(importer.CellError(row, column, "v" * 500, "m"))
    assert [(e.row, e.column) for e in log] == [(0, 0), (3, 1), (3, 5), (9, 2)]
    assert len(log) == 4 and len(next(iter(log)).value) == importer.ErrorLog.VALUE_CHARS
    log.close()


# --- item 16: staged rows are invisible, checking takes no write lock -------------------------------------

def test_staged_rows_are_invisible_until_the_final_step(app, importer_isp, as_user, monkeypatch) -> None:
    monkeypatch.setattr(imports, "CHUNK", 2)
    seen: list[tuple[int, int, int, bool]] = []

    def look(_seconds):
        with app.app_context():  # another request of the same process: the ORM as any page uses it
            seen.append((db.session.scalar(select(func.count(Entity.id))),
                         db.session.scalar(select(func.count(Application.id))),
                         len(db.session.scalars(select(Website)).all()),
                         "天津导入科技有限公司1" in as_user("bureau").get("/admin/filings/").get_data(as_text=True)))

    monkeypatch.setattr(imports.time, "sleep", look)
    job = run(app, plain_xlsx([valid_row(n) for n in range(1, 6)]))
    assert job.state == JobState.DONE and job.imported == 5
    staging = [s for s in seen if _count(app, Entity) and s[:3] == (0, 0, 0)]
    assert len(seen) >= 3 and seen[:3] == [(0, 0, 0, False)] * 3 and staging
    with app.app_context():
        assert db.session.scalar(select(func.count(Application.id))) == 5


def test_a_race_during_staging_removes_every_staged_row(app, importer_isp, monkeypatch) -> None:
    """Another filing takes a domain of the file between two staging transactions: the import fails,
    nothing of it remains, and the other filing keeps its domain."""
    monkeypatch.setattr(imports, "CHUNK", 2)
    calls, real_sleep = [], imports.time.sleep

    def take_a_domain(_seconds):
        calls.append(1)
        if len(calls) == 1:
            with app.app_context():
                website = None
                for _ in range(100):  # PostgreSQL's stager writes the first chunk's websites in its second thread
                    website = db.session.scalar(select(Website).execution_options(include_staged=True)
                                                .order_by(Website.id))
                    if website is not None:
                        break
                    db.session.rollback()
                    real_sleep(0.1)
                db.session.add(Domain(website_id=website.id, name="www.import4.cn", live=True))
                db.session.commit()

    monkeypatch.setattr(imports.time, "sleep", take_a_domain)
    job = run(app, plain_xlsx([valid_row(n) for n in range(1, 6)]))
    assert job.state == JobState.FAILED and _messages(job) == [imports.RACED]
    for model in (Entity, Website, Application):
        assert _count(app, model) == 0
    assert not _job(app, job.id).staging


@SQLITE_ONLY
def test_checking_takes_no_write_lock(app, importer_isp, monkeypatch) -> None:
    path = app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///")
    writes = []
    real = importer.RowChecker.check

    def check_while_another_writes(self, row, cells):
        real(self, row, cells)
        # the reader holds no write lock; the stager's short transactions (progress, staged chunks) do, one at a time:
        # another writer waits for one of them at most (a reader holding the lock would make this fail after 5 s)
        other = sqlite3.connect(path, timeout=5)
        other.execute("BEGIN IMMEDIATE")
        other.rollback()
        other.close()
        writes.append(row)

    monkeypatch.setattr(importer.RowChecker, "check", check_while_another_writes)
    job = run(app, plain_xlsx([valid_row(n) for n in range(1, 4)]))
    assert job.state == JobState.DONE and writes == [2, 3, 4]
