"""The statutory deadline (MIIT Order No. 33: 20 working days), the bureau's queue by deadline, the daily reminder."""

from __future__ import annotations

import logging
import re
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import select

import deadlines
import workflow
from extensions import db
from models import Application, ApplicationState, DeadlineReminder, OutboxMessage, Role, UserStatus
from tests.filing_factories import filed_by_isp
from tests.helpers import BEIJING, make_user, user_named

# (complete submission, Beijing day) → the last day for the decision, counted by hand from the State Council's
# notices: 2025 Spring Festival 1/28–2/4 off, 1/26 (Sun) and 2/8 (Sat) worked; 2025 National Day 10/1–10/8 off,
# 9/28 (Sun) and 10/11 (Sat) worked; 2026 Spring Festival 2/15–2/23 off, 2/14 and 2/28 (Sat) worked; 2026
# Mid-Autumn 9/25–9/27 and National Day 10/1–10/7 off, 9/20 (Sun) and 10/10 (Sat) worked.
KNOWN = [
    (date(2025, 3, 3), date(2025, 3, 31)),  # no holiday: four weeks
    (date(2025, 1, 24), date(2025, 2, 27)),  # over the 2025 Spring Festival, both adjusted days worked
    (date(2025, 1, 26), date(2025, 2, 28)),  # submitted on an adjusted working Sunday (not counted itself)
    (date(2025, 9, 26), date(2025, 10, 30)),  # over the 2025 National Day
    (date(2025, 10, 10), date(2025, 11, 6)),  # the day before the adjusted Saturday 10/11
    (date(2026, 2, 13), date(2026, 3, 19)),  # over the 2026 Spring Festival
    (date(2026, 2, 15), date(2026, 3, 20)),  # submitted during the holiday
    (date(2026, 9, 18), date(2026, 10, 22)),  # over Mid-Autumn and the 2026 National Day
]


@pytest.mark.parametrize(("submitted", "due"), KNOWN)
def test_the_deadline_around_holidays_and_adjusted_working_days(submitted: date, due: date) -> None:
    assert deadlines.add_working_days(submitted, deadlines.STATUTORY_WORKING_DAYS) == due


@pytest.mark.parametrize(("day", "working"), [
    (date(2026, 2, 14), True), (date(2026, 2, 16), False), (date(2026, 2, 28), True), (date(2026, 3, 1), False),
    (date(2025, 10, 8), False), (date(2025, 10, 11), True), (date(2025, 10, 12), False), (date(2025, 10, 13), True),
])
def test_working_days_follow_the_published_calendar(day: date, working: bool) -> None:
    assert deadlines.is_working_day(day) is working


def test_the_beijing_day_counts_not_the_utc_day() -> None:
    """17:00 UTC on Friday 2026-02-13 is already Saturday 2026-02-14 (an adjusted working day) in Beijing."""
    assert deadlines.due_date(datetime(2026, 2, 13, 15, 59)) == date(2026, 3, 19)
    assert deadlines.due_date(datetime(2026, 2, 13, 16, 0)) == date(2026, 3, 20)
    due_at = deadlines.due_at(datetime(2026, 2, 13, 15, 59))
    assert due_at == datetime(2026, 3, 19, 16, 0)  # midnight ending 3/19 in Beijing
    assert deadlines.due_day(due_at) == date(2026, 3, 19)


def test_a_year_the_calendar_does_not_know_counts_monday_to_friday_with_a_warning(caplog) -> None:
    deadlines._warn_unknown_year.cache_clear()
    with caplog.at_level(logging.WARNING, logger="deadlines"):
        assert deadlines.is_working_day(date(2099, 1, 1)) is True  # a Thursday; no holiday data
        assert deadlines.is_working_day(date(2099, 1, 3)) is False  # a Saturday
        assert deadlines.is_working_day(date(2099, 1, 5)) is True
    assert [r.getMessage() for r in caplog.records].count(
        "chinese-calendar has no holiday data for 2099: counting Monday to Friday as working days "
        "(upgrade chinese-calendar once the State Council publishes that year's holidays)") == 1
    # across the year end: December from the calendar, January Monday to Friday
    assert deadlines.add_working_days(date(2098, 12, 31), 3) == date(2099, 1, 5)


@pytest.mark.parametrize(("today", "left"), [
    (date(2026, 3, 13), 4), (date(2026, 3, 16), 3), (date(2026, 3, 18), 1), (date(2026, 3, 19), 0),
    (date(2026, 3, 20), -1), (date(2026, 3, 21), -1), (date(2026, 3, 23), -2),
])
def test_days_left(today: date, left: int) -> None:
    assert deadlines.days_left(date(2026, 3, 19), today) == left


def test_due_soon_means_three_working_days_or_fewer() -> None:
    today = date(2026, 2, 13)  # Friday; next working days 2/14 (Sat, adjusted), 2/24, 2/25
    assert deadlines.due_soon_until(today) == deadlines.end_of_day(date(2026, 2, 25))
    assert deadlines.days_left(date(2026, 2, 25), today) == 3
    assert deadlines.days_left(date(2026, 2, 26), today) == 4


# --- the workflow records the moment of the complete submission --------------------------------------------

def test_entering_bureau_review_records_the_deadline(ctx, users) -> None:
    isp = user_named(users["isp"])
    application = filed_by_isp(isp, 1)
    assert application.state == ApplicationState.BUREAU_REVIEW
    assert application.bureau_since is not None
    assert application.due_at == deadlines.due_at(application.bureau_since)


def test_waiting_for_another_isp_records_no_deadline_until_it_verifies(ctx, people) -> None:
    from tests.filing_factories import entity_data, website_data

    isp, isp2 = user_named(people["isp"]), user_named(people["isp2"])
    application = workflow.save_filing_draft(isp, entity_data(2), [website_data("site2", [isp.id, isp2.id])])
    workflow.submit_application(isp, application)
    assert application.state == ApplicationState.ISP_REVIEW and application.due_at is None
    workflow.isp_verify(isp2, application)
    assert application.state == ApplicationState.BUREAU_REVIEW and application.due_at is not None


# --- the bureau's queue ---------------------------------------------------------------------------------

#: a row's checkbox in a list (its label's attribute between the class and the value)
ROW_ID = r'name="rowid" class="action-checkbox"[^>]*? value="(\d+)"'


def _queued(app, users, offsets: dict[str, int]) -> dict[str, int]:
    """Applications in 天津's queue whose deadline is today + offset working days; name → id."""
    with app.app_context():
        isp = user_named(users["isp"])
        today = deadlines.beijing_date(datetime.utcnow())
        ids = {}
        for n, (name, offset) in enumerate(offsets.items(), start=10):
            application = filed_by_isp(isp, n)
            due = deadlines.add_working_days(today, offset) if offset >= 0 else today - timedelta(days=-offset)
            application.due_at = deadlines.end_of_day(due)
            ids[name] = application.id
        db.session.commit()
        return ids


def test_the_queue_shows_days_left_marks_urgent_ones_and_sorts_by_deadline(app, users, as_user) -> None:
    ids = _queued(app, users, {"later": 12, "overdue": -5, "soon": 2, "today": 0})
    bureau = as_user("bureau")
    page = bureau.get("/admin/bureau_queue/").get_data(as_text=True)
    rows = [int(i) for i in re.findall(ROW_ID, page)]
    assert rows == [ids["overdue"], ids["today"], ids["soon"], ids["later"]]  # most urgent first
    assert "badge badge-danger deadline-overdue" in page and "已逾期" in page
    assert page.count("badge badge-warning deadline-soon") == 2 and "今日到期" in page
    assert "剩余 12 个工作日" in page and "badge badge-light deadline-ok" in page
    assert ' style="' not in page
    column = re.search(r'href="[^"]*sort=(\d+)[^"]*"[^>]*>审核期限', page)
    assert column, "the deadline column is sortable"
    reverse = bureau.get(f"/admin/bureau_queue/?sort={column.group(1)}&desc=1").get_data(as_text=True)
    assert [int(i) for i in re.findall(ROW_ID, reverse)] == rows[::-1]


# --- the daily reminder --------------------------------------------------------------------------------

NINE_BEIJING = datetime(2026, 3, 18, 1, 0)  # 09:00 in Beijing
SEVEN_BEIJING = datetime(2026, 3, 17, 23, 0)  # 07:00 in Beijing, the same day


def _due(app, users, key: str, n: int, due: date) -> int:
    with app.app_context():
        application = filed_by_isp(user_named(users[key]), n, BEIJING if key == "isp_bj" else "120000")
        application.due_at = deadlines.end_of_day(due)
        db.session.commit()
        return application.id


def _mails() -> list[OutboxMessage]:
    return list(db.session.scalars(select(OutboxMessage).where(OutboxMessage.subject.like("备案审核期限提醒%"))
                                   .order_by(OutboxMessage.recipient)))


def test_the_reminder_goes_once_a_day_to_the_provinces_bureau_users_only(app, users) -> None:
    soon = _due(app, users, "isp", 30, date(2026, 3, 20))  # 2 working days after 3/18
    overdue = _due(app, users, "isp", 31, date(2026, 3, 10))
    later = _due(app, users, "isp", 32, date(2026, 4, 10))
    _due(app, users, "isp_bj", 33, date(2026, 4, 10))  # 北京: nothing due soon
    with app.app_context():
        make_user("tj_bureau2", Role.BUREAU, "120000")
        make_user("tj_bureau_off", Role.BUREAU, "120000")
        user_named("tj_bureau_off").status = UserStatus.DISABLED
        make_user("tj_bureau_nomail", Role.BUREAU, "120000").email = ""
        db.session.commit()
        assert workflow.send_deadline_reminders(SEVEN_BEIJING) == 0  # before 08:00
        assert workflow.send_deadline_reminders(NINE_BEIJING) == 2
        mails = _mails()
        assert [m.recipient for m in mails] == ["tj_bureau2@example.cn", "tj_bureau@example.cn"]
        body = mails[0].body
        assert f"申请编号 {soon}" in body and "剩余2个工作日" in body and "期限 2026-03-20" in body
        assert f"申请编号 {overdue}" in body and "已逾期" in body
        assert f"申请编号 {later}" not in body
        assert workflow.send_deadline_reminders(NINE_BEIJING + timedelta(hours=5)) == 0  # once a day
        assert len(_mails()) == 2
        days = {(r.province_code, r.applications, r.recipients) for r in db.session.scalars(
            select(DeadlineReminder).where(DeadlineReminder.day == date(2026, 3, 18)))}
        assert ("120000", 2, 2) in days and (BEIJING, 0, 0) in days
        assert workflow.send_deadline_reminders(NINE_BEIJING + timedelta(days=1)) == 2  # the next day again


def test_the_cli_sends_now_and_once(app, users) -> None:
    _due(app, users, "isp", 40, deadlines.beijing_date(datetime.utcnow()))
    runner = app.test_cli_runner()
    first = runner.invoke(args=["deadlines", "remind"])
    assert first.exit_code == 0 and first.output.strip() == '{"queued": 1}'
    assert runner.invoke(args=["deadlines", "remind"]).output.strip() == '{"queued": 0}'


def test_no_applications_in_bureau_review_means_no_reminder(ctx, users) -> None:
    assert workflow.send_deadline_reminders(NINE_BEIJING) == 0
    assert _mails() == []
    assert db.session.scalar(select(Application.id)) is None
