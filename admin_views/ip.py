"""IP地址备案 in the console (SPEC §11): what the record lists, the tree, the lookup and the findings share — the
words for a record (its range, origin, holder, region), the search box by address or range, and the forms whose
fields are those of `workflow.ip`'s data (so that each refusal stands beside its field).

Never `LIKE '%x%'`: an address or range is found by probes of the (unit_id, start_key) indexes
(`overlapping`)."""

from __future__ import annotations

import ipaddress
from datetime import date
from types import SimpleNamespace
from typing import Any

from flask import g
from flask_admin.contrib.sqla.filters import FilterEqual
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import ColumnElement, and_, func, select, union_all
from wtforms import BooleanField, DateField, Field, SelectField, StringField
from wtforms.validators import Length, Optional

import ipindex
import permissions
import workflow.ip as ip
from admin_views.base import ConsoleForm
from admin_views.labels import PROVINCE_NAMES, code_name
from extensions import db
from models import AllocationMethod, CodeTable, Division, IpOrigin, Province, User, code_values
from permissions import Action
from workflow.ip import IpError, KeyRange, unit_label

#: a unit's or a block's records are counted up to this many ("more than"), never all of them
COUNT_LIMIT = 10_000
#: what may stand between the two ends of a range typed in the search box
RANGE_SEPARATORS = ("–", "—", "~", "～", "至", "-")


# --- the words for a record ---------------------------------------------------------------------------------


def range_of(record: Any) -> str:
    """"1.2.3.0/24", "a–b" or one address (ipindex.range_text)."""
    return ipindex.range_text(record.start_key, record.end_key)


def family_of(record: Any) -> str:
    return f"IPv{record.family}"


def block_origin(block: Any) -> str:
    """来源: the registry's name, the unit it came from, or the unit that re-allocated it."""
    if block.origin == IpOrigin.REGISTRY:
        return code_name(CodeTable.IP_REGISTRY, block.registry_code)
    if block.origin == IpOrigin.UNIT:
        return str(_l("From %(unit)s", unit=unit_label(block.source_unit)))
    return str(_l("Re-allocated by %(unit)s", unit=unit_label(block.source_unit)))


def allocation_holder(allocation: Any) -> str:
    """Who has the addresses: the user unit (分配并使用), the receiving unit (再分配), or nobody else."""
    if allocation.method == AllocationMethod.REALLOCATED:
        return unit_label(allocation.target_unit)
    return allocation.user_name


def self_brought_source(record: Any) -> str:
    return unit_label(record.source_unit) if record.source_unit is not None else record.source_name


def division_name(code: str | None) -> str:
    """A city's or county's name, each read once per request (a list shows many of the same)."""
    if not code:
        return ""
    names: dict[str, str] = g.setdefault("division_names", {})
    if code not in names:
        names[code] = db.session.scalar(select(Division.name).where(Division.code == code)) or code
    return names[code]


def region_of(record: Any) -> str:
    """省 市 县 of a user unit, by name."""
    parts = [PROVINCE_NAMES.get(record.province_code or "", record.province_code or ""),
             division_name(record.city_code), division_name(record.county_code)]
    return " ".join(part for part in parts if part)


def usage_of(record: Any) -> str:
    return code_name(CodeTable.IP_USAGE_METHOD, record.usage)


def method_of(record: Any) -> str:
    return code_name(CodeTable.IP_ALLOCATION_METHOD, record.method)


#: the words above, for the templates
WORDS = SimpleNamespace(range_of=range_of, family_of=family_of, block_origin=block_origin,
                        allocation_holder=allocation_holder, self_brought_source=self_brought_source,
                        region_of=region_of, usage_of=usage_of, method_of=method_of, unit_label=unit_label)


def formatter(function: Any) -> Any:
    """A Flask-Admin column formatter from a function of the record."""
    return lambda _view, _context, model, _name: function(model)


def bounded_count(query: Any, limit: int = COUNT_LIMIT) -> int:
    """The rows of `query`, counted up to `limit + 1` (an index range, never a count of millions)."""
    return db.session.scalar(select(func.count()).select_from(query.limit(limit + 1).subquery())) or 0


# --- the unit filter of the bureau's and MIIT's lists -----------------------------------------------------


def overseen_units() -> list[tuple[str, str]]:
    """The reporting units the user oversees (account name, label), for the unit filter's menu."""
    query = select(User).where(permissions.ip_unit_scope(current_user)).order_by(User.username)
    return [(unit.username, unit_label(unit)) for unit in db.session.scalars(query)]


class UnitFilter(FilterEqual):
    """报备单位: one of the units the user oversees, by account name (offered to bureaus and MIIT)."""

    @staticmethod
    def offered_to(user: Any) -> bool:
        return not permissions.can(user, Action.IP_REPORT)

    def apply(self, query: Any, value: Any, alias: Any = None) -> Any:
        """IN rather than =: with a search, SQLite then reads the records found by id, not all of the unit's."""
        return query.filter(self.column.in_(select(User.id).where(User.username == value)))


# --- the search box -------------------------------------------------------------------------------------


def search_range(term: str) -> KeyRange:
    """The range a search term names: one address, a CIDR prefix, or "start–end"; IpError (2002) otherwise."""
    text = term.strip().strip("[]")
    if "/" in text:
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise IpError([("start", "2002", _l("This is not a valid IPv4 or IPv6 prefix."))]) from None
        return ip.parse_range(str(network[0]), str(network[-1]))
    for separator in RANGE_SEPARATORS:
        if separator in text:
            start, _, end = text.partition(separator)
            return ip.parse_range(start.strip(), end.strip())
    return ip.parse_range(text, text)


def overlapping(model: Any, keys: KeyRange, units: ColumnElement[bool], unit_id: int | None = None
                ) -> ColumnElement[bool]:
    """The records of the units (`units`, a condition on `User`; `unit_id` when it is one known unit) that share
    an address with `keys`, as a condition an index serves whatever the number of records.

    One unit's records of a kind never overlap, so for each unit they are the records starting from the one
    holding the range's start (the greatest start ≤ it, if it reaches it: one probe of ix_<table>_unit_start
    per unit, all in one statement) up to the range's end: one range of the same index per unit."""
    before = (select(model.id).where(model.unit_id == User.id, model.start_key <= keys.start_key)
              .order_by(model.start_key.desc()).limit(1).correlate(User).scalar_subquery())
    holders = dict(db.session.execute(select(model.unit_id, model.start_key).where(
        model.id.in_(select(before).where(units)), model.end_key >= keys.start_key)).all())
    if unit_id is not None:
        lower = holders.get(unit_id, keys.start_key)
        return and_(model.unit_id == unit_id, model.start_key >= lower, model.start_key <= keys.end_key)
    ranges = [select(model.id).where(model.unit_id == holder, model.start_key >= start,
                                     model.start_key <= keys.end_key) for holder, start in holders.items()]
    inside = select(model.id).where(model.unit_id.in_(select(User.id).where(units)),
                                    model.start_key > keys.start_key, model.start_key <= keys.end_key)
    return model.id.in_(union_all(*ranges, inside))


# --- the forms ------------------------------------------------------------------------------------------


def _text(max_length: int, label: Any, description: Any = "") -> StringField:
    return StringField(label, [Optional(), Length(max=max_length)], description=description)


def _menu(label: Any) -> SelectField:
    """A menu the workflow checks (code tables, divisions): its value is not limited to the choices shown."""
    return SelectField(label, choices=[], validate_choice=False, default="")


class _RangeFields(ConsoleForm):
    start = _text(45, _l("Start address"))
    end = _text(45, _l("End address"), _l("Leave empty for a single address."))


class BlockForm(_RangeFields):
    """来源信息."""

    origin = SelectField(_l("Source"), choices=[], validate_choice=False, default=IpOrigin.REGISTRY.value)
    registry_code = _menu(_l("Internet registry"))
    source_unit = _text(64, _l("Source unit (account name)"),
                        _l("The account name of the reporting unit of this registry the block came from."))
    remark = _text(255, _l("Remark"))


class _MethodFields(_RangeFields):
    method = _menu(_l("Allocation method"))
    target_unit = _text(64, _l("Receiving unit (account name)"),
                        _l("The account name of the reporting unit that receives the addresses: they become a "
                           "source block of that unit."))


class _UserUnitFields(ConsoleForm):
    usage = _menu(_l("Usage method"))
    allocated_on = DateField(_l("Allocation date"), [Optional()])
    user_name = _text(128, _l("User unit name"))
    user_nature = _menu(_l("Unit nature"))
    user_category = _menu(_l("Unit class"))
    user_industry = _menu(_l("Industry"))
    province_code = _menu(_l("Province"))
    city_code = _menu(_l("City"))
    county_code = _menu(_l("County"))
    address = _text(255, _l("Street address"))
    contact_name = _text(64, _l("Contact name"))
    contact_phone = _text(32, _l("Contact phone"))
    contact_email = _text(254, _l("Contact e-mail"))
    gateway_ip = _text(45, _l("Gateway IP address"))
    gateway_location = _text(255, _l("Gateway location"))
    redirect_server = BooleanField(_l("Used as a domain-redirect server"))
    remark = _text(255, _l("Remark"))


class AllocationForm(_MethodFields, _UserUnitFields):
    """分配及使用信息."""


class SelfBroughtForm(_RangeFields, _UserUnitFields):
    """自带IP."""

    source_unit = _text(64, _l("Source unit (account name)"),
                        _l("The account name of the reporting unit of this registry the block came from."))
    source_name = _text(128, _l("Source (when not a reporting unit)"),
                        _l("Where the block came from, when it is not a reporting unit of this registry."))


USER_UNIT_FIELDS = ip.USER_UNIT_FIELDS
#: the fields each 分配方式 takes (the others are left out of what is saved); any other method: all of them
METHOD_FIELDS: dict[str, tuple[str, ...]] = {
    AllocationMethod.ALLOCATED: USER_UNIT_FIELDS,
    AllocationMethod.REALLOCATED: ("target_unit", "allocated_on", "remark"),
    AllocationMethod.SELF_USE: ("usage", "allocated_on", "gateway_ip", "gateway_location", "redirect_server",
                                "remark"),
    AllocationMethod.RESERVED: ("remark",),
}
#: what each 分配方式 requires (the specification's lists, as workflow.ip checks them)
METHOD_REQUIRED: dict[str, tuple[str, ...]] = {
    AllocationMethod.ALLOCATED: ip.ALLOCATED_REQUIRED,
    AllocationMethod.REALLOCATED: ("target_unit",),
    AllocationMethod.SELF_USE: ip.SELF_USE_REQUIRED,
    AllocationMethod.RESERVED: (),
}
ORIGIN_FIELDS = {IpOrigin.REGISTRY.value: ("registry_code",), IpOrigin.UNIT.value: ("source_unit",)}


def switch_attributes(fields: dict[str, tuple[str, ...]]) -> dict[str, str]:
    """field → the values of the switching menu for which it applies ("1 3"), for static/js/ip-form.js."""
    applies: dict[str, list[str]] = {}
    for value, names in fields.items():
        for name in names:
            applies.setdefault(name, []).append(str(value))
    return {name: " ".join(values) for name, values in applies.items()}


def _choose() -> tuple[str, str]:
    return "", str(_l("— choose —"))


def division_choices(parent: str | None) -> list[tuple[str, str]]:
    """The cities of a province or the counties of a city (index ix_divisions_parent)."""
    if not parent:
        return []
    return [(code, name) for code, name in db.session.execute(
        select(Division.code, Division.name).where(Division.parent_code == parent).order_by(Division.code))]


def _province_choices() -> list[tuple[str, str]]:
    return [(code, name) for code, name in db.session.execute(
        select(Province.code, Province.name).where(Province.active).order_by(Province.sort_order))]


def _fill(field: Field, choices: list[tuple[str, str]]) -> None:
    field.choices = [_choose(), *choices]


def fill_choices(form: ConsoleForm) -> ConsoleForm:
    """The menus of a form, from the code tables and the divisions (cities of the chosen province …)."""
    menus = {"method": CodeTable.IP_ALLOCATION_METHOD, "usage": CodeTable.IP_USAGE_METHOD,
             "registry_code": CodeTable.IP_REGISTRY, "user_nature": CodeTable.UNIT_NATURE,
             "user_category": CodeTable.UNIT_CLASS, "user_industry": CodeTable.INDUSTRY}
    for name, table in menus.items():
        if name in form:
            _fill(form[name], code_values(table))
    if "origin" in form:
        form.origin.choices = [(IpOrigin.REGISTRY.value, str(_l("An Internet registry"))),
                               (IpOrigin.UNIT.value, str(_l("Another reporting unit")))]
    if "province_code" in form:
        _fill(form.province_code, _province_choices())
        _fill(form.city_code, division_choices(form.province_code.data))
        _fill(form.county_code, division_choices(form.city_code.data))
    return form


def record_values(record: Any) -> dict[str, Any]:
    """A record as its form's data (the edit form's first showing)."""
    values: dict[str, Any] = {"start": ipindex.address_text(record.start_key),
                              "end": ipindex.address_text(record.end_key), "remark": record.remark}
    for name in (*USER_UNIT_FIELDS, "origin", "registry_code", "method", "source_name"):
        if hasattr(record, name):
            value = getattr(record, name)
            values[name] = value if value is not None or name == "allocated_on" else ""
    for name in ("source_unit", "target_unit"):
        if hasattr(record, name):
            unit = getattr(record, name)
            values[name] = unit.username if unit is not None else ""
    return values


def _value(field: Field) -> Any:
    if isinstance(field, BooleanField):
        return bool(field.data)
    if isinstance(field, DateField):
        return field.data if isinstance(field.data, date) else None
    return (field.data or "").strip()


def block_data(form: BlockForm) -> ip.BlockData:
    return ip.BlockData(start=_value(form.start), end=_value(form.end), origin=_value(form.origin),
                        registry_code=_value(form.registry_code), source_unit=_value(form.source_unit),
                        remark=_value(form.remark))


def allocation_data(form: AllocationForm) -> ip.AllocationData:
    """What the form says, keeping only the fields of the chosen 分配方式 (a field hidden when the method changed
    is not saved)."""
    method = _value(form.method)
    kept = METHOD_FIELDS.get(method, (*USER_UNIT_FIELDS, "target_unit"))
    return ip.AllocationData(start=_value(form.start), end=_value(form.end), method=method,
                             **{name: _value(form[name]) for name in kept})


def self_brought_data(form: SelfBroughtForm) -> ip.SelfBroughtData:
    return ip.SelfBroughtData(start=_value(form.start), end=_value(form.end), source_unit=_value(form.source_unit),
                              source_name=_value(form.source_name),
                              **{name: _value(form[name]) for name in USER_UNIT_FIELDS})
