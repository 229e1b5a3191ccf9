"""Filing, website and licence numbers (SPEC §5), allocated safely under concurrency.

Sequences come from a counter row locked in the approving transaction (`SELECT … FOR UPDATE`
on PostgreSQL; SQLite's write transactions start with BEGIN IMMEDIATE and so are serial), with
unique constraints on the numbers behind it. A number once given is never given again: cancelled
and revoked filings keep theirs in the table.
"""

from __future__ import annotations

import re

from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from extensions import db
from models import Entity, NumberCounter, Province

ABBREVIATIONS = "京津冀晋蒙辽吉黑沪苏浙皖闽赣鲁豫鄂湘粤桂琼渝川贵云藏陕甘青宁新"
FILING_RE = re.compile(rf"^(?P<abbr>[{ABBREVIATIONS}])ICP备(?P<yy>[0-9]{{2}})(?P<seq>[0-9]{{6}})号$")


def filing_number(abbr: str, year: int, sequence: int) -> str:
    return f"{abbr}ICP备{year % 100:02d}{sequence:06d}号"


def website_number(entity_number: str, n: int) -> str:
    return f"{entity_number}-{n}"


def licence_number(abbr: str, sequence: int) -> str:
    return f"{abbr}ICP证{sequence:06d}号"


def _locked_counter(province_code: str, kind: str, year: int) -> NumberCounter:
    values = {"province_code": province_code, "kind": kind, "year": year, "last": 0}
    insert = pg_insert if db.session.get_bind().dialect.name == "postgresql" else sqlite_insert
    db.session.execute(insert(NumberCounter).values(**values).on_conflict_do_nothing())
    return db.session.execute(
        select(NumberCounter).where(NumberCounter.province_code == province_code, NumberCounter.kind == kind,
                                    NumberCounter.year == year).with_for_update()
    ).scalar_one()


def _number_taken(column, number: str) -> bool:
    return db.session.scalar(select(Entity.id).where(column == number).limit(1)) is not None


def allocate_filing_numbers(province: Province, year: int, count: int) -> list[str]:
    """The next `count` 主体备案号 of the province and year, skipping any typed by an auditor."""
    counter = _locked_counter(province.code, "filing", year % 100)
    numbers: list[str] = []
    while len(numbers) < count:
        wanted = count - len(numbers)
        candidates = [filing_number(province.abbr, year, counter.last + i) for i in range(1, wanted + 1)]
        counter.last += wanted
        taken = set(db.session.scalars(select(Entity.number).where(Entity.number.in_(candidates))))
        numbers += [number for number in candidates if number not in taken]
    return numbers


def allocate_filing_number(province: Province, year: int) -> str:
    return allocate_filing_numbers(province, year, 1)[0]


def allocate_licence_number(province: Province) -> str:
    counter = _locked_counter(province.code, "licence", 0)
    while True:
        counter.last += 1
        number = licence_number(province.abbr, counter.last)
        if not _number_taken(Entity.licence_number, number):
            return number


def typed_number_error(number: str, province: Province) -> str | None:
    """An auditor's typed number (FAQ 32): the format of SPEC §5, the province's prefix, never used."""
    match = FILING_RE.fullmatch(number.strip())
    if match is None:
        return str(_l("A filing number looks like 津ICP备26000001号."))
    if match["abbr"] != province.abbr:
        return str(_l("A filing number of this province starts with %(abbr)s.", abbr=province.abbr))
    if _number_taken(Entity.number, number.strip()):
        return str(_l("This filing number has been used before; numbers are never reused."))
    return None

