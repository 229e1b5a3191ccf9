"""The statutory deadline of an application in bureau review, and the bureau's daily reminder e-mail.

`start_deadline` is called wherever an application enters bureau review complete (every ISP verified): the
wizard's submission and ISP verification (workflow.filings), the applications after approval
(workflow.lifecycle) and the spreadsheet import (workflow.imports, which writes the same two values).
"""

from __future__ import annotations

import logging
from datetime import date, datetime

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

import deadlines
import notify
from extensions import db
from models import Application, ApplicationState, DeadlineReminder, Province, Role, User, UserStatus, utcnow

#: the worker sends the day's reminders from this hour (Beijing time) on; the CLI command sends at once
REMINDER_HOUR = 8
log = logging.getLogger(__name__)


def start_deadline(application: Application, now: datetime | None = None) -> None:
    """The application's submission is complete now: record it and the day the bureau must decide by."""
    for name, value in deadline_values(now or utcnow()).items():
        setattr(application, name, value)


def deadline_values(now: datetime) -> dict[str, datetime]:
    """When the application entered bureau review complete, and the moment its statutory deadline passes."""
    return {"bureau_since": now, "due_at": deadlines.due_at(now)}


def due_soon(province_code: str, today: date) -> list[Application]:
    """The province's applications in bureau review due within DUE_SOON_WORKING_DAYS, overdue ones included,
    the most urgent first (the ix_applications_deadline index)."""
    return list(db.session.scalars(select(Application).options(joinedload(Application.entity)).where(
        Application.province_code == province_code, Application.state == ApplicationState.BUREAU_REVIEW,
        Application.due_at <= deadlines.due_soon_until(today)).order_by(Application.due_at, Application.id)))


def _recipients(province_code: str) -> list[str]:
    """The province's active bureau accounts that have an e-mail address."""
    return list(db.session.scalars(select(User.email).where(
        User.role == Role.BUREAU, User.province_code == province_code, User.status == UserStatus.ACTIVE,
        User.email != "").order_by(User.id)))


def _line(application: Application, today: date) -> str:
    due = deadlines.due_day(application.due_at)
    left = deadlines.days_left(due, today)
    urgency = f"已逾期{-left}个工作日" if left < 0 else ("今日到期" if left == 0 else f"剩余{left}个工作日")
    return f"申请编号 {application.id}｜{application.entity.unit_name}｜期限 {due:%Y-%m-%d}｜{urgency}"


def _email_body(province: Province, applications: list[Application], today: date) -> str:
    lines = [f"{province.name}通信管理局：",
             f"截至{today:%Y年%m月%d日}，以下{len(applications)}件备案申请的审核期限（自材料齐全之日起"
             f"{deadlines.STATUTORY_WORKING_DAYS}个工作日）将在{deadlines.DUE_SOON_WORKING_DAYS}个工作日内届满"
             "或已逾期，请及时处理：", ""]
    lines += [_line(a, today) for a in applications]
    lines += ["", f"请登录备案管理系统处理：{current_app.config['PUBLIC_BASE_URL']}/admin/bureau_queue/",
              "（本邮件由系统每日自动发送，请勿回复。）"]
    return "\n".join(lines)


def _remind_province(province: Province, today: date) -> int:
    """Queue the province's reminder for today unless it was queued already; how many e-mails were queued."""
    applications = due_soon(province.code, today)
    recipients = _recipients(province.code) if applications else []
    try:
        with db.session.begin_nested():
            db.session.add(DeadlineReminder(province_code=province.code, day=today,
                                            applications=len(applications), recipients=len(recipients)))
    except IntegrityError:  # another worker recorded it first
        return 0
    if applications and not recipients:
        log.warning("deadline reminder: %s has %s applications due but no bureau account with an e-mail",
                    province.code, len(applications))
    subject = f"备案审核期限提醒：{len(applications)}件申请即将到期或已逾期"
    body = _email_body(province, applications, today) if recipients else ""
    for recipient in recipients:
        notify.queue_email(recipient, subject, body)
    return len(recipients)


def send_deadline_reminders(now: datetime | None = None, *, any_hour: bool = False) -> int:
    """Once per Beijing day and province: e-mail the province's bureau users the applications due within
    DUE_SOON_WORKING_DAYS working days (or overdue), through the outbox. A province with nothing due is
    recorded too (nothing sent), so later passes of the day cost one query. A worker step: it commits.
    Returns the e-mails queued."""
    now = now or utcnow()
    moment = deadlines.beijing_time(now)
    if not any_hour and moment.hour < REMINDER_HOUR:
        return 0
    today = moment.date()
    done = set(db.session.scalars(select(DeadlineReminder.province_code).where(DeadlineReminder.day == today)))
    provinces = list(db.session.scalars(select(Province).where(Province.code.not_in(done)).order_by(Province.code)))
    queued = sum(_remind_province(province, today) for province in provinces)
    db.session.commit()
    return queued
