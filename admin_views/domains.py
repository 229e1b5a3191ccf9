"""域名报备 in the console (SPEC §11, issue 14): a registrar's own reports (list, search, add, change, delete — by
record or by domain — every change through `workflow.domains`, every refusal beside its field with its result
code); the bureaus' (their province) and MIIT's (all) read-only lists; 域名核验异常 (the flags the reconciliation
worker keeps); the dashboard's counts. The verdicts on the application pages are admin_views/domain_verdicts.py.

Never `LIKE '%x%'`: a search is a domain prefix, a registrant-name prefix or an exact certificate number, each on
an index of `domain_reports`."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from flask import abort, flash, redirect, url_for
from flask_admin import expose
from flask_admin.contrib.sqla.filters import BaseSQLAFilter, FilterEqual
from flask_admin.helpers import get_form_data, get_redirect_target
from flask_admin.model.template import DeleteRowAction, EditRowAction
from flask_babel import format_datetime
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import joinedload
from wtforms import DateField, Field, SelectField, StringField, TextAreaField
from wtforms.validators import InputRequired, Length, Optional

import permissions
import validators
import workflow.domains as domains
from admin_views.base import ConsoleForm, SecureModelView
from admin_views.domain_verdicts import VERDICT_LABELS, verdict_badge
from admin_views.labels import PROVINCE_NAMES, code_name, label
from admin_views.search import ProvinceFilter, per_request
from extensions import db
from forms import show_refusal, validate_with
from models import (
    CodeTable,
    DomainFlag,
    DomainReport,
    DomainStatus,
    Province,
    Role,
    User,
    Verdict,
    Website,
    code_values,
    starts_with,
)
from models.domains import CONTACT_FIELDS
from permissions import Action
from workflow import WorkflowError
from workflow.checks import EXPIRING_WITHIN

STATUS_LABELS = {DomainStatus.NORMAL: _l("Normal"), DomainStatus.SUSPENDED: _l("Resolution suspended"),
                 DomainStatus.EXPIRED: _l("Expired"), DomainStatus.DELETED: _l("Deleted")}
#: a term of letters, digits, dots and hyphens may be the beginning of an ASCII domain
DOMAIN_PREFIX_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]*$")


# --- the console home -------------------------------------------------------------------------------------


def _count(model: type, *criteria: object) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*criteria)) or 0


def _expiring(today: date) -> ColumnElement[bool]:
    return DomainReport.expires_on.between(today, today + EXPIRING_WITHIN)


def domain_cards(user: User) -> list[tuple[str, int, str]]:
    """(title, count, list URL) of the dashboard: a registrar's reports and those expiring within 3 months; the
    open 域名核验异常 a bureau or MIIT oversees."""
    if permissions.can(user, Action.DOMAIN_REPORT):
        live = (DomainReport.registrar_id == user.id, DomainReport.status != DomainStatus.DELETED)
        return [(str(_l("My domain reports")), _count(DomainReport, *live), url_for("domain_reports.index_view")),
                (str(_l("Expiring within 3 months")), _count(DomainReport, *live, _expiring(date.today())),
                 url_for("domain_reports.index_view", flt0_0=ExpiryFilter.SOON))]
    if permissions.can(user, Action.DOMAIN_FLAGS):
        return [(str(_l("Open domain check findings")),
                 _count(DomainFlag, permissions.domain_flag_scope(user), DomainFlag.resolved_at.is_(None)),
                 url_for("domain_flags.index_view", flt0_1=FlagStateFilter.OPEN))]  # the flags' second filter
    return []


# --- the form ---------------------------------------------------------------------------------------------


def _text(max_length: int, label_text: Any, description: Any = "") -> StringField:
    return StringField(label_text, [Optional(), Length(max=max_length)], description=description)


def _menu(label_text: Any, default: str = "") -> SelectField:
    """A menu the workflow checks (code tables, provinces): its value is not limited to the choices shown."""
    return SelectField(label_text, choices=[], validate_choice=False, default=default)


def _contact_fields(prefix: str) -> dict[str, Field]:
    """The fields of the registrant (`registrant_*`) or the administrative contact (`admin_*`), in the order of
    `models.domains.CONTACT_FIELDS`."""
    fields = {
        "name": _text(128, _l("Name (person or organisation)")),
        "organisation": _text(128, _l("Organisation")),
        "certificate_type": _menu(_l("Certificate type")),
        "certificate_number": _text(64, _l("Certificate number")),
        "address": _text(255, _l("Postal address")),
        "province_code": _menu(_l("Province")),
        "city": _text(64, _l("City")),
        "email": _text(254, _l("E-mail")),
        "phone": _text(32, _l("Phone"), _l("A mobile number, or a landline such as 010-12345678.")),
    }
    return {f"{prefix}_{name}": fields[name] for name in CONTACT_FIELDS}


class _DomainFields(ConsoleForm):
    domain = _text(253, _l("Domain"), _l("Chinese domains may be typed as they read or in punycode."))
    domain_type = _menu(_l("Domain type"))
    registered_on = DateField(_l("Registration date"), [Optional()])
    expires_on = DateField(_l("Expiry date"), [Optional()])
    status = _menu(_l("Status"), DomainStatus.NORMAL.value)
    registrar_name = _text(128, _l("Registrar name"), _l("As the registrar names itself in its registration data."))
    name_servers = TextAreaField(_l("Name servers"), [Optional()], description=_l("One per line."))
    payer_name = _text(128, _l("Payer"))


ReportForm = type("ReportForm", (_DomainFields,), {**_contact_fields("registrant"), **_contact_fields("admin")})
FORM_SECTIONS = (
    (_l("Domain information"), ("domain", "domain_type", "registered_on", "expires_on", "status", "registrar_name",
                                "name_servers", "payer_name")),
    (_l("Registrant"), tuple(f"registrant_{name}" for name in CONTACT_FIELDS)),
    (_l("Administrative contact"), tuple(f"admin_{name}" for name in CONTACT_FIELDS)),
)


def _choose() -> tuple[str, str]:
    return "", str(_l("— choose —"))


def _province_choices() -> list[tuple[str, str]]:
    return [(code, name) for code, name in db.session.execute(
        select(Province.code, Province.name).where(Province.active).order_by(Province.sort_order))]


def fill_choices(form: Any) -> Any:
    """The menus, from the code tables and the provinces; the statuses a registrar sets."""
    form.domain_type.choices = [_choose(), *code_values(CodeTable.DOMAIN_TYPE)]
    form.status.choices = [(status.value, str(STATUS_LABELS[status])) for status in domains.SETTABLE_STATUSES]
    certificate_types, provinces = code_values(CodeTable.CERTIFICATE_TYPE), _province_choices()
    for prefix in ("registrant", "admin"):
        form[f"{prefix}_certificate_type"].choices = [_choose(), *certificate_types]
        form[f"{prefix}_province_code"].choices = [_choose(), *provinces]
    return form


def unicode_domain(name: str) -> str:
    """A stored (punycode) domain as typed by a person: 例子.中国."""
    try:
        return name.encode("ascii").decode("idna")
    except UnicodeError:
        return name


def report_values(report: DomainReport) -> dict[str, Any]:
    """A report as its form's data (the edit form's first showing)."""
    values = {name: getattr(report, name) for name in domains.DATA_FIELDS}
    values["domain"] = unicode_domain(report.domain)
    values["status"] = report.status.value
    return {name: "" if value is None and name not in ("registered_on", "expires_on") else value
            for name, value in values.items()}


def report_data(form: Any) -> domains.ReportData:
    def value(name: str) -> Any:
        data = form[name].data
        if isinstance(form[name], DateField):
            return data if isinstance(data, date) else None
        return (data or "").strip() if isinstance(data, str) or data is None else data

    return domains.ReportData(**{name: value(name) for name in domains.DATA_FIELDS})


class DeleteByDomainForm(ConsoleForm):
    domain = StringField(_l("Domain"), [InputRequired(), Length(max=253)],
                         description=_l("Chinese domains may be typed as they read or in punycode."))


# --- list filters -----------------------------------------------------------------------------------------


class ExpiryFilter(BaseSQLAFilter):
    """到期: within 3 months, or passed (deleted reports aside)."""

    SOON, PASSED = "soon", "passed"

    def apply(self, query: Any, value: Any, alias: Any = None) -> Any:
        today = date.today()
        live = DomainReport.status != DomainStatus.DELETED
        if value == self.SOON:
            return query.filter(live, _expiring(today))
        return query.filter(live, DomainReport.expires_on < today)

    def operation(self) -> str:
        return _l("equals")  # type: ignore[return-value]  # lazy: the filters are built before any request


def _registrar_options() -> list[tuple[str, str]]:
    """The registrars whose reports the user oversees: its province's (a bureau), all (MIIT)."""
    query = select(User.id, User.organisation, User.username).where(User.role == Role.DOMAIN_REPORTER)
    if current_user.role != Role.MIIT:
        query = query.where(User.province_code == current_user.province_code)
    return [(str(user_id), organisation or username)
            for user_id, organisation, username in db.session.execute(query.order_by(User.username))]


class RegistrarFilter(FilterEqual):
    """注册服务机构: one of `_registrar_options`, by account id (a forged value is refused, never a 500)."""

    def validate(self, value: str) -> bool:
        return value.isdigit() and len(value) <= 18

    def clean(self, value: str) -> int:
        return int(value)


def _report_filters() -> tuple[Any, ...]:
    return (
        ExpiryFilter(DomainReport.expires_on, _l("Expiry"),
                     options=[(ExpiryFilter.SOON, _l("Within 3 months")), (ExpiryFilter.PASSED, _l("Passed"))]),
        FilterEqual(DomainReport.status, _l("Status"), options=[(s.value, STATUS_LABELS[s]) for s in DomainStatus]),
        FilterEqual(DomainReport.domain_type, _l("Domain type"),
                    options=per_request(lambda: code_values(CodeTable.DOMAIN_TYPE))),
    )


# --- the report lists -------------------------------------------------------------------------------------


def _formatter(function: Any) -> Any:
    return lambda _view, _context, model, _name: function(model)


def search_condition(term: str) -> ColumnElement[bool]:
    """A domain (Unicode or punycode, normalised; the whole name or its beginning), a registrant name's beginning,
    or a certificate number."""
    conditions = [starts_with(DomainReport.registrant_name, term),
                  DomainReport.registrant_certificate_number == term.upper()]
    try:
        conditions.append(starts_with(DomainReport.domain, validators.normalise_domain(term)))
    except ValueError:
        if DOMAIN_PREFIX_RE.match(term.lower()):
            conditions.append(starts_with(DomainReport.domain, term.lower()))
    return or_(*conditions)


REPORT_LABELS = {
    "domain": _l("Domain"), "domain_type": _l("Domain type"), "registered_on": _l("Registration date"),
    "expires_on": _l("Expiry date"), "status": _l("Status"), "registrar_name": _l("Registrar name"),
    "name_servers": _l("Name servers"), "payer_name": _l("Payer"), "registrar": _l("Registrar"),
    "registrant_name": _l("Registrant"), "registrant_certificate_number": _l("Certificate number"),
    "created_at": _l("Reported at"), "updated_at": _l("Changed at"),
    **{f"registrant_{name}": text for name, text in (
        ("organisation", _l("Registrant organisation")), ("certificate_type", _l("Registrant certificate type")),
        ("address", _l("Registrant address")), ("province_code", _l("Registrant province")),
        ("city", _l("Registrant city")), ("email", _l("Registrant e-mail")), ("phone", _l("Registrant phone")))},
    **{f"admin_{name}": text for name, text in (
        ("name", _l("Administrative contact")), ("organisation", _l("Administrative contact's organisation")),
        ("certificate_type", _l("Administrative contact's certificate type")),
        ("certificate_number", _l("Administrative contact's certificate number")),
        ("address", _l("Administrative contact's address")), ("province_code", _l("Administrative contact's province")),
        ("city", _l("Administrative contact's city")), ("email", _l("Administrative contact's e-mail")),
        ("phone", _l("Administrative contact's phone")))},
}
REPORT_FORMATTERS = {
    "domain": _formatter(lambda m: validators.display_domain(m.domain)),
    "domain_type": _formatter(lambda m: code_name(CodeTable.DOMAIN_TYPE, m.domain_type)),
    "status": _formatter(lambda m: label(STATUS_LABELS, m.status)),
    "registrar": _formatter(lambda m: m.registrar.organisation or m.registrar.username),
    "name_servers": _formatter(lambda m: ", ".join(m.name_servers.split())),
    **{f"{prefix}_certificate_type": _formatter(lambda m, p=prefix: code_name(
        CodeTable.CERTIFICATE_TYPE, getattr(m, f"{p}_certificate_type"))) for prefix in ("registrant", "admin")},
    **{f"{prefix}_province_code": _formatter(lambda m, p=prefix: PROVINCE_NAMES.get(
        getattr(m, f"{p}_province_code") or "", "")) for prefix in ("registrant", "admin")},
}
REPORT_COLUMNS = ("domain", "domain_type", "registrant_name", "registrant_certificate_number", "registered_on",
                  "expires_on", "status")
DETAIL_COLUMNS = ("domain", "domain_type", "status", "registered_on", "expires_on", "registrar_name", "name_servers",
                  *FORM_SECTIONS[1][1], *FORM_SECTIONS[2][1], "payer_name", "created_at", "updated_at")


class _ReportList(SecureModelView):
    """The reports within the user's scope, searched by domain, registrant name or certificate number."""

    audit_object = "domain_report"
    can_view_details = True
    column_list = REPORT_COLUMNS
    column_details_list = DETAIL_COLUMNS
    column_sortable_list = ("domain", "registered_on", "expires_on")
    column_default_sort = ("domain", False)  # ix_domain_reports_registrar (registrar_id, domain), ix_…_domain
    column_labels = REPORT_LABELS
    column_formatters = REPORT_FORMATTERS
    column_formatters_detail = REPORT_FORMATTERS
    column_filters = _report_filters()

    def scope(self) -> ColumnElement[bool]:
        return permissions.domain_report_scope(current_user)

    def get_query(self) -> Any:
        return super().get_query().options(joinedload(DomainReport.registrar))

    def search_placeholder(self) -> str:
        return str(_l("Domain, registrant name or certificate number"))

    def search_condition(self, term: str) -> ColumnElement[bool]:
        return search_condition(term)


class _IfAllowed:
    """Flask-Admin's edit / delete button, shown only on the rows where the view allows it."""

    action_name = ""

    def render(self, context: Any, row_id: str, row: Any) -> Any:
        view = context.resolve("admin_view")
        return super().render(context, row_id, row) if view.is_row_action_allowed(  # type: ignore[misc]
            self.action_name, row) else ""


class _EditIfAllowed(_IfAllowed, EditRowAction):
    action_name = "edit"


class _DeleteIfAllowed(_IfAllowed, DeleteRowAction):
    action_name = "delete"


class DomainReportView(_ReportList):
    """我的域名报备: a registrar's own reports; add, change and delete through `workflow.domains`."""

    access_action = create_action = edit_action = delete_action = Action.DOMAIN_REPORT
    form = ReportForm
    list_template = "admin/domains/list.html"
    create_template = edit_template = "admin/domains/form.html"

    def is_row_action_allowed(self, name: str, obj: Any) -> bool:
        """A deleted report stays, read only (the check says 已删除 until the domain is reported again)."""
        return name in ("edit", "delete") and obj.status != DomainStatus.DELETED

    def get_list_row_actions(self) -> list[Any]:
        allowed = {EditRowAction: _EditIfAllowed, DeleteRowAction: _DeleteIfAllowed}
        return [allowed[type(action)]() if type(action) in allowed else action
                for action in super().get_list_row_actions()]

    def create_form(self, obj: Any = None) -> Any:
        return fill_choices(super().create_form(obj))

    def edit_form(self, obj: Any = None) -> Any:
        if obj is None or not self.is_row_action_allowed("edit", obj):
            abort(404)
        return fill_choices(self._edit_form_class(get_form_data(), data=report_values(obj)))

    def validate_form(self, form: Any) -> bool:
        """The form's own checks and every rule of the report's fields at once, each beside its field."""
        if not isinstance(form, ReportForm):
            return super().validate_form(form)

        def check() -> None:
            problems = list(domains.report_problems(report_data(form)))
            if problems:
                raise domains.DomainError(problems)

        return validate_with(form, check)

    def create_model(self, form: Any) -> Any:
        try:
            report = domains.add_report(current_user, report_data(form))
            db.session.commit()
        except WorkflowError as error:
            show_refusal(form, error)
            return False
        return report

    def update_model(self, form: Any, model: Any) -> bool:
        try:
            domains.change_report(current_user, model, report_data(form))
            db.session.commit()
        except WorkflowError as error:
            show_refusal(form, error)
            return False
        return True

    def delete_model(self, model: Any) -> bool:
        try:
            domains.delete_report(current_user, model)
            db.session.commit()
        except WorkflowError as error:
            db.session.rollback()
            for _field, message in error.errors:
                flash(message, "error")
            return False
        return True

    def render(self, template: str, **kwargs: Any) -> str:
        if template == self.create_template:
            kwargs.update(sections=FORM_SECTIONS, required=domains.REQUIRED)
        return super().render(template, **kwargs)

    @expose("/delete-by-domain/", methods=("GET", "POST"))
    def delete_by_domain_view(self) -> Any:
        """The specification's second way of deleting: by the domain's name."""
        back = get_redirect_target() or self.get_url(".index_view")
        form = DeleteByDomainForm()
        if form.validate_on_submit():
            try:
                domains.delete_report_of(current_user, form.domain.data)
                db.session.commit()
            except WorkflowError as error:
                db.session.rollback()
                form.domain.errors = [message for _field, message in error.errors]
            else:
                flash(_l("The report of %(domain)s was deleted.",
                         domain=validators.display_domain(validators.normalise_domain(form.domain.data))), "success")
                return redirect(back)
        return self.render("admin/domains/delete_by_domain.html", form=form, back=back)


class DomainReportOverview(_ReportList):
    """域名报备信息: the reports a bureau (its province's registrars', and those of domains filed in its province)
    or MIIT (all) oversees; read only."""

    access_action = Action.DOMAIN_LIST
    column_list = ("registrar", *REPORT_COLUMNS)
    column_details_list = ("registrar", *DETAIL_COLUMNS)
    column_filters = (*_report_filters(),
                      RegistrarFilter(DomainReport.registrar_id, _l("Registrar"),
                                      options=per_request(_registrar_options)))


# --- 域名核验异常 -----------------------------------------------------------------------------------------


class FlagStateFilter(BaseSQLAFilter):
    OPEN, RESOLVED = "open", "resolved"

    def apply(self, query: Any, value: Any, alias: Any = None) -> Any:
        resolved = DomainFlag.resolved_at
        return query.filter(resolved.is_(None) if value == self.OPEN else resolved.is_not(None))

    def operation(self) -> str:
        return _l("equals")  # type: ignore[return-value]


def _flag_state(flag: DomainFlag) -> str:
    if flag.resolved_at is None:
        return str(_l("Not resolved"))
    return str(_l("Resolved at %(at)s", at=format_datetime(flag.resolved_at, "yyyy-MM-dd HH:mm")))


class DomainFlagView(SecureModelView):
    """域名核验异常: filed websites whose domain's registrant check fails since a report changed; open ones first.
    The reconciliation worker (workflow/domain_reconcile.py) opens and resolves them."""

    access_action = Action.DOMAIN_FLAGS
    audit_object = "domain_flag"
    list_template = "admin/domains/flags.html"
    column_list = ("filing_number", "website", "domain", "verdict", "detail", "since", "state")
    column_sortable_list = ("since",)
    column_labels = {"filing_number": _l("Website number"), "website": _l("Website"), "domain": _l("Domain"),
                     "verdict": _l("Verdict"), "detail": _l("What changed"), "since": _l("Since"),
                     "state": _l("State")}
    column_formatters = {
        "filing_number": _formatter(lambda m: m.website.number or m.website.entity.number or ""),
        "website": _formatter(lambda m: m.website.name),
        "state": _formatter(_flag_state),
        "domain": _formatter(lambda m: validators.display_domain(m.domain)),
        "verdict": _formatter(lambda m: verdict_badge(m.verdict)),
    }
    column_filters = (
        FilterEqual(DomainFlag.verdict, _l("Verdict"), options=[(v.value, VERDICT_LABELS[v]) for v in Verdict]),
        FlagStateFilter(DomainFlag.resolved_at, _l("State"),
                        options=[(FlagStateFilter.OPEN, _l("Not resolved")),
                                 (FlagStateFilter.RESOLVED, _l("Resolved"))]),
        ProvinceFilter(DomainFlag.province_code, _l("Province"), options=list(PROVINCE_NAMES.items())),
    )

    def scope(self) -> ColumnElement[bool]:
        return permissions.domain_flag_scope(current_user)

    def get_query(self) -> Any:
        return super().get_query().options(joinedload(DomainFlag.website).joinedload(Website.entity))

    def _get_default_order(self) -> Any:
        """Open ones first (resolved_at empty), the newest first."""
        yield DomainFlag.resolved_at.is_not(None), [], False
        yield DomainFlag.id, [], True

