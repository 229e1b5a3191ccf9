"""Statements compiled once per database dialect and run on the DBAPI cursor, for the two hot paths where
SQLAlchemy's per-execution work dominates: the public lookup (one small query per request) and the
import's bulk inserts (hundreds of thousands of rows). Everything else goes through the ORM session.

Measured here (SQLite): a lookup query 0.27 ms through Core → 0.06 ms; inserting 800,000 import rows
spent about 12 s in Core's parameter processing.
"""

from __future__ import annotations

import enum
import os
import threading
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

import psycopg
from flask import current_app
from psycopg import pq
from psycopg.adapt import PyFormat, Transformer
from sqlalchemy import DateTime, Engine, Enum, Table, bindparam
from sqlalchemy.dialects.postgresql import psycopg as postgresql_psycopg

from extensions import db


def _plain(value: Any) -> Any:
    """What a driver binds without help: enums by value (psycopg would send an Enum's name)."""
    return value.value if isinstance(value, enum.Enum) else value


def _sqlite_value(value: Any) -> Any:
    """As SQLAlchemy stores it in SQLite (its DateTime text format), not by sqlite3's deprecated adapter."""
    return value.strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(value, datetime) else _plain(value)


class RawStatement:
    def __init__(self, statement: Any) -> None:
        self.statement = statement
        self._compiled: dict[str, tuple[str, tuple[str, ...] | None, dict[str, Any]]] = {}  # by dialect and paramstyle

    def compiled(self, dialect: Any) -> tuple[str, tuple[str, ...] | None, dict[str, Any]]:
        """(SQL text, bind names in order for a positional driver else None, the statement's fixed values)."""
        key = f"{dialect.name} {dialect.paramstyle}"
        if key not in self._compiled:
            compiled = self.statement.compile(dialect=dialect)
            fixed = {name: _plain(value) for name, value in compiled.params.items()}
            positions = tuple(compiled.positiontup or ()) if dialect.positional else None
            self._compiled[key] = (compiled.string, positions, fixed)
        return self._compiled[key]

    def _arguments(self, positions: tuple[str, ...] | None, values: dict[str, Any]) -> Any:
        return tuple(values[name] for name in positions) if positions is not None else values

    def rows(self, **params: Any) -> list[Any]:
        """Run outside the session's transaction: on PostgreSQL on this thread's reading connection
        (`_PostgresReader`), elsewhere on a pooled connection of its own."""
        engine = db.engine
        if engine.dialect.name == "postgresql":
            reader = _PostgresReader.of_thread(engine)
            try:
                return reader.rows(self, params)
            except psycopg.Error:
                if not reader.broken:
                    raise
                return _PostgresReader.of_thread(engine).rows(self, params)  # a read is safe to repeat elsewhere
        sql, positions, fixed = self.compiled(engine.dialect)
        connection = engine.raw_connection()
        try:
            cursor = connection.cursor()
            cursor.execute(sql, self._arguments(positions, {**fixed, **params}))
            return cursor.fetchall()
        finally:
            connection.close()


#: statements written for libpq's own placeholders ($1, $2 …) rather than psycopg's named ones
_NUMBERED = postgresql_psycopg.dialect(paramstyle="numeric_dollar")
_readers = threading.local()


class _PostgresReader:
    """This thread's connection to the app's PostgreSQL database for `RawStatement.rows`, in autocommit: no
    transaction, so nothing to switch or roll back around a read, and no pool checkout and return around each one.
    Each statement is prepared once (planning the lookup's statement took 1–3 ms against 0.2 ms of execution at
    5,000,000 websites) and run by libpq's PQexecPrepared, the rows loaded by psycopg's own loaders: psycopg's
    cursor around the same call (its query conversion, prepared-statement bookkeeping and wait loop) cost a gunicorn
    worker ~130 µs of CPU per lookup, this ~70 µs. Opened again when closed or broken (a read that found it broken is
    run again on the new one); closed with its thread (a thread's locals go with it); a forked process (gunicorn's
    workers) opens its own."""

    def __init__(self, url: str, options: dict[str, Any]) -> None:
        self.connection = psycopg.connect(url, autocommit=True, **options)
        #: per statement (held, so never confused with a later object at its address): its name on this connection,
        #: its bind names in order, its fixed values, its rows' loader
        self.prepared: dict[RawStatement, tuple[bytes, tuple[str, ...], dict[str, Any], Transformer]] = {}

    @classmethod
    def of_thread(cls, engine: Engine) -> _PostgresReader:
        if (database := current_app.extensions.get("rawsql.database")) is None:  # read once per app
            options = current_app.config.get("SQLALCHEMY_ENGINE_OPTIONS", {}).get("connect_args", {})
            url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
            database = current_app.extensions["rawsql.database"] = (url, repr(sorted(options.items())), options)
        url, key, options = database
        readers = _readers.__dict__.setdefault("by_database", {})
        reader = readers.get((url, key))
        if reader is None or reader.broken:
            if reader is not None:
                reader.connection.close()
            reader = readers[url, key] = cls(url, options)
        return reader

    @property
    def broken(self) -> bool:
        """Closed, or lost (the server restarted, the backend was terminated)."""
        return self.connection.closed or self.connection.pgconn.status != pq.ConnStatus.OK

    def rows(self, statement: RawStatement, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        if (prepared := self.prepared.get(statement)) is None:
            prepared = self.prepared[statement] = self._prepare(statement)
        name, positions, fixed, loader = prepared
        values = {**fixed, **params}
        arguments = loader.dump_sequence([values[position] for position in positions], [PyFormat.TEXT] * len(positions))
        return self._loaded(loader, self.connection.pgconn.exec_prepared(name, arguments), pq.ExecStatus.TUPLES_OK)

    def _prepare(self, statement: RawStatement) -> tuple[bytes, tuple[str, ...], dict[str, Any], Transformer]:
        sql, positions, fixed = statement.compiled(_NUMBERED)
        name = f"rawsql_{len(self.prepared)}".encode()
        loader = Transformer.from_context(self.connection)
        self._loaded(loader, self.connection.pgconn.prepare(name, sql.encode()), pq.ExecStatus.COMMAND_OK)
        return name, positions or (), fixed, loader

    def _loaded(self, loader: Transformer, result: pq.abc.PGresult, expected: pq.ExecStatus) -> list[tuple[Any, ...]]:
        """The rows of a result, or psycopg's exception for its error."""
        if result.status != expected:
            raise psycopg.errors.error_from_result(result, encoding=self.connection.info.encoding)
        loader.set_pgresult(result)
        return loader.load_rows(0, result.ntuples, tuple)


os.register_at_fork(after_in_child=lambda: _readers.__dict__.clear())


def copy_rows(connection: Any, table: Table, columns: Iterable[str], rows: Iterable[Iterable[Any]]) -> None:
    """`COPY table (columns) FROM STDIN` of `rows` (values in the columns' order, as psycopg binds them) on the
    SQLAlchemy connection's psycopg connection, in its transaction: one statement streamed in PostgreSQL's
    text format, no per-row parse, plan or bind."""
    quote = connection.dialect.identifier_preparer.quote
    cursor = connection.connection.driver_connection.cursor()
    with cursor.copy(f"COPY {quote(table.name)} ({', '.join(map(quote, columns))}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


class BulkInsert(RawStatement):
    """INSERT of the given columns, executemany'd in the session's transaction (it commits or rolls back
    with everything else the caller does); on PostgreSQL a COPY (`copy_rows`): an import of 100,000 rows
    into a registry of 5,000,000 websites spent most of its time in executemany's inserts."""

    def __init__(self, table: Table, columns: Iterable[str]) -> None:
        self.table = table
        self.columns = tuple(columns)
        #: the columns whose values may need converting (enums, and datetimes on SQLite); the rest go as they are
        self.typed = frozenset(name for name in self.columns if isinstance(table.c[name].type, (Enum, DateTime)))
        super().__init__(table.insert().values({name: bindparam(name) for name in self.columns}))

    def run(self, rows: Iterable[dict[str, Any]]) -> None:
        connection = db.session.connection()
        sql, positions, _fixed = self.compiled(connection.dialect)
        convert = _sqlite_value if connection.dialect.name == "sqlite" else _plain
        order = positions if positions is not None else self.columns
        converters = [convert if name in self.typed else None for name in order]
        if connection.dialect.name == "postgresql":
            copy_rows(connection, self.table, order, (
                tuple(row[name] if function is None else function(row[name])
                      for name, function in zip(order, converters, strict=True)) for row in rows))
            return
        if positions is not None:
            arguments = [tuple(row[name] if function is None else function(row[name])
                               for name, function in zip(order, converters, strict=True)) for row in rows]
        else:
            arguments = [{name: row[name] if function is None else function(row[name])
                          for name, function in zip(order, converters, strict=True)} for row in rows]
        if arguments:
            connection.connection.driver_connection.cursor().executemany(sql, arguments)


def stream(statement: Any, chunk: int = 10_000) -> Iterator[tuple[Any, ...]]:
    """The rows of a SELECT as the driver gives them (plain tuples, no result processing: a boolean is 0/1 on
    SQLite), in the session's transaction, `chunk` at a time — through a server-side cursor on PostgreSQL, so
    a million rows never sit in memory. For the sweeps over every IP record (workflow.ip_findings, ip_stats):
    measured 2–3× faster than Core rows at 1,000,000."""
    connection = db.session.connection()
    compiled = statement.compile(dialect=connection.dialect, compile_kwargs={"render_postcompile": True})
    values = {name: _plain(value) for name, value in compiled.params.items()}
    arguments = tuple(values[name] for name in compiled.positiontup or ()) if connection.dialect.positional else values
    driver = connection.connection.driver_connection
    postgresql = connection.dialect.name == "postgresql"
    cursor = driver.cursor(name=f"stream_{id(compiled):x}") if postgresql else driver.cursor()
    try:
        cursor.execute(compiled.string, arguments)
        while rows := cursor.fetchmany(chunk):
            yield from rows
    finally:
        cursor.close()

