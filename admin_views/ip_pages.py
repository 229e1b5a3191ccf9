"""IP地址备案's other pages (SPEC §11): the list of the reporting units (bureau, MIIT), 地址查询 (who holds an
address: bureau, MIIT, special query), 核查结果 (the findings the worker recomputes) and the statistics."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import request, url_for
from flask_admin import expose
from flask_admin.contrib.sqla.filters import FilterEqual
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from markupsafe import Markup
from sqlalchemy import ColumnElement, select

import audit
import permissions
import workflow.ip_stats as ip_stats
from admin_views.base import RoleView, SecureModelView, posted
from admin_views.ip import COUNT_LIMIT, WORDS, UnitFilter, bounded_count, formatter, overseen_units, range_of
from admin_views.labels import PROVINCE_NAMES, STATUS_LABELS, label
from admin_views.search import ProvinceFilter, per_request
from extensions import cached, db
from models import (
    CodeTable,
    FindingKind,
    IpAllocation,
    IpBlock,
    IpFinding,
    IpFindingsRun,
    IpSelfBrought,
    User,
    code_values,
    starts_with,
    utcnow,
)
from permissions import Action
from workflow.ip import unit_label
from workflow.ip_lookup import ChainStep, holder_chain
from workflow.ip_stats import Figures

#: the statistics of a scope are computed at most this often per process (each pass streams every record)
STATISTICS_SECONDS = 120
#: the longest text the lookup accepts (an IPv6 address with a zone is shorter)
MAX_ADDRESS = 64

FINDING_KIND_LABELS = {FindingKind.OUT_OF_BOUNDS: _l("Out of bounds"), FindingKind.CONFLICT: _l("Conflict"),
                       FindingKind.UNREPORTED: _l("Unreported")}
RECORD_KIND_LABELS = {"block": _l("Source block"), "allocation": _l("Allocation"),
                      "self_brought": _l("Self-brought block"), "access": _l("Access of a filed website")}
STEP_LABELS = {"block": _l("Source block"), "allocation": _l("Allocation"), "self_brought": _l("Self-brought block")}


def _count_text(count: int) -> str:
    return str(_l("more than %(count)s", count=f"{COUNT_LIMIT:,}")) if count > COUNT_LIMIT else f"{count:,}"


# --- IP报备单位 ----------------------------------------------------------------------------------------------


def _records_link(endpoint: str, model: Any, unit_filter: str = "flt0_0") -> Any:
    """A column counting the unit's records, linked to the list filtered by the unit (`unit_filter`: its argument)."""
    def link(_view: Any, _context: Any, unit: User, _name: str) -> Markup:
        count = bounded_count(select(model.id).where(model.unit_id == unit.id))
        url = url_for(f"{endpoint}.index_view", **{unit_filter: unit.username})
        return Markup('<a href="{}">{}</a>').format(url, _count_text(count))
    return link


class IpUnitView(SecureModelView):
    """IP报备单位: the IP reporting units a bureau (its province) or MIIT (all) oversees, with their records."""

    access_action = Action.IP_LIST
    audit_object = "user"
    column_list = ("username", "organisation", "province", "isp_account", "status", "blocks", "allocations",
                   "self_brought", "findings", "created_at")
    column_sortable_list = ("username", "created_at")
    column_default_sort = ("username", False)
    column_labels = {"username": _l("Username"), "organisation": _l("Organisation"), "province": _l("Province"),
                     "isp_account": _l("Access-provider account"), "status": _l("Status"),
                     "blocks": _l("Source blocks"), "allocations": _l("Allocations"),
                     "self_brought": _l("Self-brought blocks"), "findings": _l("Audit findings"),
                     "created_at": _l("Created at")}
    column_formatters = {
        "isp_account": formatter(lambda unit: unit_label(unit.isp_account)),
        "status": formatter(lambda unit: label(STATUS_LABELS, unit.status)),
        "blocks": _records_link("ip_all_blocks", IpBlock),
        "allocations": _records_link("ip_all_allocations", IpAllocation),
        "self_brought": _records_link("ip_all_self_brought", IpSelfBrought),
        "findings": _records_link("ip_findings", IpFinding, "flt0_1"),  # the findings' unit filter is their second
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.column_filters = (ProvinceFilter(User.province_code, _l("Province"),
                                              options=list(PROVINCE_NAMES.items())),)
        super().__init__(*args, **kwargs)

    def scope(self) -> ColumnElement[bool]:
        return permissions.ip_unit_scope(current_user)

    def search_condition(self, term: str) -> ColumnElement[bool]:
        return starts_with(User.username, term)

    def search_order(self, term: str) -> tuple[Any, ...]:
        return (User.username,)

    def search_placeholder(self) -> str:
        return str(_l("Username (beginning)"))


# --- 地址查询 ------------------------------------------------------------------------------------------------


def chain_summary(chain: list[ChainStep]) -> str:
    """Who holds the address, in one sentence: the most specific record of the chain."""
    last = chain[-1]
    record, unit = last.record, unit_label(last.unit)
    if last.kind == "self_brought":
        return str(_l("A self-brought block of %(user)s, on the network of %(unit)s.", user=record.user_name,
                      unit=unit))
    if last.kind == "block":
        return str(_l("Held by %(unit)s, not allocated further.", unit=unit))
    if record.user_name and record.method == "1":
        return str(_l("Used by %(user)s, allocated by %(unit)s.", user=record.user_name, unit=unit))
    return str(_l("%(method)s by %(unit)s.", method=WORDS.method_of(record), unit=unit))


class IpLookupView(RoleView):
    """地址查询: an address in, the chain of records holding it out (registry block → allocations → user unit).
    A POST (with the CSRF token), since every lookup is audited."""

    access_action = Action.IP_LOOKUP

    @expose("/", methods=("GET", "POST"))
    def index(self) -> str:
        address, chain, problem = request.form.get("address", "").strip(), None, None
        if posted():
            chain, problem = self._look_up(address)
        return self.render("admin/ip/lookup.html", form=FlaskForm(), address=address, chain=chain,
                           problem=problem, summary=chain_summary(chain) if chain else "", words=WORDS,
                           step_labels=STEP_LABELS)

    def _look_up(self, address: str) -> tuple[list[ChainStep] | None, str | None]:
        if not address:
            return None, str(_l("Type an IPv4 or IPv6 address."))
        if len(address) > MAX_ADDRESS:
            return None, str(_l("This is not a valid IPv4 or IPv6 address."))
        try:
            chain = holder_chain(address)
        except ValueError:
            return None, str(_l("This is not a valid IPv4 or IPv6 address."))
        audit.record("ip.lookup", object_type="ip_address", object_id=address,
                     changes={"address": address, "records": len(chain)})
        db.session.commit()
        if not chain:
            return None, str(_l("No reported block holds %(address)s: it has not been reported by any IP "
                                "reporting unit.", address=address))
        return chain, None


# --- 核查结果 ------------------------------------------------------------------------------------------------


class IpFindingView(SecureModelView):
    """核查结果: a reporter's own, a bureau's province's, all for MIIT; filtered by kind."""

    access_action = Action.IP_FINDINGS
    audit_object = "ip_finding"
    list_template = "admin/ip/findings.html"
    column_list = ("kind", "code", "range", "record_kind", "detail", "unit", "other_unit", "computed_at")
    column_default_sort = ("id", False)
    column_sortable_list = ()
    column_labels = {"kind": _l("Finding"), "code": _l("Result code"), "range": _l("Address range"),
                     "record_kind": _l("Record"), "detail": _l("Detail"), "unit": _l("Reporting unit"),
                     "other_unit": _l("Other unit"), "computed_at": _l("Checked at")}
    column_formatters = {
        "kind": formatter(lambda finding: label(FINDING_KIND_LABELS, finding.kind)),
        "range": formatter(range_of),
        "record_kind": formatter(lambda finding: label(RECORD_KIND_LABELS, finding.record_kind)),
        "unit": formatter(lambda finding: unit_label(finding.unit)),
        "other_unit": formatter(lambda finding: unit_label(finding.other_unit)),
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.column_filters = (
            FilterEqual(IpFinding.kind, _l("Finding"),
                        options=[(str(kind), text) for kind, text in FINDING_KIND_LABELS.items()]),
            UnitFilter(IpFinding.unit_id, _l("Reporting unit"), options=per_request(overseen_units)),
            ProvinceFilter(IpFinding.province_code, _l("Province"), options=list(PROVINCE_NAMES.items())),
        )
        super().__init__(*args, **kwargs)

    def scope(self) -> ColumnElement[bool]:
        return permissions.ip_finding_scope(current_user)

    def render(self, template: str, **kwargs: Any) -> str:
        if template == self.list_template:
            kwargs["last_run"] = db.session.scalar(select(IpFindingsRun).order_by(IpFindingsRun.id.desc()).limit(1))
        return super().render(template, **kwargs)


# --- 统计 ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IpStatistics:
    at: datetime  # when computed (stored time, UTC)
    provinces: list[Figures]
    units: list[Figures]
    total: Figures


def cached_ip_statistics(user: User) -> IpStatistics:
    """The figures of the user's scope (the nation, or a province), kept STATISTICS_SECONDS in the configured cache
    (this process's, or the one every node shares): each computation streams every record of the scope."""
    scope = ip_stats.scope_of(user)
    return cached(f"ip_statistics:{scope or 'nation'}", STATISTICS_SECONDS, lambda: _ip_statistics(scope))


def _ip_statistics(scope: str | None) -> IpStatistics:
    units = ip_stats.unit_statistics(scope)
    provinces = [row for row in ip_stats.province_statistics(scope) if row.units or scope is not None]
    return IpStatistics(utcnow(), provinces, units, ip_stats.total(units))


class IpStatisticsView(RoleView):
    """统计: addresses reported per province and per unit (IPv4 as a count, IPv6 in /32 and /48), and the
    allocation methods — MIIT the nation, a bureau its province."""

    access_action = Action.IP_STATISTICS

    @expose("/")
    def index(self) -> str:
        return self.render("admin/ip/statistics.html", statistics=cached_ip_statistics(current_user),
                           methods=code_values(CodeTable.IP_ALLOCATION_METHOD), cache_minutes=STATISTICS_SECONDS // 60)
