"""Do the dashboards answer a manager's questions, each in its scope (MIIT: the nation; a bureau: its province)?"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import update

import dashboard_statistics
import deadlines
import workers
import workflow
from admin_views import dashboard
from dashboard_statistics import NATION, compute_all, refresh_if_due, scope_of, statistics_for, stored_statistics
from extensions import db
from models import Application, ApplicationState, DashboardStatistics, FilingStatus, Role, utcnow
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
    stats = statistics_for(scope_of(user_named(people["bureau"])), NOW)
    assert (stats.in_force, stats.isp_review, stats.bureau_review) == (10, 1, 2)
    assert (stats.overdue, stats.due_soon) == (1, 1)
    # decided 3/17 (n=1) … this week starts Monday 3/16: n = 1, 2 approved; this month: n = 1..9 but 10 rejected
    assert (stats.approved_week, stats.approved_month) == (2, 9)
    assert stats.decided == 10
    assert stats.average_days == pytest.approx(5.5, abs=0.01)
    assert stats.p90_days == pytest.approx(9, abs=1 / 24 + 0.001)  # nearest rank 9 of 10, to the hour


def test_miit_sees_the_nation(world, people) -> None:
    stats = statistics_for(scope_of(user_named(people["miit"])), NOW)
    assert (stats.in_force, stats.bureau_review, stats.overdue, stats.decided) == (11, 3, 2, 11)
    # 天津's 1..10 days and 北京's 1 day, merged: the average of 11, the 10th of 11 in the summed histogram
    assert stats.average_days == pytest.approx(56 / 11, abs=0.01)
    assert stats.p90_days == pytest.approx(9, abs=1 / 24 + 0.001)
    provinces = [statistics_for(code, NOW).chart.bars for code in ("120000", "110000")]
    assert [bar.count for bar in stats.chart.bars] == [a.count + b.count for a, b in zip(*provinces, strict=True)]


def test_the_chart_counts_submissions_per_beijing_day(world, people) -> None:
    chart = statistics_for(scope_of(user_named(people["bureau"])), NOW).chart
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
    stats = statistics_for(scope_of(user_named(people["bureau"])), NOW)
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


def test_the_worker_stores_every_province_and_the_nation(world, people) -> None:
    """Are the stored figures the ones counted for each scope (JSON and back)?"""
    assert compute_all(NOW) == 32  # 31 provinces and the nation
    for scope in (NATION, "120000", "110000", "650000"):
        assert stored_statistics(scope, NOW) == statistics_for(scope, NOW)
    assert stored_statistics("650000", NOW).decided == 0


def test_the_worker_step_recounts_once_per_interval(world, app) -> None:
    assert refresh_if_due(NOW) == 32
    assert refresh_if_due(NOW + timedelta(seconds=119)) is None
    assert refresh_if_due(NOW + timedelta(seconds=120)) == 32
    assert db.session.get(DashboardStatistics, NATION).computed_at == NOW + timedelta(seconds=120)
    assert next(step for step in workers.STEPS if step.name == "statistics").singleton


def test_the_page_reads_its_scopes_row_not_the_registry(app, users, as_user) -> None:
    """Is the page's figure the stored one (a new filing shows after the next recount, not before)?"""
    bureau = as_user("bureau")
    assert re.search(r"statistic-value\s*\">0<", bureau.get("/admin/").get_data(as_text=True))  # no row: counted
    with app.app_context():
        assert db.session.get(DashboardStatistics, "120000") is not None  # … and stored
        filed_by_isp(user_named(users["isp"]), 1)
        db.session.commit()
    page = bureau.get("/admin/").get_data(as_text=True)
    assert re.search(r"statistic-value\s*\">0<", page) and "统计时间" in page and "每 120 秒重新统计" in page
    with app.app_context():
        compute_all()
    assert re.search(r"statistic-value\s*\">1<", bureau.get("/admin/").get_data(as_text=True))


def test_a_row_left_by_a_stopped_worker_is_recounted(ctx, people) -> None:
    compute_all(NOW)
    assert stored_statistics("120000", NOW + timedelta(seconds=239)).at == NOW
    assert stored_statistics("120000", NOW + timedelta(seconds=240)).at == NOW + timedelta(seconds=240)


@pytest.mark.skipif(bool(os.environ.get("TEST_DATABASE_URL")), reason="SQLite's write lock")
def test_counting_takes_no_write_lock(app, monkeypatch) -> None:
    """Can another connection write while the worker counts (SQLite: the counting's transaction is a reader)?"""
    path = app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///")
    real, writes = dashboard_statistics.figures_by_province, []

    def count_while_another_writes(provinces, now):
        counted = real(provinces, now)
        other = sqlite3.connect(path, timeout=0)  # no waiting: the lock is free or this fails
        other.execute("BEGIN IMMEDIATE")
        other.rollback()
        other.close()
        writes.append(len(provinces))
        return counted

    monkeypatch.setattr(dashboard_statistics, "figures_by_province", count_while_another_writes)
    with app.app_context():
        assert refresh_if_due(NOW) == 32 and writes == [31]


# --- the cards count up to a cap ------------------------------------------------------------------------------

def _audit_card(page: str) -> str:
    return re.search(r'console-card-count">([^<]+)</div>\s*<div class="console-card-title">今日审计事件', page).group(1)


def test_a_card_counts_up_to_its_cap(app, as_user, monkeypatch) -> None:
    """Does a card say 超过 N past its cap, and the exact count up to it?"""
    miit = as_user("miit")  # signing in wrote audit events today: more than one
    assert _audit_card(miit.get("/admin/").get_data(as_text=True)).isdigit()
    monkeypatch.setattr(dashboard, "CARD_CAP", 1)
    assert _audit_card(miit.get("/admin/").get_data(as_text=True)) == "超过 1"


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


def test_large_figures_are_shown_with_thousands_separators(app, users, as_user) -> None:
    """3575335 is hard to read for a clerk: the statistics, the chart's peak and the decisions read 3,575,335."""
    bureau = as_user("bureau")
    bureau.get("/admin/")  # counted and stored
    with app.app_context():
        stored = db.session.get(DashboardStatistics, "120000")
        figures = json.loads(stored.payload) | {"in_force": 3_575_335, "hours": [[300, 12_345, 3_703_500]]}
        db.session.execute(update(DashboardStatistics).where(DashboardStatistics.scope == "120000")
                           .values(payload=json.dumps(figures), computed_at=utcnow()))
        db.session.commit()
    page = bureau.get("/admin/").get_data(as_text=True)
    assert re.search(r"statistic-value\s*\">3,575,335<", page) and "3575335" not in page
    assert "12,345 个决定" in page
