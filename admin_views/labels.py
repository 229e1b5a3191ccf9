"""Display labels for enum values (translated), shared by the console views and templates."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

from models import CodeTable, DisclosureKind, NoticeCategory, Role, UserStatus
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
}


PROVINCE_NAMES = {code: name for code, name, _abbr in PROVINCES}


def label(mapping: dict, value: object) -> str:
    """The translated label of an enum value, or the raw value when unknown."""
    return str(mapping.get(value, value)) if value is not None else ""


ACTION_LABELS = {
    "auth.sign_in": _l("Signed in"),
    "auth.sign_in_failed": _l("Sign-in failed"),
    "auth.sign_out": _l("Signed out"),
    "user.create": _l("Account created"),
    "user.edit": _l("Account edited"),
    "user.disable": _l("Account disabled"),
    "user.enable": _l("Account enabled"),
    "user.reset_password": _l("Password reset"),
    "user.grant_import": _l("Import right granted"),
    "user.withdraw_import": _l("Import right withdrawn"),
    "province.create": _l("Division created"),
    "province.edit": _l("Division edited"),
    "code_item.create": _l("Code value created"),
    "code_item.edit": _l("Code value edited"),
    "export": _l("Exported"),
    "application.draft_saved": _l("Draft saved"),
    "application.submitted": _l("Submitted"),
    "application.isp_verified": _l("Verified by an ISP"),
    "application.isp_returned": _l("Returned by an ISP"),
    "application.approved": _l("Approved by the bureau"),
    "application.rejected": _l("Rejected by the bureau"),
    "application.withdrawn": _l("Withdrawn by its submitter"),
    "access_code.issued": _l("Access authorisation code made by the owner"),
    "access_code.sent": _l("Access authorisation code sent to the owner"),
    "preapproval.confirmed": _l("Pre-approval confirmed"),
    "preapproval.disputed": _l("Pre-approval disputed"),
    "notice.create": _l("Notice created"),
    "notice.edit": _l("Notice edited"),
    "notice.publish": _l("Notice published"),
    "notice.withdraw": _l("Notice withdrawn"),
    "notice.delete": _l("Notice deleted"),
    "notice.attachment_removed": _l("Attachment removed"),
}

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
