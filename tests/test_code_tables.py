"""The 11 code tables: seeded with real values, read by all, edited by MIIT only."""

from __future__ import annotations

import io

from openpyxl import load_workbook

from extensions import db
from importer import is_formula_like, xlsx_bytes
from models import CodeItem, CodeTable, Province
from seed_data import CODE_TABLES, PROVINCES
from tests.helpers import TIANJIN, post


def test_all_tables_seeded(app) -> None:
    with app.app_context():
        assert db.session.query(Province).count() == 31
        assert db.session.get(Province, TIANJIN).abbr == "津"
        for table in CodeTable:
            assert db.session.query(CodeItem).filter_by(table=table).count() == len(CODE_TABLES[table]) > 0
    assert len({abbr for _c, _n, abbr in PROVINCES}) == 31
    assert len(CodeTable) + 1 == 13  # + 行政区划 (the SPEC §10 eleven, and ip_registry, domain_type)


def test_everyone_reads_code_tables(as_user) -> None:
    body = as_user("icp").get("/admin/code_items/?flt0_0=preapproval_category").get_data(as_text=True)
    assert "药品和医疗器械" in body and "广播电影电视节目" in body
    assert "/admin/code_items/new/" not in body  # no create button


def test_miit_edits_a_code_value_and_it_is_audited(app, as_user) -> None:
    with app.app_context():
        item = db.session.query(CodeItem).filter_by(table=CodeTable.ACCESS_METHOD, code="9").one()
        item_id = item.id
    response = post(as_user("miit"), f"/admin/code_items/edit/?id={item_id}", {
        "table": "access_method", "name": "其他方式", "extra": "", "sort_order": "9", "active": "y"})
    assert response.status_code == 302
    with app.app_context():
        assert db.session.get(CodeItem, item_id).name == "其他方式"
        assert db.session.get(CodeItem, item_id).code == "9"  # the code itself is fixed
        from models import AuditEvent

        event = db.session.query(AuditEvent).filter_by(action="code_item.edit").one()
        assert "其他方式" in event.changes


def test_bureau_cannot_edit_code_tables(app, as_user) -> None:
    response = post(as_user("bureau"), f"/admin/provinces/edit/?id={TIANJIN}",
                    {"name": "篡改", "abbr": "津", "sort_order": "1", "active": "y"})
    assert response.status_code == 403
    with app.app_context():
        assert db.session.get(Province, TIANJIN).name == "天津市"


def test_no_delete_of_code_values(as_user) -> None:
    assert post(as_user("miit"), "/admin/provinces/delete/", {"id": TIANJIN}).status_code == 403


def test_duplicate_code_is_refused(app, as_user) -> None:
    response = post(as_user("miit"), "/admin/code_items/new/", {
        "table": "access_method", "code": "1", "name": "重复", "sort_order": "1", "active": "y"})
    assert response.status_code == 200
    with app.app_context():
        assert db.session.query(CodeItem).filter_by(name="重复").count() == 0


def test_export_escapes_formula_like_cells() -> None:
    data = xlsx_bytes(["a", "b"], [["=HYPERLINK(\"http://x\")", "+1"], ["@SUM(A1)", "\tcmd"], ["safe", 3]])
    sheet = load_workbook(io.BytesIO(data)).active
    cells = list(sheet.iter_rows(min_row=2))
    for cell in (cells[0][0], cells[0][1], cells[1][0], cells[1][1]):
        assert cell.data_type == "s" and cell.quotePrefix
    assert cells[2][1].value == 3
    assert is_formula_like("-2") and not is_formula_like("正常")


def test_code_table_export_name_is_rfc6266(as_user) -> None:
    response = as_user("icp").get("/admin/provinces/export/xlsx/")
    disposition = response.headers["Content-Disposition"]
    assert 'filename="provinces.xlsx"' in disposition and "filename*=UTF-8''" in disposition
