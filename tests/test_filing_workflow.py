"""SPEC §4–§6 through workflow.py: every transition, allowed and refused."""

from __future__ import annotations

import json

import pytest

import certificates
import permissions
import workflow
from extensions import db
from models import (
    ApplicationState,
    BlacklistEntry,
    BlacklistKind,
    Certificate,
    Entity,
    FilingStatus,
    MessageChannel,
    OutboxMessage,
    PreapprovalItem,
    Role,
)
from tests.filing_factories import entity_data, filed_by_isp, website_data
from tests.helpers import BEIJING, TIANJIN, YY, make_user, user_named


@pytest.fixture
def people(app, users):
    """The fixture accounts plus a second 天津 ISP and a news pre-approval authority."""
    with app.app_context():
        make_user("tj_isp2", Role.ISP, TIANJIN, organisation="天津第二网络公司")
    return {**users, "isp2": "tj_isp2"}


def _u(name: str):
    return user_named(name)


def _two_site_application(people):
    owner, isp, isp2 = _u(people["icp"]), _u(people["isp"]), _u(people["isp2"])
    websites = [website_data("alpha", [isp.id, isp2.id], preapprovals=[("1", "津新闻[2026]001号")]),
                website_data("beta", [isp.id])]
    application = workflow.save_filing_draft(owner, entity_data(1), websites)
    workflow.submit_application(owner, application)
    return application


def test_whole_path_two_websites_two_isps(app, people, ctx) -> None:
    application = _two_site_application(people)
    assert application.state == ApplicationState.ISP_REVIEW and len(application.verifications) == 2
    workflow.isp_verify(_u(people["isp"]), application)
    assert application.state == ApplicationState.ISP_REVIEW  # the second ISP has not verified
    with pytest.raises(workflow.WorkflowError, match="不在等待管局审核"):
        workflow.approve(_u(people["bureau"]), application)
    workflow.isp_verify(_u(people["isp2"]), application)
    assert application.state == ApplicationState.BUREAU_REVIEW
    with pytest.raises(workflow.WorkflowError, match="尚未经前置审批部门确认"):
        workflow.approve(_u(people["bureau"]), application)
    item = db.session.query(PreapprovalItem).one()
    workflow.review_preapproval(_u(people["preapproval"]), item, confirmed=True)
    workflow.approve(_u(people["bureau"]), application)
    db.session.commit()
    entity = application.entity
    assert entity.status == FilingStatus.ACTIVE and entity.number == f"津ICP备{YY}000001号"
    assert [w.number for w in entity.websites] == [f"津ICP备{YY}000001号-1", f"津ICP备{YY}000001号-2"]
    certificate = db.session.query(Certificate).one()
    payload = certificates.verify(certificate.token, certificates.keyring().jwks())
    assert payload["entity_number"] == entity.number and len(payload["websites"]) == 2
    mail = db.session.query(OutboxMessage).filter_by(channel=MessageChannel.EMAIL).one()
    assert f"您的ICP备案申请已通过审核，备案／许可证号为:津ICP备{YY}000001号" in mail.body
    assert mail.attachment_name == "bazs.cert" and mail.attachment.decode() == certificate.token


def test_isp_return_makes_it_editable_with_the_reason(app, people, ctx) -> None:
    application = _two_site_application(people)
    workflow.isp_return(_u(people["isp2"]), application, "服务器地址与合同不符")
    assert application.state == ApplicationState.DRAFT
    assert json.loads(application.reasons) == {"isp": "服务器地址与合同不符"}
    with pytest.raises(workflow.WorkflowError):
        workflow.isp_verify(_u(people["isp"]), application)


def test_isp_filing_for_a_customer_skips_its_own_verification(app, people, ctx) -> None:
    application = filed_by_isp(_u(people["isp"]), 7)
    assert application.state == ApplicationState.BUREAU_REVIEW
    assert application.verifications[0].state == "confirmed"


def test_wrong_province_bureau_cannot_see_or_approve(app, people, ctx) -> None:
    application = filed_by_isp(_u(people["isp"]), 8)
    with pytest.raises(workflow.NotFound):
        workflow.approve(_u(people["bureau_bj"]), application)
    for role in ("miit", "isp", "icp", "preapproval"):
        with pytest.raises(workflow.NotFound):
            workflow.approve(_u(people[role]), application)


def test_other_isp_cannot_verify(app, people, ctx) -> None:
    application = _two_site_application(people)
    with pytest.raises(workflow.NotFound):
        workflow.isp_verify(_u(people["isp_bj"]), application)


def test_typed_numbers(app, people, ctx) -> None:
    bureau = _u(people["bureau"])
    first, second, third = (filed_by_isp(_u(people["isp"]), n) for n in (11, 12, 13))
    for bad, message in ((f"津ICP备{YY}00001号", "备案号格式应为"), (f"京ICP备{YY}000009号", "应以“津”开头")):
        with pytest.raises(workflow.WorkflowError, match=message):
            workflow.approve(bureau, first, typed_number=bad)
    workflow.approve(bureau, first, typed_number=f"津ICP备{YY}000002号")
    with pytest.raises(workflow.WorkflowError, match="已被使用过"):
        workflow.approve(bureau, second, typed_number=f"津ICP备{YY}000002号")
    workflow.approve(bureau, second)
    workflow.approve(bureau, third)
    assert [second.entity.number, third.entity.number] == [f"津ICP备{YY}000001号", f"津ICP备{YY}000003号"]


def test_batch_approve_generates_numbers(app, people, ctx) -> None:
    applications = [filed_by_isp(_u(people["isp"]), n) for n in range(20, 25)]
    workflow.batch_approve(_u(people["bureau"]), applications)
    numbers = [a.entity.number for a in applications]
    assert numbers == [f"津ICP备{YY}{n:06d}号" for n in range(1, 6)]


def test_reject_needs_a_reason_and_returns_to_draft(app, people, ctx) -> None:
    application = filed_by_isp(_u(people["isp"]), 30)
    with pytest.raises(workflow.WorkflowError, match="至少填写一项驳回原因"):
        workflow.reject(_u(people["bureau"]), application, {"unit_name": " "})
    workflow.reject(_u(people["bureau"]), application, {"unit_name": "单位名称与证件不符"})
    assert application.state == ApplicationState.DRAFT
    assert json.loads(application.reasons) == {"unit_name": "单位名称与证件不符"}


def test_second_active_filing_of_a_certificate_number_refused(app, people, ctx) -> None:
    filed_by_isp(_u(people["isp"]), 40)
    with pytest.raises(workflow.WorkflowError, match="已经备案"):
        workflow.save_filing_draft(_u(people["isp"]), entity_data(40, unit_name="另一个名字"),
                                   [website_data("other40", [_u(people["isp"]).id])])


def test_domain_on_another_website_refused(app, people, ctx) -> None:
    filed_by_isp(_u(people["isp"]), 41)
    with pytest.raises(workflow.WorkflowError, match="已在其他网站备案"):
        workflow.save_filing_draft(_u(people["isp"]), entity_data(42),
                                   [website_data("site41", [_u(people["isp"]).id])])


@pytest.mark.parametrize(("kind", "value", "field"), [
    (BlacklistKind.DOMAIN, "www.bad.cn", "websites-0-domains"),
    (BlacklistKind.UNIT_NAME, "天津测试科技有限公司43", "unit_name")])
def test_blacklisted_values_refused(app, people, ctx, kind, value, field) -> None:
    db.session.add(BlacklistEntry(kind=kind, value=value, reason="测试"))
    with pytest.raises(workflow.WorkflowError) as refused:
        workflow.save_filing_draft(_u(people["isp"]), entity_data(43),
                                   [website_data("bad", [_u(people["isp"]).id])])
    assert refused.value.field == field


def test_blacklisted_after_submission_blocks_approval(app, people, ctx) -> None:
    application = filed_by_isp(_u(people["isp"]), 44)
    db.session.add(BlacklistEntry(kind=BlacklistKind.DOMAIN, value="www.site44.cn", reason="测试"))
    with pytest.raises(workflow.WorkflowError, match="已列入黑名单"):
        workflow.approve(_u(people["bureau"]), application)


def test_invalid_identity_documents_refused(app, people, ctx) -> None:
    isp = _u(people["isp"])
    for overrides, field in (({"certificate_number": "91350100M000100Y44"}, "certificate_number"),
                             ({"responsible_id_number": "110105194912310021"}, "responsible_id_number"),
                             ({"certificate_type": "16"}, "certificate_type")):
        with pytest.raises(workflow.WorkflowError) as refused:
            workflow.save_filing_draft(isp, entity_data(45, **overrides), [website_data("s45", [isp.id])])
        assert refused.value.field == field


def test_home_url_must_be_on_own_domain(app, people, ctx) -> None:
    isp = _u(people["isp"])
    with pytest.raises(workflow.WorkflowError) as refused:
        workflow.save_filing_draft(isp, entity_data(46), [website_data("s46", [isp.id],
                                                                       home_url="http://elsewhere.cn/")])
    assert refused.value.field == "websites-0-home_url"


def test_isp_cannot_file_without_serving_the_site(app, people, ctx) -> None:
    with pytest.raises(workflow.NotFound):
        workflow.save_filing_draft(_u(people["isp_bj"]), entity_data(47),
                                   [website_data("s47", [_u(people["isp"]).id])])


def test_preapproval_scope(app, people, ctx) -> None:
    application = _two_site_application(people)
    item = application.entity.websites[0].preapprovals[0]
    other_category = make_user("edu_preapp", Role.PREAPPROVAL, preapproval_category="3")
    with pytest.raises(workflow.NotFound):
        workflow.review_preapproval(other_category, item, confirmed=True)
    bj_news = make_user("bj_news", Role.PREAPPROVAL, BEIJING)
    with pytest.raises(workflow.NotFound):
        workflow.review_preapproval(bj_news, item, confirmed=True)
    with pytest.raises(workflow.WorkflowError, match="异议原因"):
        workflow.review_preapproval(_u(people["preapproval"]), item, confirmed=False)


def test_preapproval_items_follow_their_draft_to_another_province(app, people, ctx) -> None:
    """Does each item name its filing and the filing's province, and move with a draft edited to another province
    (the bureau queue's filter and the authorities' scope read them from the item)?"""
    owner, isp = _u(people["icp"]), _u(people["isp"])
    news = [website_data("gamma", [isp.id], preapprovals=[("1", "津新闻[2026]002号")])]
    application = workflow.save_filing_draft(owner, entity_data(2), news)
    item = db.session.query(PreapprovalItem).one()
    assert (item.entity_id, item.province_code) == (application.entity_id, TIANJIN)
    workflow.save_filing_draft(owner, entity_data(2, BEIJING), news, application)
    item = db.session.query(PreapprovalItem).one()
    assert (item.entity_id, item.province_code) == (application.entity_id, BEIJING)
    assert permissions.may_review_preapproval(make_user("bj_news", Role.PREAPPROVAL, BEIJING), item)
    assert not permissions.may_review_preapproval(make_user("tj_news", Role.PREAPPROVAL, TIANJIN), item)


def test_commercial_entities_get_a_licence_and_its_wording(app, people, ctx) -> None:
    isp = _u(people["isp"])
    application = workflow.save_filing_draft(isp, entity_data(50, commercial=True), [website_data("s50", [isp.id])])
    workflow.submit_application(isp, application)
    workflow.approve(_u(people["bureau"]), application)
    assert application.entity.licence_number == "津ICP证000001号"
    mail = db.session.query(OutboxMessage).filter_by(channel=MessageChannel.EMAIL).one()
    assert "ICP许可证申请已通过审核" in mail.body and "津ICP证000001号" in mail.body


def test_new_certificate_supersedes_the_old(app, people, ctx) -> None:
    application = filed_by_isp(_u(people["isp"]), 51)
    workflow.approve(_u(people["bureau"]), application)
    entity = db.session.get(Entity, application.entity_id)
    workflow.issuing.issue_certificates([entity])
    assert sorted(c.status for c in db.session.query(Certificate)) == ["current", "superseded"]
