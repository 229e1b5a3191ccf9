"""How the console's lists are planned at scale (issue 15): a page's rows without parallel workers on PostgreSQL,
for that request's transaction only."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, text

from extensions import db

SERIAL = "SET LOCAL max_parallel_workers_per_gather = 0"


@pytest.fixture
def dialect(app: Flask) -> str:
    with app.app_context():
        return db.engine.dialect.name


@pytest.fixture
def statements(app: Flask) -> Iterator[list[str]]:
    """The SQL the app runs while the test lasts."""
    seen: list[str] = []

    def capture(_conn, _cursor, statement, _parameters, _context, _many) -> None:
        seen.append(" ".join(statement.split()))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", capture)
    yield seen
    event.remove(engine, "before_cursor_execute", capture)


def _list_page(as_user, statements: list[str], path: str) -> list[str]:
    client: FlaskClient = as_user("bureau")
    statements.clear()
    assert client.get(path).status_code == 200
    return list(statements)


@pytest.mark.parametrize("path", ["/admin/filings/", "/admin/bureau_queue/?flt0_2=new_filing"])
def test_a_pages_rows_are_planned_without_parallel_workers_after_the_count(as_user, statements, dialect: str,
                                                                           path: str) -> None:
    """Does a list's page query run serially (PostgreSQL), after its total was counted, and SQLite get nothing?"""
    ran = _list_page(as_user, statements, path)
    if dialect != "postgresql":
        assert SERIAL not in ran
        return
    serial = ran.index(SERIAL)
    count = next(i for i, sql in enumerate(ran) if sql.startswith("SELECT count(*)"))
    assert count < serial < len(ran) - 1


def test_the_setting_ends_with_the_requests_transaction(app: Flask, as_user, statements, dialect: str) -> None:
    """Does the next transaction on the pooled connection plan with the server's default again?"""
    if dialect != "postgresql":
        pytest.skip("a PostgreSQL setting")
    _list_page(as_user, statements, "/admin/filings/")
    with app.app_context():
        default = db.session.scalar(text("SELECT reset_val FROM pg_settings "
                                         "WHERE name = 'max_parallel_workers_per_gather'"))
        assert db.session.scalar(text("SHOW max_parallel_workers_per_gather")) == default
