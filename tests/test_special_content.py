"""专项内容管理 (issue 17 §2): the special filing of a website declaring 电子公告 or 论坛/社区 — opened on submission,
confirmed or refused by the content admin of its province, blocking approval until confirmed, re-opened when the
declaration changes; the forbidden words of website names in the wizard, the API's checks and the import; scope
and refusal for every other role."""

from __future__ import annotations

import io
import itertools
import re
from collections import Counter

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, inspect, select

import permissions
import workflow
from extensions import db
from models import (
    Application,
    ApplicationState,
    AuditEvent,
    BlacklistEntry,
    BlacklistKind,
    ForbiddenWord,
    JobState,
    Role,
    SpecialContentEvent,
    SpecialContentItem,
    SpecialState,
    User,
    Website,
)
from tests.filing_factories import credit_code, entity_data, website_data
from tests.helpers import BEIJING, TIANJIN, make_user, post, sign_in, user_named
from tests.import_files import filled_template, valid_row
from workflow import special_content
from workflow.filing_batch import submit_new_filings

_serial = itertools.count(5000)


@pytest.fixture
def admins(app, users) -> dict[str, str]:
    """A content admin of 天津 and one of 北京 (the fixture's `content_admin` is national: MIIT created it)."""
    with app.app_context():
        make_user("tj_content", Role.CONTENT_ADMIN, TIANJIN)
        make_user("bj_content", Role.CONTENT_ADMIN, BEIJING)
    return {"tj": "tj_content", "bj": "bj_content", "national": users["content_admin"]}


def _signed_in(app, username: str):
    client = app.test_client()
    assert sign_in(client, username).status_code == 302
    return client


def _file(isp: User, province: str = TIANJIN, **website: object) -> workflow.WebsiteData:
    """A new filing filed by the ISP (straight to the bureau), its website declaring what `website` says."""
    n = next(_serial)
    data = website_data(f"sc{n}", [isp.id], **website)
    application = workflow.save_filing_draft(isp, entity_data(n, province), [data])
    workflow.submit_application(isp, application)
    db.session.flush()
    return application


def _bbs(isp: User, province: str = TIANJIN):
    return _file(isp, province, bbs=True, bbs_sections="用户留言板")


def _item(application) -> SpecialContentItem | None:
    """The item of the application's (first) website, read afresh."""
    return db.session.scalar(select(SpecialContentItem).join(Website, Website.id == SpecialContentItem.website_id)
                             .where(Website.entity_id == application.entity_id).order_by(Website.id))


# --- the path: opened, confirmed or refused, approval blocked until confirmed -----------------------------------

def test_a_bbs_website_opens_a_pending_item_that_blocks_approval_until_confirmed(ctx, users, admins) -> None:
    isp, bureau = user_named(users["isp"]), user_named(users["bureau"])
    application = _bbs(isp)
    item = _item(application)
    assert item.state == SpecialState.PENDING and item.bbs and item.bbs_sections == "用户留言板"
    assert item.province_code == TIANJIN
    blockers = workflow.approval_blockers(application)
    assert any("电子公告服务（栏目：用户留言板）" in problem and "尚未" in problem for problem in blockers), blockers
    with pytest.raises(workflow.WorkflowError, match="专项备案"):
        workflow.approve(bureau, application)
    special_content.review(user_named(admins["tj"]), item, confirmed=True)
    assert workflow.approval_blockers(application) == []
    workflow.approve(bureau, application)
    assert application.entity.number and application.state == "approved"
    actions = db.session.scalars(select(AuditEvent.action).where(AuditEvent.object_type == "special_content")
                                 .order_by(AuditEvent.id)).all()
    assert actions == ["special_content.opened", "special_content.confirmed"]


def test_a_plain_website_needs_no_special_filing(ctx, users) -> None:
    application = _file(user_named(users["isp"]))
    assert _item(application) is None and workflow.approval_blockers(application) == []


def test_service_content_23_needs_one_and_the_configured_list_decides(app, ctx, users) -> None:
    isp = user_named(users["isp"])
    forum = _file(isp, service_content="23")
    assert _item(forum).service_content == "23" and not _item(forum).bbs
    assert any("论坛/社区" in problem for problem in workflow.approval_blockers(forum))
    app.config["SPECIAL_CONTENT_SERVICE_CODES"] = "5,23"
    assert _item(_file(isp, service_content="5")).service_content == "5"
    app.config["SPECIAL_CONTENT_SERVICE_CODES"] = ""
    assert _item(_file(isp, service_content="23")) is None


def test_a_refusal_needs_a_reason_blocks_with_it_and_a_resubmission_reopens(ctx, users, admins) -> None:
    isp, bureau, admin = user_named(users["isp"]), user_named(users["bureau"]), user_named(admins["tj"])
    application = _bbs(isp)
    item = _item(application)
    with pytest.raises(workflow.WorkflowError, match="理由"):
        special_content.review(admin, item, confirmed=False, reason="  ")
    special_content.review(admin, item, confirmed=False, reason="栏目未落实信息安全管理制度")
    assert item.state == SpecialState.REFUSED and item.reviewer_id == admin.id
    blockers = workflow.approval_blockers(application)
    assert any("不予确认" in problem and "栏目未落实信息安全管理制度" in problem for problem in blockers), blockers
    with pytest.raises(workflow.WorkflowError, match="不在待确认"):
        special_content.review(admin, item, confirmed=True)  # decided: a new submission re-opens it
    workflow.reject(bureau, application, {"bbs": "请落实电子公告管理制度"})
    workflow.submit_application(isp, application)
    assert item.state == SpecialState.PENDING and item.reason == "" and item.reviewer_id is None
    special_content.review(admin, item, confirmed=True)
    workflow.approve(bureau, application)
    history = [event.action for event in special_content.history(item)]
    assert history == ["opened", "refused", "reopened", "confirmed"]


def test_a_confirmed_item_stays_confirmed_when_submitted_again_unchanged(ctx, users, admins) -> None:
    isp, bureau = user_named(users["isp"]), user_named(users["bureau"])
    application = _bbs(isp)
    special_content.review(user_named(admins["tj"]), _item(application), confirmed=True)
    workflow.reject(bureau, application, {"unit_name": "名称与证件不符"})
    workflow.submit_application(isp, application)
    assert _item(application).state == SpecialState.CONFIRMED
    assert workflow.approval_blockers(application) == []


def test_a_changed_declaration_reopens_and_history_survives_a_resaved_draft(ctx, users, admins) -> None:
    isp, bureau, admin = user_named(users["isp"]), user_named(users["bureau"]), user_named(admins["tj"])
    n = next(_serial)
    entity, site = entity_data(n), website_data(f"sc{n}", [isp.id], bbs=True, bbs_sections="论坛")
    application = workflow.save_filing_draft(isp, entity, [site])
    workflow.submit_application(isp, application)
    special_content.review(admin, _item(application), confirmed=True)
    workflow.reject(bureau, application, {"bbs": "请补充栏目"})
    site.bbs_sections = "论坛、留言板"
    workflow.save_filing_draft(isp, entity, [site], application)  # the website rows are written anew
    workflow.submit_application(isp, application)
    db.session.flush()
    item = _item(application)
    assert item.state == SpecialState.PENDING and item.bbs_sections == "论坛、留言板"
    assert [event.action for event in special_content.history(item)] == ["opened", "confirmed", "opened"]


def test_a_change_to_service_content_23_reopens_and_blocks_only_that_change(ctx, users, admins) -> None:
    isp, bureau, admin = user_named(users["isp"]), user_named(users["bureau"]), user_named(admins["tj"])
    application = _file(isp)
    workflow.approve(bureau, application)
    website = application.entity.websites[0]
    change = workflow.propose_website_edit(isp, website, website.name, website.home_url, "23")
    assert website.special_item.state == SpecialState.PENDING and website.special_item.service_content == "23"
    assert any("论坛/社区" in problem for problem in workflow.approval_blockers(change))
    special_content.review(admin, website.special_item, confirmed=True)
    workflow.approve(bureau, change)
    assert website.service_content == "23"
    responsible = workflow.propose_responsible(isp, application.entity, "李四", "11010519491231002X",
                                               "13912345670", "li@example.cn")
    assert workflow.approval_blockers(responsible) == []  # a later kind that declares nothing new


def test_the_data_exchange_batch_opens_the_item_too(ctx, users) -> None:
    isp = user_named(users["isp"])
    n = next(_serial)
    filed = submit_new_filings(isp, [(entity_data(n), [website_data(f"api{n}", [isp.id], bbs=True)]),
                                     (entity_data(n + 1), [website_data(f"api{n + 1}", [isp.id])])])
    items = db.session.scalars(select(SpecialContentItem)).all()
    assert [(item.entity_id, item.bbs, item.state) for item in items] == [(filed[0].entity_id, True,
                                                                           SpecialState.PENDING)]


def test_the_batch_approval_names_the_unconfirmed_one(ctx, users, admins) -> None:
    isp, bureau = user_named(users["isp"]), user_named(users["bureau"])
    plain, forum = _file(isp), _bbs(isp)
    db.session.commit()
    outcome = workflow.batch_approve_chunked(bureau, [plain.id, forum.id])
    assert [a.application_id for a in outcome.approved] == [plain.id]
    assert [r.application_id for r in outcome.refused] == [forum.id] and "专项备案" in outcome.refused[0].reason


# --- scope and permissions ----------------------------------------------------------------------------------

def test_scope_province_or_national(ctx, users, admins) -> None:
    tianjin = _bbs(user_named(users["isp"]))
    beijing = _bbs(user_named(users["isp_bj"]), BEIJING)
    tj, bj, national = (user_named(admins[key]) for key in ("tj", "bj", "national"))

    def visible(actor: User) -> set[int]:
        return set(db.session.scalars(select(SpecialContentItem.id).where(permissions.special_content_scope(actor))))

    assert visible(tj) == {_item(tianjin).id} and visible(bj) == {_item(beijing).id}
    assert visible(national) == {_item(tianjin).id, _item(beijing).id}
    with pytest.raises(workflow.NotFound):
        special_content.review(bj, _item(tianjin), confirmed=True)
    for key in ("miit", "bureau", "isp", "icp", "preapproval", "special_query"):
        assert visible(user_named(users[key])) == set()
        with pytest.raises(workflow.NotFound):
            special_content.review(user_named(users[key]), _item(tianjin), confirmed=True)


CONTENT_PAGES = ("/admin/special_content/", "/admin/forbidden_words/", "/admin/blacklist/",
                 "/admin/forbidden_words/new/")


def test_every_other_role_gets_403(as_user) -> None:
    """Can any role but the content admin open the special filings, the forbidden words or the blacklist?"""
    for role in ("miit", "bureau", "isp", "icp", "ip_reporter", "domain_reporter", "preapproval", "special_query"):
        client = as_user(role)
        for path in CONTENT_PAGES:
            assert client.get(path).status_code == 403, (role, path)
        assert post(client, "/admin/special_content/row-action/confirm/", {"id": "1"}).status_code == 403, role
    assert as_user("content_admin").get("/admin/special_content/").status_code == 200


def test_the_console_confirms_refuses_and_shows_history(app, users, admins) -> None:
    with app.app_context():
        applications = {"confirm": _bbs(user_named(users["isp"])),
                        "refuse": _file(user_named(users["isp"]), service_content="23"),
                        "other": _bbs(user_named(users["isp_bj"]), BEIJING)}
        item_of = {key: _item(application).id for key, application in applications.items()}
        refused_application = applications["refuse"].id
        beijing_site = applications["other"].entity.websites[0].name
        db.session.commit()
    tj = _signed_in(app, admins["tj"])
    page = tj.get("/admin/special_content/").get_data(as_text=True)
    assert "电子公告服务（栏目：用户留言板）" in page and "论坛/社区" in page and "待确认" in page
    assert beijing_site not in page
    assert tj.get(f"/admin/special_content/history/?id={item_of['other']}").status_code == 404
    assert tj.post("/admin/special_content/row-action/confirm/", data={"id": item_of["confirm"]}).status_code == 400
    assert post(tj, "/admin/special_content/row-action/confirm/", {"id": item_of["confirm"]}).status_code == 302
    assert post(tj, "/admin/special_content/row-action/confirm/", {"id": item_of["other"]}).status_code == 404
    refuse = f"/admin/special_content/refuse/?id={item_of['refuse']}"
    assert "不予确认网站" in tj.get(refuse).get_data(as_text=True)
    assert post(tj, refuse, {"reason": "论坛未落实实名制"}).status_code == 302
    history = tj.get(f"/admin/special_content/history/?id={item_of['refuse']}").get_data(as_text=True)
    assert "论坛未落实实名制" in history and "不予确认" in history and "申报（随申请提交）" in history
    with app.app_context():
        states = dict(db.session.execute(select(SpecialContentItem.id, SpecialContentItem.state)).all())
    assert states[item_of["confirm"]] == SpecialState.CONFIRMED
    assert states[item_of["refuse"]] == SpecialState.REFUSED
    for key in ("bureau", "isp"):  # the bureau and the applicant read the refusal and its reason
        details = _signed_in(app, users[key]).get(f"/admin/applications/details/?id={refused_application}")
        assert "论坛未落实实名制" in details.get_data(as_text=True), key


# --- forbidden words -------------------------------------------------------------------------------------------

def _word(word: str, province: str | None = None) -> None:
    db.session.add(ForbiddenWord(word=word, province_code=province, reason="测试"))
    db.session.commit()


WIZARD_ENTITY = {"province_code": TIANJIN, "unit_name": "天津禁用词测试有限公司", "unit_nature": "4",
                 "certificate_type": "1", "address": "天津市河西区某路8号", "responsible_name": "周八",
                 "responsible_id_number": "11010519491231002X", "responsible_mobile": "13611112222",
                 "responsible_email": "owner@example.cn"}


def test_the_wizard_refuses_a_forbidden_word_naming_it(app, as_user) -> None:
    with app.app_context():
        _word("赌场")
        _word("彩票", BEIJING)  # of another province: not for a 天津 filing
    owner = as_user("icp")
    post(owner, "/admin/filing/", {**WIZARD_ENTITY, "certificate_number": credit_code(4242)})
    website = {"domains": "www.wordtest.cn", "home_url": "http://www.wordtest.cn/", "service_content": "2",
               "languages": "1", "preapproval_category": "", "preapproval_document": "", "bbs_sections": ""}
    body = post(owner, "/admin/filing/websites/", {**website, "name": "澳门赌场资讯"}).get_data(as_text=True)
    assert "网站名称含有禁用词“赌场”，不能备案。" in body
    assert post(owner, "/admin/filing/websites/", {**website, "name": "天津彩票资讯"}).status_code == 302


def _named(label: str, isp: User, name: str) -> workflow.WebsiteData:
    website = website_data(label, [isp.id])
    website.name = name
    return website


def test_the_workflow_checks_national_and_provincial_words(ctx, users) -> None:
    isp, isp_bj = user_named(users["isp"]), user_named(users["isp_bj"])
    _word("Casino")
    _word("彩票", BEIJING)
    with pytest.raises(workflow.WorkflowErrors) as refused:
        workflow.save_filing_draft(isp, entity_data(next(_serial)), [_named("w1", isp, "Best CASINO")])
    assert ("websites-0-name", "网站名称含有禁用词“Casino”，不能备案。") in refused.value.errors
    workflow.save_filing_draft(isp, entity_data(next(_serial)), [_named("w2", isp, "彩票之家")])
    with pytest.raises(workflow.WorkflowErrors, match="彩票"):
        workflow.save_filing_draft(isp_bj, entity_data(next(_serial), BEIJING),
                                   [_named("w3", isp_bj, "彩票之家")])
    application = _file(isp)
    workflow.approve(user_named(users["bureau"]), application)
    website = application.entity.websites[0]
    with pytest.raises(workflow.WorkflowErrors, match="Casino"):  # a change of the name after approval too
        workflow.propose_website_edit(isp, website, "casino 大全", website.home_url, website.service_content)


@pytest.fixture
def importer_isp(app, users) -> str:
    with app.app_context():
        make_user("tj_importer", Role.ISP, TIANJIN, organisation="天津导入网络公司", can_import=True)
    return "tj_importer"


def _import(app, username: str, rows: list[list[str]]):
    data = filled_template(app, rows)
    with app.app_context():
        job = workflow.queue_import(user_named(username), "备案.xlsx", io.BytesIO(data))
        db.session.commit()
        workflow.run_import(job)
        db.session.refresh(job)
        return job.state, job.errors


def _row(n: int, name: str | None = None, service: str = "单位门户网站") -> list[str]:
    row = valid_row(n)
    if name is not None:
        row[10] = name
    row[13] = service
    return row


def test_the_import_refuses_a_forbidden_word_in_its_row(app, importer_isp) -> None:
    with app.app_context():
        _word("赌场")
    state, errors = _import(app, importer_isp, [_row(1), _row(2, name="新葡京赌场"), _row(3)])
    assert state == JobState.FAILED
    assert '"row": 3' in errors and "网站名称含有禁用词“赌场”，不能备案。" in errors
    with app.app_context():
        assert db.session.scalar(select(func.count(SpecialContentItem.id))) == 0


def test_an_imported_forum_opens_its_item_and_waits_for_it(app, users, importer_isp, admins) -> None:
    state, errors = _import(app, importer_isp, [_row(1), _row(2, service="论坛/社区")])
    assert state == JobState.DONE, errors
    with app.app_context():
        items = db.session.scalars(select(SpecialContentItem)).all()
        assert [(item.service_content, item.state, item.import_job_id is not None) for item in items] == [
            ("23", SpecialState.PENDING, True)]
        assert db.session.scalar(select(func.count(SpecialContentEvent.id))) == 1
        forum = db.session.scalar(select(Application).where(Application.entity_id == items[0].entity_id))
        assert any("论坛/社区" in problem for problem in workflow.approval_blockers(forum))
        special_content.review(user_named(admins["tj"]), items[0], confirmed=True)
        workflow.approve(user_named(users["bureau"]), forum)
        assert forum.state == "approved"


# --- the content admins' lists: the blacklist and the forbidden words, by province ------------------------------

def test_a_provincial_admin_reads_national_entries_and_changes_only_its_own(app, admins) -> None:
    national, tj = _signed_in(app, admins["national"]), _signed_in(app, admins["tj"])
    assert post(national, "/admin/forbidden_words/new/", {"word": " 赌博 ", "reason": "全国"}).status_code == 302
    assert post(tj, "/admin/forbidden_words/new/", {"word": "博彩", "reason": "本省"}).status_code == 302
    assert post(_signed_in(app, admins["bj"]), "/admin/forbidden_words/new/", {"word": "六合彩"}).status_code == 302
    assert post(tj, "/admin/forbidden_words/new/", {"word": "  "}).status_code == 200  # refused: required
    with app.app_context():
        words = {w.word: w for w in db.session.scalars(select(ForbiddenWord))}
        assert {word: w.province_code for word, w in words.items()} == {"赌博": None, "博彩": TIANJIN,
                                                                         "六合彩": BEIJING}
        ids = {word: w.id for word, w in words.items()}
        db.session.add(BlacklistEntry(kind=BlacklistKind.DOMAIN, value="national.cn", province_code=None))
        db.session.add(BlacklistEntry(kind=BlacklistKind.DOMAIN, value="beijing.cn", province_code=BEIJING))
        db.session.commit()
        national_entry = db.session.scalar(select(BlacklistEntry.id).where(BlacklistEntry.value == "national.cn"))
    page = tj.get("/admin/forbidden_words/").get_data(as_text=True)
    assert "赌博" in page and "博彩" in page and "六合彩" not in page and "全国" in page
    blacklist = tj.get("/admin/blacklist/").get_data(as_text=True)
    assert "national.cn" in blacklist and "beijing.cn" not in blacklist
    assert tj.get(f"/admin/forbidden_words/edit/?id={ids['六合彩']}").status_code == 404
    refused = post(tj, "/admin/forbidden_words/delete/", {"id": ids["赌博"]}, follow_redirects=True)
    assert "全国性条目由全国专项内容管理员维护" in refused.get_data(as_text=True)
    refused = post(tj, f"/admin/blacklist/edit/?id={national_entry}", {"kind": "domain", "value": "national.cn",
                                                                        "reason": "改"}, follow_redirects=True)
    assert "全国性条目由全国专项内容管理员维护" in refused.get_data(as_text=True)
    assert post(tj, "/admin/forbidden_words/delete/", {"id": ids["博彩"]}).status_code == 302
    assert post(national, "/admin/forbidden_words/delete/", {"id": ids["六合彩"]}).status_code == 302
    with app.app_context():
        assert set(db.session.scalars(select(ForbiddenWord.word))) == {"赌博"}
        actions = set(db.session.scalars(select(AuditEvent.action).where(AuditEvent.object_type == "forbidden_word")))
        assert actions == {"forbidden_word.create", "forbidden_word.delete"}


# --- the rule as a state machine: approved ⇒ every special filing confirmed -------------------------------------

DECLARATIONS = {"plain": {}, "bbs": {"bbs": True, "bbs_sections": "留言板"}, "forum": {"service_content": "23"},
                "both": {"bbs": True, "bbs_sections": "社区", "service_content": "23"}}
KEPT = {"users", "provinces", "code_items", "audit_head", "divisions"}
SEEN: Counter[str] = Counter()  # what the runs did: the test must not become vacuous


class SpecialContentMachine(RuleBasedStateMachine):
    """Random submissions, decisions, rejections, re-submissions (with a changed declaration or not) and
    approvals, each one transaction; a refusal (WorkflowError) rolls back, anything else fails the test."""

    accounts: dict[str, int] = {}

    def __init__(self) -> None:
        super().__init__()
        self.serial = itertools.count(1)

    def teardown(self) -> None:
        db.session.rollback()
        SEEN.update(db.session.scalars(select(SpecialContentEvent.action)))
        for table in reversed(db.metadata.sorted_tables):
            if table.name not in KEPT:
                db.session.execute(table.delete())
        db.session.commit()

    def who(self, key: str) -> User:
        return db.session.get(User, self.accounts[key])

    def step(self, change) -> None:
        try:
            change()
            db.session.commit()
        except workflow.WorkflowError:
            db.session.rollback()
            SEEN["refused a step"] += 1

    def pick(self, model, index: int, *criteria):
        rows = db.session.scalars(select(model).where(*criteria).order_by(model.id)).all()
        return rows[index % len(rows)] if rows else None

    def pick_refused_first(self, index: int, refused_first: bool, state: ApplicationState) -> Application | None:
        """An application in `state`, one whose special filing was refused when `refused_first` and there is one."""
        in_state = Application.state == state
        refused = Application.entity_id.in_(select(SpecialContentItem.entity_id).where(
            SpecialContentItem.state == SpecialState.REFUSED))
        return (refused_first and self.pick(Application, index, in_state, refused)) or self.pick(
            Application, index, in_state)

    @initialize(kinds=st.lists(st.sampled_from(sorted(DECLARATIONS)), min_size=2, max_size=3))
    def start(self, kinds) -> None:
        """A few filings waiting from the first step: the other rules have something to work on."""
        for kind in kinds:
            self.submit([kind])

    @rule(kinds=st.lists(st.sampled_from(sorted(DECLARATIONS)), min_size=1, max_size=2))
    @precondition(lambda _m: db.session.scalar(select(func.count(Application.id))) < 5)
    def submit(self, kinds) -> None:
        isp, n = self.who("isp"), 20_000 + next(self.serial)
        websites = [website_data(f"m{n}x{i}", [isp.id], **DECLARATIONS[kind]) for i, kind in enumerate(kinds)]
        self.step(lambda: workflow.submit_application(isp, workflow.save_filing_draft(isp, entity_data(n), websites)))

    @rule(index=st.integers(0, 20), confirmed=st.sampled_from((True, True, False)),
          who=st.sampled_from(("tj", "tj", "bj")))
    def decide(self, index, confirmed, who) -> None:
        item = self.pick(SpecialContentItem, index, SpecialContentItem.state == SpecialState.PENDING)
        if item is None:
            return
        actor = self.who(who)
        if who == "bj":
            with pytest.raises(workflow.NotFound):
                special_content.review(actor, item, confirmed)
            return
        self.step(lambda: special_content.review(actor, item, confirmed, "" if confirmed else "不符合要求"))

    @rule(index=st.integers(0, 20), refused_first=st.booleans())
    def reject(self, index, refused_first) -> None:
        """The bureau sends an application back — as it would one whose special filing was refused, often."""
        application = self.pick_refused_first(index, refused_first, ApplicationState.BUREAU_REVIEW)
        if application is not None:
            self.step(lambda: workflow.reject(self.who("bureau"), application, {"bbs": "请整改"}))

    @rule(index=st.integers(0, 20), change=st.sampled_from((None, None, None, *sorted(DECLARATIONS))),
          refused_first=st.booleans())
    def resubmit(self, index, change, refused_first) -> None:
        application = self.pick_refused_first(index, refused_first, ApplicationState.DRAFT)
        if application is None:
            return
        isp = self.who("isp")

        def again() -> None:
            if change is not None:  # the draft corrected: its first website declares anew
                entity = application.entity
                data = entity_data(0, certificate_number=entity.certificate_number, unit_name=entity.unit_name)
                sites = [website_data(w.domains[0].name.split(".")[1], [isp.id], bbs=w.bbs,
                                      bbs_sections=w.bbs_sections, service_content=w.service_content)
                         for w in entity.websites if not inspect(w).was_deleted]
                first = {"bbs": False, "bbs_sections": "", "service_content": "2", **DECLARATIONS[change]}
                for name, value in first.items():
                    setattr(sites[0], name, value)
                workflow.save_filing_draft(isp, data, sites, application)
            workflow.submit_application(isp, application)
        self.step(again)

    @rule(index=st.integers(0, 20), ready_first=st.booleans())
    def approve(self, index, ready_first) -> None:
        """The bureau approves — often one that looks ready, else any (which the rule may refuse)."""
        waiting = db.session.scalars(select(Application).where(
            Application.state == ApplicationState.BUREAU_REVIEW).order_by(Application.id)).all()
        ready = [a for a in waiting if not special_content.blockers(a)] if ready_first else []
        candidates = ready or waiting
        if not candidates:
            return
        application = candidates[index % len(candidates)]
        special = any(w.special_item for w in application.entity.websites)
        blocked = bool(special_content.blockers(application))
        self.step(lambda: workflow.approve(self.who("bureau"), application))
        approved = db.session.get(Application, application.id).state == ApplicationState.APPROVED
        assert approved != blocked
        SEEN[f"{'approved' if approved else 'blocked'}{' special' if special else ''}"] += 1

    @invariant()
    def approved_means_confirmed(self) -> None:
        """Every website of an approved filing that declares special content has it confirmed, as declared."""
        for website in db.session.scalars(select(Website).join(Application, Application.entity_id == Website.entity_id)
                                          .where(Application.state == ApplicationState.APPROVED)):
            wanted = special_content.declaration(website.bbs, website.bbs_sections, website.service_content)
            if wanted:
                item = website.special_item
                assert item is not None and item.state == SpecialState.CONFIRMED, website.name
                assert special_content.item_declaration(item) == wanted, website.name

    @invariant()
    def waiting_declarations_have_an_item(self) -> None:
        """A submitted application's declaring websites each have their item (the content admins' queue)."""
        for website in db.session.scalars(select(Website).join(Application, Application.entity_id == Website.entity_id)
                                          .where(Application.state == ApplicationState.BUREAU_REVIEW)):
            if special_content.declaration(website.bbs, website.bbs_sections, website.service_content):
                assert website.special_item is not None, website.name


def test_special_content_state_machine(ctx) -> None:
    SpecialContentMachine.accounts = {
        "isp": make_user("sm_isp", Role.ISP, TIANJIN).id, "bureau": make_user("sm_bureau", Role.BUREAU, TIANJIN).id,
        "tj": make_user("sm_tj_content", Role.CONTENT_ADMIN, TIANJIN).id,
        "bj": make_user("sm_bj_content", Role.CONTENT_ADMIN, BEIJING).id}
    try:
        run_state_machine_as_test(SpecialContentMachine, settings=settings(
            max_examples=25, stateful_step_count=25, deadline=None, derandomize=True,
            suppress_health_check=list(HealthCheck)))
    finally:
        db.session.rollback()
    assert all(SEEN[kind] for kind in ("opened", "confirmed", "refused", "approved special",
                                       "blocked special", "approved")), SEEN


def test_the_content_admins_dashboard_counts_the_special_filings_waiting_in_its_scope(app, users, admins) -> None:
    with app.app_context():
        _bbs(user_named(users["isp"]))
        db.session.commit()
    for admin, waiting in (("tj", "1"), ("bj", "0"), ("national", "1")):
        page = _signed_in(app, admins[admin]).get("/admin/").get_data(as_text=True)
        count = re.search(r'console-card-count">([^<]*)</div>\s*<div class="console-card-title">待确认的专项备案', page)
        assert count is not None and count.group(1) == waiting, admin
        assert "/admin/special_content/?flt0_0=pending" in page
