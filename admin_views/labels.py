"""Display labels for enum values (translated), shared by the console views and templates."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

from models import CodeTable, Role, UserStatus

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


def label(mapping: dict, value: object) -> str:
    """The translated label of an enum value, or the raw value when unknown."""
    return str(mapping.get(value, value)) if value is not None else ""
