"""The registrant check after approval (issue 14): when a domain's report changes — a new registrant, a passed
expiry, a deletion — the worker re-checks every live website using the domain, opens a 域名核验异常 flag for each
that now fails (e-mailing its owner and ISPs once) and resolves the flags that pass again. `flag_all_filings`
does the same for every filed domain (the filings approved before the check existed: flagged, never revoked).

Worker steps commit their own work, in batches; a failure leaves the queue to the next pass.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from time import monotonic
from typing import Any

from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import exists, insert, select, update

import leases
import notify
import validators
from extensions import db
from models import (
    Access,
    Domain,
    DomainChange,
    DomainFlag,
    DomainReport,
    DomainStatus,
    Entity,
    User,
    Website,
    utcnow,
)
from workflow import events
from workflow.checks import LIVE_STATUSES, domain_verdict, is_registrable, reports_of
from workflow.registrant import VERDICT_WORDS

BATCH = 2000
#: how far back a passed expiry is noticed (a worker down for a week still flags them)
EXPIRY_LOOKBACK = timedelta(days=7)
CHANGE_WORDS = {"reported": "报备", "registrant": "注册人变更", "expiry": "到期日变更", "status": "状态变更",
                "details": "报备信息变更", "deleted": "报备删除", "expired": "已到期", "filed": "备案核验"}


@dataclass
class Tally:
    changes: int = 0
    websites: int = 0
    flagged: int = 0
    resolved: int = 0
    emails: int = 0
    seconds: float = 0.0
    new_flags: list[DomainFlag] = field(default_factory=list)

    def figures(self) -> dict[str, Any]:
        return {"changes": self.changes, "websites": self.websites, "flagged": self.flagged,
                "resolved": self.resolved, "emails": self.emails, "seconds": round(self.seconds, 2)}


def queue_passed_expiries(today: date | None = None) -> int:
    """A report whose expiry passed changes its verdict without any registrar acting: queue it once."""
    today = today or date.today()
    passed = select(DomainReport.domain).where(
        DomainReport.expires_on >= today - EXPIRY_LOOKBACK, DomainReport.expires_on < today,
        DomainReport.status != DomainStatus.DELETED,
        ~exists().where(DomainChange.domain == DomainReport.domain, DomainChange.what == "expired",
                        DomainChange.at >= DomainReport.updated_at))
    domains = list(db.session.scalars(passed))
    if domains:
        db.session.execute(insert(DomainChange), [{"domain": name, "what": "expired", "at": utcnow()}
                                                  for name in domains])
    return len(domains)


def _live_uses(names: Sequence[str]) -> list[tuple[str, Website, Entity]]:
    """The live websites filing a name under these registered domains: (registered domain, website, entity),
    once per website and registered domain (`www.example.cn` and `example.cn` are one registration)."""
    rows = db.session.execute(
        select(Domain.registered, Website, Entity).join(Website, Domain.website_id == Website.id)
        .join(Entity, Website.entity_id == Entity.id)
        .where(Domain.registered.in_(names), Domain.live, Website.status.in_(LIVE_STATUSES)))
    return list({(name, website.id): (name, website, entity) for name, website, entity in rows}.values())


def _open_flags(pairs: Iterable[tuple[int, str]]) -> dict[tuple[int, str], DomainFlag]:
    pairs = list(pairs)
    if not pairs:
        return {}
    website_ids = sorted({website_id for website_id, _name in pairs})
    found = db.session.scalars(select(DomainFlag).where(DomainFlag.website_id.in_(website_ids),
                                                        DomainFlag.resolved_at.is_(None)))
    wanted = set(pairs)
    return {(flag.website_id, flag.domain): flag for flag in found if (flag.website_id, flag.domain) in wanted}


def check_domains(names: Sequence[str], why: dict[str, str], tally: Tally) -> None:
    """Re-check the live websites using these domains; open, update or resolve their flags."""
    uses = _live_uses(names)
    reports = reports_of(names)
    flags = _open_flags((website.id, name) for name, website, _entity in uses)
    now = utcnow()
    tally.websites += len(uses)
    changed = []  # the feed's events (issue 16): (website, entity, flag, verdict now, what happened)
    for name, website, entity in uses:
        check = domain_verdict(entity, name, reports.get(name))
        flag = flags.get((website.id, name))
        if check.blocking and flag is None:
            flag = DomainFlag(website_id=website.id, province_code=entity.province_code, domain=name,
                              verdict=check.verdict, detail=_detail(why.get(name, "filed"), check.report),
                              since=now)
            db.session.add(flag)
            tally.flagged += 1
            tally.new_flags.append(flag)
            changed.append((website, entity, flag, check.verdict, "flagged"))
        elif check.blocking and flag is not None and flag.verdict != check.verdict:
            flag.verdict, flag.detail = check.verdict, _detail(why.get(name, "filed"), check.report)
            changed.append((website, entity, flag, check.verdict, "flagged"))
        elif not check.blocking and flag is not None:
            flag.resolved_at = now
            tally.resolved += 1
            changed.append((website, entity, flag, check.verdict, "resolved"))
    events.domain_verdicts(changed)


def _detail(what: str, report: DomainReport | None) -> str:
    words = "、".join(CHANGE_WORDS.get(part, part) for part in what.split(","))
    if report is None:
        return f"{words}：未报备"
    registrar = report.registrar.organisation or report.registrar.username
    return f"{words}：{registrar}，注册人 {report.registrant_name}（{report.registrant_certificate_number}），" \
           f"到期 {report.expires_on.isoformat()}"


def _websites_and_recipients(website_ids: list[int]) -> dict[int, tuple[str, str, set[str]]]:
    """For each website: its name, number and whom to e-mail (the owner's account, else the responsible person;
    its live ISPs) — two queries per 1,000 websites, not two per website."""
    found: dict[int, tuple[str, str, set[str]]] = {}
    for start in range(0, len(website_ids), 1000):
        chunk = website_ids[start:start + 1000]
        for website_id, name, number, owner_email, responsible_email in db.session.execute(
                select(Website.id, Website.name, Website.number, User.email, Entity.responsible_email)
                .join(Entity, Website.entity_id == Entity.id).outerjoin(User, User.id == Entity.owner_id)
                .where(Website.id.in_(chunk))):
            found[website_id] = (name, number or "", {owner_email or responsible_email} - {"", None})
        for website_id, email in db.session.execute(
                select(Access.website_id, User.email).join(User, Access.isp_id == User.id)
                .where(Access.website_id.in_(chunk), Access.live, User.email != "")):
            found[website_id][2].add(email)
    return found


def notify_new_flags(flags: Sequence[DomainFlag]) -> int:
    """One e-mail per website and recipient, naming its failing domains; each flag is e-mailed once."""
    by_website: dict[int, list[DomainFlag]] = {}
    for flag in flags:
        if flag.notified_at is None:
            by_website.setdefault(flag.website_id, []).append(flag)
    websites = _websites_and_recipients(list(by_website))
    messages = []
    with force_locale("zh_Hans_CN"):
        for website_id, group in by_website.items():
            name, number, recipients = websites[website_id]
            lines = [f"{validators.display_domain(flag.domain)}：{VERDICT_WORDS[flag.verdict]}（{flag.detail}）"
                     for flag in group]
            body = _("The registrant check of the website %(site)s (%(number)s) failed for these domains:\n%(lines)s"
                     "\nPlease have the registrar correct its report, or change the filing.",
                     site=name, number=number, lines="\n".join(lines))
            subject = _("Domain registrant check failed: %(site)s", site=name)
            messages += [{"recipient": email, "subject": subject, "body": body} for email in sorted(recipients)]
    notify.queue_emails(messages)
    now = utcnow()
    ids = [flag.id for group in by_website.values() for flag in group]
    for start in range(0, len(ids), 1000):
        db.session.execute(update(DomainFlag).where(DomainFlag.id.in_(ids[start:start + 1000]))
                           .values(notified_at=now))
    return len(messages)


def reconcile_domain_changes(limit: int | None = None) -> dict[str, Any]:
    """The worker's step: every queued change (or `limit` of them), in batches, each batch committed."""
    started, tally = monotonic(), Tally()
    leases.fence()  # each transaction: still this worker's step, or nothing written (e-mails sent once)
    queue_passed_expiries()
    db.session.commit()
    while limit is None or tally.changes < limit:
        batch = list(db.session.execute(select(DomainChange.id, DomainChange.domain, DomainChange.what).where(
            DomainChange.processed_at.is_(None)).order_by(DomainChange.id).limit(BATCH)))
        if not batch:
            break
        leases.fence()
        whats: dict[str, list[str]] = {}
        for _id, name, what in batch:
            if what not in whats.setdefault(name, []):
                whats[name].append(what)
        _run_batch(list(whats), {name: ",".join(parts) for name, parts in whats.items()}, tally)
        ids = [row_id for row_id, _name, _what in batch]
        for start in range(0, len(ids), 1000):
            db.session.execute(update(DomainChange).where(DomainChange.id.in_(ids[start:start + 1000]))
                               .values(processed_at=utcnow()))
        db.session.commit()
        tally.changes += len(batch)
    tally.seconds = monotonic() - started
    return tally.figures()


def _run_batch(names: list[str], why: dict[str, str], tally: Tally) -> None:
    check_domains([name for name in names if is_registrable(name)], why, tally)
    db.session.flush()
    tally.emails += notify_new_flags(tally.new_flags)
    tally.new_flags.clear()


def flag_all_filings() -> dict[str, Any]:
    """Every live filed domain checked once (`flask domain-reconcile --all`): for the filings approved before
    the registrant check existed. Keyset batches over the domains, each committed."""
    started, tally, last_id = monotonic(), Tally(), 0
    while True:
        rows = list(db.session.execute(select(Domain.id, Domain.registered).where(Domain.id > last_id, Domain.live)
                                       .order_by(Domain.id).limit(BATCH)))
        if not rows:
            break
        last_id = rows[-1][0]
        _run_batch(sorted({name for _id, name in rows}), {}, tally)
        db.session.commit()
    tally.seconds = monotonic() - started
    return tally.figures()

