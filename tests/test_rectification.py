"""整改通知 (issue 18 §4): issued by the website's bureau or MIIT to the owner and the ISPs serving it — e-mailed
once, over real SMTP, however often the worker runs —, answered by an ISP serving the website now (not by one whose
access ended), closed by the bureau; overdue when open past its deadline. The notice's life as a state machine."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from aiosmtpd.controller import Controller
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from sqlalchemy import delete, func, select, update

import notify
import workflow.inspections as inspections
from extensions import db
from models import (
    Access,
    AuditEvent,
    ExchangeEvent,
    FilingStatus,
    HandlingResult,
    NoticeState,
    RectificationAnswer,
    RectificationNotice,
    Website,
)
from tests.exchange_helpers import credential_for
from tests.helpers import user_named
from tests.inspection_factories import filed_website
from tests.test_outbox import Inbox, _free_port, _subject
from workflow.errors import NotFound, WorkflowError


def tomorrow() -> date:
    """Tomorrow in Beijing, as the workflow counts deadlines (the machine's UTC date is a day behind from 16:00)."""
    return inspections.beijing_today() + timedelta(days=1)


@pytest.fixture
def site(app, people) -> int:
    """A 天津 website served by both 天津 ISPs."""
    with app.app_context():
        return filed_website(people, ("isp", "isp2")).id


def _issue(people, site: int, who: str = "bureau", checks=("number", "cert"), message: str = "请在首页底部展示备案号。",
           deadline: date | None = None) -> RectificationNotice:
    notice = inspections.issue_notice(user_named(people[who]), db.session.get(Website, site), list(checks), message,
                                      deadline or tomorrow())
    db.session.commit()
    return notice


def test_a_notice_is_mailed_once_to_the_owner_and_each_isp_however_often_the_worker_runs(app, people, site) -> None:
    """Real SMTP: the owner's two addresses and both ISPs, one message each; a second and third delivery pass send
    nothing more."""
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=_free_port(), MAIL_FROM="beian@registry.example.cn")
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=app.config["MAIL_PORT"])
    controller.start()
    try:
        with app.app_context():
            notice = _issue(people, site)
            notice_id, owner_email = notice.id, db.session.get(Website, notice.website_id).entity.responsible_email
            for _ in range(3):
                notify.deliver_due()
    finally:
        controller.stop()
    notices = [message for message in inbox.messages if _subject(message).startswith("整改通知")]
    recipients = sorted(message["To"] for message in notices)
    assert recipients == sorted([owner_email, "icp_owner@example.cn", "tj_isp@example.cn", "tj_isp2@example.cn"])
    body = notices[0].get_payload(decode=True).decode("utf-8")
    assert "首页底部展示备案号" in body and "请在首页底部展示备案号。" in body and f"{tomorrow():%Y年%m月%d日}" in body
    # what failed, headed as such (not "problems:" above what the site should do), and where to answer
    assert "以下检查项未通过" in body and "存在以下问题" not in body
    assert f"{app.config['PUBLIC_BASE_URL']}/admin/rectification/notice?id={notice_id}" in body


def test_a_notice_is_audited_and_reaches_the_feed_of_the_owner_and_the_isps(app, people, site) -> None:
    with app.app_context():
        for key in ("icp", "isp", "isp2", "isp_bj"):
            credential_for(people[key])
        notice = _issue(people, site)
        assert db.session.scalar(select(AuditEvent.action).where(
            AuditEvent.object_type == "rectification_notice", AuditEvent.object_id == str(notice.id))) \
            == "rectification.issued"
        got = {user_named(people[key]).id: key for key in ("icp", "isp", "isp2", "isp_bj")}
        assert sorted(got[user_id] for user_id in db.session.scalars(select(ExchangeEvent.user_id).where(
            ExchangeEvent.kind == "rectification.issued"))) == ["icp", "isp", "isp2"]


BAD_NOTICES = [
    ({"deadline": inspections.beijing_today()}, "最早为明天"),
    ({"message": "  "}, "整改要求"),
    ({"message": "改" * 2001}, "2000"),
    ({"checks": ()}, "检查项"),
    ({"checks": ("number", "footer")}, "检查项"),
]


def test_a_notice_needs_checks_a_message_and_a_deadline_from_tomorrow(app, people, site) -> None:
    with app.app_context():
        for change, message in BAD_NOTICES:
            with pytest.raises(WorkflowError, match=message):
                _issue(people, site, **change)
        assert db.session.scalar(select(func.count()).select_from(RectificationNotice)) == 0


def test_who_may_send_a_notice_and_for_which_website(app, people, site) -> None:
    """Another province's bureau, an ISP, an ICP: not found; MIIT may; one open notice per website; none for a
    cancelled website."""
    with app.app_context():
        for who in ("bureau_bj", "isp", "icp", "special_query"):
            with pytest.raises(NotFound):
                _issue(people, site, who)
        _issue(people, site, "miit")
        with pytest.raises(WorkflowError, match="未结案"):
            _issue(people, site)
        db.session.execute(update(Website).where(Website.id == site).values(status=FilingStatus.CANCELLED))
        with pytest.raises(WorkflowError, match="注销或吊销"):
            _issue(people, site)


def test_an_isp_serving_the_website_answers_and_may_answer_again_one_whose_access_ended_may_not(app, people,
                                                                                              site) -> None:
    with app.app_context():
        notice = _issue(people, site)
        inspections.answer_notice(user_named(people["isp"]), notice, HandlingResult.RECTIFIED, "已通知客户整改。")
        inspections.answer_notice(user_named(people["isp"]), notice, HandlingResult.FILING_UPDATED, "")
        db.session.commit()
        assert notice.state == NoticeState.ANSWERED and db.session.scalar(
            select(func.count()).select_from(RectificationAnswer)) == 2
        for who in ("isp_bj", "bureau", "icp"):
            with pytest.raises(NotFound):
                inspections.answer_notice(user_named(people[who]), notice, HandlingResult.RECTIFIED, "")
        isp2 = user_named(people["isp2"])
        assert db.session.scalar(select(func.count()).select_from(RectificationNotice).where(
            inspections.notice_scope(isp2))) == 1
        db.session.execute(update(Access).where(Access.isp_id == isp2.id).values(live=False))
        with pytest.raises(NotFound):
            inspections.answer_notice(isp2, notice, HandlingResult.RECTIFIED, "")
        assert db.session.scalar(select(func.count()).select_from(RectificationNotice).where(
            inspections.notice_scope(isp2))) == 0
        with pytest.raises(WorkflowError, match="申辩须填写"):
            inspections.answer_notice(user_named(people["isp"]), notice, HandlingResult.DISPUTED, " ")


def test_the_bureau_closes_a_notice_once_and_nobody_answers_it_after(app, people, site) -> None:
    with app.app_context():
        notice = _issue(people, site)
        with pytest.raises(NotFound):
            inspections.close_notice(user_named(people["bureau_bj"]), notice)
        inspections.close_notice(user_named(people["bureau"]), notice)
        db.session.commit()
        assert notice.state == NoticeState.CLOSED and notice.closed_at is not None
        with pytest.raises(WorkflowError, match="已经结案"):
            inspections.close_notice(user_named(people["miit"]), notice)
        with pytest.raises(WorkflowError, match="已结案"):
            inspections.answer_notice(user_named(people["isp"]), notice, HandlingResult.RECTIFIED, "")
        _issue(people, site)  # a closed notice no longer blocks a new one


def test_an_open_notice_past_its_deadline_is_overdue_an_answered_one_is_not(app, people, site) -> None:
    with app.app_context():
        notice = _issue(people, site)
        assert not inspections.overdue(notice)
        assert not inspections.overdue(notice, tomorrow())
        assert inspections.overdue(notice, tomorrow() + timedelta(days=1))
        inspections.answer_notice(user_named(people["isp"]), notice, HandlingResult.RECTIFIED, "")
        assert not inspections.overdue(notice, tomorrow() + timedelta(days=1))


def test_who_sees_which_notices(app, people, site) -> None:
    with app.app_context():
        _issue(people, site)
        seen = {key: db.session.scalar(select(func.count()).select_from(RectificationNotice).where(
            inspections.notice_scope(user_named(people[key])))) for key in
            ("miit", "bureau", "bureau_bj", "isp", "isp_bj", "icp", "special_query")}
        # the website's owner (icp) reads its notices; an ISP not serving it, another province, other roles do not
        assert seen == {"miit": 1, "bureau": 1, "bureau_bj": 0, "isp": 1, "isp_bj": 0, "icp": 1, "special_query": 0}


# --- the notice as a state machine --------------------------------------------------------------------------------

class NoticeMachine(RuleBasedStateMachine):
    """issue → answer (again) → close, with refused transitions refused: after every step the notice's state is
    what the model says, the answers counted, and a closed notice stays closed."""

    def __init__(self) -> None:
        super().__init__()
        self.notice: RectificationNotice | None = None
        self.state: NoticeState | None = None
        self.answers = 0

    def teardown(self) -> None:
        """Each example starts from the website with no notice."""
        db.session.rollback()
        db.session.execute(delete(RectificationAnswer))
        db.session.execute(delete(RectificationNotice))
        db.session.commit()

    @precondition(lambda self: self.state in (None, NoticeState.CLOSED))
    @rule()
    def issue(self) -> None:
        self.notice = _issue(PEOPLE, SITE)
        self.state, self.answers = NoticeState.OPEN, 0

    @precondition(lambda self: self.state in (NoticeState.OPEN, NoticeState.ANSWERED))
    @rule()
    def issue_again_is_refused(self) -> None:
        with pytest.raises(WorkflowError):
            _issue(PEOPLE, SITE)

    @precondition(lambda self: self.notice is not None)
    @rule(who=st.sampled_from(["isp", "isp2", "isp_bj", "bureau"]), result=st.sampled_from(list(HandlingResult)))
    def answer(self, who: str, result: HandlingResult) -> None:
        actor = user_named(PEOPLE[who])
        if who not in ("isp", "isp2"):
            with pytest.raises(NotFound):
                inspections.answer_notice(actor, self.notice, result, "说明")
        elif self.state == NoticeState.CLOSED:
            with pytest.raises(WorkflowError):
                inspections.answer_notice(actor, self.notice, result, "说明")
        else:
            inspections.answer_notice(actor, self.notice, result, "说明")
            self.state, self.answers = NoticeState.ANSWERED, self.answers + 1
        db.session.commit()

    @precondition(lambda self: self.notice is not None)
    @rule(who=st.sampled_from(["bureau", "miit", "bureau_bj"]))
    def close(self, who: str) -> None:
        actor = user_named(PEOPLE[who])
        if who == "bureau_bj":
            with pytest.raises(NotFound):
                inspections.close_notice(actor, self.notice)
        elif self.state == NoticeState.CLOSED:
            with pytest.raises(WorkflowError):
                inspections.close_notice(actor, self.notice)
        else:
            inspections.close_notice(actor, self.notice)
            self.state = NoticeState.CLOSED
        db.session.commit()

    @invariant()
    def matches_the_model(self) -> None:
        if self.notice is None:
            return
        db.session.expire_all()
        stored = db.session.get(RectificationNotice, self.notice.id)
        assert stored.state == self.state
        assert db.session.scalar(select(func.count()).select_from(RectificationAnswer).where(
            RectificationAnswer.notice_id == stored.id)) == self.answers
        assert (stored.closed_at is not None) == (self.state == NoticeState.CLOSED)
        assert not inspections.overdue(stored, stored.deadline)


PEOPLE: dict[str, str] = {}
SITE = 0


def test_the_notice_state_machine(app, people, site) -> None:
    global PEOPLE, SITE
    PEOPLE, SITE = people, site
    with app.app_context():
        run = settings(max_examples=15, stateful_step_count=8, deadline=None,
                       suppress_health_check=list(HealthCheck))(NoticeMachine)
        run.TestCase().runTest()
