"""Flask extensions, created once and bound to each app in `create_app`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from flask import current_app, g, has_app_context, has_request_context, request
from flask_babel import Babel
from flask_caching import Cache
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy import Engine, MetaData, event

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

db = SQLAlchemy(metadata=MetaData(naming_convention=NAMING_CONVENTION))
migrate = Migrate()
login_manager = LoginManager()
babel = Babel()
csrf = CSRFProtect()
#: statistics kept between requests: per process (SimpleCache) or shared by every node (RedisCache); values pickled
cache = Cache()
T = TypeVar("T")


def cached(key: str, seconds: int, compute: Callable[[], T]) -> T:
    """`compute()`, kept `seconds` under `key` in the configured cache (None is never cached). A cache that
    cannot be reached (Redis down) costs the computation, never the page."""
    try:
        found = cache.get(key)
    except Exception:  # the cache's client errors (redis.ConnectionError, ...): computed without it
        current_app.logger.warning("cache unavailable for %s", key, exc_info=True)
        return compute()
    if found is None:
        found = compute()
        cache.set(key, found, timeout=seconds)
    return found

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _wants_write_lock() -> bool:
    """A transaction takes SQLite's write lock up front unless it serves a read-only request, or the code
    running (the import worker's reading phase) said it only reads (`g.write_intent = False`)."""
    intent = g.get("write_intent") if has_app_context() else None
    if intent is not None:
        return bool(intent)
    if has_request_context():
        return request.method not in SAFE_METHODS
    return True


@contextmanager
def write_intent(writes: bool) -> Iterator[None]:
    """Say what the transactions begun inside will do (read by `_wants_write_lock`): on SQLite a reading one
    then begins without the write lock (BEGIN), a writing one with it (BEGIN IMMEDIATE); restored after."""
    if not has_app_context():
        yield
        return
    previous = g.get("write_intent")
    g.write_intent = writes
    try:
        yield
    finally:
        g.write_intent = previous


def begin_write() -> None:
    """End the current (read) transaction; the next one takes the write lock up front.

    For the rare GET that must write (the audit record of an export): SQLite cannot
    upgrade a read snapshot to a write once another process has committed.
    """
    db.session.commit()
    if has_request_context():
        g.write_intent = True


def configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    """WAL, busy timeout, foreign keys, and BEGIN IMMEDIATE for write transactions.

    pysqlite's own transaction handling is switched off so that SQLAlchemy's
    "begin" event decides how each transaction starts.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if _wants_write_lock() else "BEGIN")
