"""Does SQLite take the write lock up front, so concurrent read-then-write never fails?"""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest
from sqlalchemy import text

from app import create_app
from extensions import db
from tests.conftest import _config

pytestmark = pytest.mark.skipif(bool(os.environ.get("TEST_DATABASE_URL")), reason="SQLite only")

WORKERS, ROUNDS = 4, 25


def _increment_many(tmp: str, url: str, queue: multiprocessing.Queue) -> None:
    app = create_app(_config(Path(tmp), url) | {"SQLITE_BUSY_TIMEOUT_MS": 30000})
    failures = 0
    with app.app_context():
        for _ in range(ROUNDS):
            try:
                value = db.session.execute(text("SELECT n FROM counter")).scalar_one()
                db.session.execute(text("UPDATE counter SET n = :n"), {"n": value + 1})
                db.session.commit()
            except Exception:
                db.session.rollback()
                failures += 1
    queue.put(failures)


def test_concurrent_read_then_write_loses_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'lock.db'}"
    app = create_app(_config(tmp_path, url))
    with app.app_context():
        db.session.execute(text("CREATE TABLE counter (n INTEGER)"))
        db.session.execute(text("INSERT INTO counter VALUES (0)"))
        db.session.commit()
        assert db.session.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert db.session.execute(text("PRAGMA foreign_keys")).scalar() == 1
    queue: multiprocessing.Queue = multiprocessing.get_context("fork").Queue()
    workers = [multiprocessing.get_context("fork").Process(
        target=_increment_many, args=(str(tmp_path), url, queue)) for _ in range(WORKERS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    failures = sum(queue.get(timeout=5) for _ in workers)
    with app.app_context():
        total = db.session.execute(text("SELECT n FROM counter")).scalar_one()
    assert failures == 0
    assert total == WORKERS * ROUNDS  # no lost update
