"""域名报备 by spreadsheet (issue 14, SPEC §8): the template, the import that checks every row with the workflow's
rules and writes all or nothing, each error with its row, column, value and result code, hostile files, the
console's pages and the export (scope, formula-like cells)."""

from __future__ import annotations

import io
import json
from datetime import date, timedelta

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

import audit
import domain_import
import workflow
import workflow.domain_imports as domain_imports
import workflow.domains as domains
from extensions import db
from models import AuditEvent, DomainChange, DomainReport, DomainStatus, ImportJob, JobState, UserStatus
from tests.domain_factories import registrar, report, report_data
from tests.filing_factories import credit_code
from tests.helpers import BEIJING, post, user_named
from tests.import_files import comment_bomb, entity_bomb, zip_bomb

CERT = credit_code(800)
TODAY = date.today()


def domain_row(domain: str, **overrides: str) -> list[str]:
    """One valid report as a person types it in the template (code-table names from the dropdowns)."""
    values = {
        "domain": domain, "domain_type": "国家和地区顶级域名",
        "registered_on": (TODAY - timedelta(days=365)).isoformat(),
        "expires_on": (TODAY + timedelta(days=730)).isoformat(), "registrar_name": "测试注册商",
        "name_servers": "ns1.example.cn;ns2.example.cn", "status": "正常", "registrant_name": "天津测试科技有限公司",
        "registrant_organisation": "天津测试科技有限公司", "registrant_certificate_type": "统一社会信用代码证书",
        "registrant_certificate_number": CERT, "registrant_address": "天津市和平区某路1号",
        "registrant_province_code": "天津市", "registrant_city": "天津市", "registrant_email": "dns@example.cn",
        "registrant_phone": "022-12345678", "admin_name": "李四", "admin_organisation": "",
        "admin_certificate_type": "", "admin_certificate_number": "", "admin_address": "", "admin_province_code": "",
        "admin_city": "", "admin_email": "admin@example.cn", "admin_phone": "13912345678", "payer_name": "",
    }
    return [{**values, **overrides}[column.key] for column in domain_import.COLUMNS]


def template_with(app, rows: list[list[str]]) -> bytes:
    """The downloaded template with rows typed into its data sheet."""
    with app.app_context():
        workbook = load_workbook(io.BytesIO(domain_import.template_bytes()))
    sheet = workbook[domain_import.DATA_SHEET]
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def run_file(app, username: str, data: bytes, filename: str = "域名.xlsx") -> ImportJob:
    """Upload as the console does, then let the worker run the job."""
    with app.app_context():
        job = domain_imports.queue_domain_import(user_named(username), filename, io.BytesIO(data))
        db.session.commit()
        workflow.run_import_jobs()
        db.session.refresh(job)
        db.session.expunge(job)
        return job


def counts(app) -> tuple[int, int, int]:
    """Reports, queued changes, domain.reported audit events."""
    with app.app_context():
        return (db.session.scalar(select(func.count(DomainReport.id))),
                db.session.scalar(select(func.count(DomainChange.id))),
                db.session.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.action == "domain.reported")))


def errors_of(job: ImportJob) -> list[tuple[int, str, str, str]]:
    return [(e["row"], e["column"], e["value"], e["code"]) for e in json.loads(job.errors)]


@pytest.fixture
def registrars(app, users):
    with app.app_context():
        registrar("reg_a", organisation="甲域名注册服务有限公司")
        registrar("reg_b", organisation="乙域名注册服务有限公司")
        registrar("reg_bj", BEIJING, organisation="北京域名注册服务有限公司")
    return "reg_a", "reg_b"


# --- the template ----------------------------------------------------------------------------------------

def test_the_template_has_the_columns_dropdowns_and_explanations(app) -> None:
    with app.app_context():
        workbook = load_workbook(io.BytesIO(domain_import.template_bytes()))
    assert workbook.sheetnames == ["域名报备数据", "填写说明", "代码"]
    data = workbook["域名报备数据"]
    assert [cell.value for cell in data[1]] == domain_import.HEADERS
    assert len(data.data_validations.dataValidation) == sum(1 for c in domain_import.COLUMNS if c.codes)
    guide = {row[0]: row[1] for row in workbook["填写说明"].iter_rows(values_only=True)}
    assert guide["域名"] == "必填" and guide["注册者证件号码"] == "必填" and guide["缴费人名称"] == "选填"
    assert workbook["代码"].sheet_state == "hidden"


# --- a file without errors -------------------------------------------------------------------------------

def test_a_valid_file_is_imported_with_changes_and_audit_events(app, registrars) -> None:
    rows = [domain_row("Example-One.CN."),  # upper case and trailing dot: normalised
            domain_row("例子.中国", domain_type="3", registrant_certificate_type="1",
                       registrant_certificate_number=CERT.lower(), status="暂停解析", registered_on="2024/3/5",
                       admin_province_code="120000"),
            domain_row("two.cn", expires_on=str((TODAY + timedelta(days=400) - date(1899, 12, 30)).days), status="")]
    job = run_file(app, "reg_a", template_with(app, rows))
    assert (job.state, job.imported, job.total_rows, job.error_count) == (JobState.DONE, 3, 3, 0), job.errors
    assert counts(app) == (3, 3, 3)
    with app.app_context():
        found = {r.domain: r for r in db.session.scalars(select(DomainReport))}
        assert sorted(found) == ["example-one.cn", "two.cn", "xn--fsqu00a.xn--fiqs8s"]
        idn = found["xn--fsqu00a.xn--fiqs8s"]
        assert idn.registrant_certificate_number == CERT  # upper-cased as add_report does
        assert (idn.domain_type, idn.status, idn.registered_on) == ("3", DomainStatus.SUSPENDED, date(2024, 3, 5))
        assert idn.admin_province_code == "120000" and idn.registrant_province_code == "120000"
        assert idn.name_servers == "ns1.example.cn\nns2.example.cn" and idn.admin_certificate_type == ""
        assert found["two.cn"].status == DomainStatus.NORMAL
        assert found["two.cn"].expires_on == TODAY + timedelta(days=400)  # an Excel date serial
        assert {r.registrar.username for r in found.values()} == {"reg_a"}
        assert set(db.session.scalars(select(DomainChange.what))) == {"reported"}
        events = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "domain.reported")).all()
        assert {event.object_id for event in events} == {str(r.id) for r in found.values()}
        assert all(event.actor_username == "reg_a" and f'"import_job":{job.id}' in event.changes for event in events)
        assert db.session.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.action == "import.done")) == 1
        assert audit.verify_chain().intact


def test_the_imported_reports_obey_the_workflow_afterwards(app, registrars) -> None:
    """A report imported is one like any other: the registrar changes it, another registrar cannot report it."""
    run_file(app, "reg_a", template_with(app, [domain_row("moved.cn")]))
    with app.app_context():
        with pytest.raises(domains.DomainError):
            domains.add_report(user_named("reg_b"), domains.ReportData(**{
                **{c.key: "" for c in domain_import.COLUMNS}, "domain": "moved.cn"}))
        db.session.rollback()
        assert domains.report_of(user_named("reg_a"), "MOVED.cn") is not None


# --- a file with errors: nothing written, every error with its row, column, value and code -------------------

def test_every_error_is_listed_with_its_code_and_nothing_is_written(app, registrars) -> None:
    with app.app_context():
        report(user_named("reg_b"), "held-by-b.cn", CERT)
        report(user_named("reg_a"), "mine-already.cn", CERT)
    future, past = (TODAY + timedelta(days=3)).isoformat(), (TODAY - timedelta(days=3)).isoformat()
    rows = [
        domain_row("fine.cn"),  # row 2: valid, but not imported with the others wrong
        domain_row("future.cn", registered_on=future),  # 3
        domain_row("expired.cn", expires_on=past),  # 4
        domain_row("mail.cn", registrant_email="not-an-address", admin_email="x@"),  # 5
        domain_row("phone.cn", registrant_phone="12345"),  # 6
        domain_row("held-by-b.cn"),  # 7: another registrar's live report
        domain_row("FINE.cn"),  # 8: twice in the file
        domain_row("", registrant_name=""),  # 9: required cells
        domain_row("bad_domain!.cn", domain_type="火星域名", registered_on="去年"),  # 10
        domain_row("mine-already.cn", status="已删除"),  # 11
    ]
    before = counts(app)
    job = run_file(app, "reg_a", template_with(app, rows))
    assert job.state == JobState.FAILED and job.imported == 0
    assert counts(app) == before  # nothing written: no report, no queued change, no audit event of a report
    found = errors_of(job)
    assert (3, "注册日期", future, "3035") in found
    assert (4, "到期日期", past, "3004") in found
    assert (5, "注册者电子邮件", "not-an-address", "3013") in found and (5, "管理联系人电子邮件", "x@", "3013") in found
    assert (6, "注册者联系电话", "12345", "3015") in found
    assert (7, "域名", "held-by-b.cn", "") in found
    assert (8, "域名", "FINE.cn", "") in found
    assert (9, "域名", "", "") in found and (9, "注册者名称", "", "") in found
    assert (10, "域名", "bad_domain!.cn", "") in found and (10, "域名类型", "火星域名", "") in found
    assert (10, "注册日期", "去年", "") in found
    assert (11, "域名", "mine-already.cn", "") in found and (11, "域名状态", "已删除", "") in found
    assert not [error for error in found if error[0] == 2]
    assert [row for row, *_rest in found] == sorted(row for row, *_rest in found)
    messages = {(e["row"], e["column"]): e["message"] for e in json.loads(job.errors)}
    assert "乙域名注册服务有限公司" in messages[7, "域名"]  # the holder is named
    assert "第 2 行" in messages[8, "域名"]
    assert len([error for error in found if error[0] == 10 and error[1] == "注册日期"]) == 1  # not also "required"


def test_the_marked_file_shows_every_wrong_cell_with_its_code(app, registrars) -> None:
    rows = [domain_row("ok.cn"), domain_row("phone.cn", registrant_phone="12345", registrar_name="@注册商")]
    job = run_file(app, "reg_a", template_with(app, rows))
    with app.app_context():
        marked = domain_imports.imports.jobs_dir() / job.annotated_name
        sheet = load_workbook(marked)[domain_import.DATA_SHEET]
    headers = [cell.value for cell in sheet[1]]
    assert headers == [*domain_import.HEADERS, "错误说明"]
    phone = headers.index("注册者联系电话") + 1
    assert sheet.cell(3, phone).fill.fgColor.rgb.endswith("FFC7CE") and sheet.cell(3, phone).comment is not None
    assert sheet.cell(2, phone).fill.fgColor.rgb in ("00000000", None)
    assert sheet.cell(3, len(headers)).value.startswith("注册者联系电话：[3015] ")
    assert sheet.cell(3, headers.index("注册服务机构名称") + 1).data_type == "s"  # formula-like text stays text


def test_a_registrar_disabled_before_its_job_runs_imports_nothing_3036(app, registrars) -> None:
    data = template_with(app, [domain_row("a.cn")])
    with app.app_context():
        job = domain_imports.queue_domain_import(user_named("reg_a"), "a.xlsx", io.BytesIO(data))
        user_named("reg_a").status = UserStatus.DISABLED
        db.session.commit()
        domain_imports.run_domain_import(job)
        assert job.state == JobState.FAILED and errors_of(job) == [(0, "", "", "3036")]
    assert counts(app) == (0, 0, 0)


def test_only_a_registrar_queues_a_domain_import_3036(app, users) -> None:
    with app.app_context():
        for username in ("tj_isp", "tj_bureau", "miitadmin"):
            with pytest.raises(domains.DomainError) as refused:
                domain_imports.queue_domain_import(user_named(username), "a.xlsx", io.BytesIO(b"PK"))
            assert [code for _f, code, _m in refused.value.coded] == ["3036"]
        db.session.rollback()
        assert db.session.scalar(select(func.count(ImportJob.id))) == 0


def test_a_report_made_while_the_file_was_checked_fails_the_job_cleanly(app, registrars, monkeypatch) -> None:
    """The unique index of live reports catches a registrar reporting one of the file's domains meanwhile."""
    write = domain_imports.write_reports

    def racing(actor, chunks):
        domains.add_report(user_named("reg_b"), report_data("race.cn", CERT))
        return write(actor, chunks)

    monkeypatch.setattr(domain_imports, "write_reports", racing)
    job = run_file(app, "reg_a", template_with(app, [domain_row("first.cn"), domain_row("race.cn")]))
    assert job.state == JobState.FAILED and "其他注册服务机构" in json.loads(job.errors)[0]["message"]
    assert counts(app) == (0, 0, 0)


# --- hostile and foreign files -------------------------------------------------------------------------------

@pytest.mark.parametrize(("make", "message"), [
    (lambda app: b"%PDF-1.4 not a spreadsheet", "不是 Excel 文件"),
    (lambda app: zip_bomb(), "已拒绝"),
    (lambda app: comment_bomb(), "已拒绝"),
    (lambda app: entity_bomb(), "文档类型声明"),
    (lambda app: _filings_template(app), "表头"),
    (lambda app: _with_formula(app), "公式"),
])
def test_hostile_or_foreign_files_are_refused_cleanly(app, registrars, make, message) -> None:
    job = run_file(app, "reg_a", make(app))
    assert job.state == JobState.FAILED and job.error_count == 1
    assert message in json.loads(job.errors)[0]["message"]
    assert counts(app) == (0, 0, 0)


def test_a_legacy_xls_file_is_read_too(app, registrars) -> None:
    import xlwt

    book = xlwt.Workbook(encoding="utf-8")
    sheet = book.add_sheet(domain_import.DATA_SHEET)
    for r, row in enumerate([domain_import.HEADERS, domain_row("legacy.cn"), domain_row("bad.cn", admin_phone="1")]):
        for c, value in enumerate(row):
            sheet.write(r, c, value)
    buffer = io.BytesIO()
    book.save(buffer)
    job = run_file(app, "reg_a", buffer.getvalue(), "域名.xls")
    assert job.state == JobState.FAILED and errors_of(job) == [(3, "管理联系人联系电话", "1", "3015")]
    assert job.annotated_name  # the marked file is written from the .xls too


def test_too_many_rows_are_refused(app, registrars) -> None:
    app.config["IMPORT_MAX_ROWS"] = 2
    job = run_file(app, "reg_a", template_with(app, [domain_row(f"n{n}.cn") for n in range(3)]))
    assert job.state == JobState.FAILED and "超过上限" in json.loads(job.errors)[0]["message"]


def test_an_empty_template_says_so(app, registrars) -> None:
    job = run_file(app, "reg_a", template_with(app, []))
    assert job.state == JobState.FAILED and "没有数据行" in json.loads(job.errors)[0]["message"]


def _filings_template(app) -> bytes:
    import importer

    with app.app_context():
        return importer.template_bytes()


def _with_formula(app) -> bytes:
    workbook = load_workbook(io.BytesIO(template_with(app, [domain_row("f.cn")])))
    workbook[domain_import.DATA_SHEET]["E2"] = '=HYPERLINK("http://x","y")'
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


# --- the console -------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("key", "status"), [("domain_reporter", 200), ("bureau", 200), ("miit", 200),
                                               ("isp", 403), ("icp", 403), ("ip_reporter", 403)])
def test_who_reaches_the_page(as_user, key, status) -> None:
    assert as_user(key).get("/admin/domain-files/").status_code == status


def test_a_registrar_uploads_and_reads_its_errors(app, as_user) -> None:
    client = as_user("domain_reporter")
    template = client.get("/admin/domain-files/template")
    assert template.status_code == 200 and "filename*=UTF-8''" in template.headers["Content-Disposition"]
    rows = [domain_row("good.cn"), domain_row("bad.cn", registrant_phone="12345")]
    response = post(client, "/admin/domain-files/", {"file": (io.BytesIO(template_with(app, rows)), "报备.xlsx")},
                    content_type="multipart/form-data")
    assert response.status_code == 302
    job_url = response.headers["Location"]
    with app.app_context():
        workflow.run_import_jobs()
    page = client.get(job_url).get_data(as_text=True)
    assert "3015" in page and "注册者联系电话" in page and "12345" in page
    job_id = int(job_url.rstrip("/").split("/")[-1])
    assert client.get(f"/admin/domain-files/job/{job_id}.json").json["errors"] == 1
    assert client.get(f"/admin/domain-files/job/{job_id}/marked.xlsx").status_code == 200
    assert as_user("bureau").get(f"/admin/domain-files/job/{job_id}").status_code == 404  # not the bureau's job
    assert client.post("/admin/domain-files/", data={"file": (io.BytesIO(b"x"), "a.xlsx")},
                       content_type="multipart/form-data").status_code == 400  # no CSRF token


def test_a_domain_job_is_seen_by_its_registrar_only(app, as_user, users) -> None:
    run_file(app, "tj_domain", template_with(app, [domain_row("x.cn")]))
    with app.app_context():
        job_id = db.session.scalar(select(ImportJob.id))
    registrar_client = as_user("domain_reporter")
    assert registrar_client.get(f"/admin/domain-files/job/{job_id}").status_code == 200
    assert registrar_client.get(f"/admin/import/job/{job_id}").status_code == 403  # the filings import's pages
    assert as_user("bureau").get(f"/admin/import/job/{job_id}").status_code == 404
    assert as_user("miit").get(f"/admin/domain-files/job/{job_id}").status_code == 404


# --- the export --------------------------------------------------------------------------------------------

def _export(client) -> bytes:
    response = client.get("/admin/domain-files/export.xlsx")
    assert response.status_code == 200
    return response.data


def _exported(client) -> list[list[str]]:
    sheet = load_workbook(io.BytesIO(_export(client)))[domain_import.DATA_SHEET]
    return [[cell.value or "" for cell in row] for row in sheet.iter_rows()]


def test_the_export_is_scoped_and_imports_again(app, as_user, users, registrars) -> None:
    with app.app_context():
        report(user_named("tj_domain"), "mine.cn", CERT, registrant_name="=cmd|' /C calc'!A0")
        report(user_named("reg_a"), "theirs.cn", CERT)
        report(user_named("reg_bj"), "beijing.cn", CERT)
        gone = report(user_named("tj_domain"), "gone.cn", CERT)
        domains.delete_report(user_named("tj_domain"), db.session.get(DomainReport, gone.id))
        db.session.commit()
    exported = _export(as_user("domain_reporter"))
    own = [[cell.value or "" for cell in row] for row in load_workbook(io.BytesIO(exported)).active.iter_rows()]
    assert own[0] == domain_import.HEADERS and [row[0] for row in own[1:]] == ["mine.cn"]  # live reports only
    assert own[1][domain_import.HEADERS.index("注册者名称")] == "=cmd|' /C calc'!A0"
    assert own[1][domain_import.HEADERS.index("域名类型")] == "国家和地区顶级域名"
    bureau = _exported(as_user("bureau"))
    assert bureau[0][-1] == "报备单位账号" and sorted(row[0] for row in bureau[1:]) == ["mine.cn", "theirs.cn"]
    assert sorted(row[0] for row in _exported(as_user("miit"))[1:]) == ["beijing.cn", "mine.cn", "theirs.cn"]
    assert as_user("isp").get("/admin/domain-files/export.xlsx").status_code == 403
    with app.app_context():
        exports = select(func.count(AuditEvent.id)).where(AuditEvent.action == "export",
                                                          AuditEvent.object_type == "domain_reports")
        assert db.session.scalar(exports) == 3
        domains.delete_report_of(user_named("tj_domain"), "mine.cn")
        db.session.commit()
    job = run_file(app, "tj_domain", exported)  # the downloaded file, as it is
    assert job.state == JobState.DONE and job.imported == 1, job.errors


def test_formula_like_cells_are_written_as_text(app, users) -> None:
    with app.app_context():
        report(user_named("tj_domain"), "formula.cn", CERT, registrant_name="=1+2", payer_name="@SUM(A1)")
        target = domain_imports.imports.jobs_dir() / "export-test.xlsx"
        domain_imports.export_reports(user_named("tj_domain"), target)
    sheet = load_workbook(target)[domain_import.DATA_SHEET]
    name = sheet.cell(2, domain_import.HEADERS.index("注册者名称") + 1)
    payer = sheet.cell(2, domain_import.HEADERS.index("缴费人名称") + 1)
    assert (name.value, name.data_type, payer.value, payer.data_type) == ("=1+2", "s", "@SUM(A1)", "s")
