"""整改通知 and 未备案网站 (issue 18 §3, §4) in the console: the notices of the user's scope (a bureau its province's,
MIIT all, an ISP those of the websites it serves now), 结案, the ISP's answer (处理结果); the unfiled-website upload
(xlsx or a pasted list) with its result, and the sightings list with its export. State changes go through
`workflow.inspections` only."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from itertools import islice
from pathlib import Path
from typing import Any

from flask import abort, redirect, request, url_for
from flask_admin import expose
from flask_admin.contrib.sqla.filters import FilterEqual, FilterNotEqual
from flask_babel import format_date
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from markupsafe import Markup
from sqlalchemy import ColumnElement, not_, select
from sqlalchemy.orm import selectinload
from werkzeug.datastructures import FileStorage

import permissions
import workflow.inspections as inspections
import xlsx_reader
from admin_views.base import PageRowAction, PostRowAction, SecureModelView, commit_change, local_time, posted
from admin_views.inspection_labels import HANDLING_LABELS, NOTICE_STATE_LABELS, check_names
from admin_views.inspections import answers_of, formatter, is_id
from admin_views.labels import PROVINCE_NAMES, label
from admin_views.search import ProvinceFilter
from extensions import db
from models import (
    InspectionFinding,
    NoticeState,
    RectificationAnswer,
    RectificationNotice,
    UnfiledSighting,
    User,
    Website,
)
from permissions import Action
from validators import display_domain
from workflow.inspections import UnfiledReport
from workflow.ip import unit_label
from workflow.unfiled import MAX_VALUES

#: values of an unfiled report listed on its result page (all are counted, and the unfiled kept as sightings)
SHOWN = 1_000
#: characters of an uploaded value kept: a domain has at most 253, a longer value is invalid (and shown cut) — a
#: sheet naming one 32,000-character shared string in every row must not cost its rows × 32,000
VALUE_CHARS = 300


# --- 整改通知 ----------------------------------------------------------------------------------------------


class OverdueFilter(FilterEqual):
    """超期: `workflow.rectification.overdue` as a condition — open (no ISP answered) past the deadline."""

    def apply(self, query: Any, value: Any, alias: Any = None) -> Any:
        condition = inspections.overdue_condition()
        return query.filter(condition if value == "1" else not_(condition))


def _website_cell(notice: RectificationNotice) -> Markup:
    website = notice.website  # the page's websites loaded in one query (RectificationNoticeView.get_query)
    text = Markup("{}<br><small>{}</small>").format(website.number or "", website.name)
    if permissions.can(current_user, Action.INSPECTION_LIST):
        return Markup('<a href="{}">{}</a>').format(url_for("inspection_findings.website", id=website.id),
                                                    text)
    return text


def _deadline_cell(notice: RectificationNotice) -> Markup:
    """The deadline; an overdue notice says so in words (超期), not only in colour."""
    text = format_date(notice.deadline, "yyyy-MM-dd")
    if not inspections.overdue(notice):
        return Markup("{}").format(text)
    return Markup('{} <span class="badge badge-danger notice-overdue">{}</span>').format(text, _l("Overdue"))


def _state_cell(notice: RectificationNotice) -> Markup:
    colour = {NoticeState.OPEN: "warning", NoticeState.ANSWERED: "info", NoticeState.CLOSED: "secondary"}
    return Markup('<span class="badge badge-{}">{}</span>').format(colour.get(notice.state, "secondary"),
                                                                 label(NOTICE_STATE_LABELS, notice.state))


def _last_answer(notice: RectificationNotice) -> str:
    if not notice.answers:  # the page's answers and their ISPs loaded in two queries (get_query)
        return ""
    answer = notice.answers[0]
    return f"{label(HANDLING_LABELS, answer.result)}（{unit_label(answer.isp)}）"


class RectificationNoticeView(SecureModelView):
    """整改通知: a bureau's (its province) and MIIT's notices with 结案; an ISP's (websites it serves now) with the
    answer form; filtered by state and 超期."""

    access_action = Action.RECTIFY
    audit_object = "rectification_notice"
    list_template = "admin/inspections/notices.html"
    export_types: list[str] = []
    column_list = ("id", "website", "province_code", "checks", "deadline", "state", "answer", "issued_at")
    column_sortable_list = ()
    column_default_sort = ("id", True)
    column_labels = {"id": _l("Notice number"), "website": _l("Website"), "province_code": _l("Province"),
                     "checks": _l("Checks"), "deadline": _l("Deadline"), "state": _l("State"),
                     "answer": _l("Handling result"), "issued_at": _l("Issued at")}
    column_formatters = {
        "website": formatter(_website_cell),
        "province_code": formatter(lambda notice: PROVINCE_NAMES.get(notice.province_code, "")),
        "checks": formatter(lambda notice: "、".join(check_names(notice.checks))),
        "deadline": formatter(_deadline_cell),
        "state": formatter(_state_cell),
        "answer": formatter(_last_answer),
    }
    row_post_actions = (PostRowAction("close", _l("Close"), icon="fa fa-check",
                                      confirm=_l("Close this rectification notice?")),)
    row_page_actions = (PageRowAction("open", _l("Open"), ".notice", icon="fa fa-eye"),)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.column_filters = (
            FilterEqual(RectificationNotice.state, _l("State"),
                        options=[(str(state), text) for state, text in NOTICE_STATE_LABELS.items()]),
            OverdueFilter(RectificationNotice.deadline, _l("Overdue"), options=[("1", _l("Yes")), ("0", _l("No"))]),
            ProvinceFilter(RectificationNotice.province_code, _l("Province"), options=list(PROVINCE_NAMES.items())),
            FilterNotEqual(RectificationNotice.state, _l("State"),  # 未结案: the owner's dashboard card
                           options=[(str(state), text) for state, text in NOTICE_STATE_LABELS.items()]),
        )
        super().__init__(*args, **kwargs)

    def is_accessible(self) -> bool:
        return any(permissions.can(current_user, action)
                   for action in (Action.RECTIFY, Action.NOTICE_ANSWER, Action.NOTICE_VIEW))

    def scope(self) -> ColumnElement[bool]:
        return inspections.notice_scope(current_user)

    def get_query(self) -> Any:
        """The list's websites and answers (with their ISPs) loaded per page, not two queries per row."""
        return super().get_query().options(
            selectinload(RectificationNotice.website),
            selectinload(RectificationNotice.answers).selectinload(RectificationAnswer.isp))

    def run_row_action(self, name: str, obj: Any) -> str:
        inspections.close_notice(current_user, obj)
        return str(_l("The notice is closed."))

    def is_row_action_allowed(self, name: str, obj: Any) -> bool:
        if name == "open":
            return True
        return (name == "close" and obj.state != NoticeState.CLOSED
                and permissions.can(current_user, Action.RECTIFY))

    @expose("/notice", methods=("GET", "POST"))
    def notice(self) -> Any:
        """One notice with the ISPs' answers; for an ISP serving the website, the answer form."""
        notice_id = request.args.get("id", "")
        if not is_id(notice_id):  # get_one would hand SQLite an integer wider than 64 bits: a 500
            abort(404)
        found = self.get_one(notice_id)
        may_answer = permissions.can(current_user, Action.NOTICE_ANSWER) and found.state != NoticeState.CLOSED
        if may_answer and posted() and commit_change(lambda: self._answer(found), _l("Your answer is recorded.")):
            return redirect(self.get_url(".notice", id=found.id))
        website = db.session.get(Website, found.website_id)
        issuer = db.session.get(User, found.issued_by_id) if found.issued_by_id else None
        return self.render("admin/inspections/notice.html", notice=found, website=website,
                           answers=answers_of(found), overdue=inspections.overdue(found), form=FlaskForm(),
                           may_answer=may_answer, results=list(HANDLING_LABELS.items()), values=request.form,
                           checks=check_names(found.checks), issuer=unit_label(issuer),
                           state=_state_cell(found), handling=HANDLING_LABELS, findings=_open_findings(found),
                           close_button=self._close_button(found),
                           may_inspect=permissions.can(current_user, Action.INSPECTION_LIST))

    def _close_button(self, notice: RectificationNotice) -> Markup:
        """结案 on the notice's own page too (the list's row button, back to this page)."""
        close = next(action for action in self.row_post_actions if action.name == "close")
        return close.markup(self, str(notice.id)) if self.is_row_action_allowed("close", notice) else Markup("")

    def _answer(self, notice: RectificationNotice) -> None:
        # the workflow refuses a result that is none of HandlingResult ("请选择处理结果。"), for the API too
        inspections.answer_notice(current_user, notice, request.form.get("result", ""),
                                  request.form.get("detail", "").strip())


def _open_findings(notice: RectificationNotice) -> list[tuple[str, str]]:
    """What the website fails now (the last inspection's finding of each check), so that the ISP answering sees what
    was found — which address lies outside the filed range, which certificate is not the current one."""
    return [(check_names(check)[0], message) for check, message in db.session.execute(
        select(InspectionFinding.check, InspectionFinding.message).where(
            InspectionFinding.website_id == notice.website_id).order_by(InspectionFinding.check))]


# --- 未备案网站 ---------------------------------------------------------------------------------------------


class UnfiledSightingView(SecureModelView):
    """未备案网站: the upload (xlsx or a pasted list) and its result; the sightings of the scope (an ISP its own, a
    bureau its province's, MIIT all), exportable."""

    access_action = export_action = Action.UNFILED_REPORT
    audit_object = "unfiled_sighting"
    list_template = "admin/inspections/sightings.html"
    column_list = ("value", "kind", "first_seen", "last_seen", "times", "reporter", "province_code")
    column_sortable_list = ()
    column_default_sort = [("last_seen", True), ("id", True)]  # one upload's sightings share last_seen
    column_labels = {"value": _l("Domain or address"), "kind": _l("Kind"), "first_seen": _l("First seen"),
                     "last_seen": _l("Last seen"), "times": _l("Times reported"), "reporter": _l("Reporting account"),
                     "province_code": _l("Province")}
    column_formatters = {
        "value": formatter(lambda sighting: display_domain(sighting.value)),  # an address stays as it is
        "kind": formatter(lambda sighting: str(_l("IP address") if sighting.kind == "ip" else _l("Domain"))),
        "reporter": formatter(lambda sighting: unit_label(sighting.reporter)),  # loaded per page (get_query)
        "province_code": formatter(lambda sighting: PROVINCE_NAMES.get(sighting.province_code or "", "")
                                    or str(_l("National"))),
    }
    column_formatters_export = {
        **column_formatters,
        "first_seen": lambda _v, _c, sighting, _n: local_time(None, sighting.first_seen),
        "last_seen": lambda _v, _c, sighting, _n: local_time(None, sighting.last_seen),
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.column_filters = (
            FilterEqual(UnfiledSighting.value, _l("Domain or address")),
            ProvinceFilter(UnfiledSighting.province_code, _l("Province"), options=list(PROVINCE_NAMES.items())),
        )
        super().__init__(*args, **kwargs)

    def scope(self) -> ColumnElement[bool]:
        return inspections.sighting_scope(current_user)

    def get_query(self) -> Any:
        return super().get_query().options(selectinload(UnfiledSighting.reporter))

    @expose("/report", methods=("GET", "POST"))
    def report(self) -> Any:
        """The upload: an xlsx's first column or the pasted lines, matched against the filings in force."""
        outcome: list[UnfiledReport] = []
        problem = ""
        if posted():
            try:
                values, source = _uploaded_values(request.files.get("file"), request.form.get("values", ""))
            except xlsx_reader.ImportRefused as refused:
                problem = refused.message
            else:
                if not values:
                    problem = str(_l("Upload a spreadsheet or paste at least one domain or address."))
                else:
                    commit_change(lambda: outcome.append(inspections.report_unfiled(current_user, values, source)))
        return self.render("admin/inspections/report.html", form=FlaskForm(), report=outcome[0] if outcome else None,
                           problem=problem, pasted=request.form.get("values", "") if not outcome else "",
                           shown=SHOWN)


def _bounded(cells: Iterable[str]) -> list[str]:
    """The non-blank values, each cut at VALUE_CHARS, read up to one past the workflow's limit (which refuses it)."""
    values = (cell[:VALUE_CHARS].strip() for cell in cells)
    return list(islice((value for value in values if value), MAX_VALUES + 1))


def _uploaded_values(upload: FileStorage | None, pasted: str) -> tuple[list[str], str]:
    """The values of the upload (its first sheet's first column; a first row without a dot or colon — no domain
    or address — is a header) or of the pasted text (one per line), and the source for the audit log ("xlsx" or
    "console")."""
    if upload is None or not upload.filename:
        return _bounded(line for line in pasted.splitlines()), "console"
    handle, name = tempfile.mkstemp(suffix=".xlsx", prefix="unfiled-")
    os.close(handle)
    path = Path(name)
    try:
        upload.save(path)
        header, rows, _declared = xlsx_reader.read_rows(path, xlsx_reader.check_container(path))
        values = _bounded(row[0] for _number, row in rows if row)
    finally:
        path.unlink(missing_ok=True)
    first = header[0][:VALUE_CHARS].strip() if header else ""
    if first and ("." in first or ":" in first):
        values.insert(0, first)
    return values, "xlsx"
