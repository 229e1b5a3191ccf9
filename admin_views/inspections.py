"""网站检查 (issue 18 §1, §2, §4) in the console: the inspection runs (检查任务: start one, watch its progress, its
results), the failing websites (检查发现) and one website's inspection page (every inspection with its evidence,
its rectification notices, the form sending one). State changes go through `workflow.inspections` only; rows are
read through its scope functions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from flask import abort, current_app, jsonify, redirect, request, url_for
from flask_admin import expose
from flask_admin.contrib.sqla.filters import FilterEqual
from flask_babel import lazy_gettext as _l
from flask_babel import to_utc
from flask_login import current_user
from flask_wtf import FlaskForm
from markupsafe import Markup
from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import selectinload
from werkzeug.wrappers import Response

import permissions
import workflow.inspections as inspections
from admin_views.base import RoleView, SecureModelView, commit_change, local_time, posted
from admin_views.inspection_labels import (
    CHECK_LABELS,
    HANDLING_LABELS,
    NOTICE_STATE_LABELS,
    RUN_STATE_LABELS,
    SCOPE_LABELS,
    check_names,
    evidence_of,
    run_state_badge,
)
from admin_views.labels import PROVINCE_NAMES, label
from admin_views.search import ProvinceFilter, isp_options
from extensions import db
from models import (
    Access,
    CheckCode,
    InspectionFinding,
    InspectionResult,
    InspectionRun,
    InspectionScope,
    NoticeState,
    RectificationAnswer,
    RectificationNotice,
    RunState,
    User,
    Website,
)
from permissions import Action
from workflow.ip import unit_label

#: rows on a page of the run's results and of the findings (the next page follows the last row: keyset)
PAGE_ROWS = 50
ACTIVE_STATES = (RunState.QUEUED, RunState.RUNNING)


def formatter(render: Any) -> Any:
    """A list column shown as `render(row)` (Flask-Admin passes the view, the context, the row and the name)."""
    return lambda _view, _context, model, _name: render(model)


def _province_name(code: str | None) -> str:
    return PROVINCE_NAMES.get(code or "", "") or str(_l("National"))


# --- 检查任务 ----------------------------------------------------------------------------------------------


def _progress(run: InspectionRun) -> str:
    return f"{run.checked:,} / {run.total:,}"


def _run_link(run: InspectionRun) -> Markup:
    return Markup('<a href="{}">{}</a>').format(url_for("inspection_runs.run", id=run.id), _l("Open"))


class InspectionRunView(SecureModelView):
    """检查任务: the runs of the user's scope (a bureau its province's, MIIT all), newest first; 新建检查; the run's
    page with its progress (polled) and results; 取消."""

    access_action = Action.INSPECTION_LIST
    audit_object = "inspection_run"
    list_template = "admin/inspections/runs.html"
    can_view_details = False
    column_display_actions = False
    export_types: list[str] = []
    column_list = ("id", "state", "scope", "province_code", "created_by", "progress", "failing", "started_at",
                   "finished_at", "open")
    column_sortable_list = ()
    column_default_sort = ("id", True)
    column_labels = {"id": _l("Run"), "state": _l("State"), "scope": _l("Inspection scope"),
                     "province_code": _l("Province"), "created_by": _l("Started by"), "progress": _l("Progress"),
                     "failing": _l("Failing"),
                     "started_at": _l("Started at"), "finished_at": _l("Finished at"), "open": _l("Details")}
    column_formatters = {
        "state": formatter(run_state_badge),
        "scope": formatter(lambda run: label(SCOPE_LABELS, run.scope)),
        "province_code": formatter(lambda run: _province_name(run.province_code)),
        "created_by": formatter(lambda run: unit_label(db.session.get(User, run.created_by_id))
                                 if run.created_by_id else str(_l("Schedule"))),
        "progress": formatter(_progress),
        "open": formatter(_run_link),
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.column_filters = (
            FilterEqual(InspectionRun.state, _l("State"),
                        options=[(str(state), text) for state, text in RUN_STATE_LABELS.items()]),
            ProvinceFilter(InspectionRun.province_code, _l("Province"), options=list(PROVINCE_NAMES.items())),
        )
        super().__init__(*args, **kwargs)

    def scope(self) -> ColumnElement[bool]:
        return inspections.run_scope(current_user)

    def render(self, template: str, **kwargs: Any) -> str:
        kwargs.setdefault("may_start", permissions.can(current_user, Action.INSPECTION_RUN))
        return super().render(template, **kwargs)

    def _run(self) -> InspectionRun:
        """The run named by `?id=`, of the user's scope; any other is 404."""
        run_id = request.args.get("id", "")
        run = db.session.scalar(select(InspectionRun).where(
            InspectionRun.id == int(run_id), inspections.run_scope(current_user))) if is_id(run_id) else None
        if run is None:
            abort(404)
        return run

    # --- 新建检查 ---
    @expose("/start", methods=("GET", "POST"))
    def start(self) -> Any:
        if not permissions.can(current_user, Action.INSPECTION_RUN):
            abort(403)
        started: list[InspectionRun] = []
        if posted() and commit_change(lambda: started.append(self._start()), _l("The inspection is queued.")):
            return redirect(self.get_url(".run", id=started[0].id))
        return self.render("admin/inspections/new_run.html", form=FlaskForm(), scopes=_form_scopes(),
                           isps=isp_options(), provinces=list(PROVINCE_NAMES.items()),
                           national=not current_user.province_code, values=request.form,
                           scope_labels=SCOPE_LABELS)

    def _start(self) -> InspectionRun:
        """The form's choice, as `start_run` takes it; the workflow checks the province and the ISP."""
        form = request.form
        scope = form.get("scope", "")
        if scope not in {str(choice) for choice in _form_scopes()}:
            abort(400)
        isp = form.get("isp_id", "")
        province = form.get("province_code", "") if not current_user.province_code else current_user.province_code
        return inspections.start_run(current_user, InspectionScope(scope), province_code=province or None,
                                     isp_id=int(isp) if is_id(isp) and scope == InspectionScope.ISP else None,
                                     targets=form.get("targets", "") if scope == InspectionScope.LIST else "")

    # --- the run's page ---
    @expose("/run")
    def run(self) -> str:
        run = self._run()
        check = _check_of(request.args.get("check", ""))
        rows, after = _result_page(run, request.args.get("after", ""), check)
        by_check = [] if run.state in ACTIVE_STATES else [  # counted once the run has ended, not at each poll
            (code, CHECK_LABELS[CheckCode(code)], count)
            for code, count in inspections.failing_by_check(run.id).items()]
        return self.render("admin/inspections/run.html", run=run, rows=rows, after=after, form=FlaskForm(),
                           by_check=by_check, check=check, check_label=CHECK_LABELS[check] if check else "",
                           active=run.state in ACTIVE_STATES, province=_province_name(run.province_code),
                           scope_label=label(SCOPE_LABELS, run.scope), state_badge=run_state_badge(run),
                           may_cancel=permissions.can(current_user, Action.INSPECTION_RUN),
                           isp=unit_label(db.session.get(User, run.isp_id)) if run.isp_id else "")

    @expose("/run/status")
    def run_status(self) -> Response:
        """The progress, polled every 2 s by static/js/inspection-run.js."""
        run = self._run()
        return jsonify({"state": run.state.value, "state_label": str(label(RUN_STATE_LABELS, run.state)),
                        "total": run.total, "checked": run.checked, "failing": run.failing,
                        "started_at": local_time(None, run.started_at) if run.started_at else "—"})

    @expose("/run/cancel", methods=("POST",))
    def cancel(self) -> Response:
        run = self._run()
        if not permissions.can(current_user, Action.INSPECTION_RUN):
            abort(403)
        if posted():
            commit_change(lambda: inspections.cancel_run(current_user, run), _l("The inspection is cancelled."))
        return redirect(self.get_url(".run", id=run.id))


def is_id(text: str) -> bool:
    """A row id as a URL may carry it (digits, within a 64-bit integer): anything else is 404, never a 500."""
    return text.isascii() and text.isdigit() and len(text) < 19  # "²" is a digit to isdigit, not to int


def _form_scopes() -> list[InspectionScope]:
    """What a clerk may start by hand (the rolling pass is the worker's)."""
    return [InspectionScope.ALL, InspectionScope.ISP, InspectionScope.LIST]


@dataclass(frozen=True)
class ResultRow:
    result: InspectionResult
    website: Website
    failing: list[str]  # the failing checks, in Chinese


def _check_of(text: str) -> CheckCode | None:
    """A check code as a URL carries it; anything else is no filter."""
    return CheckCode(text) if text in {str(code) for code in CheckCode} else None


def _result_page(run: InspectionRun, after: str, check: CheckCode | None = None) -> tuple[list[ResultRow], str]:
    """A page of the run's results, failing first, in id order — or only those that failed `check`; `after`
    ("0-123": passed, id) the last row of the previous page. Returns the rows and the next page's `after` ("" on the
    last page)."""
    query = (select(InspectionResult, Website).join(Website, Website.id == InspectionResult.website_id)
             .where(InspectionResult.run_id == run.id)
             .order_by(InspectionResult.passed, InspectionResult.id).limit(PAGE_ROWS + 1))
    if check is not None:
        query = query.where(InspectionResult.passed.is_(False), inspections.fails_check(check))
    passed, _, last_id = after.partition("-")
    if passed in ("0", "1") and is_id(last_id):
        was_passed = passed == "1"
        query = query.where(or_(InspectionResult.passed > was_passed,
                                and_(InspectionResult.passed == was_passed, InspectionResult.id > int(last_id))))
    found = db.session.execute(query).all()
    rows = [ResultRow(result, website, check_names(result.failing)) for result, website in found[:PAGE_ROWS]]
    following = ""
    if len(found) > PAGE_ROWS:
        last = rows[-1].result
        following = f"{int(last.passed)}-{last.id}"
    return rows, following


# --- 检查发现 ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FindingFilters:
    """The findings page's filters, as the URL carries them (a wrong value is ignored, never a 500)."""

    check: str = ""
    isp: str = ""
    since: str = ""
    province: str = ""

    @classmethod
    def from_args(cls, args: Any) -> FindingFilters:
        check = args.get("check", "")
        isp = args.get("isp", "")
        province = args.get("province", "") if not current_user.province_code else ""
        return cls(check=check if check in {str(code) for code in CheckCode} else "",
                   isp=isp if isp in {key for key, _name in isp_options()} else "",
                   since=args.get("since", "") if _day(args.get("since", "")) else "",
                   province=province if province in PROVINCE_NAMES else "")

    def condition(self) -> ColumnElement[bool]:
        conditions: list[ColumnElement[bool]] = [inspections.finding_scope(current_user)]
        if self.check:
            conditions.append(InspectionFinding.check == CheckCode(self.check))
        if self.province:
            conditions.append(InspectionFinding.province_code == self.province)
        since = _day(self.since)
        if since:
            conditions.append(InspectionFinding.first_seen >= to_utc(datetime.combine(since, time())))
        if self.isp:
            served = select(Access.website_id).where(Access.isp_id == int(self.isp), Access.live)
            conditions.append(InspectionFinding.website_id.in_(served))
        return and_(*conditions)

    def args(self) -> dict[str, str]:
        return {key: value for key, value in vars(self).items() if value}


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


@dataclass(frozen=True)
class FailingWebsite:
    website: Website
    findings: list[InspectionFinding]
    notice: RectificationNotice | None  # the newest notice not closed
    overdue: bool


def _failing_websites(filters: FindingFilters, after: str) -> tuple[list[FailingWebsite], str]:
    """A page of the failing websites (newest website id first), each with its findings in scope."""
    ids_query = (select(InspectionFinding.website_id).where(filters.condition())
                 .group_by(InspectionFinding.website_id).order_by(InspectionFinding.website_id.desc())
                 .limit(PAGE_ROWS + 1))
    if is_id(after):
        ids_query = ids_query.where(InspectionFinding.website_id < int(after))
    ids = list(db.session.scalars(ids_query))
    page = ids[:PAGE_ROWS]
    websites = {w.id: w for w in db.session.scalars(select(Website).where(Website.id.in_(page))
                                                     .options(selectinload(Website.domains)))}  # not one per row
    findings: dict[int, list[InspectionFinding]] = {}
    for finding in db.session.scalars(select(InspectionFinding).where(
            InspectionFinding.website_id.in_(page), inspections.finding_scope(current_user))):
        findings.setdefault(finding.website_id, []).append(finding)
    notices = _open_notices(page)
    rows = [FailingWebsite(websites[wid], _in_check_order(findings.get(wid, [])), notices.get(wid),
                           notices.get(wid) is not None and inspections.overdue(notices[wid]))
            for wid in page if wid in websites]
    return rows, str(page[-1]) if len(ids) > PAGE_ROWS else ""


def _in_check_order(findings: list[InspectionFinding]) -> list[InspectionFinding]:
    order = list(CheckCode)
    return sorted(findings, key=lambda finding: order.index(finding.check))


def _open_notices(website_ids: list[int]) -> dict[int, RectificationNotice]:
    """The newest notice not closed of each website."""
    query = (select(RectificationNotice).where(RectificationNotice.website_id.in_(website_ids),
                                               RectificationNotice.state != NoticeState.CLOSED,
                                               inspections.notice_scope(current_user))
             .order_by(RectificationNotice.id))
    return {notice.website_id: notice for notice in db.session.scalars(query)}


class InspectionFindingView(RoleView):
    """检查发现: the websites of the scope failing a check now, filtered by check, ISP, since when, province; and
    one website's inspection page with its history, notices and 发送整改通知."""

    access_action = Action.INSPECTION_LIST

    @expose("/")
    def index(self) -> str:
        filters = FindingFilters.from_args(request.args)
        rows, after = _failing_websites(filters, request.args.get("after", ""))
        return self.render("admin/inspections/findings.html", rows=rows, after=after, filters=filters,
                           checks=list(CHECK_LABELS.items()), isps=isp_options(),
                           provinces=list(PROVINCE_NAMES.items()), national=not current_user.province_code,
                           check_labels=CHECK_LABELS)

    def _website(self) -> Website:
        """The filed website named by `?id=` that the user oversees (its filing's province); any other is 404."""
        website_id = request.args.get("id", "")
        website = db.session.get(Website, int(website_id)) if is_id(website_id) else None
        if website is None or website.number is None or not permissions.may_see_entity(current_user, website.entity):
            abort(404)
        return website

    @expose("/website", methods=("GET", "POST"))
    def website(self) -> Any:
        website = self._website()
        may_rectify = permissions.can(current_user, Action.RECTIFY)
        if may_rectify and posted() and commit_change(lambda: self._issue(website), _l("The notice is sent.")):
            return redirect(self.get_url(".website", id=website.id))
        findings = _in_check_order(list(db.session.scalars(select(InspectionFinding).where(
            InspectionFinding.website_id == website.id, inspections.finding_scope(current_user)))))
        return self.render("admin/inspections/website.html", website=website, findings=findings,
                           history=[(result, evidence_of(result)) for result in
                                    inspections.website_history(current_user, website.id)],
                           notices=_notices_with_answers(website.id), may_rectify=may_rectify,
                           form=FlaskForm(), check_labels=CHECK_LABELS, values=request.form,
                           ticked=_ticked(findings), deadline=_default_deadline(), check_names=check_names,
                           notice_states=NOTICE_STATE_LABELS, handling=HANDLING_LABELS)

    def _issue(self, website: Website) -> RectificationNotice:
        form = request.form
        checks = [code for code in form.getlist("checks") if code in {str(c) for c in CheckCode}]
        deadline = _day(form.get("deadline", "")) or _default_deadline()
        return inspections.issue_notice(current_user, website, checks, form.get("message", "").strip(), deadline)


def _ticked(findings: list[InspectionFinding]) -> set[str]:
    """The checks pre-ticked on the notice form: the form as posted, else the open findings."""
    if request.method == "POST":
        return set(request.form.getlist("checks"))
    return {str(finding.check) for finding in findings}


def _default_deadline() -> date:
    return inspections.beijing_today() + timedelta(days=int(current_app.config.get("RECTIFICATION_DEFAULT_DAYS", 15)))


@dataclass(frozen=True)
class NoticeWithAnswers:
    notice: RectificationNotice
    answers: list[tuple[RectificationAnswer, str]]  # each with the ISP's name
    overdue: bool


def _notices_with_answers(website_id: int) -> list[NoticeWithAnswers]:
    notices = list(db.session.scalars(select(RectificationNotice).where(
        RectificationNotice.website_id == website_id, inspections.notice_scope(current_user))
        .order_by(RectificationNotice.id.desc())))
    return [NoticeWithAnswers(notice, answers_of(notice), inspections.overdue(notice)) for notice in notices]


def answers_of(notice: RectificationNotice) -> list[tuple[RectificationAnswer, str]]:
    """The ISPs' answers to a notice, newest first (the notice's `answers`), each with the ISP's name."""
    return [(answer, unit_label(answer.isp)) for answer in notice.answers]
