"""Batch approval in short transactions (issue 15): is the result exact, are numbers gap-free, does a crash
between chunks keep what was committed, and can others write on SQLite while a batch runs?"""

from __future__ import annotations

import os
import threading
import time

import pytest
from sqlalchemy import select, update

import demo
import workflow
import workflow.filings
from extensions import db
from models import (
    Application,
    ApplicationState,
    BlacklistEntry,
    BlacklistKind,
    FilingStatus,
    NumberCounter,
    PreapprovalItem,
    ReviewState,
    User,
)
from tests.filing_factories import filed_by_isp
from tests.helpers import YY, csrf_token, post, user_named, with_captcha

UNIT = "天津测试科技有限公司{}"


def _five_waiting(users) -> list[int]:
    """Five applications in 天津's review (units 天津测试科技有限公司50 … 54), committed."""
    ids = [filed_by_isp(user_named(users["isp"]), n).id for n in range(50, 55)]
    db.session.commit()
    return ids


def _states(ids: list[int]) -> list[ApplicationState]:
    db.session.expire_all()
    return [db.session.get(Application, i).state for i in ids]


def _filing_counter() -> int:
    return db.session.scalar(select(NumberCounter.last).where(NumberCounter.kind == "filing")) or 0


def test_a_blocked_application_is_named_and_the_others_approved_with_gap_free_numbers(app, users, ctx) -> None:
    """One blacklisted unit in the middle of three chunks: the four others approved, numbered 1–4 in order."""
    ids = _five_waiting(users)
    db.session.add(BlacklistEntry(kind=BlacklistKind.UNIT_NAME, value=UNIT.format(52), reason="测试"))
    db.session.commit()
    outcome = workflow.batch_approve_chunked(user_named(users["bureau"]), ids, chunk_size=2)
    assert [item.application_id for item in outcome.approved] == [ids[0], ids[1], ids[3], ids[4]]
    assert [item.number for item in outcome.approved] == [f"津ICP备{YY}{n:06d}号" for n in range(1, 5)]
    assert [(item.application_id, item.unit_name) for item in outcome.refused] == [(ids[2], UNIT.format(52))]
    assert "列入黑名单" in outcome.refused[0].reason
    assert outcome.not_done == [] and outcome.stopped_by == ""
    assert _states(ids) == [ApplicationState.APPROVED] * 2 + [ApplicationState.BUREAU_REVIEW] + \
        [ApplicationState.APPROVED] * 2
    assert _filing_counter() == 4  # no number given to the refused one, none skipped


def test_another_province_and_a_decided_application_are_refused_with_their_reason(app, users, ctx) -> None:
    ids = _five_waiting(users)
    other = filed_by_isp(user_named(users["isp_bj"]), 60, province="110000").id
    db.session.commit()
    bureau = user_named(users["bureau"])
    workflow.batch_approve_chunked(bureau, ids[:1])
    outcome = workflow.batch_approve_chunked(bureau, [ids[0], other, ids[1]])
    assert [item.application_id for item in outcome.approved] == [ids[1]]
    reasons = {item.application_id: item.reason for item in outcome.refused}
    assert "不在等待管局审核" in reasons[ids[0]] and "不属于本省" in reasons[other]
    assert _states([other]) == [ApplicationState.BUREAU_REVIEW]


def test_nobody_but_a_bureau_approves_anything(app, users, ctx) -> None:
    ids = _five_waiting(users)
    outcome = workflow.batch_approve_chunked(user_named(users["isp"]), ids)
    assert outcome.approved == [] and len(outcome.refused) == 5
    assert _states(ids) == [ApplicationState.BUREAU_REVIEW] * 5


def test_a_crash_in_chunk_two_keeps_chunk_one_and_says_what_was_not_done(app, users, ctx, monkeypatch) -> None:
    ids = _five_waiting(users)
    real, calls = workflow.filings.issue_certificates, []

    def crash_second_time(entities):
        calls.append(len(entities))
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return real(entities)

    monkeypatch.setattr(workflow.filings, "issue_certificates", crash_second_time)
    outcome = workflow.batch_approve_chunked(user_named(users["bureau"]), ids, chunk_size=2)
    assert [item.application_id for item in outcome.approved] == ids[:2]
    assert outcome.not_done == ids[2:] and outcome.refused == []
    assert "RuntimeError" in outcome.stopped_by and "中止" in outcome.stopped_by
    assert _states(ids) == [ApplicationState.APPROVED] * 2 + [ApplicationState.BUREAU_REVIEW] * 3
    assert _filing_counter() == 2  # chunk 2's numbers rolled back with it


def test_a_refusal_found_while_carrying_out_names_its_application(app, users, ctx, monkeypatch) -> None:
    """A domain filed elsewhere meanwhile shows only when writing: the chunk goes again one by one."""
    ids = _five_waiting(users)
    real = workflow.filings.apply_on_approval

    def race_on_the_fourth(actor, application):
        if application.id == ids[3]:
            raise workflow.WorkflowError("变更中的域名已被其他备案占用。")
        return real(actor, application)

    monkeypatch.setattr(workflow.filings, "apply_on_approval", race_on_the_fourth)
    outcome = workflow.batch_approve_chunked(user_named(users["bureau"]), ids, chunk_size=3)
    assert [item.application_id for item in outcome.approved] == [ids[0], ids[1], ids[2], ids[4]]
    refused = [(item.application_id, item.reason) for item in outcome.refused]
    assert refused == [(ids[3], "变更中的域名已被其他备案占用。")]
    assert [item.number for item in outcome.approved] == [f"津ICP备{YY}{n:06d}号" for n in range(1, 5)]


def test_a_cancellation_in_a_batch_ends_the_filing_and_stays_approved(app, users, ctx) -> None:
    """A cancellation withdraws the filing's open applications: not the one approving it."""
    first, second = _five_waiting(users)[:2]
    bureau, isp = user_named(users["bureau"]), user_named(users["isp"])
    workflow.batch_approve_chunked(bureau, [first])
    entity = db.session.get(Application, first).entity
    cancel = workflow.request_cancellation(isp, entity, None, "不再经营").id
    db.session.commit()
    outcome = workflow.batch_approve_chunked(bureau, [cancel, second])
    assert [item.application_id for item in outcome.approved] == [second, cancel]
    db.session.expire_all()
    application = db.session.get(Application, cancel)
    assert (application.state, application.reasons) == (ApplicationState.APPROVED, "{}")
    assert application.entity.status == FilingStatus.CANCELLED


def test_the_console_batch_page_approves_the_others_and_lists_the_result(app, users, as_user) -> None:
    with app.app_context():
        ids = _five_waiting(users)
        db.session.add(BlacklistEntry(kind=BlacklistKind.UNIT_NAME, value=UNIT.format(53), reason="测试"))
        db.session.commit()
    bureau, chosen = as_user("bureau"), ",".join(map(str, ids))
    page = bureau.get(f"/admin/bureau_queue/batch-approve/?ids={chosen}").get_data(as_text=True)
    assert "将跳过这些申请，其余的审核通过" in page and "审核通过可以办理的 4 个" in page
    assert "disabled" not in page.split("<form")[-1].split("</form>")[0]
    page = post(bureau, "/admin/bureau_queue/batch-approve/", {"ids": chosen}).get_data(as_text=True)
    assert "批量审核结果" in page and "审核通过：4 个" in page and "未审核通过：1 个" in page
    assert f"津ICP备{YY}000004号" in page and f"{UNIT.format(53)}: 该主体已列入黑名单" in page
    assert "4 个申请审核通过，1 个未通过" in page  # the flash
    with app.app_context():
        assert _states(ids).count(ApplicationState.APPROVED) == 4


@pytest.mark.skipif(bool(os.environ.get("TEST_DATABASE_URL")), reason="SQLite only")
def test_on_sqlite_a_sign_in_during_a_2000_application_batch_waits_less_than_2_s(app) -> None:
    """Chunks of 100 (about 0.1 s each here) with a pause between them: a sign-in in another province waits
    for one chunk at most, where the whole batch in one transaction kept it waiting for all of it."""
    app.config["DOMAIN_REGISTRANT_CHECK"] = "warn"
    app.config["CAPTCHA_RATE_LIMIT_PER_MINUTE"] = 10_000  # a slow machine signs in many times during the batch
    with app.app_context():
        demo.seed(2000, "Demo-pass-1", ApplicationState.BUREAU_REVIEW, "120000")
        db.session.execute(update(PreapprovalItem).values(state=ReviewState.CONFIRMED))
        db.session.commit()
        bureau = db.session.scalar(select(User).where(User.username == "demo_bureau_12"))
        ids = list(db.session.scalars(select(Application.id).where(
            Application.state == ApplicationState.BUREAU_REVIEW).order_by(Application.id)))
    waits, running, errors = [], threading.Event(), []

    def sign_in_meanwhile() -> None:
        client = app.test_client()
        running.wait(10)
        try:
            while running.is_set():
                form = with_captcha(client, {"username": "demo_bureau_11", "password": "Demo-pass-1",
                                             "csrf_token": csrf_token(client)})
                started = time.perf_counter()  # the sign-in itself: its throttle rows, session and audit event
                response = client.post("/login", data=form)
                waits.append((time.perf_counter() - started, response.status_code))
                client.get("/logout")
        except BaseException as error:  # reported by the test, not lost in the thread
            errors.append(error)

    signer = threading.Thread(target=sign_in_meanwhile)
    signer.start()
    with app.app_context():
        running.set()
        started = time.perf_counter()
        outcome = workflow.batch_approve_chunked(db.session.merge(bureau), ids, chunk_size=100)
        batch_seconds = time.perf_counter() - started
        running.clear()
    signer.join(30)
    assert not errors
    assert len(outcome.approved) == 2000 and batch_seconds > 1
    assert len(waits) >= 3 and all(status == 302 for _wait, status in waits)
    # the issue's 2 s on a quiet machine; on a loaded one (CI runs two suites on two cores) a chunk and the sign-in's
    # own work slow down too, but a sign-in that waited for the whole batch would still fail this
    assert max(wait for wait, _status in waits) < max(2.0, batch_seconds / 3)



def _form_of(page: str) -> str:
    return page.split("<form")[-1].split("</form>")[0]


def _posted_ids(page: str) -> str:
    return _form_of(page).split('name="ids" value="')[1].split('"')[0]


def test_the_bureau_approves_everything_its_search_finds_and_only_that(app, users, as_user) -> None:
    """自动审核 of what the queue's search and filters find: the confirmation page restates them, lists exactly what
    they find and posts those ids to the batch page."""
    with app.app_context():
        ids = _five_waiting(users)
    bureau = as_user("bureau")
    queue = bureau.get("/admin/bureau_queue/?search=" + UNIT.format(52)).get_data(as_text=True)
    assert "审核通过筛选出的全部申请" in queue
    assert "/admin/bureau_queue/batch-approve-matching/?search=" in queue
    page = bureau.get("/admin/bureau_queue/batch-approve-matching/?search=" + UNIT.format(52)).get_data(as_text=True)
    assert "按列表当前的搜索和筛选条件共找到 1 条申请，以下为其中最紧急、现在可以审核通过的 1 条" in page
    assert f"列表的搜索和筛选条件： 搜索“{UNIT.format(52)}”" in page
    form = _form_of(page)
    assert 'action="/admin/bureau_queue/batch-approve/' in form and _posted_ids(page) == str(ids[2])
    result = post(bureau, "/admin/bureau_queue/batch-approve/", {"ids": str(ids[2])}).get_data(as_text=True)
    assert "审核通过：1 个" in result and "未审核通过" not in result
    with app.app_context():
        assert _states(ids) == [ApplicationState.BUREAU_REVIEW] * 2 + [ApplicationState.APPROVED] + \
            [ApplicationState.BUREAU_REVIEW] * 2


def test_what_the_filters_find_is_taken_at_most_a_page_at_a_time_and_nothing_unseen(app, users, as_user,
                                                                                      monkeypatch) -> None:
    """Past the limit the most urgent come first and the page says how many there are (the bureau's province
    only); an application that arrives after the page was shown is not approved with it."""
    monkeypatch.setattr("admin_views.filings.BATCH_LIMIT", 3)
    with app.app_context():
        ids = _five_waiting(users)
        elsewhere = filed_by_isp(user_named(users["isp_bj"]), 62, province="110000").id
        db.session.commit()
    bureau = as_user("bureau")
    page = bureau.get("/admin/bureau_queue/batch-approve-matching/").get_data(as_text=True)
    assert "共找到 5 条申请，以下为其中最紧急、现在可以审核通过的 3 条（每次最多 3 条" in page
    assert "列表的搜索和筛选条件： 无（等待您审核的全部申请）" in page
    shown = _posted_ids(page)
    assert shown == ",".join(map(str, ids[:3]))  # the same deadline: the earliest submitted first
    with app.app_context():
        late = filed_by_isp(user_named(users["isp"]), 70).id
        db.session.commit()
    assert "审核通过：3 个" in post(bureau, "/admin/bureau_queue/batch-approve/", {"ids": shown}).get_data(as_text=True)
    with app.app_context():
        waiting = [ApplicationState.BUREAU_REVIEW] * 4
        assert _states([*ids, late, elsewhere]) == [ApplicationState.APPROVED] * 3 + waiting
    page = bureau.get("/admin/bureau_queue/batch-approve-matching/").get_data(as_text=True)
    assert "共找到 3 条申请，以下为其中最紧急、现在可以审核通过的 3 条" in page


def test_blocked_applications_are_left_out_and_do_not_fill_every_batch(app, users, as_user, monkeypatch) -> None:
    """The two most urgent are blacklisted: the page passes over them (listed with why) to the next that can be
    approved, so that pressing again makes progress."""
    monkeypatch.setattr("admin_views.filings.BATCH_LIMIT", 2)
    with app.app_context():
        ids = _five_waiting(users)
        db.session.add_all([BlacklistEntry(kind=BlacklistKind.UNIT_NAME, value=UNIT.format(n), reason="测试")
                            for n in (50, 51)])
        db.session.commit()
    bureau = as_user("bureau")
    page = bureau.get("/admin/bureau_queue/batch-approve-matching/").get_data(as_text=True)
    assert _posted_ids(page) == f"{ids[2]},{ids[3]}"
    assert "暂不能审核通过、已跳过：2 条" in page and page.count("该主体已列入黑名单") == 2
    assert "disabled" not in _form_of(page)
    post(bureau, "/admin/bureau_queue/batch-approve/", {"ids": _posted_ids(page)})
    page = bureau.get("/admin/bureau_queue/batch-approve-matching/").get_data(as_text=True)
    assert _posted_ids(page) == str(ids[4])
    post(bureau, "/admin/bureau_queue/batch-approve/", {"ids": _posted_ids(page)})
    page = bureau.get("/admin/bureau_queue/batch-approve-matching/").get_data(as_text=True)
    assert "没有现在可以审核通过的申请" in page and "disabled" in _form_of(page)
    with app.app_context():
        assert _states(ids) == [ApplicationState.BUREAU_REVIEW] * 2 + [ApplicationState.APPROVED] * 3


def test_only_the_bureau_reaches_the_matching_page_and_forged_input_changes_nothing(app, users, as_user) -> None:
    """A filter the list could not apply offers nothing (it would widen the selection); dates no day can be, ids no
    record can have, a Back link to another site: refused or ignored, never a 500."""
    with app.app_context():
        ids = _five_waiting(users)
    for role in ("isp", "icp", "preapproval"):
        response = as_user(role).get("/admin/bureau_queue/batch-approve-matching/")
        assert response.status_code in (302, 403), role
    bureau = as_user("bureau")
    for forged in ("flt0_0=nonsense", "flt0_5=9999-12-31+至+9999-12-31", "flt0_5=0001-01-01+至+0001-01-02"):
        assert bureau.get(f"/admin/bureau_queue/?{forged}").status_code == 200, forged
        refused = bureau.get(f"/admin/bureau_queue/batch-approve-matching/?{forged}")
        assert refused.status_code == 302, forged
        assert "筛选条件有误" in bureau.get(refused.headers["Location"]).get_data(as_text=True)
    page = bureau.get("/admin/bureau_queue/batch-approve-matching/?search=" + "x" * 5000).get_data(as_text=True)
    assert "没有现在可以审核通过的申请" in page
    for forged_ids in ("²", "99999999999999999999999", f"{ids[0]},-1"):
        assert bureau.get(f"/admin/bureau_queue/batch-approve/?ids={forged_ids}").status_code == 200
        assert post(bureau, "/admin/bureau_queue/batch-approve/", {"ids": forged_ids}).status_code == 200
    back = bureau.get("/admin/bureau_queue/batch-approve/?url=https://evil.example/&ids=" + str(ids[0]))
    assert 'href="https://evil.example' not in back.get_data(as_text=True)
    with app.app_context():
        assert _states(ids) == [ApplicationState.BUREAU_REVIEW] * 5
