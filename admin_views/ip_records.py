"""IP地址备案's record lists (SPEC §11): 来源信息, 分配及使用信息, 自带IP.

An IP reporting unit lists, adds, changes and deletes its own records (every change through `workflow.ip`, every
refusal beside its field with its result code); a block's tree shows its allocations and, for each re-allocation,
the receiving unit's block and allocations, down the chain. Bureaus (their province's units) and MIIT (all) read
the same lists with a filter by unit, and the list of the reporting units."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import abort, flash, request, url_for
from flask_admin import expose
from flask_admin.contrib.sqla.filters import FilterEqual, IntEqualFilter
from flask_admin.helpers import get_form_data, get_redirect_target
from flask_admin.model.template import DeleteRowAction, EditRowAction
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import ColumnElement, false, select

import permissions
import workflow.ip as ip
from admin_views.base import PageRowAction, SecureModelView
from admin_views.ip import (
    METHOD_FIELDS,
    METHOD_REQUIRED,
    ORIGIN_FIELDS,
    WORDS,
    AllocationForm,
    BlockForm,
    SelfBroughtForm,
    UnitFilter,
    allocation_data,
    allocation_holder,
    block_data,
    block_origin,
    bounded_count,
    division_choices,
    family_of,
    fill_choices,
    formatter,
    method_of,
    overlapping,
    overseen_units,
    range_of,
    record_values,
    region_of,
    search_range,
    self_brought_data,
    self_brought_source,
    switch_attributes,
    usage_of,
)
from admin_views.labels import PROVINCE_NAMES, code_name
from admin_views.search import ProvinceFilter, per_request
from extensions import db
from forms import show_refusal
from models import CodeTable, IpAllocation, IpBlock, IpSelfBrought, Role, User, code_values
from permissions import Action
from workflow import WorkflowError
from workflow.ip import unit_label

#: the tree of a block goes this many re-allocations down, and shows at most this many allocations per block
TREE_DEPTH = 8
TREE_ALLOCATIONS = 100
#: … and this many allocations in all (a wide tree at every level would otherwise be huge)
TREE_BUDGET = 1000

RANGE_LABELS = {"range": _l("Address range"), "family": _l("Family"), "unit": _l("Reporting unit"),
                "remark": _l("Remark"), "created_at": _l("Reported at"), "updated_at": _l("Changed at")}
USER_UNIT_LABELS = {
    "usage": _l("Usage method"), "allocated_on": _l("Allocation date"), "user_name": _l("User unit name"),
    "user_nature": _l("Unit nature"), "user_category": _l("Unit class"), "user_industry": _l("Industry"),
    "region": _l("Region"), "address": _l("Street address"), "contact_name": _l("Contact name"),
    "contact_phone": _l("Contact phone"), "contact_email": _l("Contact e-mail"),
    "gateway_ip": _l("Gateway IP address"), "gateway_location": _l("Gateway location"),
    "redirect_server": _l("Used as a domain-redirect server"),
}
USER_UNIT_DETAILS = ("usage", "allocated_on", "user_name", "user_nature", "user_category", "user_industry", "region",
                     "address", "contact_name", "contact_phone", "contact_email", "gateway_ip", "gateway_location",
                     "redirect_server", "remark")


def _code(table: CodeTable) -> Callable[..., str]:
    return lambda _v, _c, model, name: code_name(table, getattr(model, name))


USER_UNIT_FORMATTERS = {
    "range": formatter(range_of), "family": formatter(family_of), "unit": formatter(lambda m: unit_label(m.unit)),
    "usage": formatter(usage_of), "region": formatter(region_of), "user_nature": _code(CodeTable.UNIT_NATURE),
    "user_category": _code(CodeTable.UNIT_CLASS), "user_industry": _code(CodeTable.INDUSTRY),
}


class _AllowedRowAction:
    """Flask-Admin's edit / delete button, shown only on the rows where the view allows it."""

    action_name = ""

    def render(self, context: Any, row_id: str, row: Any) -> Any:
        view = context.resolve("admin_view")
        return super().render(context, row_id, row) if view.is_row_action_allowed(  # type: ignore[misc]
            self.action_name, row) else ""


class _EditIfAllowed(_AllowedRowAction, EditRowAction):
    action_name = "edit"


class _DeleteIfAllowed(_AllowedRowAction, DeleteRowAction):
    action_name = "delete"


# --- filters of the bureau's and MIIT's lists ----------------------------------------------------------------


class UnitProvinceFilter(ProvinceFilter):
    """省份 of the reporting unit (offered to MIIT)."""

    def apply(self, query: Any, value: Any, alias: Any = None) -> Any:
        return query.filter(self.column.in_(select(User.id).where(User.province_code == value,
                                                                   User.role == Role.IP_REPORTER)))


def _family_filter(model: Any) -> IntEqualFilter:
    return IntEqualFilter(model.family, _l("Family"), options=[("4", "IPv4"), ("6", "IPv6")])


def _method_filter() -> FilterEqual:
    return FilterEqual(IpAllocation.method, _l("Allocation method"),
                       options=per_request(lambda: code_values(CodeTable.IP_ALLOCATION_METHOD)))


def _oversight_filters(model: Any) -> tuple[Any, ...]:
    return (UnitFilter(model.unit_id, _l("Reporting unit"), options=per_request(overseen_units)),
            UnitProvinceFilter(model.unit_id, _l("Province"), options=list(PROVINCE_NAMES.items())),
            _family_filter(model))


# --- the lists -------------------------------------------------------------------------------------------


class IpRecordView(SecureModelView):
    """A list of one kind of IP record within the user's scope, searched by address or range."""

    can_view_details = True
    column_default_sort = ("start_key", False)
    action_disallowed_list = ["delete"]  # one record at a time: each deletion is checked and may be refused

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.column_filters = self.filters()
        super().__init__(*args, **kwargs)

    def filters(self) -> tuple[Any, ...]:
        return ()

    def scope(self) -> ColumnElement[bool]:
        return permissions.ip_record_scope(current_user, self.model)

    def search_placeholder(self) -> str:
        return str(_l("IP address, prefix or range"))

    def search_condition(self, term: str) -> ColumnElement[bool]:
        """The records sharing an address with the term (an address finds those holding it)."""
        try:
            keys = search_range(term)
        except ip.IpError as error:
            flash(_l("Type an IP address, a prefix such as 1.2.3.0/24, or a range such as 1.2.3.4-1.2.3.9: %(why)s",
                     why=error.message), "error")
            return false()
        own = current_user.id if permissions.can(current_user, Action.IP_REPORT) else None
        return overlapping(self.model, keys, permissions.ip_unit_scope(current_user), own)

    def search_order(self, term: str) -> tuple[Any, ...]:
        """By address (then unit): SQLite then reads the few records found by their ids rather than every record
        of the scope in index order."""
        return (self.model.start_key, self.model.unit_id)

    def get_list_row_actions(self) -> list[Any]:
        allowed = {EditRowAction: _EditIfAllowed, DeleteRowAction: _DeleteIfAllowed}
        return [allowed[type(action)]() if type(action) in allowed else action
                for action in super().get_list_row_actions()]


class ReportedRecordView(IpRecordView):
    """An IP reporting unit's own records: add, change, delete through `workflow.ip`."""

    access_action = create_action = edit_action = delete_action = Action.IP_REPORT
    create_template = edit_template = "admin/ip/form.html"
    #: (title, fields) of the form, in order
    form_sections: tuple[tuple[Any, tuple[str, ...]], ...] = ()
    #: the menu that decides which fields apply, and for which of its values each field shows / is required
    switch: str = ""
    shown_for: dict[str, str] = {}
    required_for: dict[str, str] = {}
    always_required: tuple[str, ...] = ("start",)

    def to_data(self, form: Any) -> Any:
        raise NotImplementedError

    def add(self, data: Any) -> Any:
        raise NotImplementedError

    def change(self, record: Any, data: Any) -> Any:
        raise NotImplementedError

    def remove(self, record: Any) -> None:
        raise NotImplementedError

    def is_row_action_allowed(self, name: str, obj: Any) -> bool:
        return name in ("edit", "delete")

    def create_form(self, obj: Any = None) -> Any:
        return fill_choices(super().create_form(obj))

    def edit_form(self, obj: Any = None) -> Any:
        if obj is None or not self.is_row_action_allowed("edit", obj):
            abort(404)
        return fill_choices(self._edit_form_class(get_form_data(), data=record_values(obj)))

    def create_model(self, form: Any) -> Any:
        try:
            record = self.add(self.to_data(form))
            db.session.commit()
        except WorkflowError as error:
            show_refusal(form, error)
            return False
        return record

    def update_model(self, form: Any, model: Any) -> bool:
        try:
            self.change(model, self.to_data(form))
            db.session.commit()
        except WorkflowError as error:
            show_refusal(form, error)
            return False
        return True

    def delete_model(self, model: Any) -> bool:
        try:
            self.remove(model)
            db.session.commit()
        except WorkflowError as error:
            db.session.rollback()
            for _field, message in error.errors:
                flash(message, "error")
            return False
        return True

    def render(self, template: str, **kwargs: Any) -> str:
        if template == self.create_template:
            kwargs.update(sections=self.form_sections, switch=self.switch, shown_for=self.shown_for,
                          required_for=self.required_for, always_required=self.always_required)
        return super().render(template, **kwargs)


# --- 来源信息 ---------------------------------------------------------------------------------------------


@dataclass
class Branch:
    """An allocation of a block in the tree, and the block it made for the receiving unit (再分配)."""

    allocation: IpAllocation
    received: Node | None = None


@dataclass
class Node:
    block: IpBlock
    branches: list[Branch] = field(default_factory=list)
    total: int = 0  # the block's allocations (counted up to COUNT_LIMIT + 1)
    cut: bool = False  # the depth or the budget ended the tree here


def build_tree(block: IpBlock, depth: int = 0, budget: list[int] | None = None) -> Node:
    """The block, its allocations (by address, at most TREE_ALLOCATIONS), and for each re-allocation the receiving
    unit's block, recursively: TREE_DEPTH levels, TREE_BUDGET allocations in all."""
    budget = budget if budget is not None else [TREE_BUDGET]
    node = Node(block)
    query = select(IpAllocation).where(IpAllocation.block_id == block.id)
    node.total = bounded_count(query)
    if depth >= TREE_DEPTH or budget[0] <= 0:
        node.cut = node.total > 0
        return node
    shown = list(db.session.scalars(query.order_by(IpAllocation.start_key).limit(min(TREE_ALLOCATIONS, budget[0]))))
    budget[0] -= len(shown)
    received = {child.allocation_id: child for child in db.session.scalars(select(IpBlock).where(
        IpBlock.allocation_id.in_([a.id for a in shown if a.target_unit_id is not None])))}
    for allocation in shown:
        child = received.get(allocation.id)
        node.branches.append(Branch(allocation, build_tree(child, depth + 1, budget) if child else None))
    return node


class BlockView(ReportedRecordView):
    """来源信息: the unit's reported blocks and the blocks re-allocated to it (read only, the giver named)."""

    form = BlockForm
    audit_object = "ip_block"
    column_list = ("range", "family", "origin", "remark", "created_at")
    column_details_list = ("range", "family", "origin", "remark", "created_at", "updated_at")
    column_sortable_list = (("range", "start_key"), "created_at")
    column_labels = {**RANGE_LABELS, "origin": _l("Source")}
    column_formatters = {"range": formatter(range_of), "family": formatter(family_of),
                         "origin": formatter(block_origin), "unit": formatter(lambda m: unit_label(m.unit))}
    row_page_actions = (PageRowAction("tree", _l("Tree"), ".tree_view", "fa fa-sitemap"),)
    form_sections = ((_l("Address range"), ("start", "end")),
                     (_l("Source"), ("origin", "registry_code", "source_unit", "remark")))
    switch = "origin"
    shown_for = switch_attributes(ORIGIN_FIELDS)
    required_for = shown_for
    always_required = ("start", "origin")

    def filters(self) -> tuple[Any, ...]:
        return (_family_filter(IpBlock),)

    def to_data(self, form: Any) -> ip.BlockData:
        return block_data(form)

    def add(self, data: ip.BlockData) -> IpBlock:
        return ip.add_block(current_user, data)

    def change(self, record: IpBlock, data: ip.BlockData) -> IpBlock:
        return ip.change_block(current_user, record, data)

    def remove(self, record: IpBlock) -> None:
        ip.delete_block(current_user, record)

    def is_row_action_allowed(self, name: str, obj: Any) -> bool:
        """A re-allocated block is the giver's to change; its tree is open to both."""
        return name == "tree" or (name in ("edit", "delete") and not obj.derived)

    def allocations_url(self, block: IpBlock) -> str | None:
        """The list of a block's allocations (its range searched), if the user's list holds them."""
        if not permissions.can(current_user, Action.IP_REPORT) or block.unit_id != current_user.id:
            return None
        return url_for("ip_allocations.index_view", search=range_of(block))

    @expose("/tree/")
    def tree_view(self) -> str:
        block = self.get_one(request.args.get("id", ""))
        return self.render("admin/ip/tree.html", tree=build_tree(block), block=block, words=WORDS,
                           back=get_redirect_target() or self.get_url(".index_view"), depth_limit=TREE_DEPTH)


class BlockOverview(BlockView):
    """来源信息 of the reporting units a bureau (its province) or MIIT (all) oversees: read only."""

    access_action = Action.IP_LIST
    create_action = edit_action = delete_action = None
    column_list = ("unit", "range", "family", "origin", "remark", "created_at")
    column_details_list = ("unit", *BlockView.column_details_list)
    column_default_sort = [("unit_id", False), ("start_key", False)]  # the order of ix_<table>_unit_start

    def filters(self) -> tuple[Any, ...]:
        return _oversight_filters(IpBlock)

    def is_row_action_allowed(self, name: str, obj: Any) -> bool:
        return name == "tree"

    def allocations_url(self, block: IpBlock) -> str | None:
        if not self.get_query().filter(IpBlock.id == block.id).count():
            return None
        return url_for("ip_all_allocations.index_view", search=range_of(block), flt0_0=block.unit.username)


# --- 分配及使用信息 ------------------------------------------------------------------------------------------


ALLOCATION_COLUMNS = ("range", "method", "holder", "usage", "allocated_on", "region")


class AllocationView(ReportedRecordView):
    """分配及使用信息: parts of the unit's source blocks, with the method and the user unit or receiving unit."""

    form = AllocationForm
    audit_object = "ip_allocation"
    column_list = ALLOCATION_COLUMNS
    column_details_list = ("range", "family", "block", "method", "holder", *USER_UNIT_DETAILS, "created_at",
                           "updated_at")
    column_sortable_list = (("range", "start_key"), "allocated_on")
    column_labels = {**RANGE_LABELS, **USER_UNIT_LABELS, "method": _l("Allocation method"),
                     "holder": _l("User unit or receiving unit"), "block": _l("Source block")}
    column_formatters = {**USER_UNIT_FORMATTERS, "method": formatter(method_of),
                         "holder": formatter(allocation_holder), "block": formatter(lambda m: range_of(m.block))}
    form_sections = (
        (_l("Address range and allocation method"), ("start", "end", "method", "target_unit", "usage",
                                                    "allocated_on")),
        (_l("User unit"), ("user_name", "user_nature", "user_category", "user_industry", "province_code",
                           "city_code", "county_code", "address", "contact_name", "contact_phone",
                           "contact_email")),
        (_l("Gateway and remark"), ("gateway_ip", "gateway_location", "redirect_server", "remark")),
    )
    switch = "method"
    shown_for = switch_attributes(METHOD_FIELDS)
    required_for = switch_attributes(METHOD_REQUIRED)
    always_required = ("start", "method")

    def filters(self) -> tuple[Any, ...]:
        return (_method_filter(), _family_filter(IpAllocation))

    def to_data(self, form: Any) -> ip.AllocationData:
        return allocation_data(form)

    def add(self, data: ip.AllocationData) -> IpAllocation:
        return ip.add_allocation(current_user, data)

    def change(self, record: IpAllocation, data: ip.AllocationData) -> IpAllocation:
        return ip.change_allocation(current_user, record, data)

    def remove(self, record: IpAllocation) -> None:
        ip.delete_allocation(current_user, record)

    @expose("/divisions/")
    def divisions(self) -> Any:
        """The cities of a province or the counties of a city, for the dependent menus (static/js/ip-form.js)."""
        parent = request.args.get("parent", "")
        return {"divisions": division_choices(parent) if parent.isdigit() and len(parent) == 6 else []}


class AllocationOverview(AllocationView):
    access_action = Action.IP_LIST
    create_action = edit_action = delete_action = None
    column_list = ("unit", *ALLOCATION_COLUMNS)
    column_details_list = ("unit", *AllocationView.column_details_list)
    column_default_sort = [("unit_id", False), ("start_key", False)]  # the order of ix_<table>_unit_start

    def filters(self) -> tuple[Any, ...]:
        return (*_oversight_filters(IpAllocation), _method_filter())

    def is_row_action_allowed(self, name: str, obj: Any) -> bool:
        return False


# --- 自带IP ----------------------------------------------------------------------------------------------


SELF_BROUGHT_COLUMNS = ("range", "user_name", "source", "usage", "allocated_on", "region")


class SelfBroughtView(ReportedRecordView):
    """自带IP: customers' own blocks brought to the unit's network."""

    form = SelfBroughtForm
    audit_object = "ip_self_brought"
    column_list = SELF_BROUGHT_COLUMNS
    column_details_list = ("range", "family", "source", *USER_UNIT_DETAILS, "created_at", "updated_at")
    column_sortable_list = (("range", "start_key"), "allocated_on")
    column_labels = {**RANGE_LABELS, **USER_UNIT_LABELS, "source": _l("Source of the block")}
    column_formatters = {**USER_UNIT_FORMATTERS, "source": formatter(self_brought_source)}
    form_sections = (
        (_l("Address range and source"), ("start", "end", "source_unit", "source_name", "usage", "allocated_on")),
        (_l("User unit"), ("user_name", "user_nature", "user_category", "user_industry", "province_code",
                           "city_code", "county_code", "address", "contact_name", "contact_phone",
                           "contact_email")),
        (_l("Gateway and remark"), ("gateway_ip", "gateway_location", "redirect_server", "remark")),
    )
    always_required = ("start", *ip.ALLOCATED_REQUIRED)

    def filters(self) -> tuple[Any, ...]:
        return (_family_filter(IpSelfBrought),)

    def to_data(self, form: Any) -> ip.SelfBroughtData:
        return self_brought_data(form)

    def add(self, data: ip.SelfBroughtData) -> IpSelfBrought:
        return ip.add_self_brought(current_user, data)

    def change(self, record: IpSelfBrought, data: ip.SelfBroughtData) -> IpSelfBrought:
        return ip.change_self_brought(current_user, record, data)

    def remove(self, record: IpSelfBrought) -> None:
        ip.delete_self_brought(current_user, record)


class SelfBroughtOverview(SelfBroughtView):
    access_action = Action.IP_LIST
    create_action = edit_action = delete_action = None
    column_list = ("unit", *SELF_BROUGHT_COLUMNS)
    column_details_list = ("unit", *SelfBroughtView.column_details_list)
    column_default_sort = [("unit_id", False), ("start_key", False)]  # the order of ix_<table>_unit_start

    def filters(self) -> tuple[Any, ...]:
        return _oversight_filters(IpSelfBrought)

    def is_row_action_allowed(self, name: str, obj: Any) -> bool:
        return False
