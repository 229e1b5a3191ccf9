"""Who may do what: the one table of role → actions, and the object scopes.

Deny by default: an action not listed for a role is refused, a role not listed has
no actions, and an unknown user (signed out) has none.
"""

from __future__ import annotations

import enum
from typing import Any

from sqlalchemy import ColumnElement, and_, false, or_, select, true

from models import (
    FILING_ROLES,
    MANAGEMENT_ROLES,
    Access,
    Application,
    ApplicationKind,
    ApplicationState,
    AuditEvent,
    Domain,
    DomainFlag,
    DomainReport,
    Entity,
    InspectionFinding,
    InspectionRun,
    IpFinding,
    Notice,
    PreapprovalItem,
    RectificationNotice,
    RequestState,
    RevocationRequest,
    Role,
    SpecialContentItem,
    SpecialQueryLog,
    UnfiledSighting,
    User,
    Website,
)


class Action(enum.StrEnum):
    DASHBOARD = "dashboard"
    USER_LIST = "user.list"
    USER_CREATE = "user.create"
    USER_EDIT = "user.edit"
    USER_STATUS = "user.status"
    USER_RESET_PASSWORD = "user.reset_password"
    USER_RESET_KEYS = "user.reset_keys"  # a lost security key: the account's keys deleted, a new one at sign-in
    USER_GRANT_IMPORT = "user.grant_import"
    USER_EXPORT = "user.export"
    CODE_LIST = "code.list"
    CODE_EDIT = "code.edit"
    AUDIT_LIST = "audit.list"
    AUDIT_EXPORT = "audit.export"
    OUTBOX_LIST = "outbox.list"
    OUTBOX_RETRY = "outbox.retry"
    PREAPPROVAL_REVIEW = "preapproval.review"
    FILING_AUDIT = "filing.audit"
    FILING_LIST = "filing.list"
    FILING_CREATE = "filing.create"
    FILING_VERIFY = "filing.verify"
    BLACKLIST_MANAGE = "blacklist.manage"
    SPECIAL_CONTENT_REVIEW = "special_content.review"  # 专项内容: confirm or refuse a website's special filing
    FORBIDDEN_WORDS_MANAGE = "forbidden_words.manage"  # the words no website name may contain
    NOTICE_MANAGE = "notice.manage"
    FILING_CHANGE = "filing.change"  # an ISP: changes, new and cancelled access (FAQ 52, 64, 69)
    FILING_REVOKE = "filing.revoke"  # direct revocation by number, 吊销 (FAQ 39)
    REVOCATION_REQUEST = "revocation.request"
    REVOCATION_PROCESS = "revocation.process"
    FILING_IMPORT = "filing.import"  # an ISP with the import right, or a bureau (FAQ 45, 47)
    IP_REPORT = "ip.report"  # an IP reporting unit: its own blocks, allocations, self-brought blocks (SPEC §11)
    IP_LIST = "ip.list"  # the reporters' records, read only: a bureau its province's, MIIT all
    IP_LOOKUP = "ip.lookup"  # 地址查询: who holds an address
    IP_FINDINGS = "ip.findings"  # 核查结果: a reporter its own, a bureau its province's, MIIT all
    IP_STATISTICS = "ip.statistics"
    DOMAIN_REPORT = "domain.report"  # a registrar (domain_reporter): its own domain reports (SPEC §11)
    DOMAIN_LIST = "domain.list"  # the registrars' reports, read only: a bureau its province's, MIIT all
    DOMAIN_FLAGS = "domain.flags"  # 域名核验异常: a bureau its province's, MIIT all
    SPECIAL_QUERY = "special.query"  # 专项查询: search, 显示 (unmask one record), export — in the account's scope
    SPECIAL_QUERY_LOG = "special.query_log"  # 专项查询记录: MIIT all, a bureau its province's accounts'
    INSPECTION_RUN = "inspection.run"  # 网站备案检查: start / cancel a run — a bureau its province, MIIT any
    INSPECTION_LIST = "inspection.list"  # the runs, results and findings: a bureau its province's, MIIT all
    RECTIFY = "inspection.rectify"  # 整改通知: issue and close — a bureau its province's websites, MIIT any
    NOTICE_ANSWER = "inspection.notice_answer"  # an ISP's handling result, while it serves the website
    NOTICE_VIEW = "inspection.notice_view"  # the owner reads the notices of its websites (read only)
    UNFILED_REPORT = "inspection.unfiled_report"  # 未备案网站: domains / addresses seen on one's network


_EVERY_ROLE = frozenset({Action.DASHBOARD, Action.CODE_LIST})
_USER_ADMIN = frozenset({
    Action.USER_LIST, Action.USER_CREATE, Action.USER_EDIT, Action.USER_STATUS,
    Action.USER_RESET_PASSWORD, Action.USER_RESET_KEYS, Action.USER_EXPORT, Action.AUDIT_LIST, Action.AUDIT_EXPORT,
})
#: the IP reports as the bureaus (their province) and MIIT (the nation) oversee them
_IP_OVERSIGHT = frozenset({Action.IP_LIST, Action.IP_LOOKUP, Action.IP_FINDINGS, Action.IP_STATISTICS})
#: the domain reports and the registrant check's flags, as the bureaus (their province) and MIIT oversee them
_DOMAIN_OVERSIGHT = frozenset({Action.DOMAIN_LIST, Action.DOMAIN_FLAGS})
#: website inspection (issue 18), as the bureaus (their province) and MIIT run it
_INSPECTION = frozenset({Action.INSPECTION_RUN, Action.INSPECTION_LIST, Action.RECTIFY, Action.UNFILED_REPORT})

ALLOWED: dict[Role, frozenset[Action]] = {
    Role.MIIT: _EVERY_ROLE | _USER_ADMIN | {Action.CODE_EDIT, Action.OUTBOX_LIST, Action.OUTBOX_RETRY,
                                           Action.FILING_LIST, Action.NOTICE_MANAGE, Action.FILING_REVOKE,
                                           Action.REVOCATION_PROCESS, *_IP_OVERSIGHT, *_DOMAIN_OVERSIGHT,
                                           Action.SPECIAL_QUERY_LOG, *_INSPECTION},
    Role.BUREAU: _EVERY_ROLE | _USER_ADMIN | {Action.USER_GRANT_IMPORT, Action.FILING_AUDIT, Action.FILING_LIST,
                                             Action.NOTICE_MANAGE, Action.FILING_REVOKE, Action.REVOCATION_REQUEST,
                                             Action.REVOCATION_PROCESS, Action.FILING_IMPORT, *_IP_OVERSIGHT,
                                             *_DOMAIN_OVERSIGHT, Action.SPECIAL_QUERY_LOG, *_INSPECTION},
    Role.ICP: _EVERY_ROLE | {Action.FILING_LIST, Action.FILING_CREATE, Action.REVOCATION_REQUEST, Action.NOTICE_VIEW},
    Role.ISP: _EVERY_ROLE | {Action.FILING_LIST, Action.FILING_CREATE, Action.FILING_VERIFY, Action.FILING_CHANGE,
                             Action.REVOCATION_REQUEST, Action.FILING_IMPORT, Action.NOTICE_ANSWER,
                             Action.UNFILED_REPORT},
    Role.IP_REPORTER: _EVERY_ROLE | {Action.IP_REPORT, Action.IP_FINDINGS},
    Role.DOMAIN_REPORTER: _EVERY_ROLE | {Action.DOMAIN_REPORT},
    Role.PREAPPROVAL: _EVERY_ROLE | {Action.PREAPPROVAL_REVIEW},
    Role.CONTENT_ADMIN: _EVERY_ROLE | {Action.BLACKLIST_MANAGE, Action.SPECIAL_CONTENT_REVIEW,
                                       Action.FORBIDDEN_WORDS_MANAGE},
    # 专项查询 searches only through its query page (reason, case number, masking, the query record): the console's
    # filing lists and address lookup would show the same data unmasked and unrecorded
    Role.SPECIAL_QUERY: _EVERY_ROLE | {Action.SPECIAL_QUERY},
}

#: FAQ 29–30: MIIT creates every staff role; bureaus create the roles below them, in their province.
_BUREAU_CREATES = frozenset({
    Role.ISP, Role.IP_REPORTER, Role.DOMAIN_REPORTER,
    Role.PREAPPROVAL, Role.CONTENT_ADMIN, Role.SPECIAL_QUERY,
})
CREATABLE_ROLES: dict[Role, frozenset[Role]] = {
    Role.MIIT: frozenset(set(MANAGEMENT_ROLES) | set(FILING_ROLES)) - {Role.ICP},
    Role.BUREAU: _BUREAU_CREATES,
}
#: whose accounts an actor may see and manage (ICP users register themselves; MIIT manages them)
MANAGED_ROLES: dict[Role, frozenset[Role]] = {
    Role.MIIT: frozenset(Role),
    Role.BUREAU: _BUREAU_CREATES,
}


def _is_user(actor: Any) -> bool:
    return isinstance(actor, User) and actor.is_authenticated and actor.is_active


def can(actor: Any, action: Action) -> bool:
    return _is_user(actor) and action in ALLOWED.get(actor.role, frozenset())


def creatable_roles(actor: Any) -> frozenset[Role]:
    return CREATABLE_ROLES.get(actor.role, frozenset()) if can(actor, Action.USER_CREATE) else frozenset()


def in_actor_province(actor: User, province_code: str | None) -> bool:
    return actor.role == Role.MIIT or (
        actor.province_code is not None and province_code == actor.province_code
    )


def may_create_user(actor: Any, role: Role, province_code: str | None) -> bool:
    return role in creatable_roles(actor) and in_actor_province(actor, province_code)


def may_manage_user(actor: Any, target: User, action: Action) -> bool:
    """Edit, disable/enable, reset the password of `target` — never oneself, never above."""
    return (
        can(actor, action)
        and target.id != actor.id
        and target.role in MANAGED_ROLES.get(actor.role, frozenset())
        and in_actor_province(actor, target.province_code)
    )


def may_grant_import(actor: Any, target: User) -> bool:
    """FAQ 47: the import right of an ISP is given by the bureau of its province."""
    return target.role == Role.ISP and may_manage_user(actor, target, Action.USER_GRANT_IMPORT)


def user_scope(actor: Any) -> ColumnElement[bool]:
    """The users an actor may list and open; anything else is 404."""
    if not can(actor, Action.USER_LIST):
        return false()
    managed = MANAGED_ROLES.get(actor.role, frozenset())
    if actor.role == Role.MIIT:
        return true()
    return and_(User.role.in_(sorted(managed)), User.province_code == actor.province_code)


def audit_scope(actor: Any) -> ColumnElement[bool]:
    """MIIT reads the whole log; a bureau the events concerning its province."""
    if not can(actor, Action.AUDIT_LIST):
        return false()
    if actor.role == Role.MIIT:
        return true()
    return AuditEvent.province_code == actor.province_code


def may_audit(actor: Any, province_code: str) -> bool:
    """管局审核: a bureau, for applications of its own province only."""
    return can(actor, Action.FILING_AUDIT) and actor.province_code == province_code


def may_review_preapproval(actor: Any, item: Any) -> bool:
    """A pre-approval authority reviews the items of its category (and of its province, if it has one)."""
    return (
        can(actor, Action.PREAPPROVAL_REVIEW)
        and item.category == actor.preapproval_category
        and (actor.province_code is None or item.province_code == actor.province_code)
    )


def preapproval_scope(actor: Any) -> ColumnElement[bool]:
    """The pre-approval items `may_review_preapproval` allows, as a query: the queue and the dashboard's count."""
    if not can(actor, Action.PREAPPROVAL_REVIEW):
        return false()
    criteria = PreapprovalItem.category == actor.preapproval_category
    if actor.province_code:
        criteria = and_(criteria, PreapprovalItem.province_code == actor.province_code)
    return criteria


def may_review_special_content(actor: Any, item: Any) -> bool:
    """专项内容: a content admin of the item's province, or a national one (created by MIIT)."""
    return can(actor, Action.SPECIAL_CONTENT_REVIEW) and (
        actor.province_code is None or item.province_code == actor.province_code)


def special_content_scope(actor: Any) -> ColumnElement[bool]:
    """The special filings `may_review_special_content` allows, as a query (index ix_special_content_items_queue)."""
    if not can(actor, Action.SPECIAL_CONTENT_REVIEW):
        return false()
    return true() if actor.province_code is None else SpecialContentItem.province_code == actor.province_code


def listed_scope(actor: Any, action: Action, column: Any) -> ColumnElement[bool]:
    """The blacklist's or the forbidden words' entries a content admin sees: a national one all of them, a
    provincial one the national entries and its province's."""
    if not can(actor, action):
        return false()
    return true() if actor.province_code is None else or_(column.is_(None), column == actor.province_code)


def may_change_listed(actor: Any, action: Action, province_code: str | None) -> bool:
    """Edit or delete an entry of the blacklist or the forbidden words: a national content admin any, a
    provincial one those of its province (it reads the national ones, it does not change them)."""
    return can(actor, action) and (actor.province_code is None or province_code == actor.province_code)


def served_entities(isp_id: int) -> Any:
    """The entities an ISP serves now: a live access on one of their websites (a draft's included)."""
    return select(Website.entity_id).join(Access, Access.website_id == Website.id).where(
        Access.isp_id == isp_id, Access.live)


def entity_scope(actor: Any) -> ColumnElement[bool]:
    """Filings an actor may list: own (ICP), served now (ISP), own province (bureau), all (MIIT)."""
    if not can(actor, Action.FILING_LIST):
        return false()
    if actor.role == Role.MIIT:
        return true()
    if actor.role == Role.BUREAU:
        return Entity.province_code == actor.province_code
    if actor.role == Role.ICP:
        return Entity.owner_id == actor.id
    return Entity.id.in_(served_entities(actor.id))


def application_scope(actor: Any) -> ColumnElement[bool]:
    """An ISP: the applications of the filings it serves now, and those it created or submitted (of a new
    access it asked for, it sees only what the public sees until approved: `may_see_entity`)."""
    if not can(actor, Action.FILING_LIST):
        return false()
    if actor.role == Role.ISP:
        return or_(Application.entity_id.in_(served_entities(actor.id)), Application.created_by_id == actor.id,
                   Application.submitted_by_id == actor.id)
    if actor.role == Role.ICP:
        return Application.entity_id.in_(select(Entity.id).where(Entity.owner_id == actor.id))
    if actor.role == Role.BUREAU or actor.province_code is not None:
        return Application.province_code == actor.province_code
    return true()


def may_see_entity(actor: Any, entity: Any) -> bool:
    """The filing's data beyond what the public sees (the responsible person, certificate number…)."""
    if actor.role == Role.ISP:
        return can(actor, Action.FILING_LIST) and serves(actor, entity)
    if actor.role == Role.ICP:
        return can(actor, Action.FILING_LIST) and entity.owner_id == actor.id
    return can(actor, Action.FILING_LIST) and (
        actor.province_code is None or entity.province_code == actor.province_code)


def may_edit_application(actor: Any, application: Any) -> bool:
    """A new filing's draft (new, returned or rejected): its owner, or the ISP that created it — never an
    ISP only named on it."""
    if application.kind != ApplicationKind.NEW_FILING or application.state != ApplicationState.DRAFT:
        return False
    if actor.role == Role.ICP:
        return can(actor, Action.FILING_CREATE) and application.entity.owner_id == actor.id
    return (actor.role == Role.ISP and can(actor, Action.FILING_CREATE)
            and application.created_by_id == actor.id)


def notice_scope(actor: Any) -> ColumnElement[bool]:
    """FAQ 38: MIIT manages every notice (its own are national); a bureau those of its province."""
    if not can(actor, Action.NOTICE_MANAGE):
        return false()
    return true() if actor.role == Role.MIIT else Notice.province_code == actor.province_code


def may_manage_notice(actor: Any, notice: Any) -> bool:
    return can(actor, Action.NOTICE_MANAGE) and (actor.role == Role.MIIT or (
        actor.province_code is not None and notice.province_code == actor.province_code))


def serves(actor: Any, entity: Any) -> bool:
    """A live access of this ISP on one of the entity's websites (a former ISP serves no more)."""
    return any(a.live and a.isp_id == actor.id for w in entity.websites for a in w.accesses)


def may_request_revocation(actor: Any, entity: Any) -> bool:
    """FAQ 36: the ICP user (own filing), an import user (filings it imported or serves), the bureau (own
    province)."""
    if not can(actor, Action.REVOCATION_REQUEST):
        return False
    if actor.role == Role.ICP:
        return entity.owner_id == actor.id
    if actor.role == Role.ISP:
        return actor.can_import and serves(actor, entity)
    return actor.role == Role.BUREAU and entity.province_code == actor.province_code


def may_process_revocation(actor: Any, request: Any) -> bool:
    """FAQ 31, 37: the bureau processes the requests of ICP and import users of its province, MIIT those of
    bureaus; nobody their own."""
    return (can(actor, Action.REVOCATION_PROCESS) and request.requester_id != actor.id
            and request.processor_role == actor.role
            and (actor.role == Role.MIIT or request.province_code == actor.province_code))


def revocation_queue_scope(actor: Any) -> ColumnElement[bool]:
    """The pending requests an actor processes — never its own."""
    if not can(actor, Action.REVOCATION_PROCESS):
        return false()
    mine = and_(RevocationRequest.processor_role == actor.role, RevocationRequest.state == RequestState.PENDING,
                RevocationRequest.requester_id != actor.id)
    return mine if actor.role == Role.MIIT else and_(mine, RevocationRequest.province_code == actor.province_code)


def may_import(actor: Any) -> bool:
    """FAQ 45, 47: a bureau (rows of its province only), or an ISP to which its bureau gave the import right."""
    return can(actor, Action.FILING_IMPORT) and (actor.role == Role.BUREAU or bool(actor.can_import))


def ip_unit_scope(actor: Any) -> ColumnElement[bool]:
    """The IP reporting units (as `User` rows) whose reports an actor sees: itself, its province's, all."""
    if can(actor, Action.IP_REPORT):
        return User.id == actor.id
    if not can(actor, Action.IP_LIST):
        return false()
    reporters = User.role == Role.IP_REPORTER
    return reporters if actor.role == Role.MIIT else and_(reporters, User.province_code == actor.province_code)


def ip_record_scope(actor: Any, model: Any) -> ColumnElement[bool]:
    """The blocks, allocations or self-brought blocks (`model`) an actor sees: a reporter its own, a bureau
    those of its province's units, MIIT all (index ix_<table>_unit_start)."""
    if can(actor, Action.IP_REPORT):
        return model.unit_id == actor.id
    if not can(actor, Action.IP_LIST):
        return false()
    return true() if actor.role == Role.MIIT else model.unit_id.in_(select(User.id).where(ip_unit_scope(actor)))


def ip_finding_scope(actor: Any) -> ColumnElement[bool]:
    """核查结果 (`models.IpFinding`): a reporter its own, a bureau its province's, MIIT all."""
    if not can(actor, Action.IP_FINDINGS):
        return false()
    if actor.role == Role.IP_REPORTER:
        return IpFinding.unit_id == actor.id
    return true() if actor.role == Role.MIIT else IpFinding.province_code == actor.province_code


def domain_report_scope(actor: Any) -> ColumnElement[bool]:
    """The domain reports an actor sees: a registrar its own; a bureau those of its province's registrars and
    those of the domains filed in its province (a national registrar's report of a local website; the province's
    domains read once per query through ix_entities_province_approved, ix_websites_entity_id, ix_domains_website_id);
    MIIT all."""
    if can(actor, Action.DOMAIN_REPORT):
        return DomainReport.registrar_id == actor.id
    if not can(actor, Action.DOMAIN_LIST):
        return false()
    if actor.role == Role.MIIT:
        return true()
    registrars = select(User.id).where(User.role == Role.DOMAIN_REPORTER, User.province_code == actor.province_code)
    filed_here = (select(Domain.name).join(Website, Domain.website_id == Website.id)
                  .join(Entity, Website.entity_id == Entity.id).where(Entity.province_code == actor.province_code))
    return or_(DomainReport.registrar_id.in_(registrars), DomainReport.domain.in_(filed_here))


def domain_flag_scope(actor: Any) -> ColumnElement[bool]:
    """域名核验异常 (`models.DomainFlag`): a bureau its province's, MIIT all (index ix_domain_flags_province)."""
    if not can(actor, Action.DOMAIN_FLAGS):
        return false()
    return true() if actor.role == Role.MIIT else DomainFlag.province_code == actor.province_code


def may_special_query(actor: Any, province_code: str | None) -> bool:
    """专项查询: a national account (created by MIIT, no province) finds everything, a provincial one (created by
    a bureau) only what belongs to its province — a filing by its entity's province, an IP or domain report by
    its reporting unit's."""
    return can(actor, Action.SPECIAL_QUERY) and (actor.province_code is None or province_code == actor.province_code)


def special_query_scope(actor: Any, province_column: Any) -> ColumnElement[bool]:
    """`may_special_query` as a query, on a province column (the entity's)."""
    if not can(actor, Action.SPECIAL_QUERY):
        return false()
    return true() if actor.province_code is None else province_column == actor.province_code


def special_query_unit_scope(actor: Any, unit_column: Any) -> ColumnElement[bool]:
    """`may_special_query` as a query, on a reporting unit's id (a domain report's registrar)."""
    if not can(actor, Action.SPECIAL_QUERY):
        return false()
    if actor.province_code is None:
        return true()
    return unit_column.in_(select(User.id).where(User.province_code == actor.province_code))


def special_query_log_scope(actor: Any) -> ColumnElement[bool]:
    """专项查询记录: MIIT reads all of it, a bureau the entries of its province's special-query accounts."""
    if not can(actor, Action.SPECIAL_QUERY_LOG):
        return false()
    return true() if actor.role == Role.MIIT else SpecialQueryLog.province_code == actor.province_code


# --- website inspection (issue 18) ---------------------------------------------------------------------------------

def may_inspect(actor: Any, action: Action, province_code: str | None) -> bool:
    """Start or cancel a run (INSPECTION_RUN), issue or close a notice (RECTIFY): MIIT anywhere (None: the
    nation), a bureau in its province only."""
    return can(actor, action) and (actor.role == Role.MIIT or (
        actor.province_code is not None and province_code == actor.province_code))


def inspection_run_scope(actor: Any) -> ColumnElement[bool]:
    """The runs an actor sees: a bureau its province's, MIIT all (national ones included)."""
    if not can(actor, Action.INSPECTION_LIST):
        return false()
    return true() if actor.role == Role.MIIT else InspectionRun.province_code == actor.province_code


def inspection_finding_scope(actor: Any, model: Any = InspectionFinding) -> ColumnElement[bool]:
    """The findings (or results: `model`) of websites of the bureau's province; MIIT all."""
    if not can(actor, Action.INSPECTION_LIST):
        return false()
    return true() if actor.role == Role.MIIT else model.province_code == actor.province_code


def served_websites(isp_id: int) -> Any:
    """The websites an ISP serves now (a live access)."""
    return select(Access.website_id).where(Access.isp_id == isp_id, Access.live)


def rectification_scope(actor: Any) -> ColumnElement[bool]:
    """整改通知: a bureau its province's, MIIT all, an ISP those of the websites it serves now (an ISP whose access
    ended no longer sees them), an owner those of the filings it owns now."""
    if can(actor, Action.RECTIFY):
        return true() if actor.role == Role.MIIT else RectificationNotice.province_code == actor.province_code
    if can(actor, Action.NOTICE_ANSWER):
        return RectificationNotice.website_id.in_(served_websites(actor.id))
    if can(actor, Action.NOTICE_VIEW):  # through the websites (ix_rectification_notices_website)
        return RectificationNotice.website_id.in_(select(Website.id).join(Entity, Entity.id == Website.entity_id)
                                                  .where(Entity.owner_id == actor.id))
    return false()


def unfiled_sighting_scope(actor: Any) -> ColumnElement[bool]:
    """未备案网站: an ISP its own reports, a bureau those made in its province (its own and its ISPs'), MIIT all."""
    if not can(actor, Action.UNFILED_REPORT):
        return false()
    if actor.role == Role.MIIT:
        return true()
    if actor.role == Role.BUREAU:
        return UnfiledSighting.province_code == actor.province_code
    return UnfiledSighting.reporter_id == actor.id
