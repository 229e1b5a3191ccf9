"""Do the dashboards answer a manager's questions, each in its scope (MIIT: the nation; a bureau: its province)?"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

import pytest

import deadlines
import workflow
from admin_views import dashboard
from extensions import cache, db
from models import Application, ApplicationState, FilingStatus, Role
from tests.filing_factories import entity_data, filed_by_isp, website_data
from tests.helpers import BEIJING, make_user, user_named

NOW = datetime(2026, 3, 18, 4, 0)  # Wednesday 2026-03-18, 12:00 in Beijing


def _decided(application: Application, state: ApplicationState, submitted: datetime, days: float) -> None:
    application.state, application.submitted_at = state, submitted
    application.decided_at = submitted + timedelta(days=days)
    if state == ApplicationState.APPROVED:
        application.entity.status = FilingStatus.ACTIVE


@pytest.fixture
def world(ctx, people) -> dict[str, int]:
    """天津: 10 decisions 1..10 days long (one a rejection), 2 in bureau review (one overdue, one due in 2
    working days), 1 in ISP review; 北京: one approved and one overdue."""
    isp, isp2, isp_bj = user_named(people["isp"]), user_named(people["isp2"]), user_named(people["isp_bj"])
    for n in range(1, 11):
        decided_on = NOW - timedelta(days=n)  # 3/17 (this week) … 3/8 (this month) …
        state = ApplicationState.REJECTED if n == 10 else ApplicationState.APPROVED
        _decided(filed_by_isp(isp, n), state, decided_on - timedelta(days=n), n)
    _decided(filed_by_isp(isp, 11), ApplicationState.APPROVED, NOW - timedelta(days=150), 5)  # outside 90 days
    overdue, soon = filed_by_isp(isp, 12), filed_by_isp(isp, 13)
    overdue.due_at, overdue.submitted_at = deadlines.end_of_day(date(2026, 3, 17)), NOW - timedelta(days=40)
    soon.due_at, soon.submitted_at = deadlines.end_of_day(date(2026, 3, 20)), NOW
    waiting = workflow.save_filing_draft(isp, entity_data(14), [website_data("site14", [isp.id, isp2.id])])
    workflow.submit_application(isp, waiting)
    waiting.submitted_at = NOW - timedelta(days=1)
    _decided(filed_by_isp(isp_bj, 20, BEIJING), ApplicationState.APPROVED, NOW - timedelta(days=3), 1)
    filed_by_isp(isp_bj, 21, BEIJING).due_at = deadlines.end_of_day(date(2026, 3, 1))
    db.session.flush()
    return {"overdue": overdue.id}


def test_a_bureau_sees_its_province_only(world, people) -> None:
    stats = dashboard.statistics_for(user_named(people["bureau"]), NOW)
    assert (stats.in_force, stats.isp_review, stats.bureau_review) == (10, 1, 2)
    assert (stats.overdue, stats.due_soon) == (1, 1)
    # decided 3/17 (n=1) … this week starts Monday 3/16: n = 1, 2 approved; this month: n = 1..9 but 10 rejected
    assert (stats.approved_week, stats.approved_month) == (2, 9)
    assert stats.decided == 10
    assert stats.average_days == pytest.approx(5.5, abs=0.01)
    assert stats.p90_days == pytest.approx(9, abs=1 / 24 + 0.001)  # nearest rank 9 of 10, to the hour


def test_miit_sees_the_nation(world, people) -> None:
    stats = dashboard.statistics_for(user_named(people["miit"]), NOW)
    assert (stats.in_force, stats.bureau_review, stats.overdue, stats.decided) == (11, 3, 2, 11)


def test_the_chart_counts_submissions_per_beijing_day(world, people) -> None:
    chart = dashboard.statistics_for(user_named(people["bureau"]), NOW).chart
    assert len(chart.bars) == 90 and chart.bars[-1].day == date(2026, 3, 18) and chart.bars[0].day == date(2025, 12, 19)
    by_day = {bar.day: bar.count for bar in chart.bars}
    # the decided ones were submitted 2n days before NOW, the open ones 40, 0 and 1 day before
    assert [by_day[NOW.date() - timedelta(days=2 * n)] for n in range(1, 11)] == [1] * 10
    assert by_day[date(2026, 3, 18)] == 1 and by_day[date(2026, 3, 17)] == 1
    assert by_day[NOW.date() - timedelta(days=40)] == 1
    assert sum(by_day.values()) == 13  # not the one submitted 150 days ago, nor 北京's
    tallest = max(chart.bars, key=lambda bar: bar.count)
    assert tallest.height == chart.height and tallest.y == 0


def test_nothing_decided_shows_no_processing_time(ctx, people) -> None:
    stats = dashboard.statistics_for(user_named(people["bureau"]), NOW)
    assert (stats.decided, stats.average_days, stats.p90_days, stats.overdue) == (0, None, None, 0)
    assert all(bar.count == 0 and bar.height == 0 for bar in stats.chart.bars)


def test_the_page_draws_the_statistics_without_inline_style(app, users, as_user) -> None:
    with app.app_context():
        filed_by_isp(user_named(users["isp"]), 1)
        db.session.commit()
    page = as_user("bureau").get("/admin/").get_data(as_text=True)
    assert "本省" in page and "待管局审核" in page and "办理时长90分位数（天）" in page
    assert page.count("<rect ") == 90 and "<svg" in page
    assert ' style="' not in page and "<script>" not in page
    assert "全国" in as_user("miit").get("/admin/").get_data(as_text=True)
    assert "本周通过" not in as_user("isp").get("/admin/").get_data(as_text=True)  # no statistics for an ISP


def test_the_statistics_are_cached_per_scope(app, users, as_user) -> None:
    bureau = as_user("bureau")
    assert re.search(r"statistic-value\s*\">0<", bureau.get("/admin/").get_data(as_text=True))
    with app.app_context():
        filed_by_isp(user_named(users["isp"]), 1)
        db.session.commit()
    page = bureau.get("/admin/").get_data(as_text=True)
    assert "每两分钟更新" in page
    with app.app_context():
        cache.clear()
    assert "统计时间" in as_user("bureau_bj").get("/admin/").get_data(as_text=True)


# --- the pre-approval authority's count is its queue's -----------------------------------------------------

def test_the_preapproval_count_is_the_queues(app, users, as_user) -> None:
    """Issue 12: the dashboard counted 15 items where the queue of its province held 1."""
    with app.app_context():
        tianjin_news = make_user("tj_news", Role.PREAPPROVAL, "120000", preapproval_category="1")
        isp, isp_bj = user_named(users["isp"]), user_named(users["isp_bj"])
        for n, (who, province) in enumerate([(isp, "120000"), (isp_bj, BEIJING), (isp_bj, BEIJING)], start=1):
            workflow.save_filing_draft(who, entity_data(n, province), [website_data(
                f"site{n}", [who.id], preapprovals=[("1", f"津新闻[2026]{n}号")])])
        db.session.commit()
        assert tianjin_news.province_code == "120000"
    client = app.test_client()
    from tests.helpers import sign_in

    assert sign_in(client, "tj_news").status_code == 302
    page = client.get("/admin/").get_data(as_text=True)
    card = re.search(r'console-card-count">(\d+)</div>\s*<div class="console-card-title">前置审批', page)
    assert card and card.group(1) == "1"
    link = re.search(r'href="(/admin/preapproval_queue/[^"]*)"', page).group(1).replace("&amp;", "&")
    queue = client.get(link).get_data(as_text=True)
    assert len(re.findall(r'name="rowid" class="action-checkbox"|col-document_number">', queue)) >= 1
    assert queue.count("津新闻[2026]1号") == 1 and "津新闻[2026]2号" not in queue
    national = as_user("preapproval").get("/admin/").get_data(as_text=True)  # no province: every province
    assert re.search(r'console-card-count">3</div>\s*<div class="console-card-title">前置审批', national)
