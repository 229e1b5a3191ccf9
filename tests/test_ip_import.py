"""Issue 13 item 3: the IP reports' xlsx template, the validate-all-then-commit import (every error with its
sheet, row, column, value and result code; nothing written if one row is wrong), hostile files, the console
pages, and the export in the template's columns (an export imports again)."""

from __future__ import annotations

import dataclasses
import io
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

import importer
import ip_import
import ipindex
import workflow
import workflow.ip as ip
import workflow.ip_imports as ip_imports
import xlsx_reader
from extensions import db
from models import AuditEvent, ImportJob, IpAllocation, IpBlock, IpSelfBrought, JobState, User
from tests import import_files
from tests.helpers import BEIJING, csrf_token, user_named
from tests.ip_factories import USER_UNIT, allocation, block, reporter
from tests.ip_import_files import USER_UNIT_CELLS, allocation_row, ip_file
from workflow.ip_lookup import holder_chain


def _import(actor: User, path: Path) -> ImportJob:
    with path.open("rb") as stream:
        job = ip_imports.queue_ip_import(actor, path.name, stream)
    db.session.commit()
    return ip_imports.run_ip_import(job)


def _counts() -> tuple[int, int, int]:
    return tuple(db.session.scalar(select(func.count()).select_from(model))  # type: ignore[return-value]
                 for model in (IpBlock, IpAllocation, IpSelfBrought))


def _errors(job: ImportJob) -> set[tuple[str, int, str, str]]:
    return {(error["sheet"], error["row"], error["column"], error["code"]) for error in json.loads(job.errors)}


@pytest.fixture
def units(app, users) -> dict[str, str]:
    """The fixture's 天津 reporting unit, a second 天津 one and a 北京 one."""
    with app.app_context():
        reporter("tj_ipr2")
        reporter("bj_ipr", BEIJING)
    return {"unit": users["ip_reporter"], "other": "tj_ipr2", "beijing": "bj_ipr"}


GOOD = {
    "blocks": [{"start": "198.18.0.0", "end": "198.18.255.255", "origin": "互联网地址注册机构",
                "registry_code": "APNIC"},
               {"start": "2001:db8::", "end": "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "registry_code": "CNNIC"}],
    "allocations": [allocation_row("198.18.0.0", "198.18.0.255"),
                    allocation_row("198.18.1.0", "198.18.1.255", "再分配", target_unit="tj_ipr2"),
                    allocation_row("198.18.2.0", "198.18.2.15", "自用", usage="动态", allocated_on="2025/3/1"),
                    allocation_row("198.18.2.16", "198.18.2.31", "4"),  # adjacent to the row before: allowed
                    allocation_row("2001:db8::", "2001:db8:0:ffff:ffff:ffff:ffff:ffff", user_nature="4",
                                   province_code="120000", city_code="120100", county_code="120101")],
    "self_brought": [{"start": "203.0.113.0", "end": "203.0.113.255", "source_name": "某云服务商",
                      **USER_UNIT_CELLS}],
}


# --- the template -------------------------------------------------------------------------------------------

def test_the_template_has_the_three_sheets_chinese_headers_dropdowns_and_a_guide(app, units, as_user) -> None:
    response = as_user("ip_reporter").get("/admin/ip-files/template")
    assert response.status_code == 200 and response.mimetype == importer.XLSX_MIME
    assert "filename*=UTF-8''IP" in response.headers["Content-Disposition"]
    workbook = load_workbook(io.BytesIO(response.data))
    assert workbook.sheetnames[:4] == ["来源信息", "分配及使用信息", "自带IP", "填写说明"]
    assert workbook["代码"].sheet_state == "hidden"
    for sheet in ip_import.SHEETS:
        assert [cell.value for cell in workbook[sheet.title][1]] == sheet.headers
    rules = workbook["分配及使用信息"].data_validations.dataValidation
    lists = {str(rule.sqref).split(":")[0][:-1] for rule in rules}
    assert {"C", "E", "H", "K", "T"} <= lists  # 分配方式, 使用方式, 单位性质, 所在省份, 是否…跳转
    guide = [row[1] for row in workbook["填写说明"].iter_rows(values_only=True)]
    assert "接收单位账号" in guide


# --- importing ------------------------------------------------------------------------------------------------

def test_a_valid_file_imports_every_record_with_its_chain_and_audit(app, units, tmp_path) -> None:
    with app.app_context():
        unit = user_named(units["unit"])
        job = _import(unit, ip_file(tmp_path / "good.xlsx", GOOD["blocks"], GOOD["allocations"], GOOD["self_brought"]))
        assert job.state == JobState.DONE, job.errors
        assert job.imported == 8 and job.total_rows == 8
        assert _counts() == (3, 5, 1)  # two blocks, the block the re-allocation made for tj_ipr2
        chain = [step.as_dict() for step in holder_chain("198.18.1.9")]
        assert [(step["kind"], step["unit"]) for step in chain] == [
            ("block", units["unit"]), ("allocation", units["unit"]), ("block", "tj_ipr2")]
        reserved = db.session.scalar(select(IpAllocation).where(IpAllocation.method == "4"))
        assert ipindex.range_text(reserved.start_key, reserved.end_key) == "198.18.2.16/28"
        used = db.session.scalar(select(IpAllocation).where(IpAllocation.method == "3"))
        assert (used.usage, used.allocated_on) == ("2", date(2025, 3, 1))
        v6 = db.session.scalar(select(IpAllocation).where(IpAllocation.family == 6))
        assert (v6.user_name, v6.city_code, v6.county_code) == ("天津某科技有限公司", "120100", "120101")
        actions = db.session.scalars(select(AuditEvent.action).where(AuditEvent.action.like("ip.%"))).all()
        assert sorted(actions) == ["ip.allocation.added"] * 5 + ["ip.block.added"] * 2 + ["ip.self_brought.added"]


def test_allocations_may_use_blocks_already_reported_and_received(app, units, tmp_path) -> None:
    with app.app_context():
        unit, other = user_named(units["unit"]), user_named(units["other"])
        block(other, "198.19.0.0", "198.19.255.255")
        allocation(other, "198.19.0.0", "198.19.0.255", method="2", target_unit=unit.username)
        block(unit, "198.20.0.0", "198.20.0.255")
        job = _import(unit, ip_file(tmp_path / "a.xlsx", allocations=[
            allocation_row("198.19.0.0", "198.19.0.127"), allocation_row("198.20.0.0", "198.20.0.0", "预留")]))
        assert job.state == JobState.DONE, job.errors
        assert [step.unit.username for step in holder_chain("198.19.0.5")] == [
            other.username, other.username, unit.username, unit.username]


def test_any_error_writes_nothing_and_lists_each_with_row_column_value_and_code(app, units, tmp_path) -> None:
    with app.app_context():
        unit, other = user_named(units["unit"]), user_named(units["other"])
        block(other, "198.51.100.0", "198.51.100.255")
        block(unit, "192.0.2.0", "192.0.2.255")
        allocation(unit, "192.0.2.0", "192.0.2.127")
        before, events = _counts(), db.session.scalar(select(func.count()).select_from(AuditEvent))
        path = ip_file(tmp_path / "bad.xlsx", blocks=[
            {"start": "198.18.0.0", "end": "198.18.255.255", "registry_code": "APNIC"},  # 2: valid
            {"start": "198.18.128.0", "end": "198.18.128.255", "registry_code": "APNIC"},  # 3: overlaps row 2
            {"start": "198.51.100.128", "end": "198.51.100.255", "registry_code": "APNIC"},  # 4: another unit's
            {"start": "198.17.0.0", "end": "198.17.0.255", "registry_code": "XX"},  # 5: unknown registry
            {"start": "198.16.0.0", "end": "198.16.0.255", "origin": "其他报备单位", "source_unit": units["unit"]},
        ], allocations=[
            allocation_row("198.18.0.0", "198.18.0.255"),  # 2: valid (inside the file's block)
            allocation_row("198.18.0.128", "198.18.1.255"),  # 3: overlaps row 2
            allocation_row("198.18.9.9", "198.18.9.1"),  # 4: start after end
            allocation_row("10.9.0.0", "10.9.0.3"),  # 5: in no block of the unit
            allocation_row("192.0.2.64", "192.0.2.200"),  # 6: overlaps the unit's allocation in the database
            allocation_row("198.18.2.0", "198.18.2.255", "再分配", target_unit=units["unit"]),  # 7: to itself
            allocation_row("198.18.3.0", "198.18.3.255", "再分配", target_unit="nobody"),  # 8: no such unit
            allocation_row("198.18.4.0", "198.18.4.255", "再分配"),  # 9: no receiving unit
            allocation_row("198.18.5.0", "198.18.5.255", user_nature="火星", allocated_on="明天", contact_phone="12",
                           redirect_server="也许", city_code="北京"),  # 10: five unreadable or unknown cells
            allocation_row("198.18.6.0", "198.18.6.255", "分配并使用", user_name=""),  # 11: required
            allocation_row("1.2.3", "", "预留"),  # 12: not an address
        ], self_brought=[
            {"start": "203.0.113.0", "end": "203.0.113.255", **USER_UNIT_CELLS},  # 2: no source
            {"start": "203.0.113.128", "end": "203.0.113.128", "source_unit": units["unit"], **USER_UNIT_CELLS},
        ])
        job = _import(unit, path)
        assert job.state == JobState.FAILED and job.imported == 0
        assert _counts() == before
        assert db.session.scalar(select(func.count()).select_from(AuditEvent)) == events + 2  # queued, refused
        assert _errors(job) == {
            ("来源信息", 3, "起始IP地址", "2003"), ("来源信息", 4, "起始IP地址", "2056"),
            ("来源信息", 5, "地址注册机构", ""), ("来源信息", 6, "来源单位账号", "2052"),
            ("分配及使用信息", 3, "起始IP地址", "2003"), ("分配及使用信息", 4, "终止IP地址", "2002"),
            ("分配及使用信息", 5, "起始IP地址", "2005"), ("分配及使用信息", 6, "起始IP地址", "2003"),
            ("分配及使用信息", 7, "接收单位账号", "2050"), ("分配及使用信息", 8, "接收单位账号", "2048"),
            ("分配及使用信息", 9, "接收单位账号", "2047"), ("分配及使用信息", 10, "单位性质", ""),
            ("分配及使用信息", 10, "分配日期", ""), ("分配及使用信息", 10, "联系电话", ""),
            ("分配及使用信息", 10, "是否用作域名跳转服务器", ""), ("分配及使用信息", 10, "所在城市", ""),
            ("分配及使用信息", 10, "所在区县", ""),
            ("分配及使用信息", 11, "用户单位名称", ""), ("分配及使用信息", 12, "起始IP地址", "2002"),
            ("自带IP", 2, "来源单位名称", ""), ("自带IP", 3, "起始IP地址", "2003"),
            ("自带IP", 3, "来源单位账号", "2052"),
        }
        listed = {(error["sheet"], error["row"], error["column"]): error for error in json.loads(job.errors)}
        assert listed["分配及使用信息", 10, "单位性质"]["value"] == "火星"
        assert listed["分配及使用信息", 10, "分配日期"]["message"] == "日期格式应为 年-月-日，如 2026-01-05。"
        assert "192.0.2.0/25" in listed["分配及使用信息", 6, "起始IP地址"]["message"]
        assert "第 2 行" in listed["分配及使用信息", 3, "起始IP地址"]["message"]
        marked = load_workbook(ip_imports.imports.jobs_dir() / job.annotated_name)
        sheet = marked["分配及使用信息"]
        assert sheet["H10"].fill.fgColor.rgb.endswith("FFC7CE") and "单位性质" in sheet.cell(10, 22).value
        assert sheet.cell(1, 22).value == "错误说明" and not sheet["A2"].fill.fgColor.rgb.endswith("FFC7CE")


def test_the_split_code_checks_say_what_the_workflow_says(app, units) -> None:
    """The import checks a user unit in two halves (the codes once per combination); on rows right and wrong in
    every field, the problems are exactly those of `workflow.ip.method_problems`."""
    with app.app_context():
        unit = user_named(units["unit"])
        checker = ip_imports.Checker(unit)
        base = ip.AllocationData(start="198.18.0.0", end="198.18.0.3", method="1", **USER_UNIT)
        variants = [{}, {"user_nature": "99"}, {"user_nature": ""}, {"province_code": "110000"},
                    {"city_code": "", "county_code": "120101"}, {"county_code": "110101"}, {"user_category": "x"},
                    {"user_industry": "I", "user_category": "8"}, {"usage": "9", "contact_email": "x"},
                    {"method": "3", "user_name": "", "user_nature": "zz"}, {"method": "3", "usage": ""},
                    {"method": "4", "province_code": "999999"}, {"method": "2", "target_unit": "nobody"},
                    {"method": "7"}, {"allocated_on": date(2999, 1, 1), "gateway_ip": "1.2.3"}]
        for changes in variants:
            data = dataclasses.replace(base, **changes)
            keys = ip.parse_range(data.start, data.end)
            assert sorted(checker._allocation_problems(data, keys)) == sorted(ip.method_problems(unit, data)), changes
        checker.close()


def test_a_conflicting_block_reported_while_the_file_is_checked_is_caught(app, units, tmp_path, monkeypatch) -> None:
    """A change recorded in the audit log after the checks began makes the import check again (here: the other
    unit reports an overlapping block in between; the second check refuses the row with 2056)."""
    checking = ip_imports._check

    def check_then_race(job: ImportJob, actor: User, path: Path) -> ip_imports.Checker:
        checker = checking(job, actor, path)
        if not calls:
            calls.append(1)
            with ip_imports.imports._writing():
                ip.add_block(user_named(units["other"]), ip.BlockData("198.18.200.0", "198.18.200.255",
                                                                      registry_code="APNIC"))
        return checker

    calls: list[int] = []
    monkeypatch.setattr(ip_imports, "_check", check_then_race)
    with app.app_context():
        job = _import(user_named(units["unit"]), ip_file(tmp_path / "f.xlsx", GOOD["blocks"][:1]))
        assert job.state == JobState.FAILED and _errors(job) == {("来源信息", 2, "起始IP地址", "2056")}
        assert _counts() == (1, 0, 0)


def test_an_import_outrun_by_changes_every_time_gives_up_cleanly(app, units, tmp_path, monkeypatch) -> None:
    checking = ip_imports._check
    blocks = iter(range(1, 10))

    def check_then_change(job: ImportJob, actor: User, path: Path) -> ip_imports.Checker:
        checker = checking(job, actor, path)
        with ip_imports.imports._writing():  # the unit itself, in the console, at the same moment
            ip.add_block(actor, ip.BlockData(f"10.{next(blocks)}.0.0", "", registry_code="APNIC"))
        return checker

    monkeypatch.setattr(ip_imports, "_check", check_then_change)
    with app.app_context():
        job = _import(user_named(units["unit"]), ip_file(tmp_path / "f.xlsx", GOOD["blocks"]))
        assert job.state == JobState.FAILED and "已检查 3 次" in json.loads(job.errors)[0]["message"]
        assert _counts() == (3, 0, 0)  # the three blocks added in the console, none of the file's


def test_a_file_of_only_one_sheet_imports_and_empty_rows_are_skipped(app, units, tmp_path) -> None:
    with app.app_context():
        path = ip_file(tmp_path / "one.xlsx", blocks=[GOOD["blocks"][0], {}, GOOD["blocks"][1]], sheets=("block",))
        job = _import(user_named(units["unit"]), path)
        assert job.state == JobState.DONE and job.imported == 2


def test_a_legacy_xls_file_is_read_too(app, units, tmp_path) -> None:
    import xlwt

    book = xlwt.Workbook(encoding="utf-8")
    for sheet in ip_import.SHEETS:
        out = book.add_sheet(sheet.title)
        rows = {"block": GOOD["blocks"], "allocation": GOOD["allocations"][:1]}.get(sheet.kind, [])
        for r, row in enumerate([dict(zip([c.key for c in sheet.columns], sheet.headers, strict=True)), *rows]):
            for c, column in enumerate(sheet.columns):
                out.write(r, c, row.get(column.key, ""))
    book.save(str(tmp_path / "old.xls"))
    with app.app_context():
        job = _import(user_named(units["unit"]), tmp_path / "old.xls")
        assert job.state == JobState.DONE and job.imported == 3, job.errors


@pytest.mark.parametrize(("make", "message"), [
    (lambda path: path.write_bytes(b"not a spreadsheet at all"), "这不是 Excel 文件"),
    (lambda path: path.write_bytes(import_files.zip_bomb()), "文件解压后过大"),
    (lambda path: path.write_bytes(import_files.entity_bomb()), "文档类型声明"),
    (lambda path: ip_file(path, sheets=()), "没有“来源信息”"),
    (lambda path: path.write_bytes(import_files.with_part(ip_file(path, GOOD["blocks"]).read_bytes(),
                                                          "xl/worksheets/sheet1.xml", b"<worksheet><sheetData>"
                                                          b'<row r="1"><c r="A1" t="inlineStr"><is><t>x</t></is></c>'
                                                          b"</row></sheetData></worksheet>")), "不是导入模板的表头"),
    (lambda path: path.write_bytes(import_files.with_part(ip_file(path, GOOD["blocks"]).read_bytes(),
                                                          "xl/worksheets/sheet1.xml", _formula_sheet())), "含有公式"),
    (lambda path: ip_file(path, allocations=[allocation_row(f"10.0.{n}.0", f"10.0.{n}.3", "预留")
                                             for n in range(30)]), "超过上限"),
])
def test_hostile_and_foreign_files_are_refused_clearly_and_write_nothing(app, units, tmp_path, make, message) -> None:
    app.config["IMPORT_MAX_ROWS"] = 20
    with app.app_context():
        path = tmp_path / "hostile.xlsx"
        make(path)
        job = _import(user_named(units["unit"]), path)
        assert job.state == JobState.FAILED and _counts() == (0, 0, 0)
        errors = json.loads(job.errors)
        assert len(errors) == 1 and message in errors[0]["message"], errors


def _formula_sheet() -> bytes:
    headers = "".join(f'<c r="{chr(65 + n)}1" t="inlineStr"><is><t>{header}</t></is></c>'
                      for n, header in enumerate(ip_import.SHEETS[0].headers))
    return (f'<worksheet xmlns="{xlsx_reader.SHEET_NS}"><sheetData><row r="1">{headers}</row>'
            '<row r="2"><c r="A2"><f>1+1</f><v>2</v></c></row></sheetData></worksheet>').encode()


# --- the console -------------------------------------------------------------------------------------------------

def test_a_reporter_uploads_and_reads_the_job_page_with_every_error(app, units, as_user, tmp_path) -> None:
    client = as_user("ip_reporter")
    path = ip_file(tmp_path / "up.xlsx", allocations=[allocation_row("10.1.0.0", "10.1.0.3")])
    response = client.post("/admin/ip-files/", data={"csrf_token": csrf_token(client),
                                                     "file": (path.open("rb"), "分配.xlsx")})
    assert response.status_code == 302
    job_url = response.headers["Location"]
    assert client.get(job_url).status_code == 200
    with app.app_context():
        assert workflow.run_import_jobs() == 1
    page = client.get(job_url).get_data(as_text=True)
    assert "2005" in page and "分配及使用信息" in page and "结果代码" in page
    assert client.get(job_url + "/marked.xlsx").status_code == 200
    assert client.get(job_url + ".json").get_json()["state"] == "failed"


@pytest.mark.parametrize("key", ["isp", "icp", "bureau", "special_query"])
def test_only_reporters_upload_and_a_job_is_its_owners(app, units, as_user, tmp_path, key) -> None:
    with app.app_context():
        job_id = _import(user_named(units["unit"]), ip_file(tmp_path / "x.xlsx", GOOD["blocks"][:1])).id
    client = as_user(key)
    if key in ("isp", "icp", "special_query"):
        assert client.get("/admin/ip-files/").status_code == 403
    else:
        assert "导出" in client.get("/admin/ip-files/").get_data(as_text=True)
        client.post("/admin/ip-files/", data={"csrf_token": csrf_token(client),
                                             "file": (ip_file(tmp_path / "y.xlsx").open("rb"), "y.xlsx")})
        with app.app_context():
            assert db.session.scalar(select(func.count()).select_from(ImportJob)) == 1
    assert client.get(f"/admin/ip-files/job/{job_id}").status_code in (403, 404)


def test_a_filings_job_is_not_shown_as_an_ip_job(app, units, as_user) -> None:
    with app.app_context():
        job = workflow.queue_import(user_named("tj_bureau"), "f.xlsx", io.BytesIO(b"x"))
        job.user_id, job_id = user_named(units["unit"]).id, job.id
        db.session.commit()
    assert as_user("ip_reporter").get(f"/admin/ip-files/job/{job_id}").status_code == 404


# --- export ------------------------------------------------------------------------------------------------------

def _sheets(data: bytes) -> dict[str, list[list[Any]]]:
    workbook = load_workbook(io.BytesIO(data))
    return {name: [list(row) for row in workbook[name].iter_rows(values_only=True)] for name in workbook.sheetnames}


def test_an_export_holds_the_reporters_records_in_the_template_columns_and_imports_again(
        app, units, as_user, tmp_path) -> None:
    with app.app_context():
        unit = user_named(units["unit"])
        assert _import(unit, ip_file(tmp_path / "g.xlsx", GOOD["blocks"], GOOD["allocations"],
                                     GOOD["self_brought"])).state == JobState.DONE
        block(user_named(units["beijing"]), "198.20.0.0", "198.20.0.255")
    response = as_user("ip_reporter").get("/admin/ip-files/export.xlsx")
    assert response.status_code == 200 and "ip-reports.xlsx" in response.headers["Content-Disposition"]
    sheets = _sheets(response.data)
    assert [row[:2] for row in sheets["来源信息"][1:]] == [["198.18.0.0", "198.18.255.255"],
                                                        ["2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"]]
    assert sheets["分配及使用信息"][0] == ip_import.SHEET_OF["allocation"].headers
    assert sheets["分配及使用信息"][2][:4] == ["198.18.1.0", "198.18.1.255", "再分配", "tj_ipr2"]
    assert sheets["分配及使用信息"][1][10:13] == ["天津市", "120100", "120101"]
    assert len(sheets["自带IP"]) == 2
    exported = tmp_path / "exported.xlsx"
    exported.write_bytes(response.data)
    with app.app_context():
        unit = user_named(units["unit"])
        for model, remove in ((IpSelfBrought, ip.delete_self_brought), (IpAllocation, ip.delete_allocation),
                              (IpBlock, ip.delete_block)):
            for record in db.session.scalars(select(model).where(model.unit_id == unit.id)).all():
                remove(unit, record)
        db.session.commit()
        assert _counts() == (1, 0, 0)  # the 北京 unit's block
        job = _import(unit, exported)
        assert job.state == JobState.DONE and job.imported == 8, job.errors
        assert _counts() == (4, 5, 1)


def test_overseers_export_their_scope_with_the_unit_and_formulas_stay_text(app, units, as_user, tmp_path) -> None:
    with app.app_context():
        block(user_named(units["unit"]), "198.18.0.0", "198.18.0.255", remark="=HYPERLINK(\"http://x\",\"y\")")
        block(user_named(units["beijing"]), "198.20.0.0", "198.20.0.255")
    tianjin = _sheets(as_user("bureau").get("/admin/ip-files/export.xlsx").data)["来源信息"]
    assert tianjin[0][-1] == "报备单位账号" and [row[-1] for row in tianjin[1:]] == [units["unit"]]
    everyone = as_user("miit").get("/admin/ip-files/export.xlsx").data
    assert [row[-1] for row in _sheets(everyone)["来源信息"][1:]] == [units["unit"], "bj_ipr"]
    cell = load_workbook(io.BytesIO(everyone))["来源信息"]["F2"]
    assert cell.value.startswith("=HYPERLINK") and cell.data_type == "s" and cell.quotePrefix
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "export", AuditEvent.object_type == "ip_reports")) == 2
