"""专项内容管理 (issue 17 §2, FAQ 12–13, 47): a website declaring special content — 电子公告服务 (`Website.bbs`) or
a 网站服务内容 code of SPECIAL_CONTENT_SERVICE_CODES — needs its special filing confirmed by the content department
of its province before the bureau approves; and the forbidden words of website names.

One `SpecialContentItem` per website holds the declaration decided on. An application that brings a declaration
(a new filing, a new website, a change of a website's service content) opens the item when it is submitted, or
re-opens it when the declaration differs from the one decided on, or when it was refused; a confirmed item whose
declaration is unchanged stays confirmed. While an affected website's item is not confirmed — pending, refused
(its reason shown), or deciding another declaration — the bureau cannot approve (`blockers`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import insert, inspect, or_, select

import audit
import permissions
from extensions import db
from models import (
    Application,
    ApplicationKind,
    CodeItem,
    CodeTable,
    ForbiddenWord,
    SpecialContentEvent,
    SpecialContentItem,
    SpecialState,
    User,
    Website,
    forbidden_word_in,
    utcnow,
)
from workflow.batch_reads import memoised
from workflow.errors import NotFound, WorkflowError

BBS_WORDS = "电子公告服务"


def special_codes() -> frozenset[str]:
    """The 网站服务内容 codes that need a special filing (configuration: a comma-separated text or a list)."""
    configured = current_app.config.get("SPECIAL_CONTENT_SERVICE_CODES", "23")
    values = configured.split(",") if isinstance(configured, str) else configured
    return frozenset(str(value).strip() for value in values if str(value).strip())


@dataclass(frozen=True)
class Declaration:
    """What a website declares that needs a special filing; empty (false) when nothing does."""

    bbs: bool = False
    bbs_sections: str = ""
    service_content: str = ""  # only a code of `special_codes()`

    def __bool__(self) -> bool:
        return self.bbs or bool(self.service_content)


def declaration(bbs: bool, bbs_sections: str, service_content: str) -> Declaration:
    special = service_content if service_content in special_codes() else ""
    return Declaration(bool(bbs), (bbs_sections or "").strip() if bbs else "", special)


def item_declaration(item: SpecialContentItem) -> Declaration:
    return Declaration(item.bbs, item.bbs_sections, item.service_content)


def describe(found: Declaration) -> str:
    """The declaration in words: 电子公告服务（栏目：…）、论坛/社区."""
    parts = []
    if found.bbs:
        parts.append(f"{BBS_WORDS}（栏目：{found.bbs_sections}）" if found.bbs_sections else BBS_WORDS)
    if found.service_content:
        name = db.session.scalar(select(CodeItem.name).where(CodeItem.table == CodeTable.SERVICE_CONTENT,
                                                             CodeItem.code == found.service_content))
        parts.append(name or found.service_content)
    return "、".join(parts)


def _proposed(website: Website, application: Application) -> dict[str, Any]:
    """A change of this website's service content that `application` asks for (empty: none)."""
    if application.kind != ApplicationKind.CHANGE:
        return {}
    proposal = json_proposal(application)
    if proposal.get("type") == "edit_website" and proposal.get("website_id") == website.id:
        return proposal
    return {}


def json_proposal(application: Application) -> dict[str, Any]:
    """The application's proposal (`workflow.lifecycle.proposal_of`, which imports this module)."""
    return json.loads(application.proposal or "{}")


def declared(website: Website, application: Application) -> Declaration:
    """What the website will declare once `application` is approved."""
    service_content = _proposed(website, application).get("service_content", website.service_content)
    return declaration(website.bbs, website.bbs_sections, service_content)


def affected_websites(application: Application) -> list[Website]:
    """The websites whose declaration `application` brings to the bureau: every website of a new filing, the new
    website, the website whose service content a change edits; none for the other kinds (they take nothing new)."""
    # a re-saved draft's old rows stay in the collection until the session ends: deleted, they declare nothing
    websites = [website for website in application.entity.websites if not inspect(website).was_deleted]
    if application.kind == ApplicationKind.NEW_FILING:
        return websites
    proposal = json_proposal(application)
    if application.kind == ApplicationKind.NEW_WEBSITE or (
            application.kind == ApplicationKind.CHANGE and proposal.get("type") == "edit_website"):
        return [w for w in websites if w.id == proposal.get("website_id")]
    return []


# --- opening, re-opening and deciding --------------------------------------------------------------------------

def open_items(actor: User | None, application: Application) -> list[SpecialContentItem]:
    """On submission: the special filing of each affected website opened, or re-opened when its declaration
    changed or it was refused; a confirmed one with the same declaration stays. Returns the items (re)opened."""
    opened = []
    for website in affected_websites(application):
        wanted = declared(website, application)
        item = website.special_item
        if not wanted or (item is not None and item_declaration(item) == wanted
                          and item.state != SpecialState.REFUSED):
            continue
        action = "opened" if item is None else "reopened"
        if item is None:
            item = SpecialContentItem(entity_id=website.entity_id, province_code=application.province_code)
            website.special_item = item
        item.bbs, item.bbs_sections, item.service_content = wanted.bbs, wanted.bbs_sections, wanted.service_content
        item.state, item.reason, item.reviewer_id, item.reviewed_at = SpecialState.PENDING, "", None, None
        item.opened_at = utcnow()
        db.session.flush()
        _history(item, website, action, actor)
        opened.append(item)
    return opened


def review(actor: User, item: SpecialContentItem, confirmed: bool, reason: str = "") -> SpecialContentItem:
    """A content admin of the item's province (or a national one) confirms it, or refuses it with a reason."""
    if not permissions.may_review_special_content(actor, item):
        raise NotFound()
    # two decisions at once: the second waits for the first (PostgreSQL's row lock), then reads its outcome
    db.session.execute(select(SpecialContentItem.id).where(SpecialContentItem.id == item.id).with_for_update())
    db.session.refresh(item)
    if item.state != SpecialState.PENDING:
        raise WorkflowError(_l("This special filing is not waiting for a decision."))
    reason = reason.strip()[:500]
    if not confirmed and not reason:
        raise WorkflowError(_l("Give the reason for refusing the special filing."), "reason")
    item.state = SpecialState.CONFIRMED if confirmed else SpecialState.REFUSED
    item.reviewer_id, item.reviewed_at, item.reason = actor.id, utcnow(), reason
    _history(item, item.website, "confirmed" if confirmed else "refused", actor)
    return item


def _history(item: SpecialContentItem, website: Website, action: str, actor: User | None) -> None:
    """A line of the website's history, and the audit event."""
    text = describe(item_declaration(item))
    db.session.add(SpecialContentEvent(entity_id=item.entity_id, website_id=website.id, website_name=website.name,
                                       action=action, declaration=text, reason=item.reason,
                                       actor_id=actor.id if actor else None))
    audit.record(f"special_content.{action}", object_type="special_content", object_id=item.id,
                 province_code=item.province_code, actor=actor,
                 changes={"website": website.name, "declaration": text, **({"reason": item.reason}
                                                                            if item.reason else {})})


def history(item: SpecialContentItem) -> list[SpecialContentEvent]:
    """The website's history, oldest first: its own lines, and those of the earlier rows of the same website in
    the filing's drafts (a re-saved draft replaces its website rows; the name stays)."""
    return list(db.session.scalars(select(SpecialContentEvent).where(
        SpecialContentEvent.entity_id == item.entity_id,
        or_(SpecialContentEvent.website_id == item.website_id,
            SpecialContentEvent.website_name == item.website.name)).order_by(SpecialContentEvent.id)))


# --- approval ------------------------------------------------------------------------------------------------

def blockers(application: Application) -> list[str]:
    """Why the bureau cannot approve `application` yet for special content: each affected website whose special
    filing is not confirmed for what it declares (a refusal with its reason)."""
    problems = []
    for website in affected_websites(application):
        wanted = declared(website, application)
        if not wanted:
            continue
        item = website.special_item
        if item is not None and item.state == SpecialState.REFUSED and item_declaration(item) == wanted:
            problems.append(str(_l("The special filing (%(content)s) of %(site)s was refused: %(reason)s",
                                   content=describe(wanted), site=website.name, reason=item.reason)))
        elif item is None or item.state != SpecialState.CONFIRMED or item_declaration(item) != wanted:
            problems.append(str(_l("The special filing (%(content)s) of %(site)s is not confirmed.",
                                   content=describe(wanted), site=website.name)))
    return problems


# --- set-based writers (the import, the data-exchange API's batch): items opened by the thousand ----------------

#: a new website that may declare special content: (website id, entity id, province, name, bbs, bbs sections,
#: service content)
NewSite = tuple[int, int, str, str, bool, str, str]


def insert_opened(sites: Iterable[NewSite], actor_id: int | None = None, job_id: int | None = None) -> int:
    """What `open_items` does for new websites, as two multi-row INSERTs (an import stages them with its job).
    Returns how many items were opened."""
    now = utcnow()
    wanted = [(site, found) for site in sites if (found := declaration(site[4], site[5], site[6]))]
    if not wanted:
        return 0
    db.session.execute(insert(SpecialContentItem), [
        {"website_id": site[0], "entity_id": site[1], "province_code": site[2], "bbs": found.bbs,
         "bbs_sections": found.bbs_sections, "service_content": found.service_content, "state": SpecialState.PENDING,
         "reason": "", "opened_at": now, "import_job_id": job_id} for site, found in wanted])
    texts = {found: describe(found) for _site, found in wanted}
    db.session.execute(insert(SpecialContentEvent), [
        {"entity_id": site[1], "website_id": site[0], "website_name": site[3], "action": "opened",
         "declaration": texts[found], "reason": "", "actor_id": actor_id, "at": now,
         "import_job_id": job_id} for site, found in wanted])
    return len(wanted)


# --- forbidden words in website names ------------------------------------------------------------------------

def forbidden_words(province_code: str | None) -> list[str]:
    """The words a website name of this province may not contain: the national ones and the province's (read once
    per batch of filings: workflow.batch_reads)."""
    return memoised(("forbidden_words", province_code), lambda: list(db.session.scalars(
        select(ForbiddenWord.word).where(or_(ForbiddenWord.province_code.is_(None),
                                             ForbiddenWord.province_code == (province_code or "")))
        .order_by(ForbiddenWord.id))))


def name_problems(name: str, province_code: str | None, field: str) -> Iterator[tuple[str, Any]]:
    """A problem naming the forbidden word the website name contains, if any."""
    if name.strip() and (word := forbidden_word_in(name, forbidden_words(province_code))):
        yield field, _l("The website name contains the forbidden word “%(word)s”.", word=word)


def clean_word(word: str) -> str:
    """A forbidden word as kept: stripped, not empty."""
    word = (word or "").strip()
    if not word:
        raise WorkflowError(_l("The word is required."), "word")
    return word
