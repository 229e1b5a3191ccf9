"""After approval (SPEC §4, §7): changes through the ISP, new and cancelled access, cancellation,
revocation requests, direct revocation and 吊销. Every function checks permission and state, changes,
records an audit event and queues the e-mails; the caller commits.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

import audit
import notify
import permissions
from extensions import db
from models import (
    CLOSED_APPLICATION_STATES,
    Application,
    ApplicationKind,
    ApplicationState,
    Certificate,
    CertificateStatus,
    DisclosureEntry,
    DisclosureKind,
    Entity,
    FilingStatus,
    IspVerification,
    RequestState,
    ReviewState,
    RevocationRequest,
    Role,
    User,
    Website,
    utcnow,
)
from permissions import Action
from validators import email_error, id_card_error, mobile_error
from workflow import events, special_content
from workflow.access_codes import consume_access_code
from workflow.checks import (
    LIVE_STATUSES,
    AccessData,
    WebsiteData,
    access_problems,
    access_row,
    check_accesses,
    check_website,
    domain_row,
    require_live,
    website_problems,
    website_row,
)
from workflow.deadlines import start_deadline
from workflow.errors import NotFound, WorkflowError, raise_problems
from workflow.ip_findings import mark_stale
from workflow.issuing import issue_certificates

ENDING_KINDS = (ApplicationKind.CANCEL_WEBSITE, ApplicationKind.CANCEL_ENTITY)
#: approved even while a pre-approval is pending or a value is blacklisted: they take nothing new
UNBLOCKED_KINDS = (*ENDING_KINDS, ApplicationKind.CANCEL_ACCESS)
KIND_WORDS = {ApplicationKind.CHANGE: "变更", ApplicationKind.NEW_WEBSITE: "新增网站",
              ApplicationKind.NEW_ACCESS: "新增接入", ApplicationKind.CANCEL_ACCESS: "取消接入",
              ApplicationKind.CANCEL_WEBSITE: "注销网站", ApplicationKind.CANCEL_ENTITY: "注销主体"}
END_WORDS = {DisclosureKind.CANCELLED: "注销", DisclosureKind.REVOKED: "撤销", DisclosureKind.LICENCE_REVOKED: "吊销"}


# --- common ------------------------------------------------------------------------------------

def _live_isps(website: Website) -> set[int]:
    return {a.isp_id for a in website.accesses if a.live}


def _serves(actor: User, website: Website) -> bool:
    return actor.role == Role.ISP and actor.id in _live_isps(website)


def _open_application(entity: Entity) -> Application | None:
    return db.session.scalar(select(Application).where(
        Application.entity_id == entity.id, Application.state.not_in(CLOSED_APPLICATION_STATES)))


def _require_no_open_application(entity: Entity) -> None:
    if (pending := _open_application(entity)) is not None:
        raise WorkflowError(_l("This filing already has an application in progress (no. %(id)s); wait until "
                               "it is decided.", id=pending.id))


def _new_application(actor: User, entity: Entity, kind: ApplicationKind, proposal: dict[str, Any]) -> Application:
    """Straight to the bureau's queue: the submitting ISP counts as verified (SPEC §4)."""
    _require_no_open_application(entity)
    now = utcnow()
    application = Application(entity=entity, province_code=entity.province_code, kind=kind,
                              state=ApplicationState.BUREAU_REVIEW, created_by_id=actor.id, submitted_by_id=actor.id,
                              submitted_at=now, proposal=json.dumps(proposal, ensure_ascii=False))
    start_deadline(application, now)
    if actor.role == Role.ISP:
        application.verifications = [IspVerification(isp_id=actor.id, state=ReviewState.CONFIRMED, at=now)]
    db.session.add(application)
    try:
        db.session.flush()
    except IntegrityError as race:
        raise WorkflowError(_l("This filing already has an application in progress.")) from race
    special_content.open_items(actor, application)
    audit.record("application.submitted", object_type="application", object_id=application.id,
                 province_code=entity.province_code, actor=actor, changes={"kind": kind.value, **proposal})
    return application


def proposal_of(application: Application) -> dict[str, Any]:
    return json.loads(application.proposal or "{}")


def _website_of(entity: Entity, website_id: int) -> Website:
    website = next((w for w in entity.websites if w.id == website_id), None)
    if website is None:
        raise NotFound()
    return website


def _as_data(website: Website, **overrides: Any) -> WebsiteData:
    """The website as the wizard's data (to run the same checks on a changed copy)."""
    data = WebsiteData(name=website.name, domains=[d.name for d in website.domains if d.live],
                       home_url=website.home_url, service_content=website.service_content, accesses=[],
                       languages=website.languages)
    for key, value in overrides.items():
        setattr(data, key, value)
    return data


# --- changes (FAQ 52): an ISP serving the filing asks on the owner's behalf -------------------------

def _require_serving_isp(actor: User, website: Website) -> None:
    if not permissions.can(actor, Action.FILING_CHANGE) or not _serves(actor, website):
        raise NotFound()
    if website.status == FilingStatus.NO_ACCESS:
        raise WorkflowError(_l("This website has no access: it is frozen until a new ISP adds access."))
    require_live(website.entity, website)


def propose_domains(actor: User, website: Website, domains: list[str]) -> Application:
    """变更: add domains to an approved website."""
    _require_serving_isp(actor, website)
    current = [d.name for d in website.domains if d.live]
    names = check_website(_as_data(website, domains=current + list(domains)), 0, {website.id})
    added = names[len(current):]
    return _new_application(actor, website.entity, ApplicationKind.CHANGE,
                            {"type": "add_domains", "website_id": website.id, "domains": added})


def propose_website_edit(actor: User, website: Website, name: str, home_url: str, service_content: str) -> Application:
    """变更: a website's name, home page or service content."""
    _require_serving_isp(actor, website)
    check_website(_as_data(website, name=name, home_url=home_url, service_content=service_content), 0, {website.id},
                  province_code=website.entity.province_code)
    return _new_application(actor, website.entity, ApplicationKind.CHANGE, {
        "type": "edit_website", "website_id": website.id, "name": name.strip(), "home_url": home_url.strip(),
        "service_content": service_content})


def propose_responsible(actor: User, entity: Entity, name: str, id_number: str, mobile: str,
                        email: str) -> Application:
    """变更: the entity's responsible person."""
    served = [w for w in entity.websites if w.status in LIVE_STATUSES and _serves(actor, w)]
    if not served:
        raise NotFound()
    _require_serving_isp(actor, served[0])
    raise_problems((field_name, error) for field_name, error in (
        ("responsible_name", None if name.strip() else _l("The responsible person's name is required.")),
        ("responsible_id_number", id_card_error(id_number.strip())),
        ("responsible_mobile", mobile_error(mobile.strip())),
        ("responsible_email", email_error(email.strip()))) if error)
    return _new_application(actor, entity, ApplicationKind.CHANGE, {
        "type": "responsible", "responsible_name": name.strip(), "responsible_id_number": id_number.strip(),
        "responsible_mobile": mobile.strip(), "responsible_email": email.strip()})


def propose_website(actor: User, entity: Entity, website: WebsiteData) -> Application:
    """新增网站: the website is kept as a draft (its domains reserved) until the bureau approves it."""
    if actor.role != Role.ISP or not permissions.can(actor, Action.FILING_CHANGE) or not any(
            _serves(actor, w) for w in entity.websites):
        raise NotFound()
    require_live(entity)
    if not any(a.isp_id == actor.id for a in website.accesses):
        raise WorkflowError(_l("Name yourself as an access provider of the new website."), "websites-0-accesses")
    names, problems = website_problems(website, 0, province_code=entity.province_code)
    raise_problems([*problems, *access_problems(website.accesses, 0)])
    _require_no_open_application(entity)  # before its draft website takes the domains
    row = website_row(entity, website, names)
    db.session.add(row)
    try:
        db.session.flush()
    except IntegrityError as race:
        raise WorkflowError(_l("A domain or certificate number was filed elsewhere at the same moment.")) from race
    return _new_application(actor, entity, ApplicationKind.NEW_WEBSITE, {"type": "new_website", "website_id": row.id})


# --- access (FAQ 64, 69) -------------------------------------------------------------------------------

def add_access(actor: User, website: Website, access: AccessData, code: str) -> Application:
    """新增接入 by an ISP not yet serving the website (also how a frozen website is revived), with the
    owner's consent: a single-use authorisation code (see `issue_access_code`)."""
    if not permissions.can(actor, Action.FILING_CHANGE) or actor.role != Role.ISP:
        raise NotFound()
    require_live(website.entity, website)
    if actor.id in _live_isps(website):
        raise WorkflowError(_l("You already provide access to this website."))
    if access.isp_id != actor.id:
        raise WorkflowError(_l("Name yourself as the access provider."), "isp_id")
    check_accesses([access], 0)
    _require_no_open_application(website.entity)
    consume_access_code(actor, website.entity, code)
    return _new_application(actor, website.entity, ApplicationKind.NEW_ACCESS,
                            {"type": "new_access", "website_id": website.id, "access": asdict(access)})


def cancel_access(actor: User, website: Website) -> Application | None:
    """取消接入: immediate while another ISP still serves the website; the last one goes to the bureau."""
    if not permissions.can(actor, Action.FILING_CHANGE) or not _serves(actor, website):
        raise NotFound()
    require_live(website.entity, website)
    access = next(a for a in website.accesses if a.live and a.isp_id == actor.id)
    if len(_live_isps(website)) > 1:
        access.live = False
        mark_stale()
        audit.record("access.cancelled", object_type="website", object_id=website.id,
                     province_code=website.entity.province_code, actor=actor, changes={"number": website.number})
        return None
    return _new_application(actor, website.entity, ApplicationKind.CANCEL_ACCESS,
                            {"type": "cancel_access", "website_id": website.id, "access_id": access.id})


# --- cancellation (注销) requested by the owner or its ISP ---------------------------------------------

def request_cancellation(actor: User, entity: Entity, website: Website | None, reason: str) -> Application:
    """注销 of one website or of the whole entity, audited by the bureau."""
    owner = actor.role == Role.ICP and entity.owner_id == actor.id
    isp = actor.role == Role.ISP and any(_serves(actor, w) for w in ([website] if website else entity.websites))
    if not (owner or isp) or (website is not None and website.entity_id != entity.id):
        raise NotFound()
    require_live(entity, website)
    if not reason.strip():
        raise WorkflowError(_l("Give the reason."), "reason")
    kind = ApplicationKind.CANCEL_WEBSITE if website else ApplicationKind.CANCEL_ENTITY
    proposal: dict[str, Any] = {"type": kind.value, "reason": reason.strip()[:500]}
    if website:
        proposal["website_id"] = website.id
    return _new_application(actor, entity, kind, proposal)


def withdraw_application(actor: User, application: Application) -> None:
    """A change, access or cancellation application not yet decided: its submitter withdraws it."""
    if application.kind == ApplicationKind.NEW_FILING or application.submitted_by_id != actor.id:
        raise NotFound()
    if application.state != ApplicationState.BUREAU_REVIEW:
        raise WorkflowError(_l("Only an application waiting for the bureau's audit can be withdrawn."))
    end_application(application, ApplicationState.WITHDRAWN)
    audit.record("application.withdrawn", object_type="application", object_id=application.id,
                 province_code=application.province_code, actor=actor, changes={"kind": application.kind.value})


def end_application(application: Application, state: ApplicationState) -> None:
    """A later application ends (rejected, withdrawn): it blocks nothing more, and the draft website of a
    new-website application is removed (its domains are free again)."""
    application.state = state
    if application.kind == ApplicationKind.NEW_WEBSITE:
        website_id = proposal_of(application).get("website_id")
        website = next((w for w in application.entity.websites if w.id == website_id), None)
        if website is not None and website.status == FilingStatus.DRAFT:
            db.session.delete(website)
            db.session.flush()
            db.session.expire(application.entity, ["websites"])
    db.session.flush()


# --- on the bureau's approval ------------------------------------------------------------------------

def apply_on_approval(actor: User, application: Application) -> None:
    """Carry out what the application asked (a cancellation ends the filing: see `end_filing`)."""
    proposal, entity = proposal_of(application), application.entity
    kind = application.kind
    if kind in ENDING_KINDS:
        website = _website_of(entity, proposal["website_id"]) if "website_id" in proposal else None
        end_filing(actor, entity, website, DisclosureKind.CANCELLED, proposal.get("reason", ""))
    if kind == ApplicationKind.CHANGE:
        _apply_change(entity, proposal)
    elif kind == ApplicationKind.NEW_ACCESS:
        website = _website_of(entity, proposal["website_id"])
        website.accesses.append(access_row(AccessData(**proposal["access"])))
        website.status = FilingStatus.ACTIVE
        entity.status = FilingStatus.ACTIVE
    elif kind == ApplicationKind.CANCEL_ACCESS:
        website = _website_of(entity, proposal["website_id"])
        for access in website.accesses:
            if access.id == proposal["access_id"]:
                access.live = False
                mark_stale()
        if not _live_isps(website):
            website.status = FilingStatus.NO_ACCESS  # frozen (FAQ 69); stays in the registry


def _apply_change(entity: Entity, proposal: dict[str, Any]) -> None:
    if proposal["type"] == "responsible":
        for key in ("responsible_name", "responsible_id_number", "responsible_mobile", "responsible_email"):
            setattr(entity, key, proposal[key])
        return
    website = _website_of(entity, proposal["website_id"])
    if proposal["type"] == "add_domains":
        website.domains.extend(domain_row(name) for name in proposal["domains"])
    else:
        website.name, website.home_url = proposal["name"], proposal["home_url"]
        website.service_content = proposal["service_content"]
    try:
        db.session.flush()
    except IntegrityError as race:
        raise WorkflowError(_l("A domain of this change was filed elsewhere meanwhile.")) from race


# --- the end of a filing: cancellation, revocation, 吊销 -----------------------------------------------

def end_filing(actor: User, entity: Entity, website: Website | None, kind: DisclosureKind, reason: str) -> str:
    """One website, or the whole entity (also when its last website ends): status, certificate revoked
    or re-issued without the website, number void forever, public list entry, e-mails, audit event.
    Returns the number that ended."""
    status = FilingStatus.CANCELLED if kind == DisclosureKind.CANCELLED else FilingStatus.REVOKED
    ending = [website] if website else [w for w in entity.websites if w.status in (*LIVE_STATUSES, FilingStatus.DRAFT)]
    isp_ids = set().union(*(_live_isps(w) for w in ending))
    for site in ending:
        site.status = status
        for domain in site.domains:
            domain.live = False
        for access in site.accesses:
            access.live = False
    mark_stale()  # the ended accesses leave the IP findings
    whole = website is None or not any(w.status in LIVE_STATUSES for w in entity.websites)
    if whole:
        entity.status = status
        db.session.execute(update(Certificate).where(
            Certificate.entity_id == entity.id, Certificate.status == CertificateStatus.CURRENT)
            .values(status=CertificateStatus.REVOKED))
        _close_open_applications(entity, reason)
    db.session.flush()
    certificates = {} if whole else issue_certificates([entity])  # the filing's new one, without the website
    number = entity.number if whole else website.number
    db.session.add(DisclosureEntry(kind=kind, number=number, unit_name=entity.unit_name,
                                   province_code=entity.province_code))
    _queue_end_emails(entity, number, kind, reason, isp_ids)
    events.filing_ended(entity, website, kind, number, reason, serving=isp_ids, whole=whole, certificates=certificates)
    audit.record(f"filing.{kind.value}", object_type="entity", object_id=entity.id, actor=actor,
                 province_code=entity.province_code, changes={"number": number, "reason": reason})
    return number


def _close_open_applications(entity: Entity, reason: str) -> None:
    """An application still open on an ended filing is withdrawn: it can never be decided."""
    for application in db.session.scalars(select(Application).where(
            Application.entity_id == entity.id, Application.state.not_in(CLOSED_APPLICATION_STATES))):
        application.state = ApplicationState.WITHDRAWN
        application.reasons = json.dumps({"ended": reason}, ensure_ascii=False)


def _queue_end_emails(entity: Entity, number: str, kind: DisclosureKind, reason: str, isp_ids: set[int]) -> None:
    word = END_WORDS[kind]
    body = (f"尊敬的用户，备案号 {number}（{entity.unit_name}）已被{word}。原因：{reason or '无'}。"
            "该号码作废，不再使用。")
    isp_emails = db.session.scalars(select(User.email).where(User.id.in_(isp_ids), User.email != ""))
    recipients = [entity.responsible_email, *isp_emails]
    notify.queue_emails([{"recipient": address, "subject": f"ICP备案{word}通知", "body": body}
                         for address in dict.fromkeys(recipients) if address])


# --- revocation requests (FAQ 35–37, 31) and direct revocation (FAQ 39) -------------------------------

def find_by_number(number: str) -> tuple[Entity, Website | None]:
    """An entity number, a website number (…号-n) or a licence number → the live filing; else WorkflowError."""
    text = number.strip()
    website = db.session.scalar(select(Website).where(Website.number == text)) if "-" in text else None
    entity = website.entity if website else db.session.scalar(select(Entity).where(
        or_(Entity.number == text, Entity.licence_number == text)))
    if entity is None or entity.status not in LIVE_STATUSES or (
            website is not None and website.status not in LIVE_STATUSES):
        raise WorkflowError(_l("No filing in force has the number %(number)s.", number=text), "number")
    return entity, website


def request_revocation(actor: User, entity: Entity, website: Website | None, reason: str) -> RevocationRequest:
    if not permissions.may_request_revocation(actor, entity):
        raise NotFound()
    require_live(entity, website)
    if not reason.strip():
        raise WorkflowError(_l("Give the reason."), "reason")
    request = RevocationRequest(entity=entity, website=website, province_code=entity.province_code,
                                reason=reason.strip()[:500], requester_id=actor.id,
                                processor_role=Role.MIIT if actor.role == Role.BUREAU else Role.BUREAU)
    db.session.add(request)
    db.session.flush()
    audit.record("revocation.requested", object_type="revocation_request", object_id=request.id, actor=actor,
                 province_code=entity.province_code, changes={"number": (website or entity).number,
                                                              "reason": request.reason})
    return request


def _own_pending(actor: User, request: RevocationRequest) -> None:
    if request.requester_id != actor.id:
        raise NotFound()
    if request.state != RequestState.PENDING:
        raise WorkflowError(_l("This request has already been processed."))


def edit_revocation_request(actor: User, request: RevocationRequest, reason: str) -> None:
    _own_pending(actor, request)
    if not reason.strip():
        raise WorkflowError(_l("Give the reason."), "reason")
    request.reason = reason.strip()[:500]
    audit.record("revocation.edited", object_type="revocation_request", object_id=request.id, actor=actor,
                 province_code=request.province_code, changes={"reason": request.reason})


def delete_revocation_request(actor: User, request: RevocationRequest) -> None:
    _own_pending(actor, request)
    audit.record("revocation.deleted", object_type="revocation_request", object_id=request.id, actor=actor,
                 province_code=request.province_code)
    db.session.delete(request)
    db.session.flush()


def process_revocation_requests(actor: User, requests: list[RevocationRequest], accept: bool,
                                decision_reason: str = "") -> list[RevocationRequest]:
    """Accept (the filings are revoked) or refuse (with a reason) — all or nothing."""
    for request in requests:
        if not permissions.may_process_revocation(actor, request):
            raise NotFound()
        if request.state != RequestState.PENDING:
            raise WorkflowError(_l("This request has already been processed."))
    if not accept and not decision_reason.strip():
        raise WorkflowError(_l("Give the reason for refusing."), "reason")
    now = utcnow()
    for request in requests:
        if accept and request.entity.status in LIVE_STATUSES and (
                request.website is None or request.website.status in LIVE_STATUSES):
            end_filing(actor, request.entity, request.website, DisclosureKind.REVOKED, request.reason)
        request.state = RequestState.DONE if accept else RequestState.REFUSED
        request.decided_by_id, request.decided_at = actor.id, now
        request.decision_reason = decision_reason.strip()[:500]
        audit.record("revocation.accepted" if accept else "revocation.refused", object_type="revocation_request",
                     object_id=request.id, actor=actor, province_code=request.province_code,
                     changes={"reason": request.decision_reason} if request.decision_reason else {})
    return requests


def revocation_target(actor: User, number: str) -> tuple[Entity, Website | None]:
    """What a direct revocation of `number` would end, if the actor may revoke it (its province, or MIIT)."""
    if not permissions.can(actor, Action.FILING_REVOKE):
        raise WorkflowError(_l("You may not revoke filings."))
    entity, website = find_by_number(number)
    if not permissions.in_actor_province(actor, entity.province_code):
        raise WorkflowError(_l("No filing in force has the number %(number)s.", number=number.strip()), "number")
    return entity, website


def revoke_by_number(actor: User, number: str, reason: str, licence: bool = False) -> str:
    """FAQ 39 撤销 by number (bureau of the province, MIIT); `licence`: 吊销 of a commercial licence."""
    if not reason.strip():
        raise WorkflowError(_l("Give the reason."), "reason")
    entity, website = revocation_target(actor, number)
    if licence:
        if not entity.licence_number:
            raise WorkflowError(_l("This filing holds no commercial licence."), "number")
        return end_filing(actor, entity, None, DisclosureKind.LICENCE_REVOKED, reason.strip()[:500])
    return end_filing(actor, entity, website, DisclosureKind.REVOKED, reason.strip()[:500])
