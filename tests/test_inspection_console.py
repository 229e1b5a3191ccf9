"""The console pages of website inspection (issue 18 §1, §3, §4): every page for every role both ways, another
province's run / website / notice by id refused, POSTs without the CSRF token refused, the Chinese UI — and the
clerk's path: start a run, watch it, read a failing website's evidence, send the notice, the ISP answers, 结案."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import openpyxl
import pytest
from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape
from sqlalchemy import event, func, select

import inspector
import workflow.inspections as inspections
from admin_views.inspection_labels import evidence_of
from extensions import db
from models import (
    Access,
    HandlingResult,
    InspectionFinding,
    InspectionResult,
    InspectionRun,
    InspectionScope,
    NoticeState,
    OutboxMessage,
    RectificationNotice,
    Role,
    RunState,
    UnfiledSighting,
    User,
)
from tests.helpers import make_user, post, sign_in, user_named
from tests.inspection_factories import check, filed_website
from tests.test_chinese_ui import _english_words_and_links, _known_data

BEIJING = "110000"
PAGES = ("/admin/inspections/", "/admin/inspections/start", "/admin/inspection-findings/", "/admin/rectification/",
         "/admin/unfiled/", "/admin/unfiled/report")
#: who opens which page (everyone else: 403)
OPENS = {
    "miit": set(PAGES), "bureau": set(PAGES), "bureau_bj": set(PAGES),
    "isp": {"/admin/rectification/", "/admin/unfiled/", "/admin/unfiled/report"},
    "isp_bj": {"/admin/rectification/", "/admin/unfiled/", "/admin/unfiled/report"},
    "icp": {"/admin/rectification/"},  # the notices of its own websites, read only
}
#: an excerpt of a hostile page: shown escaped, never as markup
HOSTILE = "<script>alert('检查')</script>页面底部没有备案号"


@dataclass
class World:
    tianjin: int  # a 天津 website failing 备案号展示 and 电子验证标识
    beijing: int  # a 北京 website failing 备案号链接
    tj_run: int
    bj_run: int


@dataclass
class Inspector:
    """Stands in for `workflow.inspections.inspect_sites` (no HTTP): every check passes but those `failing` names
    (website id → check code → outcome); the number check's evidence carries a hostile excerpt."""

    failing: dict[int, dict[str, str]]

    def __call__(self, sites: list[inspector.Site]) -> Iterator[tuple[inspector.Site, list[inspector.Check], float]]:
        return iter([(site, self.checks(site), 0.01) for site in sites])

    def checks(self, site: inspector.Site) -> list[inspector.Check]:
        wrong = self.failing.get(site.website_id, {})
        evidence = {"url": f"http://{site.domains[0]}/", "status": 200, "address": "203.0.113.1"}
        return [check(code, code not in wrong, wrong.get(code), **evidence,
                      **({"excerpt": HOSTILE} if code == "number" else {})) for code in inspector.CHECKS]


def _run_all() -> None:
    while inspections.run_inspection_jobs():
        pass


@pytest.fixture
def world(app: Flask, people: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> World:
    with app.app_context():
        tianjin = filed_website(people).id
        beijing = filed_website(people, isps=("isp_bj",), province=BEIJING, bureau="bureau_bj").id
        fake = Inspector(failing={tianjin: {"number": "missing", "cert": "absent"}, beijing: {"link": "unlinked"}})
        monkeypatch.setattr(inspections, "inspect_sites", fake)
        tj_run = inspections.start_run(user_named(people["bureau"]), InspectionScope.ALL).id
        bj_run = inspections.start_run(user_named(people["bureau_bj"]), InspectionScope.ALL).id
        db.session.commit()
        _run_all()
    return World(tianjin, beijing, tj_run, bj_run)


def _page(client: FlaskClient, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    return response.get_data(as_text=True)


# --- who opens what ----------------------------------------------------------------------------------------------

def test_every_page_opens_for_its_roles_only(app, users, as_user, world) -> None:
    opened = {}
    for who in users:
        client = as_user(who)
        opened[who] = {path for path in PAGES if client.get(path).status_code == 200}
        refused = {client.get(path).status_code for path in set(PAGES) - opened[who]}
        assert refused <= {403}, who
    assert opened == {who: OPENS.get(who, set()) for who in users}
    assert app.test_client().get(PAGES[0]).status_code == 302  # signed out: to the sign-in page


def test_another_provinces_run_website_and_notice_are_404(app, people, as_user, world) -> None:
    with app.app_context():
        notice = inspections.issue_notice(user_named(people["bureau_bj"]), _website(world.beijing), ["link"],
                                          "请整改", inspections.beijing_today() + timedelta(days=5))
        db.session.commit()
        notice_id = notice.id
    tianjin = as_user("bureau")
    for path in (f"/admin/inspections/run?id={world.bj_run}", f"/admin/inspections/run/status?id={world.bj_run}",
                 f"/admin/inspection-findings/website?id={world.beijing}",
                 f"/admin/rectification/notice?id={notice_id}", "/admin/inspections/run?id=x",
                 "/admin/inspections/run?id=99999999999999999999", "/admin/inspection-findings/website?id="):
        assert tianjin.get(path).status_code == 404, path
    assert post(tianjin, f"/admin/inspections/run/cancel?id={world.bj_run}").status_code == 404
    assert post(tianjin, "/admin/rectification/row-action/close/", {"id": notice_id}).status_code == 404
    assert as_user("isp").get(f"/admin/rectification/notice?id={notice_id}").status_code == 404  # not its website
    miit = as_user("miit")
    assert "津ICP备" in _page(miit, f"/admin/inspections/run?id={world.tj_run}")
    assert _page(miit, f"/admin/inspection-findings/website?id={world.beijing}")
    with app.app_context():
        assert db.session.get(RectificationNotice, notice_id).state == NoticeState.OPEN


def _website(website_id: int):  # type: ignore[no-untyped-def]
    from models import Website
    return db.session.get(Website, website_id)


# --- runs ---------------------------------------------------------------------------------------------------------

def test_a_clerk_starts_a_run_watches_it_and_reads_its_results(app, people, as_user, world) -> None:
    clerk = as_user("bureau")
    form = _page(clerk, "/admin/inspections/start")
    assert "全部网站" in form and "某接入商" in form and "指定备案号或域名" in form and "天津某网络公司" in form
    assert 'name="province_code"' not in form  # a bureau inspects its province only
    response = post(clerk, "/admin/inspections/start", {"scope": "all", "province_code": BEIJING})
    assert response.status_code == 302
    run_id = int(response.headers["Location"].rsplit("id=", 1)[1])
    with app.app_context():
        run = db.session.get(InspectionRun, run_id)
        assert (run.province_code, run.state, run.total) == ("120000", RunState.QUEUED, 1)
    page = _page(clerk, f"/admin/inspections/run?id={run_id}")
    assert "排队中" in page and "取消检查" in page and "inspection-run.js" in page
    assert clerk.get(f"/admin/inspections/run/status?id={run_id}").json == {
        "state": "queued", "state_label": "排队中", "total": 1, "checked": 0, "failing": 0, "started_at": "—"}
    with app.app_context():
        _run_all()
    assert clerk.get(f"/admin/inspections/run/status?id={run_id}").json["state"] == "done"
    page = _page(clerk, f"/admin/inspections/run?id={run_id}")
    assert "已完成" in page and "未通过" in page and "备案号展示、电子验证标识" in page and "取消检查" not in page
    assert "各检查项不合规数" in page and "备案号展示 1" in page and "域名解析 0" in page
    listing = _page(clerk, "/admin/inspections/")
    assert "新建检查" in listing and "1 / 1" in listing and "北京市通信管理局" not in listing



def test_a_runs_results_are_filtered_by_the_check_they_failed(app, people, as_user, world) -> None:
    """Each count of 各检查项不合规数 links to the websites failing that check (a national run: 天津 fails 备案号展示
    and 电子验证标识, 北京 备案号链接); a check that does not exist shows them all."""
    miit = as_user("miit")
    with app.app_context():
        run_id = inspections.start_run(user_named(people["miit"]), InspectionScope.ALL).id
        db.session.commit()
        _run_all()
        numbers = {key: _website(website_id).number for key, website_id in
                   (("tianjin", world.tianjin), ("beijing", world.beijing))}
    page = _page(miit, f"/admin/inspections/run?id={run_id}")
    assert f'href="/admin/inspections/run?id={run_id}&amp;check=link"' in page and "域名解析 0" in page
    assert 'check=dns"' not in page  # no link to an empty list
    cases = (("link", "备案号链接", "beijing", "tianjin"), ("cert", "电子验证标识", "tianjin", "beijing"))
    for code, label, shown, hidden in cases:
        filtered = _page(miit, f"/admin/inspections/run?id={run_id}&check={code}")
        assert f"仅显示“{label}”未通过的网站" in filtered and "显示全部" in filtered
        assert numbers[shown] in filtered and numbers[hidden] not in filtered
    everything = _page(miit, f"/admin/inspections/run?id={run_id}&check=%27%20or%201%3D1")
    assert numbers["tianjin"] in everything and numbers["beijing"] in everything and "仅显示" not in everything


def _card(page: str, title: str) -> tuple[str, str]:
    """(count, link) of a dashboard card."""
    found = re.search(rf'<div class="console-card-count">([^<]*)</div>\s*<div class="console-card-title">{title}<'
                      rf'.*?<a class="card-footer small" href="([^"]*)"', page, re.S)
    assert found, title
    return found.group(1).strip(), found.group(2)


def test_the_dashboards_count_open_findings_and_notices(app, people, as_user, world) -> None:
    """The bureau: its province's open findings (天津: 备案号展示, 电子验证标识) and overdue notices; MIIT the nation's;
    the ISP serving the website: the notices it has not answered (none for an ISP serving nothing there)."""
    with app.app_context():
        notice = inspections.issue_notice(user_named(people["bureau"]), _website(world.tianjin), ["number"], "请整改",
                                          inspections.beijing_today() + timedelta(days=5))
        db.session.commit()
        notice_id = notice.id
    bureau = _page(as_user("bureau"), "/admin/")
    assert _card(bureau, "网站检查未解决问题") == ("2", "/admin/inspection-findings/")
    assert _card(bureau, "超期未反馈的整改通知") == ("0", "/admin/rectification/?flt0_1=1")
    assert _card(_page(as_user("miit"), "/admin/"), "网站检查未解决问题")[0] == "3"
    isp = _page(as_user("isp"), "/admin/")
    assert _card(isp, "待反馈的整改通知") == ("1", "/admin/rectification/?flt0_0=open")
    assert "网站检查未解决问题" not in isp and "超期未反馈" not in isp
    assert _card(_page(as_user("isp_bj"), "/admin/"), "待反馈的整改通知")[0] == "0"
    with app.app_context():  # the deadline passes with no answer
        db.session.get(RectificationNotice, notice_id).deadline = inspections.beijing_today() - timedelta(days=1)
        db.session.commit()
    assert _card(_page(as_user("bureau"), "/admin/"), "超期未反馈的整改通知")[0] == "1"
    assert _card(_page(as_user("bureau_bj"), "/admin/"), "超期未反馈的整改通知")[0] == "0"
    overdue = _page(as_user("bureau"), "/admin/rectification/?flt0_1=1")
    assert "超期" in overdue


def test_the_owner_reads_its_websites_notices_and_nobody_elses(app, people, as_user, world) -> None:
    """The website's owner sees the notice (list, page, dashboard) without the answer form or 结案; another owner
    neither sees it nor reaches it by id; the owner's POST of an answer changes nothing."""
    with app.app_context():
        notice = inspections.issue_notice(user_named(people["bureau"]), _website(world.tianjin), ["number"],
                                          "请在首页底部展示备案号", inspections.beijing_today() + timedelta(days=5))
        db.session.commit()
        notice_id, number = notice.id, _website(world.tianjin).number
        make_user("icp_other", Role.ICP)
    owner = as_user("icp")
    listing = _page(owner, "/admin/rectification/")
    assert number in listing and "row-action/close" not in listing
    page = _page(owner, f"/admin/rectification/notice?id={notice_id}")
    assert "请在首页底部展示备案号" in page and 'name="result"' not in page and "row-action/close" not in page
    card = _card(_page(owner, "/admin/"), "我的网站的整改通知")
    assert card == ("1", "/admin/rectification/?flt0_3=closed") and number in _page(owner, card[1])
    assert post(owner, f"/admin/rectification/notice?id={notice_id}", {"result": "fixed", "detail": "改好了"}
                ).status_code in (200, 302)
    assert post(owner, "/admin/rectification/row-action/close/", {"id": notice_id}).status_code == 404
    stranger = app.test_client()
    sign_in(stranger, "icp_other")
    assert number not in _page(stranger, "/admin/rectification/")
    assert stranger.get(f"/admin/rectification/notice?id={notice_id}").status_code == 404
    with app.app_context():
        found = db.session.get(RectificationNotice, notice_id)
        assert (found.state, found.answers) == (NoticeState.OPEN, [])

def test_a_run_list_and_a_wrong_list_are_refused_with_the_reason(app, as_user, world) -> None:
    clerk = as_user("bureau")
    page = post(clerk, "/admin/inspections/start", {"scope": "list", "targets": "不是域名\n"},
                follow_redirects=True).get_data(as_text=True)
    assert "既不是备案号也不是有效的域名" in page and "不是域名" in page  # the typed list is kept
    page = post(clerk, "/admin/inspections/start", {"scope": "isp", "isp_id": ""},
                follow_redirects=True).get_data(as_text=True)
    assert "请选择一个接入服务商" in page
    assert post(clerk, "/admin/inspections/start", {"scope": "schedule"}).status_code == 400
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(InspectionRun)) == 2


def test_miit_chooses_a_province_or_the_nation(app, as_user, world) -> None:
    miit = as_user("miit")
    assert 'name="province_code"' in _page(miit, "/admin/inspections/start")
    for province in ("", BEIJING):
        assert post(miit, "/admin/inspections/start", {"scope": "all", "province_code": province}).status_code == 302
    with app.app_context():
        runs = db.session.scalars(select(InspectionRun).order_by(InspectionRun.id.desc()).limit(2)).all()
        assert [(run.province_code, run.total) for run in runs] == [(BEIJING, 1), (None, 2)]


def test_cancel_needs_the_token_and_a_running_run(app, as_user, world) -> None:
    clerk = as_user("bureau")
    run_id = int(post(clerk, "/admin/inspections/start", {"scope": "all"}).headers["Location"].rsplit("=", 1)[1])
    assert clerk.post(f"/admin/inspections/run/cancel?id={run_id}").status_code == 400  # no CSRF token
    with app.app_context():
        assert db.session.get(InspectionRun, run_id).state == RunState.QUEUED
    assert post(clerk, f"/admin/inspections/run/cancel?id={run_id}").status_code == 302
    page = _page(clerk, f"/admin/inspections/run?id={run_id}")
    assert "检查任务已取消" in page and "已取消" in page
    post(clerk, f"/admin/inspections/run/cancel?id={run_id}")
    assert "该检查已经结束，不能取消" in _page(clerk, f"/admin/inspections/run?id={run_id}")


# --- findings and the website's page -----------------------------------------------------------------------------

def test_the_findings_list_the_failing_websites_of_the_scope_with_filters(app, people, as_user, world) -> None:
    clerk = as_user("bureau")
    page = _page(clerk, "/admin/inspection-findings/").split("<tbody>")[1]
    assert "备案号展示" in page and "电子验证标识" in page and "检查未通过" in page and "备案号链接" not in page
    assert 'name="province"' not in _page(clerk, "/admin/inspection-findings/")
    assert "没有不合规的网站" in _page(clerk, "/admin/inspection-findings/?check=link")
    assert "备案号展示" in _page(clerk, "/admin/inspection-findings/?check=number")
    with app.app_context():
        isp_id = str(user_named(people["isp"]).id)
    assert "电子验证标识" in _page(clerk, f"/admin/inspection-findings/?isp={isp_id}")
    tomorrow = (inspections.beijing_today() + timedelta(days=2)).isoformat()
    assert "没有不合规的网站" in _page(clerk, f"/admin/inspection-findings/?since={tomorrow}")
    assert "电子验证标识" in _page(clerk, "/admin/inspection-findings/?check=bogus&since=never&isp=x")  # ignored
    miit = as_user("miit")
    assert "备案号链接" in _page(miit, "/admin/inspection-findings/").split("<tbody>")[1]
    page = _page(miit, f"/admin/inspection-findings/?province={BEIJING}").split("<tbody>")[1]
    assert "备案号链接" in page and "电子验证标识" not in page


def test_the_website_page_shows_the_evidence_escaped(app, as_user, world) -> None:
    page = _page(as_user("bureau"), f"/admin/inspection-findings/website?id={world.tianjin}")
    assert "&lt;script&gt;alert(" in page and "<script>alert(" not in page
    assert "检查历史" in page and "当前问题" in page and "响应状态码" in page and "访问地址" in page
    assert page.count('name="checks"') == 6 and page.count("checked>") >= 2  # the failing checks ticked


def test_the_notice_journey_send_answer_close(app, people, as_user, world) -> None:
    clerk, isp = as_user("bureau"), as_user("isp")
    website_page = f"/admin/inspection-findings/website?id={world.tianjin}"
    deadline = (inspections.beijing_today() + timedelta(days=10)).isoformat()
    form = {"checks": ["number", "cert"], "message": "请在首页底部展示备案号", "deadline": deadline}
    assert clerk.post(website_page, data=form).status_code == 400  # no CSRF token
    assert isp.get(website_page).status_code == 403
    assert post(clerk, website_page, form).status_code == 302
    with app.app_context():
        notice = db.session.scalar(select(RectificationNotice))
        assert (notice.checks, notice.deadline.isoformat()) == ("number,cert", deadline)
        mails = db.session.scalar(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.subject.startswith("整改通知")))
        notice_id = notice.id
    assert mails >= 1
    page = _page(clerk, website_page)
    assert "当前整改通知结案后" in page and "请在首页底部展示备案号" in page
    listing = _page(isp, "/admin/rectification/")
    assert "待处理" in listing and "row-action/close" not in listing
    notice_page = f"/admin/rectification/notice?id={notice_id}"
    assert "填写处理结果" in _page(isp, notice_page)
    with app.app_context():  # the ISP reads what the inspection found, not only the names of the checks
        found = dict(db.session.execute(select(InspectionFinding.check, InspectionFinding.message).where(
            InspectionFinding.website_id == world.tianjin)).all())
    page = _page(isp, notice_page)
    assert "当前问题" in page and found["number"] and escape(found["number"]) in page
    assert "填写处理结果" not in _page(clerk, notice_page)
    assert as_user("isp_bj").get(notice_page).status_code == 404
    assert isp.post(notice_page, data={"result": "rectified"}).status_code == 400  # no CSRF token
    page = post(isp, notice_page, {"result": "disputed", "detail": ""}, follow_redirects=True).get_data(as_text=True)
    assert "申辩须填写处理说明" in page
    page = post(isp, notice_page, {"result": "bogus", "detail": "x"}, follow_redirects=True).get_data(as_text=True)
    assert "请选择处理结果" in page  # the workflow's refusal, beside the form, not a bare 400
    assert post(isp, notice_page, {"result": "rectified", "detail": "已在首页底部加上"}).status_code == 302
    page = _page(clerk, notice_page)
    assert "已整改" in page and "已在首页底部加上" in page and "天津某网络公司" in page and "已反馈" in page
    assert "row-action/close" in page and "row-action/close" not in _page(isp, notice_page)  # 结案 on the page too
    assert post(isp, "/admin/rectification/row-action/close/", {"id": notice_id}).status_code == 404
    assert post(clerk, "/admin/rectification/row-action/close/", {"id": notice_id, "url": "/admin/rectification/"},
                follow_redirects=True).status_code == 200
    with app.app_context():
        assert db.session.get(RectificationNotice, notice_id).state == NoticeState.CLOSED
    assert "填写处理结果" not in _page(isp, notice_page)


def test_an_overdue_notice_stands_out_and_is_filtered(app, people, as_user, world) -> None:
    with app.app_context():
        notice = inspections.issue_notice(user_named(people["bureau"]), _website(world.tianjin), ["number"],
                                          "请整改", inspections.beijing_today() + timedelta(days=1))
        notice.deadline = inspections.beijing_today() - timedelta(days=1)  # a day past its deadline
        db.session.commit()
    clerk = as_user("bureau")
    listing = _page(clerk, "/admin/rectification/")
    assert "notice-overdue" in listing and "超期" in listing and "inspections.css" in listing
    assert "超期" in _page(clerk, "/admin/inspection-findings/")
    overdue, not_overdue = (_page(clerk, f"/admin/rectification/?flt0_1={value}") for value in ("1", "0"))
    assert "请整改" not in listing  # the text is on the notice's page, not the list
    assert "notice-overdue" in overdue and "notice-overdue" not in not_overdue


# --- unfiled websites ---------------------------------------------------------------------------------------------

def _workbook(rows: list[str]) -> bytes:
    book = openpyxl.Workbook()
    for value in rows:
        book.active.append([value])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def test_an_isp_reports_pasted_and_uploaded_websites(app, people, as_user, world) -> None:
    isp = as_user("isp")
    with app.app_context():
        filed = _website(world.tianjin).domains[0].name
    page = post(isp, "/admin/unfiled/report", {"values": f"unfiled-one.cn\n{filed}\n坏 域名\n203.0.113.250"}
                ).get_data(as_text=True)
    assert "未备案 2 个，已备案 1 个，无效 1 个" in page and "unfiled-one.cn" in page and "坏 域名" in page
    upload = {"file": (io.BytesIO(_workbook(["域名", "unfiled-two.cn", "unfiled-one.cn"])), "网站.xlsx")}
    page = post(isp, "/admin/unfiled/report", upload, content_type="multipart/form-data").get_data(as_text=True)
    assert "未备案 2 个，已备案 0 个，无效 0 个" in page
    page = post(isp, "/admin/unfiled/report", {"file": (io.BytesIO(b"not a workbook"), "x.xlsx")},
                content_type="multipart/form-data").get_data(as_text=True)
    assert "这不是 Excel 文件" in page
    assert "请上传表格" in post(isp, "/admin/unfiled/report", {"values": " \n"}).get_data(as_text=True)
    many = "\n".join(f"many{i}.cn" for i in range(1001))
    page = post(isp, "/admin/unfiled/report", {"values": many}).get_data(as_text=True)
    assert "未备案 1,001 个" in page and "仅显示前 1,000 个" in page and "many999.cn" in page and "many1000" not in page
    assert isp.post("/admin/unfiled/report", data={"values": "x.cn"}).status_code == 400  # no CSRF token
    assert "共 1,004 条" in _page(isp, "/admin/unfiled/")
    assert "共 1 条" in _page(isp, "/admin/unfiled/?flt0_0=unfiled-two.cn")
    with app.app_context():
        assert db.session.scalar(select(UnfiledSighting.times).where(UnfiledSighting.value == "unfiled-one.cn")) == 2
    one = "/admin/unfiled/?flt0_0=unfiled-one.cn"
    assert "共 1 条" in _page(as_user("bureau"), one) and "共 1 条" in _page(as_user("miit"), one)
    assert "共 0 条" in _page(as_user("bureau_bj"), one) and "共 0 条" in _page(as_user("isp_bj"), one)
    export = as_user("bureau").get("/admin/unfiled/export/xlsx/")
    assert export.status_code == 200
    sheet = openpyxl.load_workbook(io.BytesIO(export.data)).active
    values = [row[0] for row in sheet.iter_rows(values_only=True)]
    assert values[0] == "域名或IP地址" and "unfiled-one.cn" in values


# --- Chinese ------------------------------------------------------------------------------------------------------

def test_every_page_is_in_chinese(app, people, as_user, world) -> None:
    with app.app_context():
        notice = inspections.issue_notice(user_named(people["bureau"]), _website(world.tianjin), ["number"],
                                          "请整改", inspections.beijing_today() + timedelta(days=3))
        db.session.commit()
        known = {website.domains[0].name for website in (_website(world.tianjin), _website(world.beijing))}
        notice_id = notice.id
    post(as_user("isp"), "/admin/unfiled/report", {"values": "unfiled-one.cn\n坏域名"})
    pages = {"bureau": [*PAGES, f"/admin/inspections/run?id={world.tj_run}",
                        f"/admin/inspection-findings/website?id={world.tianjin}",
                        f"/admin/rectification/notice?id={notice_id}", "/admin/inspection-findings/?check=cert"],
             "miit": [*PAGES, f"/admin/inspections/run?id={world.bj_run}"],
             "isp": [*sorted(OPENS["isp"]), f"/admin/rectification/notice?id={notice_id}"]}
    check, found = _english_words_and_links(_known_data(app) | known | {"unfiled-one.cn"}), {}
    for who, paths in pages.items():
        client = as_user(who)
        for path in paths:
            words, _links = check(_page(client, path))
            if words:
                found[f"{who} {path}"] = words
    assert found == {}


def test_the_evidence_reads_in_chinese(app) -> None:
    """What the inspector stores, as the website's page shows it: the time in Beijing time, yes / no, each domain with
    its addresses or 未解析, the fetch error's message (never its code), unknown keys left out."""
    stored = {"dns": {"passed": False, "outcome": "nxdomain", "message": "域名 gone.cn 不存在。", "evidence": {
        "at": "2026-11-30T05:00:00+00:00", "domains": {"ok.cn": ["203.0.113.1"], "gone.cn": "nxdomain"}}},
        "alive": {"passed": False, "outcome": "dead", "message": "首页无法访问", "evidence": {
            "url": "http://ok.cn/", "truncated": True, "error": "timeout", "message": "超时", "secret": "x"}},
        "bogus": {"passed": True}}
    with app.test_request_context():
        checks = evidence_of(InspectionResult(evidence=json.dumps(stored, ensure_ascii=False)))
        broken = evidence_of(InspectionResult(evidence="not json"))
    assert [(c.code, c.name, c.passed) for c in checks] == [("dns", "域名解析", False), ("alive", "首页访问", False)]
    assert checks[0].fields == [("访问时间", "2026-11-30 13:00:00"), ("域名", "ok.cn：203.0.113.1；gone.cn：未解析")]
    assert checks[1].fields == [("访问地址", "http://ok.cn/"), ("因大小或时间上限截断", "是"), ("访问错误", "超时")]
    assert broken == []


def test_an_unused_filed_access_is_named_by_its_isp_and_ranges(app, people) -> None:
    """多报: the evidence keeps the access's id; the clerk reads the ISP and the ranges it filed, not a number."""
    with app.app_context():
        website = filed_website(people)
        access = db.session.scalar(select(Access).where(Access.website_id == website.id))
        stored = {"access": {"passed": False, "outcome": "unused", "message": "多报", "evidence": {
            "addresses": ["203.0.113.9"], "unused": [access.id]}}}
        with app.test_request_context():
            fields = dict(evidence_of(InspectionResult(evidence=json.dumps(stored)))[0].fields)
        isp = db.session.get(User, access.isp_id)
    shown = fields["未使用的备案接入"]
    assert isp.organisation in shown and str(access.id) not in shown.split("：")[0]


def test_the_notice_list_costs_the_same_queries_for_one_row_or_many(app, people, as_user, world) -> None:
    """Each row's website and latest answer come from the page's two loads, not from two queries per row."""
    isp = as_user("isp")

    def issued(count: int) -> int:
        with app.app_context():
            for _ in range(count):
                website = filed_website(people)
                notice = inspections.issue_notice(user_named(people["bureau"]), website, ["number"], "请整改",
                                                  inspections.beijing_today() + timedelta(days=10))
                inspections.answer_notice(user_named(people["isp"]), notice, HandlingResult.RECTIFIED, "已改")
            db.session.commit()
        statements: list[str] = []
        with app.app_context():
            listen = lambda *args: statements.append(args[2])  # noqa: E731 (before_cursor_execute's statement)
            event.listen(db.engine, "before_cursor_execute", listen)
            try:
                assert "已整改" in _page(isp, "/admin/rectification/")
            finally:
                event.remove(db.engine, "before_cursor_execute", listen)
        return len(statements)

    assert issued(1) == issued(3)
