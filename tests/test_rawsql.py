"""rawsql's reads outside the session (issue 15): the public lookup's prepared statement, read in autocommit on
PostgreSQL, sees every commit at once."""

from __future__ import annotations

import threading

import pytest

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
    """PostgreSQL: the thread's reading connection (`rawsql._reading_connection`), closed or lost (a server restart),
    is replaced at the next read; another thread gets its own."""
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        pytest.skip("the reading connection is PostgreSQL's")
    assert _found(client, website["domain"]) == 1
    with app.app_context():
        first = rawsql._reading_connection(db.engine)
        first.close()
        assert _found(client, website["domain"]) == 1
        second = rawsql._reading_connection(db.engine)
        assert second is not first and not second.closed
        seen = []

        def other_thread() -> None:
            with app.app_context():
                seen.append(rawsql._reading_connection(db.engine))
                seen[0].close()

        worker = threading.Thread(target=other_thread)
        worker.start()
        worker.join()
        assert seen and seen[0] is not second
