"""What every model module uses: the id type, the time, portable enums and prefix matches."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, Enum, Integer, and_, text

from extensions import db

BigId = BigInteger().with_variant(Integer, "sqlite")
#: the largest value a BigId column holds (signed 64 bits on both databases): a larger one is refused, not queried
MAX_ID = 2**63 - 1
#: the same for an `Integer` id (signed 32 bits on PostgreSQL): notices, their attachments, import jobs
MAX_INTEGER_ID = 2**31 - 1


def utcnow() -> datetime:
    """Naive UTC, the one time representation stored (identical on SQLite and PostgreSQL)."""
    return datetime.now(UTC).replace(tzinfo=None)


def built_on(dialect: str, obj: object) -> bool:
    """False for schema objects declared only for another database (`.ddl_if(dialect=...)`)."""
    condition = getattr(obj, "_ddl_if", None)
    return condition is None or condition.dialect in (None, dialect)


def starts_with(column: Any, prefix: str, *, plain_index: bool = False) -> Any:
    """A prefix match an index serves (never `LIKE '%x%'`): a range in SQLite's binary order, `LIKE 'x%'` on
    PostgreSQL (where a varchar_pattern_ops index serves it). `plain_index`: the column also has a plain index (and
    one led by the province) that should serve the match *and* an ORDER BY of the column — on PostgreSQL, where the
    collation orders by code point (C, C.UTF-8), the match is then the same range as on SQLite. (At 5,000,000
    filings a number prefix sorted by number took 1.4–7 s as a LIKE: the planner expected 51 rows of 112,959 and
    read and sorted them all; as a range, 43 ms.)"""
    bind = db.session.get_bind()
    if bind.dialect.name == "sqlite" or (plain_index and _code_point_collation(bind)):
        return and_(column >= prefix, column < prefix + "\U0010ffff")
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return column.like(escaped + "%", escape="\\")


def _code_point_collation(bind: Any) -> bool:
    """Whether the database's collation sorts text by code point, so that a prefix is one contiguous range
    (asked once per engine)."""
    engine = getattr(bind, "engine", bind)
    known = _COLLATIONS.get(engine.url)
    if known is None:
        with engine.connect() as connection:
            collation = connection.execute(text(
                "SELECT datcollate FROM pg_database WHERE datname = current_database()")).scalar_one()
        known = _COLLATIONS[engine.url] = collation in ("C", "POSIX", "C.UTF-8", "C.utf8")
    return known


_COLLATIONS: dict[Any, bool] = {}


def str_enum(enum_class: type[enum.Enum], name: str) -> Enum:
    """A portable enum column: VARCHAR + CHECK constraint, storing the values."""
    return Enum(
        enum_class,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=32,
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )
