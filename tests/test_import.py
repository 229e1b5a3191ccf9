"""SPEC §8 (FAQ 34, 45, 47): the template, the import that checks everything first, hostile files, scope."""

from __future__ import annotations

import io
import json
import time

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

import importer
import workflow
from extensions import db
from models import (
    Application,
    ApplicationState,
    AuditEvent,
    BlacklistEntry,
    BlacklistKind,
    Entity,
    ImportJob,
    JobState,
    PreapprovalItem,
    Role,
)
from tests.helpers import TIANJIN, make_user, post, sign_in, user_named
from tests.import_files import (
    comment_bomb,
    entity_bomb,
    filled_template,
    legacy_xls,
    plain_xlsx,
    valid_row,
    zip_bomb,
)


@pytest.fixture
def importer_isp(app, users):
    with app.app_context():
        make_user("tj_importer", Role.ISP, TIANJIN, organisation="天津导入网络公司", can_import=True)
    return "tj_importer"


def run_file(app, username: str, data: bytes, filename: str = "备案.xlsx") -> ImportJob:
    """Upload as the console does, then let the worker run the job."""
    with app.app_context():
        job = workflow.queue_import(user_named(username), filename, io.BytesIO(data))
        db.session.commit()
        workflow.run_import(job)
        db.session.refresh(job)
        db.session.expunge(job)
        return job


def _applications(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count(Application.id)))


def test_template_is_a_real_workbook(client, as_user, importer_isp) -> None:
    response = as_user("isp").get("/admin/import/template")
    assert response.status_code == 403  # no import right
    response = as_user("bureau").get("/admin/import/template")
    assert response.status_code == 200
    assert response.mimetype == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert "filename*=UTF-8''%E5%A4%87%E6%A1%88%E5%AF%BC%E5%85%A5%E6%A8%A1%E6%9D%BF.xlsx" in \
        response.headers["Content-Disposition"]
    workbook = load_workbook(io.BytesIO(response.data))
    assert workbook.sheetnames == ["备案数据", "填写说明", "代码"]
    data = workbook["备案数据"]
    assert [c.value for c in data[1]] == [column.header for column in importer.COLUMNS]
    assert len(data.data_validations.dataValidation) == sum(1 for c in importer.COLUMNS if c.codes)
    assert workbook["填写说明"]["A2"].value == "省份" and workbook["代码"]["A2"].value == "北京市"


def test_round_trip_three_rows(app, importer_isp) -> None:
    job = run_file(app, importer_isp, filled_template(app, [valid_row(n) for n in (1, 2, 3)]))
    assert job.state == JobState.DONE and job.imported == 3 and job.total_rows == 3, job.errors
    with app.app_context():
        applications = db.session.scalars(select(Application)).all()
        assert {a.state for a in applications} == {ApplicationState.BUREAU_REVIEW}
        assert all(v.isp.username == importer_isp and v.state == "confirmed"
                   for a in applications for v in a.verifications)
        events = db.session.scalars(select(AuditEvent.action).where(AuditEvent.object_type == "import")).all()
        assert events == ["import.queued", "import.done"]


def test_legacy_xls(app, importer_isp) -> None:
    job = run_file(app, importer_isp, legacy_xls([valid_row(1), valid_row(2)]), "备案.xls")
    assert job.state == JobState.DONE and job.imported == 2, job.errors


def test_two_websites_of_one_entity_and_the_bureau_queue(app, as_user, importer_isp) -> None:
    second = valid_row(1)
    second[10:13] = ["第二网站", "www.second1.cn", "http://www.second1.cn/"]
    job = run_file(app, importer_isp, filled_template(app, [valid_row(1), second]))
    assert job.imported == 1, job.errors
    with app.app_context():
        entity = db.session.scalar(select(Entity))
        assert [w.name for w in entity.websites] == ["导入网站1", "第二网站"]
    assert "天津导入科技有限公司1" in as_user("bureau").get("/admin/bureau_queue/").get_data(as_text=True)


def test_an_imported_preapproval_item_names_its_filing(app, as_user, importer_isp) -> None:
    """Does an imported 前置审批 name its filing and the filing's province, so that the queue's filter finds it?"""
    news = valid_row(1)
    news[18:20] = ["新闻", "津新闻[2026]009号"]
    job = run_file(app, importer_isp, filled_template(app, [news, valid_row(2)]))
    assert job.imported == 2, job.errors
    with app.app_context():
        entity = db.session.scalar(select(Entity).where(Entity.unit_name == "天津导入科技有限公司1"))
        item = db.session.scalars(select(PreapprovalItem)).one()
        assert (item.entity_id, item.province_code, item.category) == (entity.id, TIANJIN, "1")
    queue = as_user("bureau").get("/admin/bureau_queue/?flt0_4=1").get_data(as_text=True)
    assert "天津导入科技有限公司1" in queue and "天津导入科技有限公司2" not in queue


def test_one_bad_cell_in_a_thousand_rows_imports_nothing(app, importer_isp) -> None:
    rows = [valid_row(n) for n in range(1, 1001)]
    rows[499][8] = "1391234567"  # row 501 of the sheet: a 10-digit mobile
    started = time.perf_counter()
    job = run_file(app, importer_isp, filled_template(app, rows))
    assert time.perf_counter() - started < 30
    errors = json.loads(job.errors)
    assert job.state == JobState.FAILED and _applications(app) == 0
    assert [(e["row"], e["column"], e["value"]) for e in errors] == [(501, "负责人手机号码", "1391234567")]
    assert "手机号码" in errors[0]["message"]
    with app.app_context():
        marked = load_workbook(workflow.imports.jobs_dir() / job.annotated_name)
    sheet = marked.active
    flagged = [(c.row, c.column) for row in sheet.iter_rows() for c in row if c.comment]
    assert flagged == [(501, 9)] and sheet.cell(501, 9).fill.fgColor.rgb.endswith("FFC7CE")


def test_marked_file_keeps_formula_like_text_as_text(app, importer_isp) -> None:
    """The file returned with the errors is written by XlsxWriter: a hostile value stays a string, quoted."""
    hostile = valid_row(1)
    hostile[1], hostile[8] = "+cmd|' /C calc'!A0", "1391234567"  # '=' would be a formula, refused on reading
    job = run_file(app, importer_isp, filled_template(app, [hostile]))
    with app.app_context():
        sheet = load_workbook(workflow.imports.jobs_dir() / job.annotated_name).active
    cell = sheet.cell(2, 2)
    assert cell.data_type == "s" and cell.value == hostile[1] and cell.quotePrefix
    assert sheet.cell(1, sheet.max_column).value == "错误说明" and "手机号码" in sheet.cell(2, sheet.max_column).value


def test_every_error_listed_with_row_column_value(app, importer_isp) -> None:
    duplicate = valid_row(2)
    duplicate[11] = "www.import1.cn"
    bad = valid_row(3)
    bad[2], bad[4], bad[12] = "外星人", "123", "http://elsewhere.cn/"
    job = run_file(app, importer_isp, filled_template(app, [valid_row(1), duplicate, bad]))
    found = {(e["row"], e["column"]) for e in json.loads(job.errors)}
    assert {(3, "网站域名"), (4, "单位性质"), (4, "证件号码"), (4, "网站首页地址")} <= found
    assert _applications(app) == 0


def test_domain_already_filed_in_the_registry(app, importer_isp) -> None:
    run_file(app, importer_isp, filled_template(app, [valid_row(1)]))
    taken = valid_row(7)
    taken[11] = "www.import1.cn"
    job = run_file(app, importer_isp, filled_template(app, [taken]))
    assert job.state == JobState.FAILED
    assert any("已在其他网站备案" in e["message"] for e in json.loads(job.errors))


def test_blacklisted_values_are_refused(app, importer_isp) -> None:
    with app.app_context():
        db.session.add_all([BlacklistEntry(kind=BlacklistKind.DOMAIN, value="www.import1.cn"),
                            BlacklistEntry(kind=BlacklistKind.UNIT_NAME, value="天津导入科技有限公司2")])
        db.session.commit()
    job = run_file(app, importer_isp, filled_template(app, [valid_row(1), valid_row(2)]))
    assert [(e["row"], e["column"]) for e in json.loads(job.errors)] == [(2, "网站域名"), (3, "主办单位名称")]


@pytest.mark.parametrize(("make", "message"), [
    (lambda: b"name,domain\nx,y\n", "不是 Excel"),
    (lambda: b"<html><body>not a spreadsheet</body></html>", "不是 Excel"),
    (zip_bomb, "解压后过大"),
    (comment_bomb, "解压后过大"),
    (entity_bomb, "实体炸弹"),
    (lambda: plain_xlsx([valid_row(1)], formula_cell="B2"), "B2 含有公式"),
])
def test_hostile_files_are_refused_quickly(app, importer_isp, make, message) -> None:
    data = make()
    started = time.perf_counter()
    job = run_file(app, importer_isp, data)
    assert time.perf_counter() - started < 10
    errors = json.loads(job.errors)
    assert job.state == JobState.FAILED and message in errors[0]["message"] and _applications(app) == 0


def test_too_many_rows(app, importer_isp) -> None:
    app.config["IMPORT_MAX_ROWS"] = 5
    job = run_file(app, importer_isp, filled_template(app, [valid_row(n) for n in range(1, 8)]))
    assert "超过上限" in json.loads(job.errors)[0]["message"]


def test_a_bureau_imports_its_province_only(app, importer_isp) -> None:
    beijing = valid_row(1, province="北京市")
    beijing[20] = importer_isp
    local = valid_row(2)
    local[20] = importer_isp
    job = run_file(app, "tj_bureau", filled_template(app, [beijing, local]))
    assert [(e["row"], e["column"]) for e in json.loads(job.errors)] == [(2, "省份")]
    job = run_file(app, "tj_bureau", filled_template(app, [local]))
    assert job.state == JobState.DONE and job.imported == 1


def test_an_isp_without_the_import_right_is_refused(app, as_user, client) -> None:
    isp = as_user("isp")
    assert isp.get("/admin/import/").status_code == 403
    response = post(isp, "/admin/import/", {"file": (io.BytesIO(filled_template(app, [valid_row(1)])), "a.xlsx")},
                    content_type="multipart/form-data")
    assert response.status_code == 403
    with app.app_context(), pytest.raises(workflow.NotFound):
        workflow.queue_import(user_named("tj_isp"), "a.xlsx", io.BytesIO(b"x"))


def test_upload_returns_at_once_and_the_page_polls(app, as_user, importer_isp) -> None:
    client = app.test_client()
    sign_in(client, importer_isp)
    response = post(client, "/admin/import/", {"file": (io.BytesIO(filled_template(app, [valid_row(1)])), "导入.xlsx")},
                    content_type="multipart/form-data")
    assert response.status_code == 302 and "/admin/import/job/" in response.location
    status = client.get(response.location + ".json").get_json()
    assert status["state"] == "queued"
    with app.app_context():
        assert workflow.run_import_jobs() == 1
    status = client.get(response.location + ".json").get_json()
    assert status["state"] == "done" and status["imported"] == 1
    assert "1" in client.get(response.location).get_data(as_text=True)
    assert as_user("bureau").get(response.location + ".json").status_code == 404  # another user's job


def test_cli_import_and_template(app, importer_isp, tmp_path) -> None:
    runner = app.test_cli_runner()
    template = tmp_path / "t.xlsx"
    assert runner.invoke(args=["import-template", str(template)]).exit_code == 0
    assert load_workbook(template).sheetnames[0] == "备案数据"
    good, bad = tmp_path / "good.xlsx", tmp_path / "bad.xlsx"
    good.write_bytes(filled_template(app, [valid_row(1), valid_row(2)]))
    bad_row = valid_row(3)
    bad_row[9] = "not-an-email"
    bad.write_bytes(filled_template(app, [bad_row]))
    result = runner.invoke(args=["import-xlsx", str(good), "--as", importer_isp])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"rows": 2, "imported": 2, "errors": []}
    result = runner.invoke(args=["import-xlsx", str(bad), "--as", importer_isp])
    summary = json.loads(result.output)
    assert result.exit_code != 0 and summary["imported"] == 0 and summary["errors"][0]["row"] == 2
    assert runner.invoke(args=["import-xlsx", str(good), "--as", "tj_isp"]).exit_code != 0
