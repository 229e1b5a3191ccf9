"""Display labels for enum values (translated), shared by the console views and templates."""

from __future__ import annotations

from flask import g
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from extensions import db
from models import CodeItem, CodeTable, DisclosureKind, NoticeCategory, Role, UserStatus
from seed_data import PROVINCES

ROLE_LABELS = {
    Role.ICP: _l("ICP (website owner)"),
    Role.ISP: _l("ISP (access provider)"),
    Role.IP_REPORTER: _l("IP reporter"),
    Role.DOMAIN_REPORTER: _l("Domain reporter"),
    Role.MIIT: _l("MIIT"),
    Role.BUREAU: _l("Communications bureau"),
    Role.PREAPPROVAL: _l("Pre-approval authority"),
    Role.CONTENT_ADMIN: _l("Special content administrator"),
    Role.SPECIAL_QUERY: _l("Special query"),
}

STATUS_LABELS = {
    UserStatus.ACTIVE: _l("Active"),
    UserStatus.PENDING: _l("Pending confirmation"),
    UserStatus.DISABLED: _l("Disabled"),
}

CODE_TABLE_LABELS = {
    CodeTable.UNIT_NATURE: _l("Unit nature"),
    CodeTable.CERTIFICATE_TYPE: _l("Certificate type"),
    CodeTable.SERVICE_CONTENT: _l("Website service content"),
    CodeTable.PREAPPROVAL_CATEGORY: _l("Pre-approval category"),
    CodeTable.ACCESS_METHOD: _l("Access method"),
    CodeTable.LANGUAGE: _l("Website language"),
    CodeTable.UNIT_CLASS: _l("Unit class"),
    CodeTable.INDUSTRY: _l("Industry"),
    CodeTable.IP_ALLOCATION_METHOD: _l("IP address allocation method"),
    CodeTable.IP_USAGE_METHOD: _l("IP address usage method"),
    CodeTable.IP_REGISTRY: _l("Internet address registry"),
    CodeTable.DOMAIN_TYPE: _l("Domain type"),
}


PROVINCE_NAMES = {code: name for code, name, _abbr in PROVINCES}


def code_name(table: CodeTable | str, code: str | None) -> str:
    """The name of a code-table value (新闻 for pre-approval category 1), the table read once per request;
    the code itself only if the table has no such value."""
    if not code:
        return ""
    names = g.setdefault("code_names", {})
    if table not in names:
        names[table] = dict(db.session.execute(
            select(CodeItem.code, CodeItem.name).where(CodeItem.table == CodeTable(table))).all())
    return names[table].get(code, code)


def label(mapping: dict, value: object) -> str:
    """The translated label of an enum value, or the raw value when unknown."""
    return str(mapping.get(value, value)) if value is not None else ""


ACTION_LABELS = {
    "auth.sign_in": _l("Signed in"),
    "auth.sign_in_failed": _l("Sign-in failed"),
    "auth.identity_check": _l("Signed in, identity check pending"),
    "auth.sign_out": _l("Signed out"),
    "auth.account_under_attack": _l("Account owner warned of failed sign-ins"),
    "auth.reset_requested": _l("Password reset requested"),
    "auth.password_reset": _l("Password reset by link"),
    "auth.password_changed": _l("Password changed"),
    "auth.security_key_step": _l("Password accepted, security key awaited"),
    "auth.security_key_cloned": _l("Security key refused: signature counter went backwards"),
    "security_key.added": _l("Security key added"),
    "security_key.renamed": _l("Security key renamed"),
    "security_key.removed": _l("Security key removed"),
    "security_key.refused": _l("Security key registration refused"),
    "user.register": _l("Registered"),
    "user.codes_resent": _l("Verification codes sent again"),
    "user.confirmed": _l("Identity confirmed"),
    "user.profile_changed": _l("Personal information changed"),
    "user.contact_changed": _l("Mobile or e-mail changed"),
    "user.create": _l("Account created"),
    "user.edit": _l("Account edited"),
    "user.disable": _l("Account disabled"),
    "user.enable": _l("Account enabled"),
    "user.reset_password": _l("Password reset"),
    "user.reset_keys": _l("Security keys reset"),
    "user.grant_import": _l("Import right granted"),
    "user.withdraw_import": _l("Import right withdrawn"),
    "province.create": _l("Division created"),
    "province.edit": _l("Division edited"),
    "code_item.create": _l("Code value created"),
    "code_item.edit": _l("Code value edited"),
    "export": _l("Exported"),
    "outbox.retry": _l("Message sent again"),
    "demo.seeded": _l("Demo data created"),
    "application.draft_saved": _l("Draft saved"),
    "application.submitted": _l("Submitted"),
    "application.imported": _l("Imported from a spreadsheet"),
    "application.isp_verified": _l("Verified by an ISP"),
    "application.isp_returned": _l("Returned by an ISP"),
    "application.approved": _l("Approved by the bureau"),
    "application.rejected": _l("Rejected by the bureau"),
    "application.withdrawn": _l("Withdrawn by its submitter"),
    "access.cancelled": _l("Access cancelled"),
    "access_code.issued": _l("Access authorisation code made by the owner"),
    "access_code.sent": _l("Access authorisation code sent to the owner"),
    "preapproval.confirmed": _l("Pre-approval confirmed"),
    "preapproval.disputed": _l("Pre-approval disputed"),
    "special_content.opened": _l("Special filing opened"),
    "special_content.reopened": _l("Special filing re-opened"),
    "special_content.confirmed": _l("Special filing confirmed"),
    "special_content.refused": _l("Special filing refused"),
    "special_query.search": _l("Special query run"),
    "special_query.reveal": _l("Special query: record shown whole"),
    "special_query.export": _l("Special query: results exported"),
    "filing.cancelled": _l("Filing cancelled"),
    "filing.revoked": _l("Filing revoked"),
    "filing.licence_revoked": _l("Licence revoked"),
    "revocation.requested": _l("Revocation requested"),
    "revocation.edited": _l("Revocation request edited"),
    "revocation.deleted": _l("Revocation request deleted"),
    "revocation.accepted": _l("Revocation request accepted"),
    "revocation.refused": _l("Revocation request refused"),
    "import.queued": _l("Spreadsheet uploaded for import"),
    "import.done": _l("Import finished"),
    "import.refused": _l("Import refused"),
    "notice.create": _l("Notice created"),
    "notice.edit": _l("Notice edited"),
    "notice.publish": _l("Notice published"),
    "notice.withdraw": _l("Notice withdrawn"),
    "notice.delete": _l("Notice deleted"),
    "notice.attachment_removed": _l("Attachment removed"),
    "ip.block.added": _l("IP source block reported"),
    "ip.block.changed": _l("IP source block changed"),
    "ip.block.deleted": _l("IP source block deleted"),
    "ip.allocation.added": _l("IP allocation reported"),
    "ip.allocation.changed": _l("IP allocation changed"),
    "ip.allocation.deleted": _l("IP allocation deleted"),
    "ip.self_brought.added": _l("Self-brought IP block reported"),
    "ip.self_brought.changed": _l("Self-brought IP block changed"),
    "ip.self_brought.deleted": _l("Self-brought IP block deleted"),
    "ip.lookup": _l("IP address looked up"),
    "domain.reported": _l("Domain reported"),
    "domain.changed": _l("Domain report changed"),
    "domain.deleted": _l("Domain report deleted"),
    "api_credential.created": _l("API credential created"),
    "api_credential.revoked": _l("API credential revoked"),
    "api_credential.webhook_set": _l("Webhook registered"),
    "api_credential.webhook_removed": _l("Webhook removed"),
    "exchange.call": _l("Data-exchange API call"),
    "exchange.read": _l("Data-exchange API query"),
    "inspection.started": _l("Inspection started"),
    "inspection.scheduled": _l("Rolling inspection queued"),
    "inspection.cancelled": _l("Inspection cancelled"),
    "inspection.done": _l("Inspection finished"),
    "inspection.failed": _l("Inspection failed"),
    "rectification.issued": _l("Rectification notice sent"),
    "rectification.answered": _l("Handling result of a rectification notice recorded"),
    "rectification.closed": _l("Rectification notice closed"),
    "unfiled.reported": _l("Unfiled websites reported"),
}

#: the kinds of record an audit event is about (`object_type`, and the views' `audit_object`)
OBJECT_TYPE_LABELS = {
    "user": _l("Account"),
    "province": _l("Administrative division"),
    "code_item": _l("Code value"),
    "application": _l("Application"),
    "entity": _l("Filing"),
    "website": _l("Website"),
    "preapproval": _l("Pre-approval item"),
    "revocation_request": _l("Revocation request"),
    "blacklist": _l("Blacklist entry"),
    "special_content": _l("Special filing"),
    "special_query": _l("Special query register entry"),
    "forbidden_word": _l("Forbidden word"),
    "notice": _l("Notice"),
    "import": _l("Import job"),
    "outbox_message": _l("Message"),
    "audit_event": _l("Audit event"),
    "demo": _l("Demo data"),
    "ip_block": _l("IP source block"),
    "ip_allocation": _l("IP allocation"),
    "ip_self_brought": _l("Self-brought IP block"),
    "ip_address": _l("IP address"),
    "ip_finding": _l("Audit findings"),
    "domain_report": _l("Domain report"),
    "domain_flag": _l("Domain check finding"),
    "domain_reports": _l("Domain reports"),  # the export of the domain reports (workflow.domain_imports)
    "ip_reports": _l("IP address reports"),  # the export of the IP reports (workflow.ip_imports)
    "api_credential": _l("API credential"),
    "inspection_run": _l("Inspection run"),
    "rectification_notice": _l("Rectification notice"),
    "unfiled_sighting": _l("Unfiled websites"),  # the export of the sightings (admin_views/rectification.py)
}

#: what the console's generic create / edit / delete record (`<audit_object>.<verb>`, admin_views/base.py)
_GENERIC_VERBS = {"create": _l("%(object)s created"), "edit": _l("%(object)s edited"),
                  "delete": _l("%(object)s deleted")}

#: where an event came from when no browser was involved (audit.py writes "cli" as its address)
COMMAND_LINE = "cli"


def action_label(action: str) -> str:
    """The Chinese name of an audit action; the generic `<object>.<verb>` composed from its two parts."""
    if action in ACTION_LABELS:
        return str(ACTION_LABELS[action])
    object_type, _, verb = action.partition(".")
    if verb in _GENERIC_VERBS and object_type in OBJECT_TYPE_LABELS:
        return str(_GENERIC_VERBS[verb] % {"object": OBJECT_TYPE_LABELS[object_type]})
    return action


def action_options() -> list[tuple[str, str]]:
    """Every action the log may hold, for the filter's menu: the named ones and the generic create/edit/delete."""
    generic = [f"{object_type}.{verb}" for object_type in OBJECT_TYPE_LABELS for verb in _GENERIC_VERBS]
    return sorted((action, action_label(action)) for action in {*ACTION_LABELS, *generic})


def source_label(value: str | None) -> str:
    """An address or user name as recorded, 命令行 for the command line."""
    return str(_l("Command line")) if value == COMMAND_LINE else (value or "")


NOTICE_CATEGORY_LABELS = {
    NoticeCategory.BULLETIN: _l("Bulletin board"),
    NoticeCategory.LAWS: _l("Laws and regulations"),
    NoticeCategory.PROCESS: _l("Filing process"),
    NoticeCategory.HELP: _l("System help"),
    NoticeCategory.STATEMENT: _l("Terms of use"),
    NoticeCategory.DOWNLOADS: _l("Downloads"),
    NoticeCategory.SUPPORT: _l("Technical support"),
    NoticeCategory.CONTACT: _l("Contact us"),
    NoticeCategory.DISCLOSURE: _l("Government disclosure"),
}

DISCLOSURE_KIND_LABELS = {
    DisclosureKind.CANCELLED: _l("Cancelled at the owner's request"),
    DisclosureKind.REVOKED: _l("Revoked"),
    DisclosureKind.LICENCE_REVOKED: _l("Licence revoked"),
}
