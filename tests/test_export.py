"""SPEC §8 export: every console list to .xlsx, within the user's scope and filters, formula-safe, audited."""

from __future__ import annotations

import io
import json

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

import workflow
from extensions import db
from models import AuditEvent
from tests.filing_factories import entity_data, filed_by_isp, website_data
from tests.helpers import BEIJING, user_named

HOSTILE = '=HYPERLINK("http://x","y")'


@pytest.fixture
def filings(app, users):
    with app.app_context():
        filed_by_isp(user_named(users["isp"]), 1)
        filed_by_isp(user_named(users["isp_bj"]), 2, province=BEIJING)
        owner, isp = user_named(users["icp"]), user_named(users["isp"])
        workflow.save_filing_draft(owner, entity_data(3, unit_name=HOSTILE), [website_data("evil", [isp.id])])
        db.session.commit()


def _sheet(response) -> list[list[object]]:
    assert response.status_code == 200, response.status_code
    return [[c.value for c in row] for row in load_workbook(io.BytesIO(response.data)).active.iter_rows()]


@pytest.mark.parametrize(("role", "path"), [
    ("bureau", "/admin/applications/"), ("bureau", "/admin/bureau_queue/"), ("bureau", "/admin/filings/"),
    ("bureau", "/admin/revocation_queue/"), ("bureau", "/admin/revocation_requests/"), ("bureau", "/admin/notices/"),
    ("bureau", "/admin/audit_log/"), ("bureau", "/admin/filing_users/"), ("miit", "/admin/management_users/"),
    ("icp", "/admin/applications/"), ("icp", "/admin/filings/"), ("isp", "/admin/isp_queue/"),
])
def test_every_list_exports(as_user, filings, role: str, path: str) -> None:
    response = as_user(role).get(f"{path}export/xlsx/")
    rows = _sheet(response)
    assert rows and all(isinstance(h, str) for h in rows[0])
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith('attachment; filename="') and disposition.encode("ascii")


def test_exports_stay_in_scope_and_filters(as_user, filings) -> None:
    tianjin = {row[1] for row in _sheet(as_user("bureau").get("/admin/applications/export/xlsx/"))[1:]}
    beijing = {row[1] for row in _sheet(as_user("bureau_bj").get("/admin/applications/export/xlsx/"))[1:]}
    assert "天津测试科技有限公司1" in tianjin and "天津测试科技有限公司2" not in tianjin
    assert beijing == {"天津测试科技有限公司2"}
    mine = _sheet(as_user("icp").get("/admin/applications/export/xlsx/"))[1:]
    assert [row[1] for row in mine] == [HOSTILE]
    filtered = _sheet(as_user("bureau").get("/admin/applications/export/xlsx/?flt0_0=draft"))[1:]
    assert [row[1] for row in filtered] == [HOSTILE]


def test_formula_cells_come_back_as_text(app, as_user, filings) -> None:
    response = as_user("icp").get("/admin/applications/export/xlsx/")
    cell = load_workbook(io.BytesIO(response.data)).active["B2"]
    assert cell.value == HOSTILE and cell.data_type == "s"
    with app.app_context():
        event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "export"))
        assert json.loads(event.changes) == {"filters": {}, "rows": 1}
