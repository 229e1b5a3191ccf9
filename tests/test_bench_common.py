"""The benchmarks' undo on a shared database (bench/common.py): what a measurement added goes, nothing else."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import func, select, text

from bench import common
from extensions import db
from models import DomainChange, OutboxMessage, utcnow


def _queue(*domains: str) -> None:
    db.session.add_all(DomainChange(domain=domain, what="registrant", at=utcnow()) for domain in domains)
    db.session.commit()


def test_delete_added_removes_only_the_rows_above_the_marks(ctx: None) -> None:
    """Are the rows that were there before a measurement kept, and only those it added deleted?"""
    _queue("before1.cn", "before2.cn")
    marks = common.highest_ids(DomainChange, OutboxMessage)
    _queue("added1.cn", "added2.cn", "added3.cn")

    deleted = common.delete_added(marks)

    assert deleted == {"domain_changes": 3, "outbox_messages": 0}
    assert sorted(db.session.scalars(select(DomainChange.domain))) == ["before1.cn", "before2.cn"]


def test_marks_of_empty_tables_are_zero_and_delete_everything_added(ctx: None) -> None:
    """Does an empty table's mark (no row yet) still let the added rows be deleted?"""
    marks = common.highest_ids(DomainChange)
    assert marks == {DomainChange: 0}
    _queue("added.cn")

    assert common.delete_added(marks) == {"domain_changes": 1}
    assert db.session.scalar(select(func.count()).select_from(DomainChange)) == 0


def test_migrate_refuses_a_server_database_behind_the_head(app: Flask, ctx: None) -> None:
    """Does a benchmark stop, rather than migrate, a shared PostgreSQL database that is not at the head?"""
    if db.engine.dialect.name == "sqlite":
        pytest.skip("a SQLite file is the benchmark's own: it is always upgraded")
    head = db.session.scalar(text("SELECT version_num FROM alembic_version"))
    db.session.execute(text("UPDATE alembic_version SET version_num = 'b15e0005a1d0'"))
    db.session.commit()
    try:
        with pytest.raises(SystemExit, match="upgrade it first"):
            common.migrate(app)
    finally:
        db.session.execute(text("UPDATE alembic_version SET version_num = :head"), {"head": head})
        db.session.commit()
    common.migrate(app)  # at the head: nothing to do, no error
