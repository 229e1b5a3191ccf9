"""Which outcomes become events in the data-exchange feed (issue 16 §4), whom each concerns and what it says;
and the webhook a credential registers to have them pushed (§5; the delivery is `webhooks`, the worker's).

The workflow functions call these where the outcome happens, in the outcome's transaction (`exchange.emit_many`
only inserts: it waits for nobody). Each builds its events in bulk — one query for the users holding a
credential, one for the ISPs of up to 1,000 filings, one INSERT — so that a 10,000-application batch approval pays a
few statements per chunk, not a few per application (and nothing more when none of its users holds a credential).

Recipients of a filing's events: the user who created or submitted the application, the owner's ICP account, and
the ISPs with a live access to the filing at the moment of the event (an ISP whose access ended gets nothing
later). An IP finding goes to the reporting unit that must act. Only users holding a credential with the
`events` scope (in force) get events: the feed is the API's, and a user without one would only pile rows up; a
credential made later starts from the events of then on.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select

import audit
import ipindex
import webhooks
from extensions import db
from models import (
    Access,
    ApiCredential,
    Application,
    DisclosureKind,
    DomainFlag,
    Entity,
    IpFinding,
    RectificationNotice,
    Verdict,
    Website,
    utcnow,
)
from workflow import exchange
from workflow.errors import WorkflowError

if TYPE_CHECKING:
    from workflow.checks import DomainCheck
    from workflow.ip_findings import Found

CHUNK = 1000
#: events per INSERT when an outcome makes very many (a first IP-findings run)
EMIT_CHUNK = 10_000
#: the IP finding's columns that say which finding it is (its words may change with a unit's name)
FINDING_KEY = ("kind", "unit_id", "other_unit_id", "record_kind", "record_id", "start_key", "end_key")

Event = tuple[int, str, str, object, dict[str, Any]]


# --- recipients ------------------------------------------------------------------------------------------------

def holders() -> set[int]:
    """The users holding a credential in force with the `events` scope: the API's users, a few hundred at most —
    one small query, and an outcome that concerns none of them costs nothing more."""
    now = utcnow()
    return set(db.session.scalars(select(ApiCredential.user_id).where(
        ApiCredential.revoked_at.is_(None), or_(ApiCredential.expires_at.is_(None), ApiCredential.expires_at > now),
        ApiCredential.scopes.contains("events")).distinct()))


def live_isps(entity_ids: Iterable[int], among: set[int]) -> dict[int, set[int]]:
    """Entity id → the ISPs of `among` with a live access to one of its websites now (after the caller's
    changes)."""
    ids, found = sorted(set(entity_ids)), {}
    for start in range(0, len(ids) if among else 0, CHUNK):
        for entity_id, isp_id in db.session.execute(
                select(Website.entity_id, Access.isp_id).join(Access, Access.website_id == Website.id)
                .where(Website.entity_id.in_(ids[start:start + CHUNK]), Access.live, Access.isp_id.in_(among))
                .distinct()):
            found.setdefault(entity_id, set()).add(isp_id)
    return found


def _emit(events: list[tuple[set[int], str, str, object, dict[str, Any]]]) -> None:
    """(recipients, kind, object type, object id, payload) → one event per recipient, in INSERTs of EMIT_CHUNK."""
    rows: list[Event] = [(user_id, kind, object_type, object_id, payload)
                         for recipients, kind, object_type, object_id, payload in events
                         for user_id in sorted(recipients)]
    for start in range(0, len(rows), EMIT_CHUNK):
        exchange.emit_many(rows[start:start + EMIT_CHUNK])


def _of_application(application: Application, isps: dict[int, set[int]], allowed: set[int]) -> set[int]:
    return {application.created_by_id, application.submitted_by_id, application.entity.owner_id,
            *isps.get(application.entity_id, ())} & allowed


def _application_payload(application: Application, **extra: Any) -> dict[str, Any]:
    entity = application.entity
    return {"application_id": application.id, "application_kind": application.kind.value,
            "state": application.state.value, "entity_id": entity.id, "unit_name": entity.unit_name, **extra}


# --- filings ---------------------------------------------------------------------------------------------------

def applications_approved(applications: Sequence[Application], certificates: dict[int, tuple[str, str]],
                          checks: dict[int, list[DomainCheck]]) -> None:
    """`application.approved`: the numbers it holds now, its new certificate's id, the registrant-check verdicts
    of the domains it filed."""
    if not (allowed := holders()):
        return
    isps = live_isps((application.entity_id for application in applications), allowed)
    events = []
    for application in applications:
        if not (recipients := _of_application(application, isps, allowed)):
            continue
        entity = application.entity
        payload = _application_payload(
            application, status=entity.status.value, number=entity.number, licence_number=entity.licence_number,
            websites=[{"id": w.id, "number": w.number, "status": w.status.value} for w in entity.websites if w.number],
            certificate_id=certificates[entity.id][0] if entity.id in certificates else None,
            domains={check.domain: check.verdict.value for check in checks.get(application.id, ())})
        events.append((recipients, "application.approved", "application", application.id, payload))
    _emit(events)


def application_sent_back(application: Application, kind: str, reasons: dict[str, str]) -> None:
    """`application.rejected` (the bureau: a new filing back to its draft, a later application ended) or
    `application.returned` (an ISP's verification), with the reasons by field."""
    allowed = holders()
    if recipients := _of_application(application, live_isps([application.entity_id], allowed), allowed):
        _emit([(recipients, kind, "application", application.id, _application_payload(application, reasons=reasons))])


def filing_ended(entity: Entity, website: Website | None, kind: DisclosureKind, number: str, reason: str, *,
                 serving: set[int], whole: bool, certificates: dict[int, tuple[str, str]]) -> None:
    """`filing.cancelled` / `filing.revoked` / `filing.licence_revoked` — of the whole filing, or of one website
    with the id of the filing's new certificate: to the owner, the ISPs that served what ended (`serving`, read
    before their accesses ended) and those still serving the rest of the filing."""
    remaining = {access.isp_id for site in entity.websites for access in site.accesses if access.live}
    if recipients := {entity.owner_id, *serving, *remaining} & holders():
        _emit([(recipients, f"filing.{kind.value}", "entity", entity.id, {
            "entity_id": entity.id, "website_id": website.id if website else None, "number": number, "whole": whole,
            "status": entity.status.value, "reason": reason,
            "certificate_id": certificates[entity.id][0] if entity.id in certificates else None})])


# --- the registrant check after approval (issue 14) ---------------------------------------------------------------

def domain_verdicts(changed: Sequence[tuple[Website, Entity, DomainFlag, Verdict, str]]) -> None:
    """`domain.flagged` (a filed domain's registrant check fails, or fails otherwise now) and `domain.resolved`
    (it passes again) with the verdict now: to the filing's owner and live ISPs."""
    if not changed or not (allowed := holders()):
        return
    isps = live_isps((entity.id for _website, entity, *_rest in changed), allowed)
    _emit([(recipients, f"domain.{state}", "website", website.id,
            {"website_id": website.id, "website_number": website.number, "entity_id": entity.id,
             "domain": flag.domain, "verdict": verdict.value, "detail": flag.detail})
           for website, entity, flag, verdict, state in changed
           if (recipients := {entity.owner_id, *isps.get(entity.id, ())} & allowed)])


# --- IP findings (issue 13) -----------------------------------------------------------------------------------------

def finding_keys(units: set[int]) -> dict[tuple[Any, ...], dict[str, Any]]:
    """The findings stored now of these units, by what identifies them (read before a run replaces them)."""
    columns = [getattr(IpFinding, name) for name in (*FINDING_KEY, "code", "detail")]
    found = {}
    ids = sorted(units)
    for start in range(0, len(ids), CHUNK):
        for row in db.session.execute(select(*columns).where(IpFinding.unit_id.in_(ids[start:start + CHUNK]))):
            found[tuple(str(value) if value is not None else None for value in row[:len(FINDING_KEY)])] = \
                row._asdict()
    return found


def findings_changed(before: dict[tuple[Any, ...], dict[str, Any]], found: Sequence[Found], codes: dict[Any, str],
                     units: set[int]) -> None:
    """`ip.finding_opened` for each finding of `units` (those holding a credential, read with `finding_keys`)
    that the previous run did not have, `ip.finding_resolved` for each it had that this run no longer finds."""
    now: dict[tuple[Any, ...], dict[str, Any]] = {}
    for item in found:
        if item.unit_id in units:
            row = {name: getattr(item, name) for name in FINDING_KEY} | {"code": codes[item.kind],
                                                                          "detail": item.detail}
            now[tuple(str(row[name]) if row[name] is not None else None for name in FINDING_KEY)] = row
    events = [({row["unit_id"]}, f"ip.finding_{state}", row["record_kind"], row["record_id"], _finding_payload(row))
              for state, rows in (("opened", [now[key] for key in now.keys() - before.keys()]),
                                  ("resolved", [before[key] for key in before.keys() - now.keys()]))
              for row in rows]
    _emit(sorted(events, key=lambda event: (event[1], str(event[3]))))


def _finding_payload(row: dict[str, Any]) -> dict[str, Any]:
    return {"kind": str(row["kind"]), "code": row["code"], "record_kind": row["record_kind"],
            "record_id": row["record_id"], "range": ipindex.range_text(row["start_key"], row["end_key"]),
            "other_unit_id": row["other_unit_id"], "detail": row["detail"]}


# --- rectification notices (issue 18) ---------------------------------------------------------------------------

def rectification(notice: RectificationNotice, kind: str, website_number: str, **extra: Any) -> None:
    """`rectification.issued` / `rectification.answered` / `rectification.closed`: to the owner's ICP account and
    the ISPs with a live access to the website now."""
    if not (allowed := holders()):
        return
    isps = set(db.session.scalars(select(Access.isp_id).where(Access.website_id == notice.website_id, Access.live)))
    owner = db.session.scalar(select(Entity.owner_id).where(Entity.id == notice.entity_id))
    if recipients := {owner, *isps} & allowed:
        _emit([(recipients, kind, "rectification_notice", notice.id, {
            "notice_id": notice.id, "website_id": notice.website_id, "website_number": website_number,
            "entity_id": notice.entity_id, "checks": notice.checks.split(","), "message": notice.message,
            "deadline": notice.deadline.isoformat(), "state": notice.state.value, **extra})])


# --- the webhook (§5) -------------------------------------------------------------------------------------------------

def set_webhook(credential: ApiCredential, url: str) -> str:
    """Register or replace the credential's webhook; returns its new signing secret, shown this once. Delivery
    starts after the credential's acknowledged position, as the feed would."""
    url = url.strip()
    try:
        webhooks.check_url(url)
    except webhooks.WebhookUrlError as refused:
        raise WorkflowError(str(refused), "url") from refused
    secret = secrets.token_urlsafe(32)
    credential.webhook_url, credential.webhook_secret = url, secret
    credential.webhook_delivered_id = credential.acked_event_id
    credential.webhook_attempts, credential.webhook_next_at, credential.webhook_last_error = 0, None, ""
    audit.record("api_credential.webhook_set", object_type="api_credential", object_id=credential.id,
                 actor=credential.user, changes={"url": url, "from": credential.acked_event_id})
    return secret


def remove_webhook(credential: ApiCredential) -> None:
    if credential.webhook_url is None:
        raise WorkflowError("该凭证没有登记 Webhook。")
    audit.record("api_credential.webhook_removed", object_type="api_credential", object_id=credential.id,
                 actor=credential.user, changes={"url": credential.webhook_url})
    credential.webhook_url = credential.webhook_secret = credential.webhook_next_at = None
    credential.webhook_attempts, credential.webhook_last_error = 0, ""
