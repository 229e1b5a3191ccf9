"""Website inspection through the data-exchange API (issue 18 §3, §4): an ISP or a bureau reports the domains and
addresses seen on its network and learns which match no filing in force (未备案网站); an ISP reads the rectification
notices (整改通知) of the websites it serves and records its handling results. A notice issued, answered or closed
reaches the feeds of the owner and the ISPs serving the website (`workflow.events`, read through GET /events).

Nothing here decides a rule: the values go to `workflow.inspections.report_unfiled`, the answers to `answer_notice`,
and the notices listed are those of `notice_scope` (an ISP: the websites it serves now) — the functions the console
calls. This module translates records and refusals.

Scope `filings`: the three operations concern filed websites, and `filings` is held by exactly the roles the
workflow lets through (ISPs, bureaus, MIIT; an ICP account holding it is refused record by record), so an ISP's
system that files and verifies handles the notices with the credential it has.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import case, select, tuple_
from sqlalchemy.orm import selectinload

from exchange_api.core import Refusal, batch_operation, query_operation
from exchange_api.filing_codes import INVALID, WRONG_STATE
from extensions import db
from models import (
    HandlingResult,
    InspectionFinding,
    NoticeState,
    RectificationAnswer,
    RectificationNotice,
    User,
    Website,
)
from workflow import inspections, unfiled
from workflow.errors import NotFound, WorkflowError
from workflow.rectification import RESULT_WORDS

FAMILY = "1"
MAX_PAGE = 200
#: the order of the list: the notices waiting for an answer first, then those answered, then the closed ones
STATE_RANK = {NoticeState.OPEN: 0, NoticeState.ANSWERED: 1, NoticeState.CLOSED: 2}


# --- 未备案网站 ---------------------------------------------------------------------------------------------------

class UnfiledRecord(BaseModel):
    """在本单位网络上发现的一个域名或 IP 地址。"""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"value": "shop.example.cn"}, {"value": "203.0.113.7"}]})
    value: str = Field(min_length=1, max_length=253, description="域名（中文域名可用原文）或 IPv4/IPv6 地址")


@batch_operation("/unfiled", scope="filings", record=UnfiledRecord, family=FAMILY, whole_batch=True,
                 summary="报送发现的网站（未备案网站核查）",
                 description="接入服务商或管局报送在其网络上发现的域名或 IP 地址，与控制台“未备案网站”的上传相同。"
                             "每条记录的结果：accepted，ids.result 为 filed（已备案：在案网站的域名，或在案接入的"
                             "地址段内）或 unfiled（未备案：记入未备案网站，ids.times 为本单位累计发现次数）；"
                             "不是域名或 IP 地址的记录 refused，结果代码 1002。")
def report_unfiled(actor: User, records: list[tuple[int, UnfiledRecord]]) -> list[dict[str, Any] | Exception]:
    """The whole batch in one call of the workflow (its refusal — a role that may not report — refuses every
    record); each record's outcome found in the report by its value as the workflow normalised it."""
    values = [record.value for _index, record in records]
    try:
        with db.session.begin_nested():
            report = inspections.report_unfiled(actor, values, "api")
    except WorkflowError as error:
        return [error] * len(records)
    invalid, filed = dict(report.invalid), set(report.filed)
    times = unfiled.times_reported(actor, report.unfiled)
    outcomes: list[dict[str, Any] | Exception] = []
    for value in values:
        normalised = unfiled.normalised(value)
        if normalised is None:
            outcomes.append(Refusal(INVALID, invalid.get(value.strip()[:253], "不是域名或 IP 地址。"), "value"))
        else:
            result = "filed" if normalised in filed else "unfiled"
            outcomes.append({"value": normalised, "result": result,
                             **({"times": times[normalised]} if result == "unfiled" else {})})
    return outcomes


# --- 整改通知: the list ---------------------------------------------------------------------------------------------

class RectificationQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cursor: str | None = Field(default=None, max_length=40, pattern=r"^[0-2]\.[0-9]{1,18}$",
                               description="上一页应答的 next_cursor；省略时从第一页起")
    state: NoticeState | None = Field(default=None, description="只列出该状态的通知：open 待处理、answered 已反馈、"
                                                                "closed 已结案；省略时全部")
    limit: int = Field(default=50, ge=1, le=MAX_PAGE, description=f"每页至多条数（1–{MAX_PAGE}）")


class FindingAnswer(BaseModel):
    check: str = Field(description="检查项：dns 域名解析、alive 首页访问、number 备案号展示、link 备案号链接、"
                                   "cert 电子验证标识、access 接入地址")
    outcome: str = Field(description="结论代码，如 missing、unlinked、absent、revoked、outside")
    message: str = Field(description="结论说明")
    first_seen: str = Field(description="首次发现（UTC）")
    last_seen: str = Field(description="最近一次发现（UTC）")


class HandlingAnswer(BaseModel):
    id: int
    isp: str = Field(description="反馈的接入服务商（账号名）")
    result: HandlingResult = Field(description="处理结果")
    result_words: str = Field(description="处理结果（中文）")
    detail: str = Field(description="处理说明")
    answered_at: str = Field(description="反馈时间（UTC）")


class NoticeAnswer(BaseModel):
    id: int = Field(description="通知编号（反馈时的 notice_id）")
    website_id: int
    website_number: str | None = Field(description="网站备案号")
    website_name: str
    domains: list[str] = Field(description="网站的在案域名")
    checks: list[str] = Field(description="通知所涉检查项")
    message: str = Field(description="管局的整改要求")
    deadline: str = Field(description="整改期限（日期）")
    issued_at: str = Field(description="发出时间（UTC）")
    state: NoticeState = Field(description="open 待处理 · answered 已反馈 · closed 已结案")
    overdue: bool = Field(description="已超过整改期限仍未反馈")
    findings: list[FindingAnswer] = Field(description="网站当前未通过的检查（最近一次检查的结论）")
    answers: list[HandlingAnswer] = Field(description="接入服务商的处理结果反馈，按时间先后；以最近一条为准")


class RectificationPage(BaseModel):
    notices: list[NoticeAnswer]
    next_cursor: str | None = Field(description="下一页的 cursor；没有更多时为 null")


@query_operation("/rectifications", scope="filings", params=RectificationQuery, response=RectificationPage,
                 summary="读取整改通知",
                 description="接入服务商：其当前接入的网站的整改通知（接入已取消的网站不再列出）；网站主办者：其名下"
                             "备案的网站的（只读）；管局：本省的；工信部：全部。待处理的在前，其次已反馈、已结案，各按编号；"
                             "用 next_cursor 翻页。")
def list_rectifications(actor: User, query: RectificationQuery) -> RectificationPage:
    rank = case(*((RectificationNotice.state == state, value) for state, value in STATE_RANK.items()), else_=3)
    statement = select(RectificationNotice).where(inspections.notice_scope(actor))
    if query.state is not None:
        statement = statement.where(RectificationNotice.state == query.state)
    if query.cursor:
        after_rank, after_id = (int(part) for part in query.cursor.split("."))
        statement = statement.where(tuple_(rank, RectificationNotice.id) > tuple_(after_rank, after_id))
    notices = db.session.scalars(statement.order_by(rank, RectificationNotice.id).limit(query.limit + 1)).all()
    page = notices[:query.limit]
    last = page[-1] if len(notices) > query.limit else None
    return RectificationPage(notices=_described(page),
                             next_cursor=f"{STATE_RANK[last.state]}.{last.id}" if last else None)


def _described(notices: list[RectificationNotice]) -> list[NoticeAnswer]:
    """The page's notices with their websites and domains, open findings and answers: five queries a page."""
    if not notices:
        return []
    website_ids = {notice.website_id for notice in notices}
    websites = {website.id: website for website in db.session.scalars(
        select(Website).where(Website.id.in_(website_ids)).options(selectinload(Website.domains)))}
    findings: dict[int, list[FindingAnswer]] = {}
    for finding in db.session.scalars(select(InspectionFinding).where(InspectionFinding.website_id.in_(website_ids))
                                      .order_by(InspectionFinding.website_id, InspectionFinding.check)):
        findings.setdefault(finding.website_id, []).append(FindingAnswer(
            check=str(finding.check), outcome=finding.outcome, message=finding.message,
            first_seen=_utc(finding.first_seen), last_seen=_utc(finding.last_seen)))
    answers = _answers([notice.id for notice in notices])
    return [NoticeAnswer(
        id=notice.id, website_id=notice.website_id, website_number=websites[notice.website_id].number,
        website_name=websites[notice.website_id].name,
        domains=[domain.name for domain in websites[notice.website_id].domains if domain.live],
        checks=[check for check in notice.checks.split(",") if check], message=notice.message,
        deadline=notice.deadline.isoformat(), issued_at=_utc(notice.issued_at), state=notice.state,
        overdue=inspections.overdue(notice), findings=findings.get(notice.website_id, []),
        answers=answers.get(notice.id, [])) for notice in notices]


def _answers(notice_ids: list[int]) -> dict[int, list[HandlingAnswer]]:
    """Every ISP's answers, as the feed's rectification.answered events tell every ISP serving the website."""
    found: dict[int, list[HandlingAnswer]] = {}
    for answer, isp in db.session.execute(select(RectificationAnswer, User.username).join(
            User, User.id == RectificationAnswer.isp_id).where(RectificationAnswer.notice_id.in_(notice_ids))
            .order_by(RectificationAnswer.id)):
        found.setdefault(answer.notice_id, []).append(HandlingAnswer(
            id=answer.id, isp=isp, result=answer.result, result_words=RESULT_WORDS[answer.result],
            detail=answer.detail, answered_at=_utc(answer.answered_at)))
    return found


def _utc(moment: datetime | date) -> str:
    return f"{moment.isoformat()}Z" if isinstance(moment, datetime) else moment.isoformat()


# --- 整改通知: the answers -------------------------------------------------------------------------------------------

class AnswerRecord(BaseModel):
    """接入服务商对一份整改通知的处理结果。"""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra={"examples": [
        {"notice_id": 12, "result": "rectified", "detail": "已督促网站在首页底部展示备案号并链接至备案系统"}]})
    notice_id: int = Field(ge=1, le=2**31 - 1, description="整改通知编号（读取整改通知时的 id）")
    result: HandlingResult = Field(description="处理结果：rectified 已整改 · access_stopped 已停止接入 · "
                                               "filing_updated 已变更备案信息 · disputed 核实无问题（申辩）")
    detail: str = Field(default="", max_length=500, description="处理说明")


def _answer_code(error: WorkflowError) -> str:
    """A refused answer: a field's value (the result, the detail) 1002; the notice closed 1008."""
    return INVALID if error.field else WRONG_STATE


@batch_operation("/rectifications/answers", scope="filings", record=AnswerRecord, family=FAMILY, codes=_answer_code,
                 summary="反馈整改通知的处理结果",
                 description="与控制台“整改通知”的反馈相同：只有当前接入该网站的接入服务商可以反馈；再次反馈追加一条，"
                             "以最近一条为准。接受的记录返回 answer_id、notice_id 与通知的新状态 state。"
                             "通知不存在或网站不由本单位接入：1004；已结案：1008。")
def answer_rectifications(actor: User, record: AnswerRecord) -> dict[str, Any]:
    notice = db.session.get(RectificationNotice, record.notice_id)
    if notice is None:
        raise NotFound()
    answer = inspections.answer_notice(actor, notice, record.result, record.detail)
    return {"answer_id": answer.id, "notice_id": notice.id, "state": notice.state.value}
