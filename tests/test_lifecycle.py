"""SPEC §4 (after approval) and §7: changes, access, cancellation, revocation — allowed and refused."""

from __future__ import annotations

import pytest
from sqlalchemy import select

import workflow
from extensions import db
from models import (
    Application,
    ApplicationKind,
    ApplicationState,
    Certificate,
    CertificateStatus,
    DisclosureEntry,
    DisclosureKind,
    Entity,
    FilingStatus,
    OutboxMessage,
    RequestState,
    RevocationRequest,
    Website,
)
from permissions import revocation_queue_scope
from public_site import verify_certificate
from tests.filing_factories import entity_data, website_data
from tests.helpers import BEIJING, YY, user_named


def _u(key_or_name: str, people: dict[str, str] | None = None):
    return user_named(people[key_or_name] if people else key_or_name)


def approved_filing(people, isps=("isp",), n: int = 1, sites: int = 1, **entity_overrides) -> Entity:
    """An ICP user's filing, verified by its ISPs and approved by the 天津 bureau."""
    owner = _u("icp", people)
    isp_ids = [_u(key, people).id for key in isps]
    websites = [website_data(f"site{n}x{i}", isp_ids) for i in range(sites)]
    application = workflow.save_filing_draft(owner, entity_data(n, **entity_overrides), websites)
    workflow.submit_application(owner, application)
    for key in isps:
        workflow.isp_verify(_u(key, people), application)
    workflow.approve(_u("bureau", people), application)
    db.session.flush()
    return application.entity


def _current_token(entity: Entity) -> str:
    return db.session.scalar(select(Certificate.token).where(
        Certificate.entity_id == entity.id, Certificate.status == CertificateStatus.CURRENT))


def _status(token: str) -> str:
    return verify_certificate(token)["status"]


# --- changes (FAQ 52) ---------------------------------------------------------------------------------

def test_add_domain_through_the_isp_then_old_certificate_is_superseded(people, ctx) -> None:
    entity = approved_filing(people)
    website, old_token = entity.websites[0], _current_token(entity)
    application = workflow.propose_domains(_u("isp", people), website, ["News.Site1x0.CN"])
    assert application.kind == ApplicationKind.CHANGE and application.state == ApplicationState.BUREAU_REVIEW
    assert "news.site1x0.cn" not in [d.name for d in website.domains]  # nothing changes before the audit
    workflow.approve(_u("bureau", people), application)
    assert "news.site1x0.cn" in [d.name for d in website.domains if d.live]
    new_token = _current_token(entity)
    assert _status(old_token) == "superseded" and _status(new_token) == "valid"
    assert "news.site1x0.cn" in verify_certificate(new_token)["payload"]["websites"][0]["domains"]


def test_new_website_gets_the_next_number(people, ctx) -> None:
    entity = approved_filing(people)
    isp = _u("isp", people)
    application = workflow.propose_website(isp, entity, website_data("second", [isp.id]))
    workflow.approve(_u("bureau", people), application)
    assert [w.number for w in entity.websites] == [f"{entity.number}-1", f"{entity.number}-2"]
    assert len(verify_certificate(_current_token(entity))["payload"]["websites"]) == 2


def test_edit_website_and_responsible_person(people, ctx) -> None:
    entity = approved_filing(people)
    isp, bureau, website = _u("isp", people), _u("bureau", people), entity.websites[0]
    workflow.approve(bureau, workflow.propose_website_edit(isp, website, "新名字网站", website.home_url, "2"))
    assert website.name == "新名字网站"
    workflow.approve(bureau, workflow.propose_responsible(isp, entity, "李四", "11010519491231002X",
                                                         "13800001111", "lisi@example.cn"))
    assert (entity.responsible_name, entity.responsible_email) == ("李四", "lisi@example.cn")


def test_change_refusals(people, ctx) -> None:
    entity = approved_filing(people)
    website = entity.websites[0]
    with pytest.raises(workflow.NotFound):  # the owner changes only through its ISP (FAQ 52)
        workflow.propose_domains(_u("icp", people), website, ["x.site.cn"])
    with pytest.raises(workflow.NotFound):  # an ISP that does not serve the website
        workflow.propose_domains(_u("isp2", people), website, ["x.site.cn"])
    with pytest.raises(workflow.WorkflowError, match="已在其他网站"):
        other = approved_filing(people, n=2)
        workflow.propose_domains(_u("isp", people), website, [other.websites[0].domains[0].name])
    application = workflow.propose_domains(_u("isp", people), website, ["x.site1x0.cn"])
    with pytest.raises(workflow.WorkflowError, match="未完成的申请"):
        workflow.propose_domains(_u("isp", people), website, ["y.site1x0.cn"])
    with pytest.raises(workflow.NotFound):  # another province's bureau
        workflow.approve(_u("bureau_bj", people), application)
    with pytest.raises(workflow.WorkflowError, match="新增备案"):
        workflow.approve(_u("bureau", people), application, typed_number=f"津ICP备{YY}999999号")
    workflow.approve(_u("bureau", people), application)
    with pytest.raises(workflow.WorkflowError):  # approved twice
        workflow.approve(_u("bureau", people), application)


def test_approved_data_is_read_only_for_the_owner(people, ctx) -> None:
    entity = approved_filing(people)
    application = db.session.scalar(select(Application).where(Application.entity_id == entity.id))
    with pytest.raises(workflow.WorkflowError):
        workflow.save_filing_draft(_u("icp", people), entity_data(1), [website_data("x", [_u("isp", people).id])],
                                   application)


def test_rejected_new_website_ends_and_frees_its_domains(people, ctx) -> None:
    """Does a rejected later application end at once, blocking nothing (its draft website removed)?"""
    entity = approved_filing(people)
    isp = _u("isp", people)
    application = workflow.propose_website(isp, entity, website_data("third", [isp.id]))
    workflow.reject(_u("bureau", people), application, {"reason": "名称不规范"})
    assert application.state == ApplicationState.REJECTED
    assert [w.name for w in entity.websites] == ["site1x0网站"]
    again = workflow.propose_website(isp, entity, website_data("third", [isp.id]))  # asked again, same domains
    assert again.state == ApplicationState.BUREAU_REVIEW


def test_submitter_withdraws_a_pending_change(people, ctx) -> None:
    """Can only its submitter withdraw a later application, and only while the bureau has not decided?"""
    entity = approved_filing(people)
    isp = _u("isp", people)
    application = workflow.propose_website(isp, entity, website_data("third", [isp.id]))
    for other in ("icp", "isp2", "bureau"):
        with pytest.raises(workflow.NotFound):
            workflow.withdraw_application(_u(other, people), application)
    workflow.withdraw_application(isp, application)
    assert application.state == ApplicationState.WITHDRAWN
    assert [w.name for w in entity.websites] == ["site1x0网站"]
    with pytest.raises(workflow.WorkflowError, match="等待管局审核"):
        workflow.withdraw_application(isp, application)
    workflow.propose_domains(isp, entity.websites[0], ["third.cn"])  # the entity is free again


# --- access (FAQ 64, 69) ----------------------------------------------------------------------------------

def test_cancelled_last_access_freezes_and_a_new_isp_revives(people, ctx) -> None:
    entity = approved_filing(people, isps=("isp", "isp2"))
    website = entity.websites[0]
    assert workflow.cancel_access(_u("isp2", people), website) is None  # another ISP remains: immediate
    application = workflow.cancel_access(_u("isp", people), website)
    assert application.kind == ApplicationKind.CANCEL_ACCESS and website.status == FilingStatus.ACTIVE
    workflow.approve(_u("bureau", people), application)
    assert website.status == FilingStatus.NO_ACCESS and entity.status == FilingStatus.ACTIVE
    for actor in ("icp", "isp", "isp2"):
        with pytest.raises(workflow.WorkflowError):
            workflow.propose_domains(_u(actor, people), website, ["frozen.cn"])
    newcomer = _u("isp_bj", people)
    access = workflow.AccessData(isp_id=newcomer.id, method="2", server_province_code=BEIJING)
    code = workflow.owner_access_code(_u("icp", people), entity)
    workflow.approve(_u("bureau", people), workflow.add_access(newcomer, website, access, code))
    assert website.status == FilingStatus.ACTIVE
    assert [a.isp_id for a in website.accesses if a.live] == [newcomer.id]
    with pytest.raises(workflow.WorkflowError, match="已为该网站提供接入"):
        workflow.add_access(newcomer, website, access, workflow.owner_access_code(_u("icp", people), entity))


# --- cancellation (注销) --------------------------------------------------------------------------------

def test_owner_cancels_the_entity(people, ctx) -> None:
    entity = approved_filing(people)
    token, number = _current_token(entity), entity.number
    with pytest.raises(workflow.NotFound):
        workflow.request_cancellation(_u("isp2", people), entity, None, "不再经营")
    application = workflow.request_cancellation(_u("icp", people), entity, None, "不再经营")
    workflow.approve(_u("bureau", people), application)
    assert entity.status == FilingStatus.CANCELLED and entity.websites[0].status == FilingStatus.CANCELLED
    assert _status(token) == "revoked"
    entry = db.session.scalar(select(DisclosureEntry))
    assert (entry.kind, entry.number, entry.unit_name) == (DisclosureKind.CANCELLED, number, entity.unit_name)
    mails = db.session.scalars(select(OutboxMessage.recipient).where(OutboxMessage.subject == "ICP备案注销通知"))
    assert set(mails) == {entity.responsible_email, _u("isp", people).email}
    assert workflow.find_by_number  # the number is no longer found
    with pytest.raises(workflow.WorkflowError, match="没有有效备案"):
        workflow.find_by_number(number)


def test_website_cancellation_keeps_the_entity(people, ctx) -> None:
    entity = approved_filing(people, sites=2)
    first, second = entity.websites
    old = _current_token(entity)
    workflow.approve(_u("bureau", people), workflow.request_cancellation(_u("isp", people), entity, second, "关站"))
    assert (entity.status, first.status, second.status) == (
        FilingStatus.ACTIVE, FilingStatus.ACTIVE, FilingStatus.CANCELLED)
    assert _status(old) == "superseded"
    assert [w["number"] for w in verify_certificate(_current_token(entity))["payload"]["websites"]] == [first.number]


def test_revoked_number_is_never_issued_again_even_after_refiling(people, ctx) -> None:
    entity = approved_filing(people)
    number, certificate_number = entity.number, entity.certificate_number
    workflow.revoke_by_number(_u("bureau", people), number, "虚假材料")
    refiled = approved_filing(people)  # the same unit (same credit code) files again (FAQ 8)
    assert refiled.certificate_number == certificate_number and refiled.id != entity.id
    assert refiled.number != number and refiled.websites[0].number != f"{number}-1"
    assert db.session.scalar(select(Entity.status).where(Entity.number == number)) == FilingStatus.REVOKED


# --- revocation requests (FAQ 31, 35–37) ------------------------------------------------------------------

REQUESTERS = ("icp", "importer", "bureau")
PROCESSORS = ("bureau", "bureau_bj", "miit", "self")
#: requester → the processor that may process its request
EXPECTED = {"icp": "bureau", "importer": "bureau", "bureau": "miit"}


@pytest.mark.parametrize("processor", PROCESSORS)
@pytest.mark.parametrize("requester", REQUESTERS)
def test_revocation_request_matrix(people, ctx, requester: str, processor: str) -> None:
    entity = approved_filing(people, isps=("isp", "importer"))
    asker = _u(requester, people)
    request = workflow.request_revocation(asker, entity, None, "网站内容违规")
    actor = asker if processor == "self" else _u(processor, people)
    queue = db.session.scalars(select(RevocationRequest).where(revocation_queue_scope(actor))).all()
    allowed = processor == EXPECTED[requester]
    assert (request in queue) is allowed
    if allowed:
        workflow.process_revocation_requests(actor, [request], accept=True)
        assert request.state == RequestState.DONE and entity.status == FilingStatus.REVOKED
    else:
        with pytest.raises(workflow.NotFound):
            workflow.process_revocation_requests(actor, [request], accept=True)
        assert request.state == RequestState.PENDING and entity.status == FilingStatus.ACTIVE


@pytest.mark.parametrize("requester", ["isp", "isp2", "bureau_bj", "miit", "content_admin"])
def test_who_may_not_request(people, ctx, requester: str) -> None:
    entity = approved_filing(people)
    with pytest.raises(workflow.NotFound):
        workflow.request_revocation(_u(requester, people), entity, None, "理由")


def test_requester_edits_and_deletes_while_pending_only(people, ctx) -> None:
    entity = approved_filing(people)
    owner, bureau = _u("icp", people), _u("bureau", people)
    request = workflow.request_revocation(owner, entity, None, "理由一")
    with pytest.raises(workflow.NotFound):
        workflow.edit_revocation_request(bureau, request, "别人的")
    workflow.edit_revocation_request(owner, request, "理由二")
    assert request.reason == "理由二"
    with pytest.raises(workflow.WorkflowError, match="理由"):
        workflow.process_revocation_requests(bureau, [request], accept=False)
    workflow.process_revocation_requests(bureau, [request], accept=False, decision_reason="证据不足")
    assert request.state == RequestState.REFUSED and entity.status == FilingStatus.ACTIVE
    with pytest.raises(workflow.WorkflowError, match="已处理"):
        workflow.edit_revocation_request(owner, request, "理由三")
    with pytest.raises(workflow.WorkflowError, match="已处理"):
        workflow.delete_revocation_request(owner, request)
    second = workflow.request_revocation(owner, entity, None, "再次申请")
    workflow.delete_revocation_request(owner, second)


# --- direct revocation (FAQ 39) and 吊销 ------------------------------------------------------------------

def test_direct_revocation_by_number(people, ctx) -> None:
    entity = approved_filing(people, sites=2)
    first, second = entity.websites
    for actor, message in (("bureau_bj", "没有有效备案"), ("icp", "无权"), ("isp", "无权")):
        with pytest.raises(workflow.WorkflowError, match=message):
            workflow.revoke_by_number(_u(actor, people), entity.number, "理由")
    with pytest.raises(workflow.WorkflowError, match="原因"):
        workflow.revoke_by_number(_u("bureau", people), entity.number, " ")
    with pytest.raises(workflow.WorkflowError, match="没有有效备案"):
        workflow.revoke_by_number(_u("bureau", people), "津ICP备99999999号", "理由")
    assert workflow.revoke_by_number(_u("bureau", people), second.number, "网站违规") == second.number
    assert (entity.status, second.status) == (FilingStatus.ACTIVE, FilingStatus.REVOKED)
    assert workflow.revoke_by_number(_u("miit", people), entity.number, "主体违规") == entity.number
    assert entity.status == first.status == FilingStatus.REVOKED
    kinds = db.session.scalars(select(DisclosureEntry.kind).order_by(DisclosureEntry.id)).all()
    assert kinds == [DisclosureKind.REVOKED, DisclosureKind.REVOKED]


def test_licence_revocation(people, ctx) -> None:
    plain = approved_filing(people, n=3)
    with pytest.raises(workflow.WorkflowError, match="许可证"):
        workflow.revoke_by_number(_u("bureau", people), plain.number, "理由", licence=True)
    commercial = approved_filing(people, n=4, commercial=True)
    assert commercial.licence_number
    workflow.revoke_by_number(_u("bureau", people), commercial.licence_number, "吊销许可证", licence=True)
    assert commercial.status == FilingStatus.REVOKED
    assert db.session.scalar(select(DisclosureEntry.kind)) == DisclosureKind.LICENCE_REVOKED


def test_revoked_filing_cannot_be_approved_or_resubmitted(people, ctx) -> None:
    entity = approved_filing(people)
    application = workflow.propose_domains(_u("isp", people), entity.websites[0], ["late.cn"])
    workflow.revoke_by_number(_u("bureau", people), entity.number, "违规")
    assert application.state == ApplicationState.WITHDRAWN
    with pytest.raises(workflow.WorkflowError, match="只有草稿或被退回的申请可以提交"):
        workflow.submit_application(_u("isp", people), application)
    with pytest.raises(workflow.WorkflowError):
        workflow.approve(_u("bureau", people), application)


def test_cli_revoke(app, people) -> None:
    with app.app_context():
        entity = approved_filing(people)
        db.session.commit()
        number = entity.number
    runner = app.test_cli_runner()
    refused = runner.invoke(args=["revoke", number, "--reason", "违规", "--as", "bj_bureau"])
    assert refused.exit_code != 0 and "没有有效备案" in refused.output
    done = runner.invoke(args=["revoke", number, "--reason", "违规", "--as", "tj_bureau"])
    assert done.exit_code == 0 and done.output.strip() == f"revoked: {number} by tj_bureau; reason: 违规"
    with app.app_context():
        assert db.session.scalar(select(Website.status).where(Website.number == f"{number}-1")) == \
            FilingStatus.REVOKED
