"""What every model module uses: the id type, the time, portable enums and prefix matches."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, Enum, Integer, and_

from extensions import db

BigId = BigInteger().with_variant(Integer, "sqlite")


def utcnow() -> datetime:
    """Naive UTC, the one time representation stored (identical on SQLite and PostgreSQL)."""
    return datetime.now(UTC).replace(tzinfo=None)


def built_on(dialect: str, obj: object) -> bool:
    """False for schema objects declared only for another database (`.ddl_if(dialect=...)`)."""
    condition = getattr(obj, "_ddl_if", None)
    return condition is None or condition.dialect in (None, dialect)


def starts_with(column: Any, prefix: str) -> Any:
    """A prefix match an index serves (never `LIKE '%x%'`): a range in SQLite's binary order,
    `LIKE 'x%'` on PostgreSQL (where a varchar_pattern_ops index serves it)."""
    if db.session.get_bind().dialect.name == "sqlite":
        return and_(column >= prefix, column < prefix + "\U0010ffff")
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return column.like(escaped + "%", escape="\\")


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
