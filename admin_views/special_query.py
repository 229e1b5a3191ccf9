"""专项查询 (issue 17 §1): the investigators' query page (search, 显示 one record whole, export) and
专项查询记录, the register MIIT and the bureaus read. The searches, the masking and the recording are
`workflow.special_query`'s; these views only read the form and show what it returns."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from flask import abort, after_this_request, flash, request, send_file
from flask_admin import expose
from flask_admin.contrib.sqla.filters import FilterEqual
from flask_babel import format_datetime
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import ColumnElement
from werkzeug.wrappers import Response

import permissions
from admin_views.base import RoleView, SecureModelView, posted
from admin_views.domains import STATUS_LABELS as DOMAIN_STATUS_LABELS
from admin_views.filings import FILING_STATUS_LABELS
from admin_views.ip_pages import STEP_LABELS
from admin_views.labels import PROVINCE_NAMES, code_name, label
from admin_views.search import LocalDateBetween, ProvinceFilter
from extensions import db
from importer import XLSX_MIME, content_disposition, write_xlsx
from models import CodeTable, SpecialQueryAction, SpecialQueryLog, utcnow
from permissions import Action
from workflow import NotFound, WorkflowError
from workflow import special_query as sq

KIND_LABELS = {
    sq.Kind.UNIT_NAME: _l("Unit name (beginning)"),
    sq.Kind.NUMBER: _l("Filing, website or licence number (beginning)"),
    sq.Kind.DOMAIN: _l("Domain"),
    sq.Kind.IP: _l("IP address"),
    sq.Kind.PERSON_NAME: _l("Responsible person's name"),
    sq.Kind.ID_NUMBER: _l("ID number"),
    sq.Kind.MOBILE: _l("Mobile number"),
    sq.Kind.EMAIL: _l("E-mail"),
    sq.Kind.CREDIT_CODE: _l("Unified social credit code"),
}
ACTION_LABELS = {SpecialQueryAction.SEARCH: _l("Query"), SpecialQueryAction.REVEAL: _l("Shown whole"),
                 SpecialQueryAction.EXPORT: _l("Export")}
RECORD_LABELS = {"entity": _l("Filing"), "domain_report": _l("Domain report"), "ip_allocation": _l("Allocation"),
                 "ip_self_brought": _l("Self-brought IP")}
QUERY_FIELDS = ("kind", "term", "reason", "case_number")


def _form_query() -> tuple[sq.Query | None, dict[str, str]]:
    """The query of the posted form, or the problems with it (field → message)."""
    try:
        return sq.check_query(*(request.form.get(name, "") for name in QUERY_FIELDS)), {}
    except WorkflowError as error:
        return None, {field or "": message for field, message in reversed(error.errors)}


class SpecialQueryView(RoleView):
    """专项查询: a query by one kind, with a reason and a case number; results masked; 显示 and export as POSTs."""

    access_action = Action.SPECIAL_QUERY

    def _page(self, template: str, **kwargs: Any) -> str:
        return self.render(template, form=FlaskForm(), kinds=KIND_LABELS, words=WORDS, **kwargs)

    @expose("/", methods=("GET", "POST"))
    def index(self) -> str:
        values = {name: request.form.get(name, "") for name in QUERY_FIELDS}
        results, errors = None, {}
        if posted():
            query, errors = _form_query()
            if query is not None:
                results = sq.search(current_user, query)
        page = self._page("admin/special_query/index.html", values=values, errors=errors, results=results,
                          mask=sq.MASKED, limit=sq.PAGE_LIMIT, export_limit=sq.EXPORT_LIMIT)
        return _recorded(page)

    def _posted_query(self) -> sq.Query:
        """The query a 显示 or export form carries (checked again: a forged one is refused, never run)."""
        if not posted():
            abort(400)
        query, errors = _form_query()
        if query is None:
            for message in errors.values():
                flash(message, "error")
            abort(400)
        return query

    @expose("/record", methods=("POST",))
    def record(self) -> str:
        """显示: one record of the results whole, recorded with the query's reason."""
        query = self._posted_query()
        record_type = request.form.get("record_type", "")
        try:
            record = sq.reveal(current_user, query, record_type, request.form.get("record_id", ""))
        except NotFound:
            abort(404)
        return _recorded(self._page("admin/special_query/index.html", query=query, record=record,
                                    record_type=record_type, mask=sq.WHOLE))

    @expose("/export", methods=("POST",))
    def export(self) -> Response:
        """The results as xlsx (personal data masked), headed by the account, the time and the reason."""
        query = self._posted_query()
        found = sq.export(current_user, query)
        path = _recorded(write_xlsx([str(_l("Special query export"))], _workbook_rows(query, found), "专项查询"))

        @after_this_request
        def _remove(response: Response) -> Response:
            os.remove(path)
            return response

        response = send_file(path, mimetype=XLSX_MIME)
        response.headers["Content-Disposition"] = content_disposition(
            f"专项查询_{query.case_number}.xlsx", "special-query.xlsx")
        return response


def _recorded(made: str) -> str:
    """What a query made (a page, an export's file), once its record is committed: made first, from the records
    as loaded (a commit would expire them, each read again), and never shown unless the record is written."""
    db.session.commit()
    return made


# --- what the pages and the export show ----------------------------------------------------------------------

class Words:
    """The labels the templates and the export use for a record's coded values."""

    kind_label = staticmethod(lambda kind: label(KIND_LABELS, kind))
    province = staticmethod(lambda code: PROVINCE_NAMES.get(code or "", code or ""))
    entity_status = staticmethod(lambda status: label(FILING_STATUS_LABELS, status))
    report_status = staticmethod(lambda status: label(DOMAIN_STATUS_LABELS, status))
    step_label = staticmethod(lambda kind: label(STEP_LABELS, kind))
    record_label = staticmethod(lambda kind: label(RECORD_LABELS, kind))
    nature = staticmethod(lambda code: code_name(CodeTable.UNIT_NATURE, code))
    certificate_type = staticmethod(lambda code: code_name(CodeTable.CERTIFICATE_TYPE, code))
    access_method = staticmethod(lambda code: code_name(CodeTable.ACCESS_METHOD, code))

    @staticmethod
    def unit(user: Any) -> str:
        return (user.organisation or user.username) if user is not None else ""


WORDS = Words()

EXPORT_HEADERS = (
    _l("Record"), _l("Unit name"), _l("Province"), _l("Certificate number"), _l("Filing number"),
    _l("Licence number"), _l("Status"), _l("Responsible person"), _l("ID number"), _l("Mobile number"), _l("E-mail"),
    _l("Website number"), _l("Website name"), _l("Domains"), _l("Website responsible person"),
    _l("Website responsible person's mobile"), _l("Access provider or reporting unit"), _l("IP addresses"),
)


def _workbook_rows(query: sq.Query, found: sq.Results) -> Iterator[list[object]]:
    """The header naming the account, time and reason, then the column titles and at most EXPORT_LIMIT rows."""
    rows = list(_data_rows(found))
    yield [str(_l("Account")), current_user.username]
    yield [str(_l("Exported at")), format_datetime(utcnow(), "yyyy-MM-dd HH:mm:ss")]
    yield [str(_l("Reason for the query")), query.reason]
    yield [str(_l("Case number")), query.case_number]
    yield [str(_l("Query")), f"{WORDS.kind_label(query.kind)}：{query.term}"]
    yield [str(_l("Note")), str(_l("Personal data is masked in exports."))]
    if len(rows) > sq.EXPORT_LIMIT or found.entity_count > sq.EXPORT_LIMIT or found.report_count > sq.EXPORT_LIMIT:
        yield ["", str(_l("Only the first %(limit)s rows are exported.", limit=f"{sq.EXPORT_LIMIT:,}"))]
    yield []
    yield [str(title) for title in EXPORT_HEADERS]
    yield from rows[:sq.EXPORT_LIMIT]


def _data_rows(found: sq.Results) -> Iterator[list[object]]:
    mask = sq.MASKED
    for entity in found.entities:
        head = [WORDS.record_label("entity"), entity.unit_name, WORDS.province(entity.province_code),
                mask.certificate(entity), entity.number or "", entity.licence_number or "",
                WORDS.entity_status(entity.status), mask.name(entity.responsible_name),
                mask.id(entity.responsible_id_number), mask.phone(entity.responsible_mobile),
                mask.email(entity.responsible_email)]
        for website in entity.websites or [None]:
            yield head + (_website_cells(website) if website is not None else [""] * 7)
    for report in found.reports:
        yield [WORDS.record_label("domain_report"), report.registrant_organisation,
               WORDS.province(report.registrant_province_code), mask.registrant_certificate(report), "",
               "", WORDS.report_status(report.status), mask.name(report.registrant_name), "",
               mask.phone(report.registrant_phone), mask.email(report.registrant_email), "", "", report.domain, "",
               "", WORDS.unit(report.registrar), ""]
    for step in found.ip_records:
        record, personal = step.record, step.kind != "block"
        yield [WORDS.step_label(step.kind), getattr(record, "user_name", ""),
               WORDS.province(getattr(record, "province_code", None)), "", "", "", "",
               mask.name(record.contact_name) if personal else "", "",
               mask.phone(record.contact_phone) if personal else "",
               mask.email(record.contact_email) if personal else "", "", "", "", "", "", WORDS.unit(step.unit),
               step.range_text]


def _website_cells(website: Any) -> list[object]:
    accesses = [access for access in website.accesses if access.live]
    return [website.number or "", website.name, " ".join(domain.name for domain in website.domains),
            sq.MASKED.name(website.responsible_name), sq.MASKED.phone(website.responsible_mobile),
            "、".join(WORDS.unit(access.isp) for access in accesses),
            " ".join(access.ip_ranges.replace("\n", " ") for access in accesses)]


# --- 专项查询记录 ---------------------------------------------------------------------------------------------

class SpecialQueryLogView(SecureModelView):
    """专项查询记录: who queried what, when, why, how many results — MIIT all, a bureau its province's accounts'."""

    access_action = Action.SPECIAL_QUERY_LOG
    audit_object = "special_query"
    column_list = ("at", "username", "province_code", "action", "kind", "term", "reason", "case_number", "results",
                   "record_type")
    column_sortable_list = ("at",)
    column_default_sort = ("id", True)
    column_labels = {"at": _l("Time"), "username": _l("Account"), "province_code": _l("Province"),
                     "action": _l("Action"), "kind": _l("Search by"), "term": _l("Searched for"),
                     "reason": _l("Reason for the query"), "case_number": _l("Case number"), "results": _l("Results"),
                     "record_type": _l("Record shown")}
    column_formatters = {
        "province_code": lambda _v, _c, m, _n: PROVINCE_NAMES.get(m.province_code or "", _l("National")),
        "action": lambda _v, _c, m, _n: label(ACTION_LABELS, m.action),
        "kind": lambda _v, _c, m, _n: label(KIND_LABELS, m.kind),
        "record_type": lambda _v, _c, m, _n: (f"{label(RECORD_LABELS, m.record_type)} {m.record_id}"
                                              if m.record_type else ""),
        "results": lambda _v, _c, m, _n: _results_text(m),
    }
    column_filters = (
        FilterEqual(SpecialQueryLog.username, _l("Account")),
        FilterEqual(SpecialQueryLog.action, _l("Action"), options=[(str(k), v) for k, v in ACTION_LABELS.items()]),
        FilterEqual(SpecialQueryLog.kind, _l("Search by"), options=[(str(k), v) for k, v in KIND_LABELS.items()]),
        FilterEqual(SpecialQueryLog.case_number, _l("Case number")),
        LocalDateBetween(SpecialQueryLog.at, _l("Date")),
        ProvinceFilter(SpecialQueryLog.province_code, _l("Province"), options=list(PROVINCE_NAMES.items())),
    )

    def scope(self) -> ColumnElement[bool]:
        return permissions.special_query_log_scope(current_user)


def _results_text(entry: SpecialQueryLog) -> str:
    """A query counts up to PAGE_LIMIT + 1 per kind of record, an export up to EXPORT_LIMIT + 1: beyond, "more
    than"."""
    limit = sq.PAGE_LIMIT if entry.action == SpecialQueryAction.SEARCH else sq.EXPORT_LIMIT
    return str(_l("more than %(n)s", n=f"{limit:,}")) if entry.results > limit else f"{entry.results:,}"
