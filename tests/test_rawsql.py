"""rawsql's reads outside the session (issue 15): the public lookup's prepared statement, read in autocommit on
PostgreSQL, sees every commit at once."""

from __future__ import annotations

import threading

import psycopg
import pytest
from sqlalchemy import make_url, text

import rawsql
import workflow
from extensions import db
from models import Entity, FilingStatus
from tests.filing_factories import filed_by_isp
from tests.helpers import user_named


@pytest.fixture
def website(app, users) -> dict[str, object]:
    """An approved filing's domain and entity id."""
    with app.app_context():
        application = filed_by_isp(user_named(users["isp"]), 700)
        workflow.approve(user_named(users["bureau"]), application)
        db.session.commit()
        return {"domain": "www.site700.cn", "entity_id": application.entity_id}


def _found(client, query: str) -> int:
    response = client.get("/api/v1/public/lookup", query_string={"q": query})
    assert response.status_code == 200
    return len(response.get_json()["results"])


def test_a_revocation_is_seen_by_the_next_lookup(app, client, website) -> None:
    """Does a lookup answered before a commit see the commit at once (no snapshot kept between reads)?"""
    assert _found(client, website["domain"]) == 1
    with app.app_context():
        entity = db.session.get(Entity, website["entity_id"])
        entity.status = FilingStatus.REVOKED
        for site in entity.websites:
            site.status = FilingStatus.REVOKED
        db.session.commit()
    assert _found(client, website["domain"]) == 0


def test_a_closed_or_broken_reading_connection_is_opened_again(app, client, website) -> None:
    """PostgreSQL: the thread's reading connection (`rawsql._PostgresReader`), closed or lost (its backend terminated,
    as by a server restart), is replaced and the read answered; another thread gets its own."""
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        pytest.skip("the reading connection is PostgreSQL's")
    assert _found(client, website["domain"]) == 1
    with app.app_context():
        first = rawsql._PostgresReader.of_thread(db.engine).connection
        first.close()
        assert _found(client, website["domain"]) == 1
        second = rawsql._PostgresReader.of_thread(db.engine).connection
        assert second is not first and not second.closed
        db.session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": second.info.backend_pid})
        db.session.commit()
        assert _found(client, website["domain"]) == 1  # the read that met the lost connection, run again
        third = rawsql._PostgresReader.of_thread(db.engine).connection
        assert third is not second and second.closed
        seen = []

        def other_thread() -> None:
            with app.app_context():
                seen.append(rawsql._PostgresReader.of_thread(db.engine).connection)
                seen[0].close()

        worker = threading.Thread(target=other_thread)
        worker.start()
        worker.join()
        assert seen and seen[0] is not second


def test_a_page_is_answered_after_the_server_dropped_every_connection(app, client, website) -> None:
    """PostgreSQL: after a server restart the pooled connections are dead; the pool tries each before lending it
    (`pool_pre_ping`), so the first request after it is answered, not an error."""
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        pytest.skip("a server restart is PostgreSQL's")
    assert client.get("/").status_code == 200  # a pooled connection used, returned to the pool
    url = make_url(app.config["SQLALCHEMY_DATABASE_URI"]).set(drivername="postgresql")
    with psycopg.connect(url.render_as_string(hide_password=False), autocommit=True) as outsider:
        ended = outsider.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE "
                                 "datname = current_database() AND pid <> pg_backend_pid() "
                                 "AND backend_type = 'client backend'").fetchone()[0]
    assert ended >= 1
    assert client.get("/").status_code == 200
    assert _found(client, website["domain"]) == 1
