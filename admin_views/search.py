"""The console's one search box: what a term is (a number, a domain, a certificate number or a unit name)
and the indexed condition that finds it. Never `LIKE '%x%'`: every kind is an equality or a prefix range
that an index serves (models.starts_with), so a search costs the same at 1,000 and 1,000,000 filings."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Any

from flask import has_request_context
from flask_admin.contrib.sqla.filters import DateBetweenFilter, FilterEqual
from flask_babel import to_utc
from flask_login import current_user
from sqlalchemy import ColumnElement, or_, select

from extensions import db
from models import Application, Domain, Entity, PreapprovalItem, Role, User, Website, starts_with
from numbering import ABBREVIATIONS
from validators import normalise_domain, with_and_without_www

#: the longest term accepted (the longest domain name); longer is refused with a message
MAX_TERM = 253
NUMBER_RE = re.compile(rf"^([{ABBREVIATIONS}])\s*ICP\s*(.*)$", re.IGNORECASE)
CODE_RE = re.compile(r"^[0-9A-Za-z]+$")
#: an application's own number (the list's first column) is at most this many digits
MAX_ID_DIGITS = 12


class Kind(StrEnum):
    NUMBER = "number"  # 备案号 prefix: 津ICP备26 … 津ICP备26000001号
    WEBSITE_NUMBER = "website_number"  # 网站备案号 prefix: 津ICP备26000001号-1
    LICENCE = "licence"  # 许可证号 prefix: 津ICP证
    DOMAIN = "domain"  # exact, normalised, with and without www.
    CERTIFICATE = "certificate"  # 证件号码 prefix (digits and letters); also an application number
    UNIT_NAME = "unit_name"  # 单位名称 prefix


@dataclass(frozen=True)
class Term:
    kind: Kind
    values: tuple[str, ...]


def _domain_names(text: str) -> tuple[str, ...] | None:
    """As the public lookup: an IP address as filed, or the normalised domain with and without `www.`."""
    try:
        return (str(ipaddress.ip_address(text.strip("[]"))),)
    except ValueError:
        pass
    try:
        return tuple(with_and_without_www(normalise_domain(text)))
    except ValueError:
        return None


def classify(text: str) -> Term:
    """The kind of a (stripped, ≤ MAX_TERM) term, by its shape; a unit-name prefix when nothing else fits."""
    number = NUMBER_RE.match(text)
    if number:
        value = f"{number.group(1)}ICP{number.group(2).replace(' ', '')}"
        kind = Kind.LICENCE if "证" in value else Kind.WEBSITE_NUMBER if "-" in value else Kind.NUMBER
        return Term(kind, (value,))
    if CODE_RE.match(text):
        return Term(Kind.CERTIFICATE, (text.upper(),))
    if "." in text or "/" in text or ":" in text:
        names = _domain_names(text)
        if names:
            return Term(Kind.DOMAIN, names)
    return Term(Kind.UNIT_NAME, (text,))


def entity_condition(term: Term) -> ColumnElement[bool]:
    """The filings a term finds, as a condition on `Entity` (each kind one index)."""
    value = term.values[0]
    if term.kind == Kind.NUMBER:
        # uq_entities_number, ix_entities_province_number_status
        return starts_with(Entity.number, value, plain_index=True)
    if term.kind == Kind.LICENCE:
        return starts_with(Entity.licence_number, value)
    if term.kind == Kind.WEBSITE_NUMBER:
        return Entity.id.in_(select(Website.entity_id).where(starts_with(Website.number, value)))
    if term.kind == Kind.DOMAIN:
        return Entity.id.in_(select(Website.entity_id).join(Domain, Domain.website_id == Website.id)
                             .where(Domain.name.in_(term.values)))
    if term.kind == Kind.CERTIFICATE:
        return starts_with(Entity.certificate_number, value)
    return starts_with(Entity.unit_name, value)


def entity_order(term: Term) -> tuple[Any, ...]:
    """The order of a search's results on the filings list: the order of the index that finds them, so that
    a page stops reading at its last row however many filings match."""
    column = {Kind.NUMBER: Entity.number, Kind.LICENCE: Entity.licence_number,
              Kind.CERTIFICATE: Entity.certificate_number, Kind.UNIT_NAME: Entity.unit_name}.get(term.kind)
    return (column, Entity.id) if column is not None else (Entity.id.desc(),)


#: a term that finds at most this many filings lists their applications by those ids
FEW_ENTITIES = 1000


def application_condition(term: Term) -> ColumnElement[bool]:
    """The applications of the filings a term finds; digits alone also find the application of that number.

    The filings are found first when they are few (a certificate number, a domain, a filing number): as an
    `IN (subquery)` PostgreSQL over-estimated a prefix's matches and probed the entity of each of 22,440 queued
    applications instead (608 ms at 5,000,000 filings). A term finding more keeps the subquery."""
    found = select(Entity.id).where(entity_condition(term))
    ids = db.session.scalars(found.limit(FEW_ENTITIES + 1)).all()
    of_entities = Application.entity_id.in_(ids if len(ids) <= FEW_ENTITIES else found)
    value = term.values[0]
    if term.kind == Kind.CERTIFICATE and value.isdigit() and len(value) <= MAX_ID_DIGITS:
        return or_(Application.id == int(value), of_entities)
    return of_entities


class EntitySearch:
    """The search box of 备案信息 (mixed into its view)."""

    def search_condition(self, term: str) -> ColumnElement[bool]:
        return entity_condition(classify(term))

    def search_order(self, term: str) -> tuple[Any, ...]:
        return entity_order(classify(term))


class ApplicationSearch:
    """The search box of the application lists and queues (mixed into their views)."""

    def search_condition(self, term: str) -> ColumnElement[bool]:
        return application_condition(classify(term))


# --- filters ------------------------------------------------------------------------------------------

class ProvinceFilter(FilterEqual):
    """省份: offered only to users whose scope spans provinces (MIIT, national special query)."""

    @staticmethod
    def offered_to(user: Any) -> bool:
        return not user.province_code


RANGE_SEPARATOR = " 至 "
#: the dates a date filter accepts
FIRST_DAY, LAST_DAY = date(1900, 1, 1), date(9998, 12, 31)


class LocalDateBetween(DateBetweenFilter):
    """Between two dates of the registry's time zone, both days whole (the column holds UTC date-times,
    which Flask-Admin's own filter compares with bare dates, losing the last day)."""

    def apply(self, query: Any, value: Any, alias: Any = None) -> Any:
        column = self.get_column(alias)
        return query.filter(column >= _utc_midnight(value[0]), column < _utc_midnight(value[1] + timedelta(days=1)))

    def validate(self, value: str) -> bool:
        """Two dates the registry can hold: 0001-01-01 or 9999-12-31 would overflow a bound's conversion to UTC or
        the day after it (a 500)."""
        text = value.replace(RANGE_SEPARATOR, " to ")
        return super().validate(text) and all(
            FIRST_DAY <= day <= LAST_DAY for day in super().clean(text))

    def clean(self, value: str) -> list[date]:
        """The console's date picker writes "2026-01-01 至 2026-01-31" (static/js/console.js)."""
        return super().clean(value.replace(RANGE_SEPARATOR, " to "))


def _utc_midnight(day: date) -> datetime:
    """00:00 of `day` in the registry's time zone, as the naive UTC the database stores."""
    return to_utc(datetime.combine(day, time()))


class PreapprovalCategoryFilter(FilterEqual):
    """Applications of the filings with a pre-approval item of a category."""

    def apply(self, query: Any, value: Any, alias: Any = None) -> Any:
        """The item names its filing and the filing's province: a bureau's queue reads its province's filings of
        the category from ix_preapproval_items_category_province_entity alone (PostgreSQL carries the queue's
        province over to the items; 天津 at 5,000,000 filings: 4,706 entries, not 25,666 queued applications probed
        through their websites)."""
        with_item = select(PreapprovalItem.id).where(
            PreapprovalItem.category == value, PreapprovalItem.province_code == Application.province_code,
            PreapprovalItem.entity_id == Application.entity_id)
        return query.filter(with_item.exists())


def per_request(options: Callable[[], list[tuple[str, str]]]) -> Callable[[], list[tuple[str, str]]]:
    """Options read at each request (for the user, from the code tables); none at start-up, when Flask-Admin
    builds its filters before any user or table exists (SecureModelView refreshes them per request)."""
    return lambda: options() if has_request_context() else []


def _isp_options() -> list[tuple[str, str]]:
    """The ISPs a user may filter by: those of the user's province, or all for a national user."""
    query = select(User.id, User.organisation, User.username).where(User.role == Role.ISP).order_by(User.username)
    if current_user.province_code:
        query = query.where(User.province_code == current_user.province_code)
    return [(str(user_id), organisation or username) for user_id, organisation, username in db.session.execute(query)]


isp_options = per_request(_isp_options)


class IspFilter(FilterEqual):
    """提交的接入商: one of `isp_options` (an id); offered to the registry's staff, not to ISPs or owners."""

    @staticmethod
    def offered_to(user: Any) -> bool:
        return user.role not in (Role.ISP, Role.ICP)

    def clean(self, value: str) -> int:
        return int(value)
