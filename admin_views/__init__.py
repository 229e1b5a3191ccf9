"""The Flask-Admin console: one `Admin` per app, the views registered per area."""

from __future__ import annotations

from pathlib import Path

import flask_admin
from flask import Flask
from flask_admin import Admin
from flask_admin.theme import Bootstrap4Theme
from flask_babel import lazy_gettext as _l
from jinja2 import BaseLoader, ChoiceLoader, FileSystemLoader, PrefixLoader

from admin_views.account import AccountView, PasswordView
from admin_views.audit import AuditEventView
from admin_views.blacklist import BlacklistView
from admin_views.codes import CodeItemView, ProvinceView
from admin_views.credentials import ApiDocsView, CredentialView
from admin_views.dashboard import DashboardView
from admin_views.domain_files import DomainFilesView
from admin_views.domains import DomainFlagView, DomainReportOverview, DomainReportView
from admin_views.filings import (
    ApplicationView,
    BureauQueueView,
    EntityView,
    IspQueueView,
    PreapprovalQueueView,
)
from admin_views.imports import ImportView
from admin_views.inspections import InspectionFindingView, InspectionRunView
from admin_views.ip_files import IpFilesView
from admin_views.ip_pages import IpFindingView, IpLookupView, IpStatisticsView, IpUnitView
from admin_views.ip_records import (
    AllocationOverview,
    AllocationView,
    BlockOverview,
    BlockView,
    SelfBroughtOverview,
    SelfBroughtView,
)
from admin_views.lifecycle import DirectRevocationView, NewAccessView, RevocationQueueView, RevocationRequestView
from admin_views.notices import NoticeView
from admin_views.outbox import OutboxView
from admin_views.rectification import RectificationNoticeView, UnfiledSightingView
from admin_views.security_keys import SecurityKeyView
from admin_views.special_content import ForbiddenWordView, SpecialContentView
from admin_views.special_query import SpecialQueryLogView, SpecialQueryView
from admin_views.users import UserView
from admin_views.wizard import FilingWizardView
from config import BASE_DIR
from extensions import db
from models import (
    FILING_ROLES,
    MANAGEMENT_ROLES,
    Application,
    AuditEvent,
    BlacklistEntry,
    CodeItem,
    DomainFlag,
    DomainReport,
    Entity,
    ForbiddenWord,
    InspectionRun,
    IpAllocation,
    IpBlock,
    IpFinding,
    IpSelfBrought,
    Notice,
    OutboxMessage,
    PreapprovalItem,
    Province,
    RectificationNotice,
    RevocationRequest,
    SpecialContentItem,
    SpecialQueryLog,
    UnfiledSighting,
    User,
)
from validators import display_domain

USERS = _l("User management")
SYSTEM = _l("System management")
CODES = _l("Code tables")
ACCOUNT = _l("My account")
FILINGS = _l("ICP filing business")
CONTENT = _l("Special content")
INFORMATION = _l("Information")
REVOCATION = _l("Revocation")
IP_REPORTS = _l("IP address reporting")
DOMAIN_REPORTS = _l("Domain reporting")
SPECIAL_QUERIES = _l("Special queries")
INSPECTION = _l("Website inspection")


#: Flask-Admin's own templates, reachable as `flask_admin/admin/...` by the overrides in templates/admin/ that
#: remove its inline code (javascript: links, onclick) and keep the rest of it
FLASK_ADMIN_TEMPLATES = Path(flask_admin.__file__).parent / "templates" / "bootstrap4"


def _original_templates_loader(app: Flask) -> BaseLoader:
    return ChoiceLoader([app.jinja_loader, PrefixLoader({"flask_admin": FileSystemLoader(FLASK_ADMIN_TEMPLATES)})])


def init_admin(app: Flask) -> Admin:
    app.jinja_loader = _original_templates_loader(app)
    app.add_template_filter(display_domain, "domain")  # 例子.中国 (xn--fsqu00a.xn--fiqs8s)
    admin = Admin(
        app,
        name=_l("ICP & IP Filing Management System"),
        url="/admin",
        theme=Bootstrap4Theme(base_template="admin/console_base.html", fluid=True),
        index_view=DashboardView(name=_l("Dashboard"), url="/admin", endpoint="admin"),
        translations_path=str(BASE_DIR / "translations"),  # admin.po: what Flask-Admin's catalogue lacks
    )

    admin.add_view(FilingWizardView(name=_l("File a website"), endpoint="filing_wizard", url="/admin/filing",
                                    category=FILINGS))
    admin.add_view(IspQueueView(Application, db, name=_l("Awaiting my verification"), endpoint="isp_queue",
                                category=FILINGS))
    admin.add_view(BureauQueueView(Application, db, name=_l("Awaiting audit"), endpoint="bureau_queue",
                                   category=FILINGS))
    admin.add_view(PreapprovalQueueView(PreapprovalItem, db, name=_l("Pre-approval items"),
                                        endpoint="preapproval_queue", category=FILINGS))
    admin.add_view(ApplicationView(Application, db, name=_l("Applications"), endpoint="applications",
                                   category=FILINGS))
    admin.add_view(EntityView(Entity, db, name=_l("Filings"), endpoint="filings", category=FILINGS))
    admin.add_view(ImportView(name=_l("Batch import"), endpoint="imports", url="/admin/import", category=FILINGS))
    admin.add_view(NewAccessView(name=_l("New access"), endpoint="new_access", url="/admin/new-access",
                                 category=FILINGS))
    admin.add_view(RevocationQueueView(RevocationRequest, db, name=_l("Revocation requests to process"),
                                       endpoint="revocation_queue", category=REVOCATION))
    admin.add_view(RevocationRequestView(RevocationRequest, db, name=_l("My revocation requests"),
                                         endpoint="revocation_requests", category=REVOCATION))
    admin.add_view(DirectRevocationView(name=_l("Revoke by number"), endpoint="direct_revocation",
                                        url="/admin/revoke", category=REVOCATION))
    _add_ip_views(admin)
    _add_domain_views(admin)
    _add_inspection_views(admin)
    admin.add_view(NoticeView(Notice, db, name=_l("Notices"), endpoint="notices", category=INFORMATION))
    admin.add_view(SpecialContentView(SpecialContentItem, db, name=_l("Special filings"), endpoint="special_content",
                                      category=CONTENT))
    admin.add_view(BlacklistView(BlacklistEntry, db, name=_l("Blacklist"), endpoint="blacklist", category=CONTENT))
    admin.add_view(ForbiddenWordView(ForbiddenWord, db, name=_l("Forbidden words"), endpoint="forbidden_words",
                                     category=CONTENT))
    admin.add_view(SpecialQueryView(name=_l("Search the registry"), endpoint="special_query",
                                    url="/admin/special-query", category=SPECIAL_QUERIES))
    admin.add_view(SpecialQueryLogView(SpecialQueryLog, db, name=_l("Special query register"),
                                       endpoint="special_query_log", category=SPECIAL_QUERIES))
    admin.add_view(UserView(User, db, role_group=FILING_ROLES, name=_l("Filing users"),
                            endpoint="filing_users", category=USERS))
    admin.add_view(UserView(User, db, role_group=MANAGEMENT_ROLES,
                            name=_l("Management users"), endpoint="management_users",
                            category=USERS))
    admin.add_view(ProvinceView(Province, db, name=_l("Administrative divisions"),
                                endpoint="provinces", category=CODES))
    admin.add_view(CodeItemView(CodeItem, db, name=_l("Other code tables"),
                                endpoint="code_items", category=CODES))
    admin.add_view(AuditEventView(AuditEvent, db, name=_l("Audit log"),
                                  endpoint="audit_log", category=SYSTEM))
    admin.add_view(AccountView(name=_l("Personal information"), endpoint="account", url="/admin/account",
                               category=ACCOUNT))
    admin.add_view(PasswordView(name=_l("Change password"), endpoint="password", url="/admin/password",
                                category=ACCOUNT))
    admin.add_view(SecurityKeyView(name=_l("Security keys"), endpoint="security_keys", url="/admin/security-keys",
                                   category=ACCOUNT))
    admin.add_view(CredentialView(name=_l("API credentials"), endpoint="credentials", url="/admin/credentials",
                                  category=ACCOUNT))
    admin.add_view(ApiDocsView(name=_l("API guide"), endpoint="api_docs", url="/admin/api", category=ACCOUNT))
    admin.add_view(OutboxView(OutboxMessage, db, name=_l("Message outbox"), endpoint="outbox", category=SYSTEM))
    return admin


def _add_ip_views(admin: Admin) -> None:
    """IP地址备案: a reporting unit's own records; the bureaus' and MIIT's read-only lists; lookup, findings."""
    admin.add_view(IpUnitView(User, db, name=_l("IP reporting units"), endpoint="ip_units", category=IP_REPORTS))
    for view, endpoint in ((BlockView, "ip_blocks"), (BlockOverview, "ip_all_blocks")):
        admin.add_view(view(IpBlock, db, name=_l("Source blocks"), endpoint=endpoint, category=IP_REPORTS))
    for view, endpoint in ((AllocationView, "ip_allocations"), (AllocationOverview, "ip_all_allocations")):
        admin.add_view(view(IpAllocation, db, name=_l("Allocations"), endpoint=endpoint, category=IP_REPORTS))
    for view, endpoint in ((SelfBroughtView, "ip_self_brought"), (SelfBroughtOverview, "ip_all_self_brought")):
        admin.add_view(view(IpSelfBrought, db, name=_l("Self-brought IP"), endpoint=endpoint, category=IP_REPORTS))
    admin.add_view(IpLookupView(name=_l("Address lookup"), endpoint="ip_lookup", url="/admin/ip-lookup",
                                category=IP_REPORTS))
    admin.add_view(IpFilesView(name=_l("IP import and export"), endpoint="ip_files", url="/admin/ip-files",
                               category=IP_REPORTS))
    admin.add_view(IpFindingView(IpFinding, db, name=_l("Audit findings"), endpoint="ip_findings",
                                 category=IP_REPORTS))
    admin.add_view(IpStatisticsView(name=_l("IP address statistics"), endpoint="ip_statistics",
                                    url="/admin/ip-statistics", category=IP_REPORTS))


def _add_domain_views(admin: Admin) -> None:
    """域名报备: a registrar's own reports; the bureaus' and MIIT's read-only list and 域名核验异常."""
    admin.add_view(DomainReportView(DomainReport, db, name=_l("My domain reports"), endpoint="domain_reports",
                                    category=DOMAIN_REPORTS))
    admin.add_view(DomainReportOverview(DomainReport, db, name=_l("Domain reports"), endpoint="domain_overview",
                                        category=DOMAIN_REPORTS))
    admin.add_view(DomainFlagView(DomainFlag, db, name=_l("Domain check findings"), endpoint="domain_flags",
                                  category=DOMAIN_REPORTS))
    admin.add_view(DomainFilesView(name=_l("Domain import and export"), endpoint="domain_files",
                                   url="/admin/domain-files", category=DOMAIN_REPORTS))


def _add_inspection_views(admin: Admin) -> None:
    """网站检查 (issue 18): runs and findings (bureau, MIIT), rectification notices (also the ISPs serving the
    website), unfiled websites (ISPs, bureaus, MIIT)."""
    admin.add_view(InspectionRunView(InspectionRun, db, name=_l("Inspection runs"), endpoint="inspection_runs",
                                     url="/admin/inspections", category=INSPECTION))
    admin.add_view(InspectionFindingView(name=_l("Inspection findings"), endpoint="inspection_findings",
                                         url="/admin/inspection-findings", category=INSPECTION))
    admin.add_view(RectificationNoticeView(RectificationNotice, db, name=_l("Rectification notices"),
                                           endpoint="rectification_notices", url="/admin/rectification",
                                           category=INSPECTION))
    admin.add_view(UnfiledSightingView(UnfiledSighting, db, name=_l("Unfiled websites"), endpoint="unfiled_websites",
                                       url="/admin/unfiled", category=INSPECTION))
