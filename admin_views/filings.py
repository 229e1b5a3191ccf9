"""ICP备案业务管理: applications with their queues (ISP, bureau, pre-approval), filings, certificates.

Every button posts to a view method that calls workflow.py; nothing here changes a state itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from flask import abort, flash, redirect, request
from flask_admin import expose
from flask_admin.actions import action
from flask_admin.contrib.sqla.filters import FilterEqual
from flask_admin.helpers import get_redirect_target
from flask_babel import format_datetime
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import ColumnElement, and_, select
from sqlalchemy.orm import joinedload, selectinload
from werkzeug.wrappers import Response

import certificates
import permissions
import workflow
from admin_views.base import PageRowAction, PostRowAction, SecureModelView, commit_change, posted
from admin_views.deadlines import deadline_cell
from admin_views.domain_verdicts import application_verdicts, verdict_panel
from admin_views.labels import PROVINCE_NAMES, code_name, label
from admin_views.lifecycle import AfterApprovalPages, describe_proposal
from admin_views.search import (
    ApplicationSearch,
    EntitySearch,
    IspFilter,
    LocalDateBetween,
    PreapprovalCategoryFilter,
    ProvinceFilter,
    isp_options,
    per_request,
)
from extensions import db
from models import (
    Access,
    Application,
    ApplicationKind,
    ApplicationState,
    AuditEvent,
    Certificate,
    CertificateStatus,
    CodeTable,
    Entity,
    FilingStatus,
    IspVerification,
    PreapprovalItem,
    ReviewState,
    Role,
    User,
    Website,
    code_values,
)
from permissions import Action
from validators import display_domain
from workflow import registrant
from workflow.ip_lookup import Coverage, access_coverage, reporting_units_of_isp

STATE_LABELS = {ApplicationState.DRAFT: _l("Draft / returned"), ApplicationState.ISP_REVIEW: _l("ISP review"),
                ApplicationState.BUREAU_REVIEW: _l("Bureau review"), ApplicationState.APPROVED: _l("Approved"),
                ApplicationState.REJECTED: _l("Rejected (ended)"), ApplicationState.WITHDRAWN: _l("Withdrawn")}
KIND_LABELS = {ApplicationKind.NEW_FILING: _l("New filing"), ApplicationKind.NEW_WEBSITE: _l("New website"),
               ApplicationKind.NEW_ACCESS: _l("New access"), ApplicationKind.CHANGE: _l("Change"),
               ApplicationKind.CANCEL_WEBSITE: _l("Cancel website"), ApplicationKind.CANCEL_ENTITY: _l("Cancel entity"),
               ApplicationKind.CANCEL_ACCESS: _l("Cancel access")}
FILING_STATUS_LABELS = {FilingStatus.DRAFT: _l("Not yet approved"), FilingStatus.ACTIVE: _l("Filed"),
                        FilingStatus.NO_ACCESS: _l("No access"), FilingStatus.CANCELLED: _l("Cancelled"),
                        FilingStatus.REVOKED: _l("Revoked")}
REVIEW_LABELS = {ReviewState.PENDING: _l("Pending"), ReviewState.CONFIRMED: _l("Confirmed"),
                 ReviewState.RETURNED: _l("Returned / disputed")}
#: the applications one batch page lists and approves: ticked rows, or the first of what the queue's filters find
BATCH_LIMIT = 1000
#: "approve all that the filters find" reads at most this many pages of BATCH_LIMIT to fill one batch
MATCHING_PAGES = 5
#: the fields a bureau can give a rejection reason for (SPEC §4: "a reason per field where it applies")
REJECT_FIELDS = {"unit_name": _l("Unit name"), "certificate_number": _l("Certificate number"),
                 "responsible": _l("Responsible person"), "websites": _l("Websites and domains"),
                 "access": _l("Access"), "other": _l("Other")}


@dataclass(frozen=True)
class AccessCoverage:
    """One access of an application: for each filed range, the reported block holding it (code 1063 if none)."""

    website: str
    isp: User
    ranges: list[Coverage]
    has_units: bool  # whether the ISP has any IP reporting unit


def _accesses(application: Application) -> Iterator[tuple[str, int, str]]:
    """(website, ISP id, ranges "start-end" per line) of the live accesses of the filing's websites, and the
    access a new-access application asks for."""
    sites = {website.id: website for website in application.entity.websites}
    for website in sites.values():
        for access in website.accesses:
            if access.live:
                yield website.name, access.isp_id, access.ip_ranges
    proposal = workflow.proposal_of(application)
    if "access" in proposal and (site := sites.get(proposal.get("website_id"))) is not None:
        asked = proposal["access"]
        yield site.name, asked["isp_id"], "\n".join(f"{start}-{end}" for start, end in asked["ip_ranges"])


def access_coverage_of(application: Application, viewer: User) -> list[AccessCoverage]:
    """Whether each access range lies in blocks reported for its ISP: for the bureau and MIIT every access,
    for an ISP its own (its verification); nobody else."""
    if viewer.role not in (Role.ISP, Role.BUREAU, Role.MIIT):
        return []
    found = []
    for website, isp_id, ranges in _accesses(application):
        if viewer.role == Role.ISP and isp_id != viewer.id:
            continue
        found.append(AccessCoverage(website, db.session.get(User, isp_id), access_coverage(isp_id, ranges),
                                    bool(reporting_units_of_isp(isp_id))))
    return found


def _progress(application: Application) -> str:
    done = sum(v.state == ReviewState.CONFIRMED for v in application.verifications)
    return f"{done}/{len(application.verifications)}" if application.verifications else "—"


def _timeline(application: Application) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(
        AuditEvent.object_type == "application", AuditEvent.object_id == str(application.id),
    ).order_by(AuditEvent.id)))


class ApplicationView(ApplicationSearch, SecureModelView):
    """备案申请: every application within the user's scope, with the buttons of its stage."""

    access_action = export_action = Action.FILING_LIST
    audit_object = "application"
    simple_list_pager = True
    can_view_details = True
    details_template = "admin/application_details.html"
    column_list = ("id", "entity.unit_name", "province_code", "kind", "state", "progress", "submitted_at")
    column_sortable_list = ("id",)
    column_default_sort = ("id", True)
    column_labels = {"id": _l("No."), "entity.unit_name": _l("Unit name"), "province_code": _l("Province"),
                     "kind": _l("Kind"), "state": _l("State"), "progress": _l("ISP verification"),
                     "submitted_at": _l("Submitted at")}
    column_formatters = {
        "province_code": lambda _v, _c, m, _n: PROVINCE_NAMES.get(m.province_code, ""),
        "kind": lambda _v, _c, m, _n: label(KIND_LABELS, m.kind),
        "state": lambda _v, _c, m, _n: label(STATE_LABELS, m.state),
        "progress": lambda _v, _c, m, _n: _progress(m),
    }
    column_filters = (
        FilterEqual(Application.state, _l("State"), options=[(str(s), STATE_LABELS[s]) for s in ApplicationState]),
        ProvinceFilter(Application.province_code, _l("Province"), options=list(PROVINCE_NAMES.items())),
        FilterEqual(Application.kind, _l("Kind"), options=[(str(k), KIND_LABELS[k]) for k in ApplicationKind]),
        IspFilter(Application.submitted_by_id, _l("Submitting ISP"), options=isp_options),
        PreapprovalCategoryFilter(Application.entity_id, _l("Pre-approval category"),
                                  options=per_request(lambda: code_values(CodeTable.PREAPPROVAL_CATEGORY))),
        LocalDateBetween(Application.submitted_at, _l("Submitted at")),
        LocalDateBetween(Application.decided_at, _l("Decided at")),
    )
    row_post_actions = (
        PostRowAction("submit", _l("Submit"), "fa fa-paper-plane"),
        PostRowAction("verify", _l("Verify"), "fa fa-check", _l("Confirm that you provide this access?")),
        PostRowAction("withdraw", _l("Withdraw"), "fa fa-undo", _l("Withdraw this application?")),
    )
    row_page_actions = (
        PageRowAction("return", _l("Return"), ".return_view", "fa fa-undo"),
        PageRowAction("approve", _l("Approve"), ".approve_view", "fa fa-check-square-o"),
        PageRowAction("reject", _l("Reject"), ".reject_view", "fa fa-times"),
    )

    def scope(self) -> ColumnElement[bool]:
        return permissions.application_scope(current_user)

    def get_query(self) -> Any:
        """The entity and the ISP rows of the page in two queries, not two per row."""
        return super().get_query().options(joinedload(Application.entity), selectinload(Application.verifications))

    # --- which buttons a row shows ---------------------------------------------------------------
    def _pending_for_me(self, application: Application) -> bool:
        return application.state == ApplicationState.ISP_REVIEW and any(
            v.isp_id == current_user.id and v.state == ReviewState.PENDING for v in application.verifications)

    def is_row_action_allowed(self, name: str, obj: Any) -> bool:
        auditable = (obj.state == ApplicationState.BUREAU_REVIEW
                     and permissions.may_audit(current_user, obj.province_code))
        checks = {
            "submit": lambda: permissions.may_edit_application(current_user, obj),
            "withdraw": lambda: (obj.state == ApplicationState.BUREAU_REVIEW and obj.kind != ApplicationKind.NEW_FILING
                                 and obj.submitted_by_id == current_user.id),
            "verify": lambda: self._pending_for_me(obj),
            "return": lambda: self._pending_for_me(obj),
            "approve": lambda: auditable,
            "reject": lambda: auditable,
        }
        return name in checks and bool(checks[name]())

    def run_row_action(self, name: str, obj: Application) -> str:
        if name == "withdraw":
            workflow.withdraw_application(current_user, obj)
            return str(_l("Application %(id)s withdrawn.", id=obj.id))
        if name == "submit":
            workflow.submit_application(current_user, obj)
            return str(_l("Application %(id)s submitted.", id=obj.id))
        workflow.isp_verify(current_user, obj)
        return str(_l("Application %(id)s verified.", id=obj.id))

    # --- pages that ask for more -------------------------------------------------------------------
    def _allowed_application(self, name: str) -> Application:
        application = self.get_one(request.args.get("id", ""))
        if not self.is_row_action_allowed(name, application):
            abort(404)
        return application

    def _back(self) -> str:
        return get_redirect_target() or self.get_url(".index_view")

    @expose("/return/", methods=("GET", "POST"))
    def return_view(self) -> Any:
        application = self._allowed_application("return")
        if posted() and commit_change(
                lambda: workflow.isp_return(current_user, application, request.form.get("reason", "")),
                _l("Application %(id)s returned.", id=application.id)):
            return redirect(self._back())
        return self.render("admin/reason_form.html", application=application, fields={"reason": _l("Reason")},
                           title=_l("Return application %(id)s", id=application.id), form=FlaskForm())

    @expose("/reject/", methods=("GET", "POST"))
    def reject_view(self) -> Any:
        application = self._allowed_application("reject")
        if posted() and commit_change(
                lambda: workflow.reject(current_user, application,
                                        {key: request.form.get(key, "") for key in REJECT_FIELDS}),
                _l("Application %(id)s rejected.", id=application.id)):
            return redirect(self._back())
        return self.render("admin/reason_form.html", application=application, fields=REJECT_FIELDS,
                           title=_l("Reject application %(id)s", id=application.id), form=FlaskForm())

    @expose("/approve/", methods=("GET", "POST"))
    def approve_view(self) -> Any:
        """手工审核 (FAQ 32): one record; the number typed by the auditor or generated."""
        application = self._allowed_application("approve")
        if posted() and commit_change(
                lambda: workflow.approve(current_user, application, request.form.get("number", "").strip() or None),
                _l("Application %(id)s approved.", id=application.id)):
            return redirect(self._back())
        return self.render("admin/approve_form.html", application=application, form=FlaskForm(),
                           blockers=workflow.approval_blockers(application),
                           coverage=access_coverage_of(application, current_user),
                           verdicts=application_verdicts(application))

    # --- 自动审核 (batch), and an ISP's batch verification ------------------------------------------------
    def is_action_allowed(self, name: str) -> bool:
        return name == "approve" and permissions.can(current_user, Action.FILING_AUDIT)

    @action("verify", _l("Batch verify"))
    def action_verify(self, ids: list[str]) -> Response:
        return redirect(self.get_url(".batch_verify_view", ids=",".join(ids), url=self._back()))

    @expose("/batch-verify/", methods=("GET", "POST"))
    def batch_verify_view(self) -> Any:
        """A confirmation page that lists exactly what this ISP will verify; all or nothing."""
        applications = self._batch(request.values.get("ids", ""), "verify")
        if posted() and applications and commit_change(
                lambda: workflow.batch_isp_verify(current_user, applications),
                _l("%(count)s applications verified.", count=len(applications))):
            return redirect(self._back())
        checks = _batch_checks(applications)
        return self.render("admin/batch_approve.html", applications=applications, form=FlaskForm(),
                           ids=",".join(str(a.id) for a in applications), verdicts=_panels(checks),
                           blockers={key: registrant.blocker_messages(found) for key, found in checks.items()},
                           title=_l("Batch verify"), button=_l("Verify all of them"),
                           intro=_l("You confirm that you provide access to the websites of these %(count)s "
                                    "applications.", count=len(applications)))

    @action("approve", _l("Batch approve"))
    def action_approve(self, ids: list[str]) -> Response:
        return redirect(self.get_url(".batch_view", ids=",".join(ids), url=self._back()))

    def _batch(self, ids: str, name: str = "approve") -> list[Application]:
        """The applications of a comma-separated id list as a form sends it (at most BATCH_LIMIT) that this user
        may act on now; a forged id (not ASCII digits, wider than the column) makes the list empty."""
        return self._actionable(self._typed_ids([x for x in ids.split(",") if x][:BATCH_LIMIT]) or [], name)

    def _actionable(self, ids: list[int], name: str = "approve") -> list[Application]:
        found = self.get_query().filter(Application.id.in_(ids)).order_by(Application.id).all()
        return [a for a in found if self.is_row_action_allowed(name, a)]

    @expose("/batch-approve/", methods=("GET", "POST"))
    def batch_view(self) -> Any:
        """A confirmation page that lists exactly what will be approved (numbers generated) and what cannot be,
        with why; once posted, approved in short transactions and the page lists what was done (issue 15)."""
        applications = self._batch(request.values.get("ids", ""))
        if posted() and applications:
            outcome = workflow.batch_approve_chunked(current_user, [a.id for a in applications])
            _flash_outcome(outcome)
            return self.render("admin/batch_approve.html", outcome=outcome, title=_l("Batch approval: result"))
        return self._confirm_approval(applications)

    def _confirm_approval(self, applications: list[Application], review: tuple[dict[int, Any], ...] | None = None,
                          **page: Any) -> str:
        """The confirmation page of a batch: the applications with their verdicts and blockers (`review`: already
        read by the caller, else read here)."""
        checks, problems = review or workflow.approval_review(applications)
        return self.render("admin/batch_approve.html", applications=applications, form=FlaskForm(), partial=True,
                           ids=",".join(str(a.id) for a in applications), verdicts=_panels(checks),
                           blockers={a.id: problems.get(a.id, []) for a in applications}, reasons=problems, **page)

    def render(self, template: str, **kwargs: Any) -> str:
        if template == "admin/batch_approve.html":
            kwargs.setdefault("back", self._back())  # a checked target (get_redirect_target), never ?url= as sent
        if template == self.details_template and "model" in kwargs:
            model = kwargs["model"]
            kwargs["row_buttons"] = [button.markup(self, model.id)
                                     for button in (*self.row_post_actions, *self.row_page_actions)
                                     if self.is_row_action_allowed(button.name, model)]
            kwargs.update(timeline=_timeline(model), reasons=json.loads(model.reasons or "{}"),
                          proposal=describe_proposal(model), kind_labels=KIND_LABELS,
                          may_edit=permissions.may_edit_application(current_user, model),
                          may_see_entity=permissions.may_see_entity(current_user, model.entity),
                          coverage=access_coverage_of(model, current_user),
                          verdicts=application_verdicts(model)
                          if permissions.may_see_entity(current_user, model.entity) else None,
                          review_labels=REVIEW_LABELS, state_labels=STATE_LABELS)
        return super().render(template, **kwargs)


def _flash_outcome(outcome: workflow.BatchOutcome, named: int = 5) -> None:
    """"N approved, M not approved: <unit>: <reason>; …" — the first few named, the page lists them all."""
    missed = len(outcome.refused) + len(outcome.not_done)
    if not missed:
        flash(_l("%(count)s applications approved.", count=len(outcome.approved)), "success")
        return
    reasons = "; ".join(f"{item.unit_name or item.application_id}: {item.reason}" for item in outcome.refused[:named])
    flash(_l("%(approved)s approved, %(missed)s not approved: %(reasons)s", approved=len(outcome.approved),
             missed=missed, reasons=reasons + ("…" if missed > named or outcome.not_done else "")), "warning")
    if outcome.stopped_by:
        flash(outcome.stopped_by, "error")


def _more_than(count: int, limit: int) -> str:
    """A bounded count (`bounded_count`) as the list shows it."""
    return str(_l("more than %(count)s", count=f"{limit:,}")) if count > limit else f"{count:,}"


def _batch_checks(applications: list[Application]) -> dict[int, list[registrant.DomainCheck]]:
    """The registrant check of each application of a batch page: the filings and the reports read in a few queries,
    not one filing at a time."""
    filings = workflow.preload_filings(applications)  # held while the checks and the page read them
    reports = registrant.preload_reports(applications)
    checks = {a.id: registrant.application_checks(a, reports) for a in applications}
    del filings
    return checks


def _panels(checks: dict[int, list[registrant.DomainCheck]]) -> dict[int, dict[str, Any]]:
    return {key: verdict_panel(found) for key, found in checks.items()}


class BureauQueueView(ApplicationView):
    """待审核: the bureau's queue, its province only; the statutory deadline shown, most urgent first."""

    access_action = Action.FILING_AUDIT
    column_list = (*ApplicationView.column_list, "due_at")
    column_sortable_list = (*ApplicationView.column_sortable_list, "due_at")
    column_default_sort = ("due_at", False)  # ix_applications_review_queue (PostgreSQL), ix_applications_deadline
    column_labels = {**ApplicationView.column_labels, "due_at": _l("Decision due (working days left)")}
    column_formatters = {**ApplicationView.column_formatters, "due_at": deadline_cell}

    list_template = "admin/bureau_queue.html"

    def scope(self) -> ColumnElement[bool]:
        return and_(super().scope(), Application.state == ApplicationState.BUREAU_REVIEW)

    @expose("/batch-approve-matching/")
    def batch_matching_view(self) -> Any:
        """自动审核 of what the list finds: the applications its search and filters select (the list's own query
        string), the most urgent first, up to BATCH_LIMIT that can be approved now — those that cannot are left out
        and listed with why, so that they do not fill every batch — on the confirmation page of ticked rows, whose
        form posts exactly the listed ids to `batch_view` (an application that arrives meanwhile is not approved
        unseen). A filter the list could not apply offers nothing: it would widen the selection."""
        args = self._get_list_extra_args()
        if sum(key.startswith("flt") for key in request.args) != len(args.filters or ()):
            flash(_l("A filter of the list could not be applied, so nothing is offered for approval: set the "
                     "filters again on the list."), "error")
            return redirect(self._back())
        query, _joins = self.filtered_query(args.search, args.filters)
        matching = self.bounded_count(query)
        ready, left_out, review = self._approvable(query.enable_eagerloads(False).with_entities(Application.id)
                                                   .order_by(Application.due_at, Application.id))
        page = {"criteria": self._criteria(args), "left_out": left_out, "form_action":
                self.get_url(".batch_view", url=self._back()), "matching": True}
        if ready:
            page["intro"] = _l("The list's search and filters find %(found)s applications; the %(count)s most urgent "
                               "that can be approved now are below (at most %(limit)s at a time: approve them, then "
                               "use this button again for the rest). Their numbers are generated (FAQ 32).",
                               found=_more_than(matching, self.count_limit()), count=f"{len(ready):,}",
                               limit=f"{BATCH_LIMIT:,}")
        else:
            page["intro"] = _l("The list's search and filters find no application that can be approved now.")
        return self._confirm_approval(ready, review, **page)

    def _approvable(self, ids: Any) -> tuple[list[Application], list[Application], tuple[dict[int, Any], ...]]:
        """Walk `ids` (a query of ids, most urgent first) a page of BATCH_LIMIT at a time, at most MATCHING_PAGES:
        (up to BATCH_LIMIT applications that can be approved now in that order, those passed over that cannot,
        the registrant checks and blockers of both)."""
        ready: list[Application] = []
        left_out: list[Application] = []
        checks: dict[int, Any] = {}
        problems: dict[int, list[str]] = {}
        for number in range(MATCHING_PAGES):
            chunk = [row.id for row in ids.limit(BATCH_LIMIT).offset(number * BATCH_LIMIT)]
            found = {a.id: a for a in self._actionable(chunk)}
            page_checks, page_problems = workflow.approval_review(list(found.values()))
            checks |= page_checks
            problems |= page_problems
            for application in (found[i] for i in chunk if i in found):
                (left_out if application.id in page_problems else ready).append(application)
            if len(ready) >= BATCH_LIMIT or len(chunk) < BATCH_LIMIT:
                break
        return ready[:BATCH_LIMIT], left_out, (checks, problems)

    def _criteria(self, args: Any) -> list[str]:
        """The list's search and filters in words, as the confirmation page restates them."""
        words = [str(_l("Search: %(term)s", term=args.search.strip()))] if (args.search or "").strip() else []
        for index, _name, value in args.filters or ():
            flt = self._filters[index]
            options = {str(key): str(text) for key, text in (flt.get_options(self) or ())}
            words.append(f"{flt.name}：{options.get(str(value), str(value))}")
        return words


class IspQueueView(ApplicationView):
    """待核实: applications waiting for this ISP's verification."""

    access_action = Action.FILING_VERIFY

    def is_action_allowed(self, name: str) -> bool:
        return name == "verify" and permissions.can(current_user, Action.FILING_VERIFY)

    def scope(self) -> ColumnElement[bool]:
        mine = select(IspVerification.application_id).where(
            IspVerification.isp_id == current_user.id, IspVerification.state == ReviewState.PENDING)
        return and_(Application.state == ApplicationState.ISP_REVIEW, Application.id.in_(mine))


class PreapprovalQueueView(SecureModelView):
    """前置审批: the items of the user's category (and province), confirmed or disputed one by one."""

    access_action = Action.PREAPPROVAL_REVIEW
    audit_object = "preapproval"
    simple_list_pager = True
    column_list = ("id", "website.entity.unit_name", "website.name", "category", "document_number", "state",
                   "reason")
    column_default_sort = ("id", True)
    column_labels = {"id": _l("No."), "website.entity.unit_name": _l("Unit name"), "website.name": _l("Website"),
                     "category": _l("Pre-approval category"), "document_number": _l("Document number"),
                     "state": _l("State"), "reason": _l("Reason")}
    column_formatters = {"state": lambda _v, _c, m, _n: label(REVIEW_LABELS, m.state),
                         "category": lambda _v, _c, m, _n: code_name(CodeTable.PREAPPROVAL_CATEGORY, m.category)}
    column_filters = (FilterEqual(PreapprovalItem.state, _l("State"),
                                  options=[(str(s), REVIEW_LABELS[s]) for s in ReviewState]),)
    row_post_actions = (PostRowAction("confirm", _l("Confirm"), "fa fa-check"),)
    row_page_actions = (PageRowAction("dispute", _l("Dispute"), ".dispute_view", "fa fa-times"),)

    def get_query(self) -> Any:
        """The website and unit of each row in the page's query, not one query per row."""
        return super().get_query().options(joinedload(PreapprovalItem.website).joinedload(Website.entity))

    def scope(self) -> ColumnElement[bool]:
        return permissions.preapproval_scope(current_user)

    def is_row_action_allowed(self, name: str, obj: Any) -> bool:
        return name in ("confirm", "dispute") and obj.state == ReviewState.PENDING

    def run_row_action(self, name: str, obj: PreapprovalItem) -> str:
        workflow.review_preapproval(current_user, obj, confirmed=True)
        return str(_l("Pre-approval item %(id)s confirmed.", id=obj.id))

    @expose("/dispute/", methods=("GET", "POST"))
    def dispute_view(self) -> Any:
        item = self.get_one(request.args.get("id", ""))
        if not self.is_row_action_allowed("dispute", item):
            abort(404)
        if posted() and commit_change(
                lambda: workflow.review_preapproval(current_user, item, confirmed=False,
                                                    reason=request.form.get("reason", "")),
                _l("Pre-approval item %(id)s disputed.", id=item.id)):
            return redirect(get_redirect_target() or self.get_url(".index_view"))
        return self.render("admin/reason_form.html", application=None, fields={"reason": _l("Reason")},
                           title=_l("Dispute pre-approval %(document)s", document=item.document_number),
                           form=FlaskForm())


class EntityView(EntitySearch, AfterApprovalPages, SecureModelView):
    """备案信息: the filings in scope; the owner downloads bazs.cert once approved (FAQ 40–41); the buttons
    of what may happen after approval (changes, access, cancellation, revocation)."""

    access_action = export_action = Action.FILING_LIST
    audit_object = "entity"
    simple_list_pager = True
    can_view_details = True
    details_template = "admin/entity_details.html"
    column_list = ("number", "unit_name", "province_code", "status", "approved_at")
    column_sortable_list = ("number", "unit_name", "approved_at")  # indexed, also per province
    column_default_sort = ("id", True)
    column_labels = {"number": _l("Filing number"), "unit_name": _l("Unit name"), "province_code": _l("Province"),
                     "status": _l("Status"), "approved_at": _l("Approved at")}
    column_formatters = {"province_code": lambda _v, _c, m, _n: PROVINCE_NAMES.get(m.province_code, ""),
                         "status": lambda _v, _c, m, _n: label(FILING_STATUS_LABELS, m.status)}
    column_filters = (
        ProvinceFilter(Entity.province_code, _l("Province"), options=list(PROVINCE_NAMES.items())),
        FilterEqual(Entity.status, _l("Status"), options=[(str(s), FILING_STATUS_LABELS[s]) for s in FilingStatus]),
        FilterEqual(Entity.number, _l("Filing number")),
        FilterEqual(Entity.unit_nature, _l("Unit nature"),
                    options=per_request(lambda: code_values(CodeTable.UNIT_NATURE))),
        LocalDateBetween(Entity.approved_at, _l("Approved at")),
    )
    row_page_actions = (PageRowAction("download", _l("Download certificate"), ".certificate_view",
                                      "fa fa-download"), *AfterApprovalPages.row_page_actions)

    def scope(self) -> ColumnElement[bool]:
        return permissions.entity_scope(current_user)

    def is_row_action_allowed(self, name: str, obj: Any) -> bool:
        if name == "download":
            return current_user.role == Role.ICP
        return self.lifecycle_action_allowed(name, obj)

    def export_header(self) -> list[str]:
        return [str(label) for label in WEBSITE_EXPORT_HEADER]

    def export_rows(self, query: Any) -> Iterator[list[Any]]:
        """One row per website (a filing without one: a row of its own), as a clerk needs them."""
        natures = dict(code_values(CodeTable.UNIT_NATURE))
        loaded = query.options(selectinload(Entity.websites).selectinload(Website.domains),
                               selectinload(Entity.websites).selectinload(Website.accesses).joinedload(Access.isp))
        for entity in loaded.yield_per(500):
            head = [entity.number or "", entity.unit_name, natures.get(entity.unit_nature, entity.unit_nature)]
            status = str(label(FILING_STATUS_LABELS, entity.status))
            for website in entity.websites or [None]:
                approved = website.approved_at if website and website.approved_at else entity.approved_at
                yield head + (_website_cells(website) if website else [""] * 6) + [
                    format_datetime(approved, "yyyy-MM-dd") if approved else "",
                    str(label(FILING_STATUS_LABELS, website.status)) if website else status]

    def _current_certificate(self, entity: Entity) -> Certificate | None:
        return db.session.scalar(select(Certificate).where(
            Certificate.entity_id == entity.id, Certificate.status == CertificateStatus.CURRENT))

    @expose("/certificate/")
    def certificate_view(self) -> Any:
        """备案/许可证下载: bazs.cert once approved; before that, FAQ 40's message."""
        entity = self.get_one(request.args.get("id", ""))
        certificate = self._current_certificate(entity)
        if entity.status != FilingStatus.ACTIVE or certificate is None:
            flash(_l("Your filing has not been approved yet: the certificate cannot be downloaded."), "error")
            return redirect(get_redirect_target() or self.get_url(".index_view"))
        return Response(certificate.token, mimetype="application/jose", headers={
            "Content-Disposition": 'attachment; filename="bazs.cert"'})

    def render(self, template: str, **kwargs: Any) -> str:
        if template == "admin/batch_approve.html":
            kwargs.setdefault("back", self._back())  # a checked target (get_redirect_target), never ?url= as sent
        if template == self.details_template and "model" in kwargs:
            certificate = self._current_certificate(kwargs["model"])
            kwargs["certificate"] = certificate and _decoded(certificate.token)
            kwargs["status_labels"] = FILING_STATUS_LABELS
        return super().render(template, **kwargs)


WEBSITE_EXPORT_HEADER = (_l("Filing number"), _l("Unit name"), _l("Unit nature"), _l("Website number"),
                         _l("Website name"), _l("Domains"), _l("Home page"), _l("ISPs"), _l("Server location"),
                         _l("Approved at"), _l("Status"))


def _website_cells(website: Website) -> list[str]:
    live = [a for a in website.accesses if a.live]
    return [website.number or "", website.name, "\n".join(display_domain(d.name) for d in website.domains),
            website.home_url,
            "\n".join(a.isp.organisation or a.isp.username for a in live),
            "\n".join(sorted({PROVINCE_NAMES.get(a.server_province_code, a.server_province_code) for a in live}))]


def _decoded(token: str) -> dict[str, Any]:
    """证书分解 (FAQ 33): the payload and whether its signature verifies, with the reason if not."""
    try:
        return {"payload": certificates.verify(token, certificates.keyring().jwks()), "valid": True, "reason": ""}
    except certificates.CertificateError as error:
        try:
            payload = certificates.decode(token)[1]
        except certificates.CertificateError:
            payload = {}
        return {"payload": payload, "valid": False, "reason": error.message}
