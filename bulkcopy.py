"""Bulk loading for the demo seed (and the benchmarks' fixtures): `COPY … FROM STDIN` on PostgreSQL, Core
multi-row inserts elsewhere, in the session's transaction either way.

Why COPY: one statement per batch, rows streamed in PostgreSQL's text format by psycopg's C writer, no
per-row parse/plan/bind — the executemany of Core inserts spends most of its time there. The table keeps
its indexes and constraints (seed-demo may run on a registry in use), so each row is still checked.

COPY fills no Python-side default (`mapped_column(default=…)`), which Core would: those columns missing
from the rows are filled here with their default, once per batch.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Enum, Table
from sqlalchemy.sql.schema import ColumnDefault

from extensions import db
from rawsql import _plain, copy_rows


def _default_value(default: ColumnDefault) -> Any:
    return default.arg(None) if default.is_callable else default.arg


def insert_rows(table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert `rows` (dicts with the same keys, in the same order) into `table` in the session's transaction."""
    if not rows:
        return
    connection = db.session.connection()
    if connection.dialect.name != "postgresql":
        connection.execute(table.insert(), rows)
        return
    given = tuple(rows[0])
    filled = {column.name: _default_value(column.default) for column in table.columns
              if column.name not in given and isinstance(column.default, ColumnDefault)}
    tail = tuple(_plain(value) for value in filled.values())
    enums = [position for position, name in enumerate(given) if isinstance(table.c[name].type, Enum)]
    copy_rows(connection, table, (*given, *filled), (_copy_values(row, tail, enums) for row in rows))


def _copy_values(row: dict[str, Any], tail: tuple[Any, ...], enums: list[int]) -> list[Any]:
    values = [*row.values(), *tail]
    for position in enums:  # psycopg would send an enum's name
        values[position] = _plain(values[position])
    return values
