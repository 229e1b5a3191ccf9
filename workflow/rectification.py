"""整改通知 (issue 18 §4): a bureau (its province's websites) or MIIT sends a rectification notice with a deadline to
a website's owner and the ISPs serving it; each ISP serving the website records its handling result (处理结果); the
bureau closes the notice. An open notice past its deadline is overdue; an answered one is not.

The e-mails are queued in the notice's own transaction (`notify`'s outbox): one per recipient, sent once by
whichever worker claims it. The data-exchange feed gets `rectification.issued` / `.answered` / `.closed`
(`workflow.events`). Who may answer is decided by the live relations at the moment of the answer: an ISP whose
access to the website has ended may no longer answer (nor see the notice: `permissions.rectification_scope`).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import current_app
from sqlalchemy import ColumnElement, and_, select

import audit
import deadlines
import notify
import permissions
from extensions import db
from models import (
    Access,
    CheckCode,
    Entity,
    FilingStatus,
    HandlingResult,
    InspectionFinding,
    NoticeState,
    RectificationAnswer,
    RectificationNotice,
    User,
    Website,
    utcnow,
)
from permissions import Action
from workflow import events
from workflow.errors import NotFound, WorkflowError

MESSAGE_MAX = 2000
DETAIL_MAX = 500
#: the checks' names in the e-mails and the refusals (the console has its own, translated)
CHECK_WORDS = {CheckCode.DNS: "域名解析", CheckCode.ALIVE: "首页访问", CheckCode.NUMBER: "首页底部展示备案号",
               CheckCode.LINK: "备案号链接至备案管理系统", CheckCode.CERT: "电子验证标识（/cert/bazs.cert）",
               CheckCode.ACCESS: "解析地址与备案接入地址一致"}
RESULT_WORDS = {HandlingResult.RECTIFIED: "已整改", HandlingResult.ACCESS_STOPPED: "已停止接入",
                HandlingResult.FILING_UPDATED: "已变更备案信息", HandlingResult.DISPUTED: "核实无问题（申辩）"}
#: the website statuses for which a notice makes sense: filed, not ended
NOTIFIABLE = (FilingStatus.ACTIVE, FilingStatus.NO_ACCESS)


def notice_scope(actor: Any) -> ColumnElement[bool]:
    """The notices an actor sees: a bureau its province's, MIIT all, an ISP those of the websites it serves now."""
    return permissions.rectification_scope(actor)


def beijing_today() -> date:
    """Deadlines are days in Beijing, whatever the server's time zone."""
    return deadlines.beijing_date(utcnow())


def overdue(notice: RectificationNotice, today: date | None = None) -> bool:
    """Open (no ISP answered) past its deadline; an answered or closed notice is not overdue."""
    return notice.state == NoticeState.OPEN and (today or beijing_today()) > notice.deadline


def overdue_condition(today: date | None = None) -> ColumnElement[bool]:
    """`overdue` as a condition, for the lists' 超期 filter and the metrics."""
    return and_(RectificationNotice.state == NoticeState.OPEN,
                RectificationNotice.deadline < (today or beijing_today()))


def live_isps(website_id: int) -> list[User]:
    """The ISPs with a live access to the website now."""
    return list(db.session.scalars(select(User).join(Access, Access.isp_id == User.id).where(
        Access.website_id == website_id, Access.live).distinct().order_by(User.id)))


def issue_notice(actor: User, website: Website, checks: list[str], message: str, deadline: date
                 ) -> RectificationNotice:
    """Send a notice: one e-mail to the owner (the responsible person's address and the owner account's) and one to
    each ISP serving the website, queued once; an event for the feed; audited."""
    entity = website.entity
    if not permissions.may_inspect(actor, Action.RECTIFY, entity.province_code):
        raise NotFound()
    codes = _check_notice(website, checks, message, deadline)
    notice = RectificationNotice(website_id=website.id, entity_id=entity.id, province_code=entity.province_code,
                                 checks=",".join(codes), message=message.strip(), deadline=deadline,
                                 issued_by_id=actor.id, issued_at=utcnow(), state=NoticeState.OPEN)
    db.session.add(notice)
    db.session.flush()
    isps = live_isps(website.id)
    recipients = _owner_addresses(entity) | {isp.email for isp in isps if isp.email}
    notify.queue_emails([{"recipient": address, "subject": f"整改通知：{website.name}（{website.number}）",
                          "body": _mail_body(actor, website, notice)} for address in sorted(recipients)])
    audit.record("rectification.issued", object_type="rectification_notice", object_id=notice.id, actor=actor,
                 province_code=entity.province_code, changes={
                     "website": website.number, "checks": notice.checks, "deadline": deadline.isoformat(),
                     "recipients": len(recipients), "isps": [isp.username for isp in isps]})
    events.rectification(notice, "rectification.issued", website.number or "")
    return notice


def _check_notice(website: Website, checks: list[str], message: str, deadline: date) -> list[str]:
    db.session.execute(select(Website.id).where(Website.id == website.id).with_for_update())  # one notice at a time
    if website.status not in NOTIFIABLE or website.entity.status not in NOTIFIABLE:
        raise WorkflowError("该网站的备案已注销或吊销，不能发送整改通知。")
    if db.session.scalar(select(RectificationNotice.id).where(
            RectificationNotice.website_id == website.id, RectificationNotice.state != NoticeState.CLOSED).limit(1)):
        raise WorkflowError("该网站已有未结案的整改通知，请先结案。")
    codes = [code.value for code in CheckCode if code.value in set(checks)]
    if not codes or len(codes) != len(set(checks)):
        raise WorkflowError("请选择需要整改的检查项。", "checks")
    if not message.strip():
        raise WorkflowError("请填写整改要求。", "message")
    if len(message.strip()) > MESSAGE_MAX:
        raise WorkflowError(f"整改要求不能超过 {MESSAGE_MAX} 个字。", "message")
    if deadline <= beijing_today():
        raise WorkflowError("整改期限最早为明天。", "deadline")
    return codes


def _owner_addresses(entity: Entity) -> set[str]:
    owner = db.session.get(User, entity.owner_id) if entity.owner_id else None
    return {address for address in (entity.responsible_email, owner.email if owner else "") if address}


def _mail_body(actor: User, website: Website, notice: RectificationNotice) -> str:
    """The checks not passed — each with what the last inspection found, when a finding is open —, the bureau's
    requirement, the deadline and where to answer."""
    found = dict(db.session.execute(select(InspectionFinding.check, InspectionFinding.message).where(
        InspectionFinding.website_id == website.id)).all())
    items = "\n".join(f"  - {CHECK_WORDS[CheckCode(code)]}" + (f"：{found[code]}" if found.get(code) else "")
                      for code in notice.checks.split(","))
    return (f"您好：\n\n经检查，网站“{website.name}”（备案号 {website.number}，主办单位 {website.entity.unit_name}）"
            f"以下检查项未通过：\n{items}\n\n整改要求：\n{notice.message}\n\n"
            f"请于 {notice.deadline:%Y年%m月%d日} 前完成整改。接入服务商请登录备案管理系统反馈处理结果："
            f"{current_app.config['PUBLIC_BASE_URL']}/admin/rectification/notice?id={notice.id}\n\n"
            f"{actor.organisation or '备案管理系统'}\n")


def answer_notice(actor: User, notice: RectificationNotice, result: HandlingResult | str, detail: str
                  ) -> RectificationAnswer:
    """An ISP serving the website now records its handling result; the notice becomes answered. Answering again
    adds a row (the newest counts, all are kept)."""
    if not (permissions.can(actor, Action.NOTICE_ANSWER) and db.session.scalar(select(Access.id).where(
            Access.website_id == notice.website_id, Access.isp_id == actor.id, Access.live).limit(1))):
        raise NotFound()
    if _locked(notice).state == NoticeState.CLOSED:
        raise WorkflowError("该整改通知已结案，不能再反馈。")
    try:
        result = HandlingResult(result)
    except ValueError as error:
        raise WorkflowError("请选择处理结果。", "result") from error
    detail = detail.strip()
    if len(detail) > DETAIL_MAX:
        raise WorkflowError(f"处理说明不能超过 {DETAIL_MAX} 个字。", "detail")
    if result == HandlingResult.DISPUTED and not detail:
        raise WorkflowError("申辩须填写处理说明。", "detail")
    answer = RectificationAnswer(notice_id=notice.id, isp_id=actor.id, result=result, detail=detail,
                                 answered_by_id=actor.id, answered_at=utcnow())
    db.session.add(answer)
    notice.state = NoticeState.ANSWERED
    db.session.flush()
    audit.record("rectification.answered", object_type="rectification_notice", object_id=notice.id, actor=actor,
                 province_code=notice.province_code, changes={"result": result.value, "detail": detail})
    events.rectification(notice, "rectification.answered", _website_number(notice),
                         answer={"isp_id": actor.id, "result": result.value, "detail": detail})
    return answer


def close_notice(actor: User, notice: RectificationNotice) -> None:
    """The bureau (or MIIT) closes the notice, answered or not."""
    if not permissions.may_inspect(actor, Action.RECTIFY, notice.province_code):
        raise NotFound()
    if _locked(notice).state == NoticeState.CLOSED:
        raise WorkflowError("该整改通知已经结案。")
    notice.state, notice.closed_by_id, notice.closed_at = NoticeState.CLOSED, actor.id, utcnow()
    db.session.flush()
    audit.record("rectification.closed", object_type="rectification_notice", object_id=notice.id, actor=actor,
                 province_code=notice.province_code, changes={})
    events.rectification(notice, "rectification.closed", _website_number(notice))


def _locked(notice: RectificationNotice) -> RectificationNotice:
    """The notice as committed now, its row locked to the end of the transaction: an answer and a closing at once
    (PostgreSQL, READ COMMITTED) are taken one after the other — the answer never sets a notice closed meanwhile
    back to answered. SQLite runs one writing transaction at a time anyway."""
    return db.session.scalars(select(RectificationNotice).where(RectificationNotice.id == notice.id)
                              .with_for_update().execution_options(populate_existing=True)).one()


def _website_number(notice: RectificationNotice) -> str:
    return db.session.scalar(select(Website.number).where(Website.id == notice.website_id)) or ""
