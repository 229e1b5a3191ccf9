"""Issue 11 items 1–4: resubmission loops, and an ISP's reach by its live accesses only."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

import permissions
import workflow
from extensions import db
from models import (
    CLOSED_APPLICATION_STATES,
    AccessAuthorisation,
    Application,
    ApplicationKind,
    ApplicationState,
    Entity,
    OutboxMessage,
    ReviewState,
    Role,
)
from tests.filing_factories import entity_data, filed_by_isp, website_data
from tests.helpers import BEIJING, make_user, post, sign_in
from tests.test_lifecycle import _u, approved_filing


def _sees_entity(actor, entity: Entity) -> bool:
    found = select(Entity.id).where(Entity.id == entity.id, permissions.entity_scope(actor))
    return db.session.scalar(found) is not None


def _sees_application(actor, application: Application) -> bool:
    return db.session.scalar(select(Application.id).where(
        Application.id == application.id, permissions.application_scope(actor))) is not None


def _new_filing(people, isps=("isp", "isp2")) -> Application:
    owner = _u("icp", people)
    application = workflow.save_filing_draft(owner, entity_data(), [
        website_data("loop", [_u(key, people).id for key in isps])])
    workflow.submit_application(owner, application)
    return application


# --- 1. returned → corrected → resubmitted; rejected → resubmitted ---------------------------------------

def test_returned_application_is_corrected_and_resubmitted(people, ctx) -> None:
    """Can the owner resubmit after an ISP's return (FAQ's most common path), and the ISPs verify again?"""
    application = _new_filing(people)
    workflow.isp_verify(_u("isp", people), application)
    workflow.isp_return(_u("isp2", people), application, "IP 地址有误")
    assert application.state == ApplicationState.DRAFT
    owner = _u("icp", people)
    corrected = website_data("loop", [_u("isp", people).id, _u("isp2", people).id])
    workflow.save_filing_draft(owner, entity_data(), [corrected], application)
    workflow.submit_application(owner, application)
    db.session.flush()
    assert application.state == ApplicationState.ISP_REVIEW
    assert {v.state for v in application.verifications} == {ReviewState.PENDING}
    workflow.isp_verify(_u("isp", people), application)
    workflow.isp_verify(_u("isp2", people), application)
    workflow.approve(_u("bureau", people), application)
    assert application.entity.number


def test_rejected_application_is_resubmitted_by_the_isp_that_filed_it(people, ctx) -> None:
    """Reject → resubmit by the filing ISP (its own verification counts again), twice over."""
    isp = _u("isp", people)
    application = filed_by_isp(isp, 501)
    for _ in range(2):
        workflow.reject(_u("bureau", people), application, {"unit_name": "名称与证件不符"})
        assert application.state == ApplicationState.DRAFT
        workflow.submit_application(isp, application)
        db.session.flush()
        assert application.state == ApplicationState.BUREAU_REVIEW
    workflow.approve(_u("bureau", people), application)
    assert application.state == ApplicationState.APPROVED


def test_resubmission_over_http_after_a_return(app, as_user, people) -> None:
    """The owner presses 提交 on the returned application in the console: no 500, back to the ISPs."""
    with app.app_context():
        application = _new_filing(people, isps=("isp",))
        workflow.isp_return(_u("isp", people), application, "请补充材料")
        db.session.commit()
        application_id = application.id
    owner = as_user("icp")
    response = post(owner, "/admin/applications/row-action/submit/", {"id": application_id})
    assert response.status_code in (200, 302)
    with app.app_context():
        assert db.session.get(Application, application_id).state == ApplicationState.ISP_REVIEW


# --- 2. a new access needs the owner's consent; a refused request blocks nothing --------------------------

def test_new_access_without_the_owners_code_is_refused_and_reveals_nothing(people, ctx) -> None:
    entity = approved_filing(people)
    stranger = _u("isp_bj", people)
    website = entity.websites[0]
    access = workflow.AccessData(isp_id=stranger.id, method="2", server_province_code=BEIJING)
    for code in ("", "AAAA-BBBB-CCCC"):
        with pytest.raises(workflow.WorkflowError, match="授权码"):
            workflow.add_access(stranger, website, access, code)
    assert db.session.scalar(select(Application).where(Application.kind == ApplicationKind.NEW_ACCESS)) is None
    assert not _sees_entity(stranger, entity)


def test_code_sent_for_one_isp_is_refused_to_another_and_used_once(people, ctx) -> None:
    entity = approved_filing(people)
    stranger, other = _u("isp_bj", people), _u("isp2", people)
    workflow.send_access_code(stranger, entity)
    sms = db.session.scalar(select(OutboxMessage).where(OutboxMessage.recipient == entity.responsible_mobile))
    code = re.search(r"接入授权码 ([A-Z0-9-]+) ", sms.body).group(1)
    assert "北京某网络公司" in sms.body
    website = entity.websites[0]
    with pytest.raises(workflow.WorkflowError, match="授权码"):
        workflow.add_access(other, website, workflow.AccessData(isp_id=other.id, method="2",
                                                                server_province_code="120000"), code)
    access = workflow.AccessData(isp_id=stranger.id, method="2", server_province_code=BEIJING)
    application = workflow.add_access(stranger, website, access, code)
    workflow.reject(_u("bureau", people), application, {"access": "未经核实"})
    with pytest.raises(workflow.WorkflowError, match="授权码"):  # used once: a second request needs a new code
        workflow.add_access(stranger, website, access, code)


def test_sending_codes_is_bounded_per_filing(people, ctx) -> None:
    entity = approved_filing(people)
    stranger = _u("isp_bj", people)
    for _ in range(3):
        workflow.send_access_code(stranger, entity)
    with pytest.raises(workflow.WorkflowError, match="一小时后再试"):
        workflow.send_access_code(stranger, entity)
    with pytest.raises(workflow.NotFound):
        workflow.owner_access_code(_u("isp", people), entity)


def test_rejected_new_access_ends_sees_only_public_data_and_blocks_nothing(app, as_user, people) -> None:
    """The review's case: after the bureau rejects a stranger's request, the stranger sees nothing more than
    the public, and the real ISP can still cancel the filing."""
    with app.app_context():
        entity = approved_filing(people)
        stranger = _u("isp_bj", people)
        code = workflow.owner_access_code(_u("icp", people), entity)
        access = workflow.AccessData(isp_id=stranger.id, method="2", server_province_code=BEIJING)
        application = workflow.add_access(stranger, entity.websites[0], access, code)
        assert _sees_application(stranger, application) and not _sees_entity(stranger, entity)
        db.session.commit()
        ids = {"entity": entity.id, "application": application.id}
    client = as_user("isp_bj")
    page = client.get(f"/admin/applications/details/?id={ids['application']}").get_data(as_text=True)
    assert "13912345678" not in page and "11010519491231002X" not in page and "仅显示公开信息" in page
    assert client.get(f"/admin/filings/details/?id={ids['entity']}").status_code == 404
    post(as_user("bureau"), f"/admin/bureau_queue/reject/?id={ids['application']}", {"access": "未经主办者同意"})
    with app.app_context():
        application = db.session.get(Application, ids["application"])
        assert application.state == ApplicationState.REJECTED
        assert not _sees_entity(_u("isp_bj", people), application.entity)
        cancel = workflow.request_cancellation(_u("isp", people), application.entity, None, "不再经营")
        assert cancel.state == ApplicationState.BUREAU_REVIEW


# --- 3. a former ISP -----------------------------------------------------------------------------------

def test_former_isp_loses_the_filing_and_the_right_to_ask_for_revocation(people, ctx) -> None:
    entity = approved_filing(people, isps=("importer", "isp"))
    importer = _u("importer", people)
    assert _sees_entity(importer, entity) and permissions.may_request_revocation(importer, entity)
    workflow.cancel_access(importer, entity.websites[0])  # another ISP still serves: immediate
    db.session.flush()
    assert not _sees_entity(importer, entity)
    assert not permissions.may_request_revocation(importer, entity)
    with pytest.raises(workflow.NotFound):
        workflow.request_revocation(importer, entity, None, "冒用")
    assert _sees_entity(_u("isp", people), entity)


def test_former_isp_gets_404_on_the_filing_page(app, as_user, people) -> None:
    with app.app_context():
        entity = approved_filing(people, isps=("isp", "isp2"))
        workflow.cancel_access(_u("isp2", people), entity.websites[0])
        db.session.commit()
        entity_id = entity.id
    assert as_user("isp").get(f"/admin/filings/details/?id={entity_id}").status_code == 200  # still serving
    client = app.test_client()
    sign_in(client, people["isp2"])  # the former one
    assert client.get(f"/admin/filings/details/?id={entity_id}").status_code == 404
    assert "天津测试科技" not in client.get("/admin/filings/").get_data(as_text=True)


# --- 4. a co-named ISP cannot rewrite the owner's application -----------------------------------------

def test_co_named_isp_cannot_edit_or_submit_the_owners_returned_application(app, as_user, people) -> None:
    with app.app_context():
        application = _new_filing(people, isps=("isp",))
        isp = _u("isp", people)
        workflow.isp_return(isp, application, "请补充材料")
        with pytest.raises(workflow.NotFound):
            workflow.save_filing_draft(isp, entity_data(), [website_data("hijack", [isp.id])], application)
        with pytest.raises(workflow.NotFound):
            workflow.submit_application(isp, application)
        assert not permissions.may_edit_application(isp, application)
        assert permissions.may_edit_application(_u("icp", people), application)
        db.session.commit()
        application_id = application.id
    client = as_user("isp")
    assert post(client, "/admin/filing/edit/", {"id": application_id}).status_code == 404
    assert "返回修改" not in client.get(f"/admin/applications/details/?id={application_id}").get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Application, application_id).state == ApplicationState.DRAFT


def test_only_open_applications_block(people, ctx) -> None:
    entity = approved_filing(people)
    states = set(db.session.scalars(select(Application.state).where(Application.entity_id == entity.id)))
    assert states <= set(CLOSED_APPLICATION_STATES)


def test_only_the_owner_opens_or_posts_the_access_code_page(app, as_user, people) -> None:
    """Another owner, the filing's own ISP and a bureau get 404 on the page and on its POST; nothing is made."""
    with app.app_context():
        entity_id = approved_filing(people).id
        db.session.commit()
        make_user("other_owner", Role.ICP)
    other = app.test_client()
    sign_in(other, "other_owner")
    path = f"/admin/filings/access-code/?id={entity_id}"
    for client in (other, as_user("isp"), as_user("bureau")):
        assert client.get(path).status_code == 404
        assert post(client, path, {}).status_code == 404
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AccessAuthorisation)) == 0
    assert "生成新的授权码" in as_user("icp").get(path).get_data(as_text=True)
