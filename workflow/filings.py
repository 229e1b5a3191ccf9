"""Filings: draft, submission, ISP verification, pre-approval, bureau audit, numbers, certificates (SPEC §3–§6)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask import current_app
from flask_babel import format_datetime
from flask_babel import lazy_gettext as _l
from sqlalchemy import bindparam, exists, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload
from sqlalchemy.orm.attributes import set_committed_value

import audit
import ipindex
import notify
import numbering
import permissions
import public_records
from extensions import db
from models import (
    Access,
    AccessRange,
    Application,
    ApplicationKind,
    ApplicationState,
    BlacklistEntry,
    BlacklistKind,
    Entity,
    FilingStatus,
    IspVerification,
    PreapprovalItem,
    Province,
    ReviewState,
    Role,
    User,
    Website,
    utcnow,
)
from workflow import events, registrant, special_content
from workflow.checks import (
    EntityData,
    WebsiteData,
    entity_values,
    filing_problems,
    normalised_domains,
    website_row,
)
from workflow.deadlines import deadline_values, start_deadline
from workflow.errors import NotFound, WorkflowError, raise_problems
from workflow.imports import WRITE_PAUSE
from workflow.ip_findings import mark_stale
from workflow.issuing import issue_certificates
from workflow.lifecycle import ENDING_KINDS, KIND_WORDS, UNBLOCKED_KINDS, apply_on_approval, end_application

# --- filings: draft, submit, ISP verification, pre-approval, bureau audit (SPEC §3–§6) ----------

def _may_file_for(actor: User, application: Application | None, websites: list[WebsiteData]) -> bool:
    """ICP users file for themselves; an ISP for a customer it serves, named on every website (SPEC §4).
    An existing draft is edited only by its owner or the ISP that created it."""
    if application is not None and not permissions.may_edit_application(actor, application):
        return False
    if actor.role == Role.ICP:
        return permissions.can(actor, permissions.Action.FILING_CREATE)
    if actor.role == Role.ISP:
        return permissions.can(actor, permissions.Action.FILING_CREATE) and all(
            any(a.isp_id == actor.id for a in w.accesses) for w in websites)
    return False


def check_filing_draft(actor: User, entity_data: EntityData, websites: list[WebsiteData],
                       application: Application | None = None) -> None:
    """What saving a draft checks (the application's state, who may file, every field): WorkflowError if refused."""
    entity = application.entity if application else None
    if application is not None and (application.state != ApplicationState.DRAFT
                                    or application.kind != ApplicationKind.NEW_FILING):
        raise WorkflowError(_l("Only a draft or a returned application can be edited."))
    if not _may_file_for(actor, application, websites):
        raise NotFound()
    if not websites:
        raise WorkflowError(_l("A filing has at least one website."), "websites")
    own_ids = {w.id for w in entity.websites} if entity else set()
    raise_problems(filing_problems(entity_data, websites, entity.id if entity else None, own_ids))


def new_entity_values(actor: User) -> dict[str, Any]:
    """A new filing's entity: the ICP user's own; filed by an ISP for its customer, nobody's account's."""
    return {"owner_id": actor.id if actor.role == Role.ICP else None, "status": FilingStatus.DRAFT, "website_seq": 0}


def save_filing_draft(actor: User, entity_data: EntityData, websites: list[WebsiteData],
                      application: Application | None = None) -> Application:
    """Create or replace the draft of a new filing (the wizard's data); nothing is submitted."""
    check_filing_draft(actor, entity_data, websites, application)
    entity = application.entity if application else None
    if entity is None:
        entity = Entity(**new_entity_values(actor))
        db.session.add(entity)
    for name, value in entity_values(entity_data).items():
        setattr(entity, name, value)
    for old in list(entity.websites):
        db.session.delete(old)
    db.session.flush()
    for index, website in enumerate(websites):
        row = website_row(entity, website, normalised_domains(website, index))
        db.session.add(row)
    if application is None:
        application = Application(entity=entity, province_code=entity.province_code, created_by_id=actor.id,
                                  kind=ApplicationKind.NEW_FILING, state=ApplicationState.DRAFT)
        db.session.add(application)
    application.province_code = entity.province_code
    try:
        db.session.flush()
    except IntegrityError as race:
        raise WorkflowError(_l("A domain or certificate number was filed elsewhere at the same moment."
                               )) from race
    audit.record("application.draft_saved", object_type="application", object_id=application.id,
                 province_code=entity.province_code, actor=actor)
    return application


def _isps_of(application: Application) -> set[int]:
    return {a.isp_id for w in application.entity.websites for a in w.accesses if a.live}


def submit_application(actor: User, application: Application) -> Application:
    """draft → isp_review, one verification row per ISP named; the submitting ISP counts as verified.
    A returned or rejected application is submitted again the same way: its old verification rows go first."""
    if application.state != ApplicationState.DRAFT or application.kind != ApplicationKind.NEW_FILING:
        if not db.session.scalar(select(Application.id).where(Application.id == application.id,
                                                              permissions.application_scope(actor))):
            raise NotFound()
        raise WorkflowError(_l("Only a draft or a returned application can be submitted."))
    if not permissions.may_edit_application(actor, application):
        raise NotFound()
    _require_not_ended(application.entity)
    application.verifications.clear()
    db.session.flush()  # the unique (application, ISP) pair: delete the old rows before inserting the new
    verifications, values = submission(actor, _isps_of(application), utcnow())
    application.verifications = [IspVerification(**row) for row in verifications]
    for name, value in values.items():
        setattr(application, name, value)
    special_content.open_items(actor, application)
    audit.record("application.submitted", object_type="application", object_id=application.id,
                 province_code=application.province_code, actor=actor)
    return application


def submission(actor: User, isp_ids: set[int], now: datetime) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """What submitting writes: a verification row per ISP named (the submitting ISP's confirmed at once) and the
    application's new values — in ISP review, or straight to the bureau with its deadline started when every ISP
    named has verified (also written set-based by the API's batch, workflow.filing_batch)."""
    rows = [{"isp_id": isp_id, "state": ReviewState.CONFIRMED if isp_id == actor.id else ReviewState.PENDING,
             "at": now if isp_id == actor.id else None} for isp_id in sorted(isp_ids)]
    values: dict[str, Any] = {"submitted_by_id": actor.id, "submitted_at": now, "reasons": "{}",
                              "state": ApplicationState.ISP_REVIEW}
    if _all_verified(row["state"] for row in rows):
        values.update(state=ApplicationState.BUREAU_REVIEW, **deadline_values(now))
    return rows, values


def _all_verified(states: Iterable[ReviewState]) -> bool:
    """FAQ 66–67: an application leaves ISP review once every ISP named has verified it."""
    return all(state == ReviewState.CONFIRMED for state in states)


def _advance_after_isp(application: Application) -> None:
    if _all_verified(v.state for v in application.verifications):
        application.state = ApplicationState.BUREAU_REVIEW
        start_deadline(application)


def _verification_of(actor: User, application: Application) -> IspVerification:
    row = next((v for v in application.verifications if v.isp_id == actor.id), None)
    if actor.role != Role.ISP or row is None:
        raise NotFound()
    if application.state != ApplicationState.ISP_REVIEW or row.state != ReviewState.PENDING:
        raise WorkflowError(_l("This application is not waiting for your verification."))
    return row


def isp_verify(actor: User, application: Application) -> Application:
    """FAQ 66–67: stays in ISP review until every ISP named has verified."""
    row = _verification_of(actor, application)
    checks = registrant.application_checks(application)
    raise_problems((None, message) for message in registrant.blocker_messages(checks))
    row.state, row.at = ReviewState.CONFIRMED, utcnow()
    _advance_after_isp(application)
    audit.record("application.isp_verified", object_type="application", object_id=application.id,
                 province_code=application.province_code, actor=actor,
                 changes={"domains": registrant.audited(checks)} if checks else None)
    return application


def batch_isp_verify(actor: User, applications: list[Application]) -> list[Application]:
    """An ISP verifies many applications at once (待核实备案): all or nothing."""
    return [isp_verify(actor, application) for application in applications]


def isp_return(actor: User, application: Application, reason: str) -> Application:
    if not reason.strip():
        raise WorkflowError(_l("Give the reason for returning the application."), "reason")
    row = _verification_of(actor, application)
    row.state, row.at, row.reason = ReviewState.RETURNED, utcnow(), reason.strip()[:500]
    application.state = ApplicationState.DRAFT
    application.reasons = json.dumps({"isp": reason.strip()[:500]}, ensure_ascii=False)
    audit.record("application.isp_returned", object_type="application", object_id=application.id,
                 province_code=application.province_code, actor=actor, changes={"reason": reason.strip()[:500]})
    events.application_sent_back(application, "application.returned", {"isp": reason.strip()[:500]})
    return application


def review_preapproval(actor: User, item: PreapprovalItem, confirmed: bool, reason: str = "") -> PreapprovalItem:
    """A pre-approval authority confirms or disputes one item of its category (and province)."""
    if not permissions.may_review_preapproval(actor, item):
        raise NotFound()
    if not confirmed and not reason.strip():
        raise WorkflowError(_l("Give the reason for disputing the item."), "reason")
    item.state = ReviewState.CONFIRMED if confirmed else ReviewState.RETURNED
    item.reviewer_id, item.reviewed_at, item.reason = actor.id, utcnow(), reason.strip()[:500]
    audit.record("preapproval.confirmed" if confirmed else "preapproval.disputed", object_type="preapproval",
                 object_id=item.id, province_code=item.website.entity.province_code, actor=actor,
                 changes={"reason": item.reason} if item.reason else {})
    return item


NOT_WAITING = _l("This application is not waiting for the bureau's audit.")
ENDED = _l("This filing has been cancelled or revoked: file again as a new filing (FAQ 8).")
ENDED_STATUSES = (FilingStatus.CANCELLED, FilingStatus.REVOKED)


def _require_bureau_review(actor: User, application: Application) -> None:
    if not permissions.may_audit(actor, application.province_code):
        raise NotFound()
    if application.state != ApplicationState.BUREAU_REVIEW:
        raise WorkflowError(NOT_WAITING)
    _require_not_ended(application.entity)


def _require_not_ended(entity: Entity) -> None:
    if entity.status in ENDED_STATUSES:
        raise WorkflowError(ENDED)


def _blacklist_hits(applications: list[Application]) -> set[tuple[str, str]]:
    """The (kind, value) pairs of these applications that are on the blacklist: one query."""
    wanted = set()
    for application in applications:
        entity = application.entity
        wanted |= {(BlacklistKind.CERTIFICATE_NUMBER.value, entity.certificate_number),
                   (BlacklistKind.UNIT_NAME.value, entity.unit_name)}
        wanted |= {(BlacklistKind.DOMAIN.value, d.name) for w in entity.websites for d in w.domains}
    values = sorted({value for _kind, value in wanted})
    hits = set()
    for start in range(0, len(values), 5000):
        chunk = values[start:start + 5000]
        hits |= {(str(kind), value) for kind, value in db.session.execute(
            select(BlacklistEntry.kind, BlacklistEntry.value).where(BlacklistEntry.value.in_(chunk)))}
    return hits & wanted


def approval_blockers(application: Application, hits: set[tuple[str, str]] | None = None,
                      checks: list[registrant.DomainCheck] | None = None) -> list[str]:
    """Why the bureau cannot approve yet (unconfirmed pre-approval or special filing, blacklisted value, under the
    "block" policy a domain whose registrant check fails)."""
    if application.kind in UNBLOCKED_KINDS:
        return []
    hits = _blacklist_hits([application]) if hits is None else hits
    checks = registrant.application_checks(application) if checks is None else checks
    entity, problems = application.entity, []
    for website in entity.websites:
        for item in website.preapprovals:
            if item.state != ReviewState.CONFIRMED:
                problems.append(str(_l("Pre-approval %(document)s of %(site)s is not confirmed.",
                                       document=item.document_number, site=website.name)))
        problems += [str(_l("The domain %(name)s is blacklisted.", name=d.name)) for d in website.domains
                     if (BlacklistKind.DOMAIN.value, d.name) in hits]
    if {(BlacklistKind.CERTIFICATE_NUMBER.value, entity.certificate_number),
            (BlacklistKind.UNIT_NAME.value, entity.unit_name)} & hits:
        problems.append(str(_l("The entity is blacklisted.")))
    return problems + special_content.blockers(application) + registrant.blocker_messages(checks)


def preload_filings(applications: list[Application]) -> list[Entity]:
    """Entities with their websites, domains, pre-approvals and special filings in a few queries, not one per row.

    The caller keeps what it returns: the session's identity map holds objects only weakly."""
    ids, loaded = [a.entity_id for a in applications], []
    for start in range(0, len(ids), 1000):
        loaded += db.session.scalars(select(Entity).where(Entity.id.in_(ids[start:start + 1000])).options(
            selectinload(Entity.websites).selectinload(Website.domains),
            selectinload(Entity.websites).selectinload(Website.preapprovals),
            selectinload(Entity.websites).selectinload(Website.special_item))).all()
    return loaded


def approve(actor: User, application: Application, typed_number: str | None = None) -> Application:
    """管局审核通过, 手工审核 (FAQ 32): the number typed by the auditor or generated."""
    return _approve_all(actor, [application], typed_number)[0]


def batch_approve(actor: User, applications: list[Application]) -> list[Application]:
    """FAQ 32 自动审核 in the caller's one transaction: numbers always generated; all or nothing. The console
    approves in short transactions instead (`batch_approve_chunked`)."""
    return _approve_all(actor, applications, None)


def _approve_all(actor: User, applications: list[Application], typed_number: str | None) -> list[Application]:
    """Everything checked first, then carried out; a refusal (the first problem found) refuses them all."""
    entities = preload_filings(applications)  # before the checks: `application.entity` then needs no query per row
    for application in applications:
        _require_bureau_review(actor, application)
    if typed_number and any(a.kind != ApplicationKind.NEW_FILING for a in applications):
        raise WorkflowError(_l("A number can be typed for a new filing only."), "number")
    checks, problems = _approval_checks(applications)
    for application in applications:
        if found := problems.get(application.id):
            raise WorkflowError(f"{application.entity.unit_name}: {found[0]}" if len(applications) > 1
                                else found[0])
    _carry_out(actor, applications, {entity.id: entity for entity in entities}, checks, typed_number)
    return applications


def approval_review(applications: list[Application]) -> tuple[dict[int, list[registrant.DomainCheck]],
                                                                 dict[int, list[str]]]:
    """For a batch's confirmation page: each application's registrant checks and, of those that cannot be approved
    now, why — the filings, the blacklist and the domain reports read in a few queries (1,000 applications: not
    4,000 queries)."""
    entities = preload_filings(applications)  # held while the checks read them (the identity map holds them weakly)
    review = _approval_checks(applications)
    del entities
    return review


def _approval_checks(applications: list[Application]) -> tuple[dict[int, list[registrant.DomainCheck]],
                                                                   dict[int, list[str]]]:
    """The registrant checks of each application and, of those that cannot be approved now, why (its
    blockers): the blacklist and the domain reports read once for all of them."""
    hits, reports = _blacklist_hits(applications), registrant.preload_reports(applications)
    checks = {application.id: registrant.application_checks(application, reports) for application in applications}
    problems = {application.id: found for application in applications
                if (found := approval_blockers(application, hits, checks[application.id]))}
    return checks, problems


def _carry_out(actor: User, applications: list[Application], by_id: dict[int, Entity],
               checks: dict[int, list[registrant.DomainCheck]], typed_number: str | None) -> None:
    """In the caller's transaction (SPEC §4): what the applications ask, numbers, certificates, e-mails, audit
    events — set-based, so that a batch of thousands costs a few statements per table rather than a dozen per
    application. A cancellation ends the filing instead (no number, no new certificate)."""
    for application in applications:
        registrant.queue_failing(checks[application.id])
    now = utcnow()
    kept = [a for a in applications if a.kind not in ENDING_KINDS]
    entities = [by_id[application.entity_id] for application in kept]
    _assign_numbers(entities, typed_number, now.year)  # first: a typed number may still be refused
    with db.session.no_autoflush:  # the numbers just given are written by `_store`, not by a flush
        _store(Application, {application: {"state": ApplicationState.APPROVED, "decided_by_id": actor.id,
                                            "decided_at": now} for application in applications})
    for application in applications:  # decided first: a cancellation withdraws the filing's open applications
        apply_on_approval(actor, application)
    with db.session.no_autoflush:
        numbered = _new_website_numbers(entities, now)
        _store(Entity, {entity: {"number": entity.number, "licence_number": entity.licence_number,
                                 "website_seq": entity.website_seq + sum(w in numbered for w in entity.websites),
                                 "status": FilingStatus.ACTIVE, "approved_at": entity.approved_at or now}
                        for entity in entities})
        _store(Website, numbered)
    public_records.touch(entity.id for entity in entities)  # `_store` writes past the session's notice
    db.session.flush()  # what `apply_on_approval` changed through the ORM (a change's new domains, an access)
    _index_access_ranges(entities)
    tokens = issue_certificates(entities)
    events.applications_approved(applications, tokens, checks)
    day = format_datetime(now, "yyyy-MM-dd")
    notify.queue_emails([_approval_email(a, by_id[a.entity_id], tokens[a.entity_id][1], day) for a in kept])
    audit.record_many([("application.approved", {
        "object_type": "application", "object_id": a.id, "province_code": a.province_code, "actor": actor,
        "changes": {"kind": a.kind.value, "number": a.entity.number, "typed": bool(typed_number),
                    "certificate": tokens[a.entity_id][0] if a.entity_id in tokens else None,
                    **({"domains": registrant.audited(checks[a.id])} if checks[a.id] else {})},
    }) for a in applications])


# --- 自动审核 in short transactions (issue 15): each chunk commits, the outcome says exactly what happened ------

@dataclass(frozen=True)
class Approved:
    """An application the batch approved, and the filing number it has (a cancellation: the ended filing's)."""

    application_id: int
    unit_name: str
    number: str | None


@dataclass(frozen=True)
class NotApproved:
    """An application the batch left as it was, and why."""

    application_id: int
    unit_name: str
    reason: str


@dataclass
class BatchOutcome:
    """What a chunked batch approval did: every id given is in exactly one of the three lists."""

    approved: list[Approved] = field(default_factory=list)
    refused: list[NotApproved] = field(default_factory=list)
    #: ids not looked at because an error stopped the batch (their chunk was rolled back, later ones never began)
    not_done: list[int] = field(default_factory=list)
    stopped_by: str = ""


def batch_approve_chunked(actor: User, ids: list[int], chunk_size: int | None = None) -> BatchOutcome:
    """FAQ 32 自动审核 in short transactions of `BATCH_APPROVE_CHUNK` applications, each committed here: other
    writers wait for one chunk at most, not for the whole batch (on SQLite a short pause between chunks lets
    them take the lock). An application that cannot be approved is left out with its reason instead of
    refusing the batch. Numbers stay gap-free: a chunk's counter moves only by what it approves, and a chunk
    that fails rolls back whole. An unexpected error stops the batch; what was committed stays approved.

    Unlike the other workflow functions this one commits, starting with what the caller has pending."""
    size = chunk_size or current_app.config["BATCH_APPROVE_CHUNK"]
    wanted = list(dict.fromkeys(ids))
    outcome = BatchOutcome()
    db.session.commit()
    for start in range(0, len(wanted), size):
        try:
            _approve_chunk(actor, wanted[start:start + size], outcome)
        except Exception as error:  # the outcome says so and the log has the trace
            db.session.rollback()
            current_app.logger.exception("batch approval stopped at application %s", wanted[start])
            done = {item.application_id for item in (*outcome.approved, *outcome.refused)}
            outcome.not_done = [i for i in wanted[start:] if i not in done]
            outcome.stopped_by = str(_l("The batch stopped on an error (%(error)s).", error=_error_name(error)))
            return outcome
        if start + size < len(wanted) and db.session.get_bind().dialect.name == "sqlite":
            time.sleep(WRITE_PAUSE)  # other writers take SQLite's lock between two chunks
    return outcome


def _error_name(error: Exception) -> str:
    return error.message if isinstance(error, WorkflowError) else type(error).__name__


def _approve_chunk(actor: User, ids: list[int], outcome: BatchOutcome) -> None:
    """One transaction: the chunk's applications locked and read again, the approvable ones approved and
    committed. A refusal found only while carrying out (a domain filed elsewhere meanwhile) sends the chunk
    through again one application at a time, so that the refusal names its application."""
    found = _locked_applications(actor, ids)
    refused = [NotApproved(i, "", str(_l("Not found, or not of your province."))) for i in ids if i not in found]
    waiting = []
    for application in found.values():
        if reason := _state_refusal(application):
            refused.append(NotApproved(application.id, application.entity.unit_name, reason))
        else:
            waiting.append(application)
    checks, problems = _approval_checks(waiting)
    refused += [NotApproved(a.id, a.entity.unit_name, " ".join(problems[a.id])) for a in waiting if a.id in problems]
    chosen = [a for a in waiting if a.id not in problems]
    try:
        _carry_out(actor, chosen, {a.entity.id: a.entity for a in chosen}, checks, None)
    except WorkflowError as error:
        db.session.rollback()
        if len(ids) > 1:
            for one in ids:
                _approve_chunk(actor, [one], outcome)
        else:
            outcome.refused.append(NotApproved(ids[0], found[ids[0]].entity.unit_name, error.message))
        return
    approved = [Approved(a.id, a.entity.unit_name, a.entity.number) for a in chosen]
    db.session.commit()
    position = {application_id: index for index, application_id in enumerate(ids)}
    outcome.approved += approved
    outcome.refused += sorted(refused, key=lambda item: position[item.application_id])


def _locked_applications(actor: User, ids: list[int]) -> dict[int, Application]:
    """The applications of this bureau's province among `ids` in id order, with what approving them reads,
    their rows locked (PostgreSQL; SQLite's write transaction is serial anyway) and read afresh: a concurrent
    approval of the same application waits, then finds it approved."""
    if not permissions.can(actor, permissions.Action.FILING_AUDIT):
        return {}
    websites = selectinload(Application.entity).selectinload(Entity.websites)
    query = (select(Application).where(Application.id.in_(ids), Application.province_code == actor.province_code)
             .options(websites.selectinload(Website.domains), websites.selectinload(Website.preapprovals),
                      websites.selectinload(Website.special_item))
             .order_by(Application.id).with_for_update(of=Application)
             .execution_options(populate_existing=True))
    return {application.id: application for application in db.session.scalars(query)}


def _state_refusal(application: Application) -> str:
    """Why an application of the batch is not waiting for the bureau's audit any more (empty when it is)."""
    if application.state != ApplicationState.BUREAU_REVIEW:
        return str(NOT_WAITING)
    if application.entity.status in ENDED_STATUSES:
        return str(ENDED)
    return ""


def _new_website_numbers(entities: list[Entity], now: datetime) -> dict[Website, dict[str, Any]]:
    """The websites of these entities without a number yet: the next website numbers of their entity."""
    changes = {}
    for entity in entities:
        waiting = [website for website in entity.websites if website.number is None]
        for seq, website in enumerate(waiting, start=entity.website_seq + 1):
            changes[website] = {"number": numbering.website_number(entity.number, seq),
                                "status": FilingStatus.ACTIVE, "approved_at": now}
    return changes


def _store(model: type, changes: dict[Any, dict[str, Any]]) -> None:
    """Write these values (the same columns for every object) with one executemany UPDATE, and put them on the
    objects as stored: the unit of work's bookkeeping for thousands of changed objects cost about 1 ms per
    application, more than everything else an approval does (issue 15)."""
    if not changes:
        return
    table, first = model.__table__, next(iter(changes.values()))
    if all(values == first for values in changes.values()):  # one statement for all (an application's decision)
        ids = [obj.id for obj in changes]
        for start in range(0, len(ids), 1000):
            db.session.execute(table.update().where(table.c.id.in_(ids[start:start + 1000])).values(first))
    else:
        db.session.execute(table.update().where(table.c.id == bindparam("stored_id"))
                           .values({column: bindparam(column) for column in first}),
                           [{"stored_id": obj.id, **values} for obj, values in changes.items()])
    for obj, values in changes.items():
        for column, value in values.items():
            set_committed_value(obj, column, value)


def _index_access_ranges(entities: list[Entity]) -> None:
    """The live accesses of these approved filings not indexed yet, as `ipindex` rows (the lookup by IP)."""
    ids, indexed = [entity.id for entity in entities], False
    for start in range(0, len(ids), 1000):
        found = db.session.execute(select(Access.id, Access.ip_ranges).join(Website).where(
            Website.entity_id.in_(ids[start:start + 1000]), Access.live, Access.ip_ranges != "",
            ~exists().where(AccessRange.access_id == Access.id)))
        rows = [{"access_id": access_id, "bucket": bucket, "start_key": first, "end_key": last}
                for access_id, text in found for bucket, first, last in ipindex.range_rows(text)]
        if rows:
            db.session.execute(insert(AccessRange), rows)
            indexed = True
    if indexed:
        mark_stale()  # new filed ranges: the IP findings' 未报备 may change


def _assign_numbers(entities: list[Entity], typed_number: str | None, year: int) -> None:
    provinces = {p.code: p for p in db.session.scalars(select(Province))}
    if typed_number:
        (entity,) = entities
        if error := numbering.typed_number_error(typed_number, provinces[entity.province_code]):
            raise WorkflowError(error, "number")
        entity.number = typed_number.strip()
    waiting: dict[str, list[Entity]] = {}
    for entity in entities:
        if entity.number is None:
            waiting.setdefault(entity.province_code, []).append(entity)
    for code, group in sorted(waiting.items()):
        for entity, number in zip(group, numbering.allocate_filing_numbers(provinces[code], year, len(group)),
                                  strict=True):
            entity.number = number
    for entity in entities:
        if entity.commercial and entity.licence_number is None:
            entity.licence_number = numbering.allocate_licence_number(provinces[entity.province_code])


def reject(actor: User, application: Application, reasons: dict[str, str]) -> Application:
    """管局驳回: a reason per field where it applies. A new filing becomes editable again; a later application
    (change, access, cancellation) ends and blocks nothing."""
    _require_bureau_review(actor, application)
    reasons = {key: value.strip()[:500] for key, value in reasons.items() if value and value.strip()}
    if not reasons:
        raise WorkflowError(_l("Give at least one reason for rejecting."), "reason")
    application.decided_by_id, application.decided_at = actor.id, utcnow()
    application.reasons = json.dumps(reasons, ensure_ascii=False)
    if application.kind == ApplicationKind.NEW_FILING:
        application.state = ApplicationState.DRAFT  # the owner corrects it and submits again
    else:
        end_application(application, ApplicationState.REJECTED)  # asked again as a new application
    audit.record("application.rejected", object_type="application", object_id=application.id,
                 province_code=application.province_code, actor=actor, changes=reasons)
    events.application_sent_back(application, "application.rejected", reasons)
    return application


def _approval_email(application: Application, entity: Entity, token: str, day: str) -> dict[str, object]:
    """FAQ 53, with the licence wording for commercial entities, and the kind of a later application;
    the (new) certificate attached."""
    kind, number = ("许可证", entity.licence_number) if entity.commercial else ("备案", entity.number)
    kind += KIND_WORDS.get(application.kind, "")
    body = (f"尊敬的用户，您的ICP{kind}申请已通过审核，备案／许可证号为:{number}，"
            f"审核日期：{day}。附件一是您的电子证书。谢谢合作！")
    return {"recipient": entity.responsible_email, "subject": f"ICP{kind}审核通知", "body": body,
            "attachment_name": "bazs.cert", "attachment": token.encode("ascii")}
