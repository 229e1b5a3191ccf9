"""Many new filings saved and submitted at once (the data-exchange API's batch of up to 1,000, issue 16): for each,
what `save_filing_draft` + `submit_application` do, with a refusal per filing instead of one for all.

One by one those two cost about 8 ms a filing on SQLite (a dozen check queries, four flushes, two audit inserts);
the issue asks for 1,000 filings a second through the API. So the batch runs the very same checks
(`check_filing_draft`) with their reads preloaded once for the batch (`checks.preloaded_checks`, which also
counts an accepted filing's certificate number and domains as taken for the filings after it), then writes the
accepted ones set-based: one multi-row INSERT per table, their values from the same functions the ORM rows are
built from (`entity_values`, `website_values`, `submission`, …), and the same audit events.

A new filing needs no more than that: it has no earlier state, its creator may edit it, and it is not ended —
what `submit_application` checks beyond the draft's checks. A filing declaring special content (issue 17) goes
one by one: its submission also opens the special filing. tests/test_exchange_filings.py checks that both ways
write the same rows in every table. Should a concurrent writer take a certificate number
or domain between the checks and the INSERT (a unique index refuses it), the batch's writes are rolled back and
every filing goes through the one-by-one path instead, each in its own savepoint, so that only the filing that
lost the race is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

import audit
from extensions import db
from models import (
    Access,
    Application,
    ApplicationKind,
    Domain,
    Entity,
    IspVerification,
    PreapprovalItem,
    User,
    Website,
    utcnow,
)
from workflow import special_content
from workflow.checks import (
    EntityData,
    WebsiteData,
    access_values,
    domain_values,
    entity_values,
    normalised_domains,
    preapproval_values,
    preloaded_checks,
    website_values,
)
from workflow.errors import WorkflowError
from workflow.filings import check_filing_draft, new_entity_values, save_filing_draft, submission, submit_application

NewFiling = tuple[EntityData, list[WebsiteData]]


@dataclass(frozen=True)
class Filed:
    """A filing of the batch saved and submitted: its application and entity."""

    application_id: int
    entity_id: int


@dataclass
class _Accepted:
    position: int
    entity: dict[str, Any]
    websites: list[WebsiteData]
    domains: list[list[str]]


def submit_new_filings(actor: User, filings: Sequence[NewFiling]) -> list[Filed | WorkflowError]:
    """Each filing saved and submitted as the wizard's submission does: what it became, or why it was refused.
    A filing declaring special content goes the one-by-one way (its submission opens a special filing)."""
    plain = [position for position, (_entity, websites) in enumerate(filings) if _plain(websites)]
    outcomes = dict(zip(plain, _set_based(actor, [filings[position] for position in plain]), strict=True))
    special = [position for position in range(len(filings)) if position not in outcomes]
    outcomes.update(zip(special, one_by_one(actor, [filings[position] for position in special]), strict=True))
    return [outcomes[position] for position in range(len(filings))]


def _plain(websites: list[WebsiteData]) -> bool:
    """No website declares special content (issue 17): submitting writes nothing but the rows `_write` writes."""
    return not any(special_content.declaration(w.bbs, w.bbs_sections, w.service_content) for w in websites)


def _set_based(actor: User, filings: Sequence[NewFiling]) -> list[Filed | WorkflowError]:
    """The filings checked with their reads preloaded, the accepted ones written at once."""
    outcomes: dict[int, Filed | WorkflowError] = {}
    accepted: list[_Accepted] = []
    with preloaded_checks(filings) as known:
        for position, (entity, websites) in enumerate(filings):
            try:
                check_filing_draft(actor, entity, websites)
            except WorkflowError as refused:
                outcomes[position] = refused
                continue
            domains = [normalised_domains(website, index) for index, website in enumerate(websites)]
            known.take(entity, (name for names in domains for name in names))
            accepted.append(_Accepted(position, entity_values(entity), websites, domains))
    try:
        with db.session.begin_nested():
            for item, filed in zip(accepted, _write(actor, accepted), strict=True):
                outcomes[item.position] = filed
    except IntegrityError:
        return one_by_one(actor, filings)
    return [outcomes[position] for position in range(len(filings))]


def one_by_one(actor: User, filings: Sequence[NewFiling]) -> list[Filed | WorkflowError]:
    """The console's path for each filing, in its own savepoint (a refusal rolls back only that filing)."""
    outcomes: list[Filed | WorkflowError] = []
    for entity, websites in filings:
        try:
            with db.session.begin_nested():
                application = submit_application(actor, save_filing_draft(actor, entity, websites))
            outcomes.append(Filed(application.id, application.entity_id))
        except WorkflowError as refused:
            outcomes.append(refused)
    return outcomes


def _insert(model: Any, rows: list[dict[str, Any]], ids: bool = False) -> list[int]:
    """One multi-row INSERT; with `ids`, the new ids in the rows' order. SQLite cannot return them in order for a
    multi-row INSERT (SQLAlchemy would insert row by row): there they are the ids after the largest one before —
    SQLite writes one transaction at a time, and this one writes — as the import finds its rows."""
    if not rows:
        return []
    table, connection = model.__table__, db.session.connection()
    if not ids:
        connection.execute(insert(table), rows)
        return []
    if connection.dialect.name != "sqlite":
        return list(connection.execute(insert(table).returning(table.c.id, sort_by_parameter_order=True), rows)
                    .scalars())
    before = connection.execute(select(func.max(table.c.id))).scalar() or 0
    connection.execute(insert(table), rows)
    new = list(connection.execute(select(table.c.id).where(table.c.id > before).order_by(table.c.id)).scalars())
    if len(new) != len(rows):
        raise RuntimeError(f"{table.name}: {len(rows)} rows inserted, {len(new)} found")
    return new


def _write(actor: User, accepted: list[_Accepted]) -> list[Filed]:
    """The accepted filings' rows, as `save_filing_draft` + `submit_application` write them, and their audit events."""
    now = utcnow()
    entity_ids = _insert(Entity, [{**new_entity_values(actor), **item.entity, "created_at": now} for item in accepted],
                         ids=True)
    sites = [(entity_id, item, website, names) for entity_id, item in zip(entity_ids, accepted, strict=True)
             for website, names in zip(item.websites, item.domains, strict=True)]
    website_ids = _insert(Website, [{"entity_id": entity_id, **website_values(website)}
                                    for entity_id, _item, website, _names in sites], ids=True)
    placed = list(zip(website_ids, sites, strict=True))
    _insert(Domain, [{"website_id": website_id, **domain_values(name)}
                     for website_id, (_e, _i, _w, names) in placed for name in names])
    _insert(PreapprovalItem, [{"website_id": website_id, "entity_id": entity_id,
                               **preapproval_values(item.entity["province_code"], category, document)}
                              for website_id, (entity_id, item, website, _n) in placed
                              for category, document in website.preapprovals])
    _insert(Access, [{"website_id": website_id, **access_values(access)}
                     for website_id, (_e, _i, website, _n) in placed for access in website.accesses])
    isps = [frozenset(a.isp_id for w in item.websites for a in w.accesses) for item in accepted]
    by_isps = {group: submission(actor, set(group), now) for group in set(isps)}  # its deadline costs ~0.5 ms
    submitted = [by_isps[group] for group in isps]
    application_ids = _insert(Application, [
        {"entity_id": entity_id, "province_code": item.entity["province_code"], "created_by_id": actor.id,
         "kind": ApplicationKind.NEW_FILING, "bureau_since": None, "due_at": None, **values}
        for entity_id, item, (_rows, values) in zip(entity_ids, accepted, submitted, strict=True)], ids=True)
    _insert(IspVerification, [{"application_id": application_id, **row}
                              for application_id, (rows, _values) in zip(application_ids, submitted, strict=True)
                              for row in rows])
    audit.record_many([(action, {"object_type": "application", "object_id": application_id,
                                 "province_code": item.entity["province_code"], "actor": actor})
                       for application_id, item in zip(application_ids, accepted, strict=True)
                       for action in ("application.draft_saved", "application.submitted")])
    return [Filed(application_id, entity_id) for application_id, entity_id in zip(application_ids, entity_ids,
                                                                                 strict=True)]
