"""Issue 15: an import stages its rows while the file is still being read (`workflow.imports._Stager`), and stays all
or nothing: a refusal found after rows were staged — a wrong row, a domain or certificate number taken, an unknown
ISP — leaves nothing, names the row, and ends the stager's thread; a failure in the thread fails the job."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from sqlalchemy import func, select

import importer
from extensions import db
from models import (
    Application,
    Domain,
    Entity,
    ImportJob,
    IspVerification,
    JobState,
    ReviewState,
    User,
    UserStatus,
    Website,
)
from tests import test_import_robust
from tests.helpers import TIANJIN, user_named
from tests.import_files import plain_xlsx, valid_row
from tests.test_import_robust import _count, _job, _messages, queue, run
from workflow import imports

ROWS = 10
importer_isp = test_import_robust.importer_isp  # the fixture


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch) -> None:
    """Rows handed to the stager two at a time, staged two per transaction: ten rows are five hand-overs."""
    monkeypatch.setattr(importer, "SPILL_EVERY", 2)
    monkeypatch.setattr(imports, "CHUNK", 2)


def _no_stager_left() -> bool:
    return not any(thread.name.startswith("import-") for thread in threading.enumerate())


def _nothing_kept(app, job_id: int) -> None:
    for model in (Entity, Website, Application):
        assert _count(app, model) == 0, model
    assert not _job(app, job_id).staging and _no_stager_left()


def test_rows_are_staged_while_the_file_is_still_read(app, importer_isp, monkeypatch) -> None:
    """When the reader reaches the last row, the first rows are already written (staged, hidden); the import then
    makes all of them visible at once."""
    real = importer.RowChecker.check
    staged_before_the_last_row: list[int] = []

    def check(self: importer.RowChecker, row: int, cells: list[str]) -> None:
        if row == ROWS + 1:  # the last data row (row 1 is the header)
            deadline = time.monotonic() + 20
            while not _count(app, Entity) and time.monotonic() < deadline:
                time.sleep(0.02)
            with app.app_context():
                visible = db.session.scalar(select(func.count(Entity.id)))
            staged_before_the_last_row.append((_count(app, Entity), visible))
        real(self, row, cells)

    monkeypatch.setattr(importer.RowChecker, "check", check)
    job = run(app, plain_xlsx([valid_row(n) for n in range(1, ROWS + 1)]))
    assert (job.state, job.imported) == (JobState.DONE, ROWS)
    staged, visible = staged_before_the_last_row[0]
    assert staged >= 2 and visible == 0
    with app.app_context():
        assert db.session.scalar(select(func.count(Entity.id))) == ROWS
    assert _no_stager_left()


def test_a_wrong_row_after_staged_rows_refuses_the_file_and_removes_them(app, importer_isp) -> None:
    rows = [valid_row(n) for n in range(1, ROWS + 1)]
    rows[8][8] = "1391234567"  # row 10: the mobile one digit short
    job = run(app, plain_xlsx(rows))
    assert job.state == JobState.FAILED and [(e["row"], e["column"]) for e in json.loads(job.errors)] == [
        (10, "负责人手机号码")]
    assert job.annotated_name  # the file back with the cell marked
    _nothing_kept(app, job.id)


def test_a_domain_filed_already_in_a_late_row_is_named_and_nothing_is_kept(app, importer_isp) -> None:
    """The staging of the row's chunk meets the unique index and stops; the registry check names the row."""
    assert run(app, plain_xlsx([valid_row(1)])).state == JobState.DONE
    rows = [valid_row(n) for n in range(2, ROWS + 2)]
    rows[-1][11:13] = ["www.import1.cn", "http://www.import1.cn/"]  # the last row: filed by the first import
    job = run(app, plain_xlsx(rows))
    assert job.state == JobState.FAILED
    assert [(e["row"], e["value"], e["message"]) for e in json.loads(job.errors)] == [
        (ROWS + 1, "www.import1.cn", "域名 www.import1.cn 已在其他网站备案。")]
    with app.app_context():  # the first import's filing alone
        assert db.session.scalar(select(func.count(Entity.id)).execution_options(include_staged=True)) == 1
        assert db.session.scalar(select(func.count(Domain.id))) == 2
    assert not _job(app, job.id).staging and _no_stager_left()


def test_after_a_clash_in_the_first_chunk_the_progress_still_reaches_the_last_row(app, importer_isp) -> None:
    """The staging stops at the first chunk (a domain filed already), the reader checks the rest of the file: its
    progress is still written — which renews the lease for that long read — and the job page shows every row read."""
    assert run(app, plain_xlsx([valid_row(1)])).state == JobState.DONE
    rows = [valid_row(n) for n in range(2, ROWS + 2)]
    rows[0][11:13] = ["www.import1.cn", "http://www.import1.cn/"]  # the first row: filed by the first import
    job = run(app, plain_xlsx(rows))
    assert job.state == JobState.FAILED and [e["row"] for e in json.loads(job.errors)] == [2]
    assert (job.done_rows, job.total_rows) == (ROWS, ROWS) and _no_stager_left()


def test_an_unknown_isp_in_a_late_row_of_a_bureau_import_is_named_and_nothing_is_kept(app, importer_isp) -> None:
    rows = [valid_row(n) for n in range(1, ROWS + 1)]
    for row in rows:
        row[20] = importer_isp
    rows[-1][20] = "tj_nobody"
    job_id = queue(app, plain_xlsx(rows), "tj_bureau")
    with app.app_context():
        imports.run_import(db.session.get(ImportJob, job_id))
    job = _job(app, job_id)
    assert job.state == JobState.FAILED
    assert [(e["row"], e["message"]) for e in json.loads(job.errors)] == [(ROWS + 1, "请填写有效的接入商用户名。")]
    _nothing_kept(app, job_id)


def test_a_certificate_number_staged_by_another_import_fails_the_file_as_raced(app, importer_isp) -> None:
    """Another import, still staging, holds the number: its rows are hidden from the registry check, the unique
    index refuses the chunk — the file fails with the message to upload again, and the other import's row stays."""
    number = valid_row(ROWS)[4]
    with app.app_context():
        other = ImportJob(user_id=user_named(importer_isp).id, filename="另一个.xlsx", stored_name="other",
                          sha256="0" * 64, size=1, state=JobState.RUNNING, staging=True)
        db.session.add(other)
        db.session.flush()
        db.session.add(Entity(province_code=TIANJIN, unit_name="另一个导入的单位", unit_nature="1",
                              certificate_type="1", certificate_number=number, import_job_id=other.id))
        db.session.commit()
    job = run(app, plain_xlsx([valid_row(n) for n in range(1, ROWS + 1)]))
    assert job.state == JobState.FAILED and _messages(job) == [imports.RACED]
    assert _count(app, Entity) == 1 and _count(app, Website) == 0 and _no_stager_left()


def test_a_failure_in_the_stager_fails_the_job_and_the_worker_goes_on(app, importer_isp, monkeypatch) -> None:
    real = imports._Staging.websites
    calls: list[int] = []

    def broken(self: Any, chunk: list[Any]) -> None:
        calls.append(len(chunk))
        if len(calls) == 3:
            raise RuntimeError("disk full")
        real(self, chunk)

    monkeypatch.setattr(imports._Staging, "websites", broken)
    job_id = queue(app, plain_xlsx([valid_row(n) for n in range(1, ROWS + 1)]))
    following = queue(app, plain_xlsx([valid_row(ROWS + 1)]))
    with app.app_context():
        assert imports.run_import_jobs() == 2
    job = _job(app, job_id)
    assert job.state == JobState.FAILED
    assert _messages(job) == ["导入时发生内部错误（RuntimeError），未导入任何数据；请联系管理员。"]
    assert _job(app, following).state == JobState.DONE
    assert _count(app, Entity) == 1 and _no_stager_left()


def test_a_malformed_cell_late_in_the_file_ends_the_stager_and_keeps_nothing(app, importer_isp) -> None:
    """The reader refuses the file after rows were staged (a cell it cannot read): the stager's thread ends and the
    staged rows are removed."""
    data = plain_xlsx([valid_row(n) for n in range(1, ROWS + 1)], formula_cell=f"B{ROWS + 1}")
    job = run(app, data)
    assert job.state == JobState.FAILED and "公式" in _messages(job)[0]
    _nothing_kept(app, job.id)


def test_an_entity_whose_websites_lie_in_several_chunks_gets_one_application_verified_once_by_each_isp(
        app, importer_isp) -> None:
    """A bureau's file: one entity's websites in rows 2, 5 and 8 (three hand-overs), by ISP A, B, then A again —
    one application, one verification by A and one by B."""
    rows = [valid_row(n) for n in range(1, 8)]
    for row in rows:
        row[20] = importer_isp
    for position, (n, isp) in zip((3, 6), ((21, "tj_isp"), (22, importer_isp)), strict=True):
        rows[position] = valid_row(1)[:10] + valid_row(n)[10:20] + [isp]
    job_id = queue(app, plain_xlsx(rows), "tj_bureau")
    with app.app_context():
        imports.run_import(db.session.get(ImportJob, job_id))
        assert _job(app, job_id).imported == 5
        entity_id = db.session.scalar(select(Entity.id).where(Entity.unit_name == "天津导入科技有限公司1"))
        assert db.session.scalar(select(func.count(Website.id)).where(Website.entity_id == entity_id)) == 3
        application_id = db.session.scalar(select(Application.id).where(Application.entity_id == entity_id))
        verified = db.session.execute(select(User.username, IspVerification.state).join(
            User, User.id == IspVerification.isp_id).where(IspVerification.application_id == application_id)).all()
        assert sorted(verified) == [(importer_isp, ReviewState.CONFIRMED), ("tj_isp", ReviewState.CONFIRMED)]
        assert db.session.scalar(select(func.count(Application.id))) == 5


@pytest.mark.parametrize("withdrawn", ["the import right", "the account"])
def test_an_importer_losing_the_right_while_the_file_is_read_imports_nothing(
        app, importer_isp, monkeypatch, withdrawn: str) -> None:
    """The bureau withdraws the ISP's import right (or disables the account) while its file is read, after rows
    were staged: nothing becomes visible, the job fails with the reason, the staged rows are removed."""
    real = importer.RowChecker.check

    def check(self: importer.RowChecker, row: int, cells: list[str]) -> None:
        if row == ROWS + 1:
            with app.app_context():
                user = user_named(importer_isp)
                if withdrawn == "the import right":
                    user.can_import = False
                else:
                    user.status = UserStatus.DISABLED
                db.session.commit()
        real(self, row, cells)

    monkeypatch.setattr(importer.RowChecker, "check", check)
    job = run(app, plain_xlsx([valid_row(n) for n in range(1, ROWS + 1)]))
    assert job.state == JobState.FAILED and _messages(job) == [imports.NO_RIGHT]
    _nothing_kept(app, job.id)


def test_on_postgresql_a_chunks_websites_are_written_while_the_next_chunks_entities_are(app, importer_isp,
                                                                                        monkeypatch) -> None:
    """PostgreSQL's stager has two connections: the second chunk's entities are written only once the first
    chunk's websites are being written, and those wait inside their open, fenced transaction until the entities
    are written — both transactions open at once, which a fence taking the job's row for update in both would never
    allow (one of the two waits would run out). The import is then whole: one application and website per row."""
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("SQLite stages in the reader's thread, one transaction at a time")
    websites_open, entities_written, waited = threading.Event(), threading.Event(), []
    real_entities, real_websites = imports._Staging.entities, imports._Staging.websites

    def entities(self: Any, chunk: list[Any]) -> None:
        if len(self.entity_ids) == 2:  # the second chunk, in its open transaction
            waited.append(("entities", websites_open.wait(10)))
        real_entities(self, chunk)
        if len(self.entity_ids) > 2:
            entities_written.set()

    def websites(self: Any, chunk: list[Any]) -> None:
        if not websites_open.is_set():  # the first chunk, in the other open transaction
            websites_open.set()
            waited.append(("websites", entities_written.wait(10)))
        real_websites(self, chunk)

    monkeypatch.setattr(imports._Staging, "entities", entities)
    monkeypatch.setattr(imports._Staging, "websites", websites)
    job = run(app, plain_xlsx([valid_row(n) for n in range(1, ROWS + 1)]))
    assert sorted(waited) == [("entities", True), ("websites", True)]
    assert job.state == JobState.DONE and job.imported == ROWS
    assert _count(app, Application) == _count(app, Website) == ROWS and _no_stager_left()
