"""Issue 12 items 6 and 8: an ISP verifies many applications at once, the application's page carries its
buttons and the number issued, and the filings export has one row per website with what a clerk needs."""

from __future__ import annotations

import io
from datetime import date

import pytest
from openpyxl import load_workbook

import workflow
from admin_views.search import LocalDateBetween
from extensions import db
from models import Application, ApplicationState, AuditEvent
from tests.filing_factories import entity_data, website_data
from tests.helpers import post, user_named
from tests.test_lifecycle import approved_filing


@pytest.fixture
def waiting(app, people):
    """Three owners' applications naming 天津's two ISPs; 北京's ISP is named on none."""
    ids = []
    with app.app_context():
        owner = user_named(people["icp"])
        isps = [user_named(people["isp"]).id, user_named(people["isp2"]).id]
        for n in range(3):
            application = workflow.save_filing_draft(owner, entity_data(700 + n), [website_data(f"wait{n}", isps)])
            workflow.submit_application(owner, application)
            ids.append(application.id)
        db.session.commit()
    return ids


def _states(app, ids: list[int]) -> list[ApplicationState]:
    with app.app_context():
        return [db.session.get(Application, i).state for i in ids]


def test_isp_verifies_many_at_once_through_a_confirmation_page(app, as_user, waiting) -> None:
    isp = as_user("isp")
    chosen = ",".join(map(str, waiting[:2]))
    listed = post(isp, "/admin/isp_queue/action/", {"action": "verify", "rowid": waiting[:2]})
    assert listed.status_code == 302 and "batch-verify" in listed.headers["Location"]
    page = isp.get(f"/admin/isp_queue/batch-verify/?ids={chosen}").get_data(as_text=True)
    assert "天津测试科技有限公司700" in page and "天津测试科技有限公司702" not in page and "全部核实" in page
    assert _states(app, waiting) == [ApplicationState.ISP_REVIEW] * 3  # nothing before the confirmation
    post(isp, "/admin/isp_queue/batch-verify/", {"ids": chosen})
    with app.app_context():
        rows = [db.session.get(Application, i) for i in waiting]
        mine = [next(v for v in a.verifications if v.isp.username == "tj_isp").state.value for a in rows]
    assert mine == ["confirmed", "confirmed", "pending"]


def test_batch_verification_refuses_what_is_not_waiting_for_this_isp(app, as_user, waiting) -> None:
    chosen = ",".join(map(str, waiting))
    page = as_user("isp_bj").get(f"/admin/isp_queue/batch-verify/?ids={chosen}").get_data(as_text=True)
    assert "天津测试科技有限公司700" not in page and "所选申请中没有等待您处理的" in page
    post(as_user("isp_bj"), "/admin/isp_queue/batch-verify/", {"ids": chosen})
    assert as_user("bureau").get("/admin/isp_queue/batch-verify/").status_code == 403
    with app.app_context():
        assert all(v.state.value == "pending" for i in waiting for v in db.session.get(Application, i).verifications)


def test_workflow_batch_verification_is_all_or_nothing(app, people, waiting) -> None:
    with app.app_context():
        isp = user_named(people["isp"])
        applications = [db.session.get(Application, i) for i in waiting]
        workflow.isp_verify(isp, applications[1])
        with pytest.raises(workflow.WorkflowError):
            workflow.batch_isp_verify(isp, applications)


def test_application_page_carries_its_buttons_and_the_number_issued(app, as_user, people, waiting) -> None:
    with app.app_context():
        for key in ("isp", "isp2"):
            workflow.isp_verify(user_named(people[key]), db.session.get(Application, waiting[0]))
        db.session.commit()
    details = f"/admin/applications/details/?id={waiting[0]}"
    bureau = as_user("bureau")
    page = bureau.get(details).get_data(as_text=True)
    assert f"/admin/applications/approve/?id={waiting[0]}" in page
    assert f"/admin/applications/reject/?id={waiting[0]}" in page
    assert "/approve/" not in as_user("bureau_bj").get(details).get_data(as_text=True)  # 404 page: no buttons
    approved = post(bureau, f"/admin/applications/approve/?id={waiting[0]}&url={details}", {})
    assert approved.headers["Location"].endswith(details)
    page = bureau.get(details).get_data(as_text=True)
    assert "已通过审核，备案号：津ICP备" in page and f"/approve/?id={waiting[0]}" not in page
    isp_page = as_user("isp").get(f"/admin/applications/details/?id={waiting[1]}").get_data(as_text=True)
    assert "/admin/applications/row-action/verify/" in isp_page and "/admin/applications/return/" in isp_page


def test_filings_export_has_a_row_per_website(app, as_user, people) -> None:
    with app.app_context():
        entity = approved_filing(people, isps=("isp", "isp2"), n=750, sites=2)
        db.session.commit()
        number, website_numbers = entity.number, [w.number for w in entity.websites]
    response = as_user("bureau").get("/admin/filings/export/xlsx/")
    rows = [[c.value for c in row] for row in load_workbook(io.BytesIO(response.data)).active.iter_rows()]
    assert rows[0] == ["备案号", "主办单位名称", "单位性质", "网站备案号", "网站名称", "域名", "首页", "接入服务商",
                       "服务器放置地", "审核通过时间", "状态"]
    mine = [row for row in rows[1:] if row[0] == number]
    assert [row[3] for row in mine] == website_numbers
    first = mine[0]
    assert first[2] and first[5] == "www.site750x0.cn\nsite750x0.cn" and first[6] == "http://www.site750x0.cn/"
    assert set(first[7].split("\n")) == {"天津某网络公司", "天津第二网络公司"} and first[8] == "天津市"
    assert first[9] and first[10] == "已备案"
    beijing = load_workbook(io.BytesIO(as_user("bureau_bj").get("/admin/filings/export/xlsx/").data)).active
    assert all(row[0].value != number for row in beijing.iter_rows())


def test_date_ranges_accept_the_chinese_separator(app) -> None:
    """The console's date picker writes "… 至 …" (static/js/console.js); Flask-Admin's own " to " still works."""
    between = LocalDateBetween(AuditEvent.at, "日期")
    for text in ("2026-01-01 至 2026-01-31", "2026-01-01 to 2026-01-31"):
        assert between.validate(text) and between.clean(text) == [date(2026, 1, 1), date(2026, 1, 31)]
    assert not between.validate("2026-01-01 至 ")


def test_filings_export_shows_idn_domains_in_unicode(app, as_user, people) -> None:
    with app.app_context():
        isp = user_named(people["isp"])
        site = website_data("idn", [isp.id], domains=["例子.中国"], home_url="http://例子.中国/")
        application = workflow.save_filing_draft(isp, entity_data(760), [site])
        workflow.submit_application(isp, application)
        workflow.approve(user_named(people["bureau"]), application)
        db.session.commit()
    rows = load_workbook(io.BytesIO(as_user("bureau").get("/admin/filings/export/xlsx/").data)).active.iter_rows()
    assert "例子.中国 (xn--fsqu00a.xn--fiqs8s)" in {row[5].value for row in rows}
