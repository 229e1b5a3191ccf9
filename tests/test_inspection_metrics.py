"""Issue 18 §6: the inspector's figures on /metrics — websites checked, the seconds they took, runs by state, the
websites failing each check now, and the rectification notices waiting (overdue ones counted apart). Read from the
database at scrape time, so every node answers the same; every label value is present, at 0 when none."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from flask import Flask
from sqlalchemy import select

import workflow
from extensions import cache, db
from models import (
    CheckCode,
    InspectionFinding,
    InspectionRun,
    InspectionScope,
    NoticeState,
    RectificationNotice,
    Role,
    RunState,
    Website,
)
from tests.filing_factories import filed_by_isp
from tests.helpers import TIANJIN, make_user
from tests.test_health_metrics import _scrape
from workflow import inspections


@pytest.fixture
def websites(app: Flask) -> list[tuple[int, int]]:
    """Three approved 天津 websites: (website id, entity id) each."""
    with app.app_context():
        isp, bureau = make_user("m_isp", Role.ISP, TIANJIN), make_user("m_bureau", Role.BUREAU, TIANJIN)
        found = []
        for n in range(3):
            application = filed_by_isp(isp, 900 + n)
            workflow.approve(bureau, application)
            website = db.session.query(Website).filter_by(entity_id=application.entity_id).one()
            found.append((website.id, website.entity_id))
        db.session.commit()
        return found


def _run(state: RunState, checked: int, seconds: float) -> InspectionRun:
    return InspectionRun(province_code=TIANJIN, scope=InspectionScope.ALL, state=state, total=checked,
                         checked=checked, seconds=seconds)


def _finding(website: tuple[int, int], check: CheckCode) -> InspectionFinding:
    return InspectionFinding(website_id=website[0], entity_id=website[1], province_code=TIANJIN, check=check,
                             outcome="missing", message="页面未展示备案号")


def _notice(website: tuple[int, int], state: NoticeState, deadline: date) -> RectificationNotice:
    return RectificationNotice(website_id=website[0], entity_id=website[1], province_code=TIANJIN, checks="number",
                               message="请在首页底部展示备案号并链接至备案系统", deadline=deadline, state=state)


def test_with_nothing_inspected_every_series_is_there_at_zero(app: Flask) -> None:
    """A fresh registry: the counters at 0, each run state and each check present with 0 (an alert on a series
    needs it to exist), no division by zero for the mean."""
    with app.app_context():
        samples = _scrape(app)
    assert samples[("beian_inspection_websites_checked_total", ())] == 0
    assert samples[("beian_inspection_seconds_total", ())] == 0
    assert samples[("beian_inspection_seconds_per_website", ())] == 0
    runs = {labels[0][1] for (name, labels) in samples if name == "beian_inspection_runs"}
    assert runs == {state.value for state in RunState}
    assert {labels[0][1]: value for (name, labels), value in samples.items()
            if name == "beian_inspection_failing_websites"} == {check.value: 0 for check in CheckCode}
    assert samples[("beian_rectification_notices_overdue", ())] == 0
    assert {labels[0][1]: value for (name, labels), value in samples.items()
            if name == "beian_rectification_notices"} == {"open": 0, "answered": 0}


def test_the_figures_follow_the_database(app: Flask, websites: list[tuple[int, int]]) -> None:
    """Runs in three states, four findings over three checks, notices open (one past its deadline, one due
    today), answered (past its deadline: not overdue, an ISP has acted) and closed (not counted)."""
    today = inspections.beijing_today()
    with app.app_context():
        db.session.add_all([_run(RunState.DONE, 120, 30.0), _run(RunState.DONE, 80, 10.0),
                            _run(RunState.RUNNING, 50, 10.0), _run(RunState.QUEUED, 0, 0.0)])
        db.session.add_all([_finding(websites[0], CheckCode.NUMBER), _finding(websites[1], CheckCode.NUMBER),
                            _finding(websites[1], CheckCode.CERT), _finding(websites[2], CheckCode.ACCESS)])
        db.session.add_all([_notice(websites[0], NoticeState.OPEN, today - timedelta(days=1)),
                            _notice(websites[1], NoticeState.OPEN, today),
                            _notice(websites[1], NoticeState.ANSWERED, today - timedelta(days=3)),
                            _notice(websites[2], NoticeState.CLOSED, today - timedelta(days=9))])
        db.session.commit()
        samples = _scrape(app)
    assert samples[("beian_inspection_websites_checked_total", ())] == 250
    assert samples[("beian_inspection_seconds_total", ())] == 50.0
    assert samples[("beian_inspection_seconds_per_website", ())] == pytest.approx(0.2)
    runs = {labels[0][1]: value for (name, labels), value in samples.items() if name == "beian_inspection_runs"}
    assert runs == {"queued": 1, "running": 1, "done": 2, "failed": 0, "cancelled": 0}
    failing = {labels[0][1]: value for (name, labels), value in samples.items()
               if name == "beian_inspection_failing_websites"}
    assert failing == {"dns": 0, "alive": 0, "number": 2, "link": 0, "cert": 1, "access": 1}
    notices = {labels[0][1]: value for (name, labels), value in samples.items()
               if name == "beian_rectification_notices"}
    assert notices == {"open": 2, "answered": 1}
    assert samples[("beian_rectification_notices_overdue", ())] == 1
    with app.app_context():  # the workflow's own rule agrees
        assert sum(inspections.overdue(notice) for notice in db.session.scalars(select(RectificationNotice))) == 1


def test_a_passing_check_leaves_the_failing_count_within_a_minute(app: Flask, websites: list[tuple[int, int]]
                                                                   ) -> None:
    """The findings are the current state: when a later inspection passes a check its finding goes. The count per
    check (a scan over the findings) is kept FINDINGS_RECOUNT_SECONDS: the next scrape still shows the old figure,
    the first one after the minute the new one."""
    with app.app_context():
        db.session.add(_finding(websites[0], CheckCode.LINK))
        db.session.commit()
        assert _scrape(app)[("beian_inspection_failing_websites", (("check", "link"),))] == 1
        db.session.query(InspectionFinding).delete()
        db.session.commit()
        assert _scrape(app)[("beian_inspection_failing_websites", (("check", "link"),))] == 1
        cache.delete("metrics:inspection_failing")  # what the minute's expiry does
        assert _scrape(app)[("beian_inspection_failing_websites", (("check", "link"),))] == 0
