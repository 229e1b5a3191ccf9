"""The role-aware base views: deny by default, scope rows, audit every change, POST row actions."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import abort, current_app, flash, redirect, request, send_file, url_for
from flask_admin import AdminIndexView, BaseView, expose
from flask_admin.actions import action
from flask_admin.babel import lazy_gettext
from flask_admin.contrib.sqla import ModelView
from flask_admin.contrib.sqla.filters import BaseSQLAFilter
from flask_admin.helpers import get_redirect_target
from flask_admin.model import typefmt
from flask_admin.model.template import BaseListRowAction
from flask_babel import format_datetime
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.csrf import generate_csrf
from markupsafe import Markup
from sqlalchemy import BigInteger, ColumnElement, false, func, inspect, select, text
from sqlalchemy.exc import IntegrityError
from werkzeug.wrappers import Response

import audit
import permissions
from admin_views.search import MAX_TERM
from extensions import begin_write, db
from importer import XLSX_MIME, content_disposition, write_xlsx
from models import MAX_ID, MAX_INTEGER_ID, ImportJob, starts_with
from permissions import Action
from workflow import WorkflowError

#: a page number beyond this is forged (the offset would not fit a 64-bit integer): the first page instead
MAX_PAGE = 1_000_000
#: a list counts its rows up to this many; beyond, it says "more than" (an exact count would read them all)
COUNT_LIMIT = 10_000


def posted() -> bool:
    """A POST of a console form with a valid CSRF token."""
    return request.method == "POST" and FlaskForm().validate_on_submit()


def flash_refusal(error: WorkflowError) -> None:
    """Every reason a change was refused (all the blocked domains, not only the first)."""
    for message in dict.fromkeys(message for _field, message in error.errors):
        flash(message, "error")


def commit_change(run: Any, success: Any = None) -> bool:
    """Run a workflow change and commit it (flashing `success`); when refused, roll back and flash why."""
    try:
        run()
        db.session.commit()
    except WorkflowError as error:
        db.session.rollback()
        flash_refusal(error)
        return False
    if success is not None:
        flash(success, "success")
    return True


def _without_parallel_workers() -> None:
    """The rest of the request's transaction is planned without parallel workers (PostgreSQL): a page is 50 rows
    in an index's order, and parallel workers each read ahead in that order while the leader merges — at
    5,000,000 filings the pre-approval filter's page read 13,623 queued applications for its 50 rows (170–234 ms)
    where one process reads ~4,000 (17–37 ms)."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))


class ConsoleForm(FlaskForm):
    """Flask-WTF's form (CSRF token) that also keeps `_obj`, which Flask-Admin's Unique validator reads."""

    def __init__(self, *args: Any, obj: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, obj=obj, **kwargs)
        self._obj = obj


class RoleAccessMixin:
    """Open to the roles whose permission table holds `access_action`; nobody else."""

    access_action: Action | None = None

    def is_accessible(self) -> bool:
        return self.access_action is not None and permissions.can(current_user, self.access_action)

    def inaccessible_callback(self, name: str, **kwargs: Any) -> Response:
        if not current_user.is_authenticated:
            return redirect(url_for("auth.login", next=request.full_path))
        abort(403)


class RoleIndexView(RoleAccessMixin, AdminIndexView):
    """Base for the console's home page."""


class RoleView(RoleAccessMixin, BaseView):
    """Base for console pages that are not model lists."""


class _RowAction(BaseListRowAction):
    """Shown only on the rows where the view allows it (`is_row_action_allowed`)."""

    name: str
    label: Any

    @property
    def title(self) -> str:  # type: ignore[override]
        return str(self.label)

    def render(self, context: Any, row_id: str, row: Any) -> Markup:
        view = context.resolve("admin_view")
        return self.markup(view, row_id) if view.is_row_action_allowed(self.name, row) else Markup("")

    def markup(self, view: Any, row_id: str) -> Markup:
        raise NotImplementedError


@dataclass(frozen=True)
class PostRowAction(_RowAction):
    """A per-row button that POSTs (with the CSRF token) to the view's row-action endpoint."""

    name: str
    label: Any
    icon: str = "fa fa-bolt"
    confirm: Any = None

    def markup(self, view: Any, row_id: str) -> Markup:
        return Markup(
            '<form class="icon row-action" method="POST" action="{url}"{confirm}>'
            '<input type="hidden" name="csrf_token" value="{token}">'
            '<input type="hidden" name="id" value="{row_id}">'
            '<input type="hidden" name="url" value="{back}">'
            '<button type="submit" class="btn btn-link btn-sm p-0 ml-1" title="{label}">'
            '<span class="{icon}"></span> {label}</button></form>'
        ).format(
            url=view.get_url(".row_action_view", action_name=self.name),
            confirm=Markup(' data-confirm="{}"').format(self.confirm) if self.confirm else "",
            token=generate_csrf(),
            row_id=row_id,
            back=request.full_path,
            label=self.label,
            icon=self.icon,
        )


@dataclass(frozen=True)
class PageRowAction(_RowAction):
    """A per-row link to a page of the view (a form that asks for more, then POSTs)."""

    name: str
    label: Any
    endpoint: str
    icon: str = "fa fa-pencil"

    def markup(self, view: Any, row_id: str) -> Markup:
        link = '<a class="ml-1 small" href="{url}" title="{label}"><span class="{icon}"></span> {label}</a>'
        return Markup(link).format(
            url=view.get_url(self.endpoint, id=row_id, url=request.full_path), label=self.label, icon=self.icon)


class FilterStartsWith(BaseSQLAFilter):
    """Prefix search that an index can serve (no `LIKE '%x%'` scans on big tables)."""

    def apply(self, query: Any, value: str, alias: Any = None) -> Any:
        return query.filter(starts_with(self.get_column(alias), value))

    def operation(self) -> str:
        return _l("starts with")  # type: ignore[return-value]  # lazy: the filters are built before any request


def local_time(_view: Any, value: datetime, _name: str = "") -> str:
    """Stored in UTC; shown in the registry's time zone (BABEL_DEFAULT_TIMEZONE, Beijing time)."""
    return format_datetime(value, "yyyy-MM-dd HH:mm:ss")


def yes_no(_view: Any, value: bool, _name: str = "") -> str:
    return str(_l("Yes") if value else _l("No"))


def yes_no_icon(_view: Any, value: bool, _name: str = "") -> Markup:
    """Flask-Admin's check icon, its tooltip in Chinese (its own says `name: true`)."""
    icon = "fa-check-circle" if value else "fa-minus-circle"
    return Markup('<span class="fa {}" title="{}"></span>').format(icon, yes_no(_view, value))


def _with_local_time(formatters: dict[type, Any], boolean: Any = None) -> dict[type, Any]:
    return {**formatters, datetime: local_time, **({bool: boolean} if boolean else {})}


def _column_changes(model: Any, created: bool) -> dict[str, Any]:
    """What a create/edit changed, column by column, from SQLAlchemy's attribute history."""
    state = inspect(model)
    changes: dict[str, Any] = {}
    for attr in state.mapper.column_attrs:
        history = state.attrs[attr.key].history
        if created:
            changes[attr.key] = getattr(model, attr.key)
        elif history.has_changes():
            old = history.deleted[0] if history.deleted else None
            changes[attr.key] = [old, history.added[0] if history.added else None]
    return changes


class SecureModelView(RoleAccessMixin, ModelView):
    """Every console list: deny by default, rows limited to the user's scope, audited.

    A subclass names the permission for each operation and says which rows
    the current user may see in `scope()`; until it does, it sees nothing.
    """

    form_base_class = ConsoleForm
    create_action: Action | None = None
    edit_action: Action | None = None
    delete_action: Action | None = None
    export_action: Action | None = None
    audit_object: str = ""
    row_post_actions: tuple[PostRowAction, ...] = ()
    row_page_actions: tuple[PageRowAction, ...] = ()
    export_types = ["xlsx"]
    page_size = 50
    can_set_page_size = True
    page_size_options = (20, 50, 100)
    column_type_formatters = _with_local_time(typefmt.BASE_FORMATTERS, yes_no_icon)
    column_type_formatters_export = _with_local_time(typefmt.EXPORT_FORMATTERS, yes_no)
    column_type_formatters_detail = _with_local_time(typefmt.DETAIL_FORMATTERS, yes_no)

    # --- permissions -----------------------------------------------------------------
    def _allowed(self, action: Action | None) -> bool:
        return action is not None and permissions.can(current_user, action)

    @property
    def can_create(self) -> bool:  # type: ignore[override]
        return self._allowed(self.create_action)

    @property
    def can_edit(self) -> bool:  # type: ignore[override]
        return self._allowed(self.edit_action)

    @property
    def can_delete(self) -> bool:  # type: ignore[override]
        return self._allowed(self.delete_action)

    @property
    def can_export(self) -> bool:  # type: ignore[override]
        return self._allowed(self.export_action)

    def _handle_view(self, name: str, **kwargs: Any) -> Any:
        refused = super()._handle_view(name, **kwargs)
        if refused is not None:
            return refused
        needed = {"create_view": self.can_create, "edit_view": self.can_edit,
                  "delete_view": self.can_delete, "export": self.can_export}
        if not needed.get(name, True):
            abort(403)
        return None

    # --- row scope -------------------------------------------------------------------
    def scope(self) -> ColumnElement[bool]:
        """Rows the current user may see. Deny by default."""
        return false()

    def get_query(self) -> Any:
        return super().get_query().filter(self.scope())

    def get_count_query(self) -> Any:
        return super().get_count_query().filter(self.scope())

    def _typed_ids(self, ids: Any) -> list[Any] | None:
        """The ids a form sent (text), as the primary key's type (PostgreSQL compares no bigint with text);
        None if one is not, or is an integer no id can be."""
        column_type = inspect(self.model).primary_key[0].type
        try:
            typed = [column_type.python_type(value) for value in ids]
        except (TypeError, ValueError):
            return None
        # an integer wider than the column (SQLite's driver raises OverflowError past 64 bits, PostgreSQL "integer
        # out of range" past the column's width): no such record
        widest = MAX_ID if isinstance(column_type, BigInteger) else MAX_INTEGER_ID
        if column_type.python_type is int and not all(0 < value <= widest for value in typed):
            return None
        return typed

    @action("delete", lazy_gettext("Delete"), lazy_gettext("Are you sure you want to delete selected records?"))
    def action_delete(self, ids: tuple[str, ...]) -> None:
        """Flask-Admin's batch delete (scope and `delete_model` as it has them), with the ids typed first: a
        forged id deletes nothing."""
        typed = self._typed_ids(ids)
        if typed is None:
            flash(_l("Record not found."), "error")
            return
        super().action_delete(tuple(typed))

    def get_one(self, id: Any) -> Any:
        """Only within scope; anything else is 404, never a hint that it exists."""
        pk = inspect(self.model).primary_key[0]
        typed = self._typed_ids([id])
        if typed is None:
            abort(404)
        found = self.get_query().filter(pk == typed[0]).one_or_none()
        if found is None:
            abort(404)
        return found

    # --- list arguments: a forged page, size or filter value gives the first page, never a 500 --------
    def _get_list_extra_args(self) -> Any:
        args = super()._get_list_extra_args()
        if not 0 <= args.page <= MAX_PAGE:
            args.page = 0
        if args.page_size not in self.page_size_options:
            args.page_size = 0  # the view's default
        return args

    def _get_list_filter_args(self) -> Any:
        """Flask-Admin checks a value's form only; a filter with a list of choices (enum, province,
        yes/no) also needs one of them, or the database refuses it (an enum's LookupError is a 500)."""
        filters = super()._get_list_filter_args()
        if not filters:
            return filters
        kept = []
        for idx, name, value in filters:
            choices = self._filters[idx].get_options(self)
            if choices and value not in {str(choice) for choice, _label in choices}:
                flash(self.get_invalid_value_msg(value, self._filters[idx]), "error")
            elif self._offered(self._filters[idx]):
                kept.append((idx, name, value))
        return kept

    # --- the search box, filters that fit the role, a bounded total ---------------------------------
    def _offered(self, flt: Any) -> bool:
        """A filter that fits the user's role (`offered_to`: e.g. 省份 only where the scope spans provinces)."""
        offered_to = getattr(flt, "offered_to", None)
        return offered_to is None or offered_to(current_user)

    def _get_filter_groups(self) -> Any:
        groups = super()._get_filter_groups()
        if not groups:
            return groups
        return {name: [self._with_options(item) for item in items] for name, items in groups.items()
                if all(self._offered(self._filters[item["index"]]) for item in items)}

    def _with_options(self, item: dict[str, Any]) -> dict[str, Any]:
        """Options given as a function are read now, for this user (Flask-Admin read them at start-up)."""
        flt = self._filters[item["index"]]
        if not callable(flt.options):
            return item
        return {**item, "options": [(key, str(name)) for key, name in flt.get_options(self) or []] or None}

    def search_condition(self, term: str) -> ColumnElement[bool] | None:
        """The rows a (stripped, non-empty) search term finds; None where the list has no search box."""
        return None

    def search_order(self, term: str) -> tuple[Any, ...] | None:
        """The order of a search's results when the user chose none (that of the index finding them)."""
        return None

    def init_search(self) -> bool:
        return type(self).search_condition is not SecureModelView.search_condition

    def search_placeholder(self) -> str:
        return str(_l("Unit name, number, domain or certificate number"))

    def _apply_search(self, query: Any, count_query: Any, joins: Any, count_joins: Any, search: str) -> Any:
        term = search.strip()
        if len(term) > MAX_TERM:
            flash(_l("The search text is too long (at most %(max)s characters).", max=MAX_TERM),
                  "error")
            return query.filter(false()), count_query, joins, count_joins
        condition = self.search_condition(term) if term else None
        return (query if condition is None else query.filter(condition)), count_query, joins, count_joins

    def filtered_query(self, search: str | None, filters: Any) -> tuple[Any, dict[str, Any]]:
        """The rows of the list with its search and filters (`_get_list_extra_args`), unsorted; and its joins."""
        query, joins = self.get_query(), {}
        if search and self._search_supported:
            query, _, joins, _ = self._apply_search(query, None, joins, {}, search)
        if filters and self._filters:
            query, _, joins, _ = self._apply_filters(query, None, joins, {}, filters)
        return query, joins

    def get_list(self, page: int | None, sort_column: Any, sort_desc: bool, search: str | None,
                 filters: Any, execute: bool = True, page_size: int | None = None) -> tuple[int | None, Any]:
        """Flask-Admin's, with a total counted up to `count_limit() + 1` rows (never a count of millions), and a
        search's results in the order of the index that finds them unless the user sorted."""
        query, joins = self.filtered_query(search, filters)
        count = self.bounded_count(query) if execute else None
        order = self.search_order(search.strip()) if search and sort_column is None else None
        if order:
            query = query.order_by(*order)
        else:
            query, joins = self._apply_sorting(query, joins, sort_column, sort_desc)
        query = self._apply_pagination(query, page, page_size)
        if execute:
            _without_parallel_workers()
        return count, (query.all() if execute else query)

    def count_limit(self) -> int:
        return int(current_app.config.get("CONSOLE_COUNT_LIMIT", COUNT_LIMIT))

    def bounded_count(self, query: Any) -> int:
        """The rows of the list, counted up to `count_limit() + 1` (the template says "more than" then).

        While no import is staging, the staged-rows criterion (workflow.imports) is left out of the count: it
        hides nothing then, and without it the count reads the index alone, not 10,001 table rows."""
        pk = inspect(self.model).primary_key[0]
        rows = query.enable_eagerloads(False).with_entities(pk).order_by(None).limit(self.count_limit() + 1)
        staging = db.session.scalar(select(ImportJob.id).where(ImportJob.staging.is_(True)).limit(1))
        return db.session.scalar(select(func.count()).select_from(rows.subquery()),
                                 execution_options={"include_staged": staging is None}) or 0

    # --- audit of generic create / edit / delete -------------------------------------------
    def _audit(self, verb: str, model: Any, changes: dict[str, Any]) -> None:
        audit.record(f"{self.audit_object}.{verb}", object_type=self.audit_object,
                     object_id=self.get_pk_value(model), changes=changes)

    def on_model_change(self, form: Any, model: Any, is_created: bool) -> None:
        changes = _column_changes(model, is_created)  # before the flush resets the history
        db.session.flush()
        self._audit("create" if is_created else "edit", model, changes)

    def on_model_delete(self, model: Any) -> None:
        self._audit("delete", model, _column_changes(model, created=True))

    def handle_view_exception(self, exc: Exception) -> bool:
        if isinstance(exc, WorkflowError):
            flash(exc.message, "error")
            return True
        if isinstance(exc, IntegrityError):  # a unique value taken meanwhile: no SQL text to the user
            flash(_l("This record conflicts with an existing one: a value that must be unique is "
                     "already used."), "error")
            return True
        return super().handle_view_exception(exc)

    # --- per-row POST actions --------------------------------------------------------------
    def get_list_row_actions(self) -> list[Any]:
        return super().get_list_row_actions() + list(self.row_post_actions) + list(self.row_page_actions)

    def is_row_action_allowed(self, name: str, obj: Any) -> bool:
        return False

    def run_row_action(self, name: str, obj: Any) -> str:
        raise NotImplementedError(name)

    @expose("/row-action/<action_name>/", methods=("POST",))
    def row_action_view(self, action_name: str) -> Response:
        back = get_redirect_target() or self.get_url(".index_view")
        if action_name not in {action.name for action in self.row_post_actions}:
            abort(404)
        obj = self.get_one(request.form.get("id", ""))
        if not self.is_row_action_allowed(action_name, obj):
            abort(404)
        try:
            message = self.run_row_action(action_name, obj)
            db.session.commit()
        except WorkflowError as error:
            db.session.rollback()
            flash_refusal(error)
        else:
            flash(message, "success")
        return redirect(back)

    # --- export ----------------------------------------------------------------------------
    def _export_query(self) -> Any:
        """The list's query — the user's scope, filters, search and sort — without paging."""
        args = self._get_list_extra_args()
        sort = self._get_column_by_idx(args.sort)
        _count, query = self.get_list(0, sort[0] if sort else None, args.sort_desc, args.search, args.filters,
                                      execute=False, page_size=0)
        return query.limit(current_app.config["EXPORT_MAX_ROWS"])

    def export_header(self) -> list[str]:
        return [str(label) for _name, label in self._export_columns]

    def export_rows(self, query: Any) -> Iterator[list[Any]]:
        """The spreadsheet's rows: one per record of the list by default."""
        columns = self._export_columns
        for row in query.yield_per(1000):
            yield [self.get_export_value(row, name) for name, _label in columns]

    @expose("/export/<export_type>/")
    def export(self, export_type: str) -> Response:
        """Streamed: rows are read 1,000 at a time and written to a temporary file by openpyxl's write-only
        mode, so memory does not grow with the number of rows; formula-like cells are written as text."""
        if export_type not in self.export_types:
            abort(404)
        written = [0]

        def rows() -> Any:
            for row in self.export_rows(self._export_query()):
                written[0] += 1
                yield row

        path = write_xlsx(self.export_header(), rows(), title=str(self.name))
        begin_write()
        audit.record("export", object_type=self.audit_object,
                     changes={"filters": request.args.to_dict(), "rows": written[0]})
        db.session.commit()
        response = send_file(path, mimetype=XLSX_MIME, max_age=0)
        response.call_on_close(lambda: os.unlink(path))
        response.headers["Content-Disposition"] = content_disposition(f"{self.name}.xlsx", f"{self.endpoint}.xlsx")
        return response
