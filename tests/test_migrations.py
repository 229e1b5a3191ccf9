"""Do the migrations build exactly the models' schema, and come back down?"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect, text

from app import MIGRATIONS_DIR, create_app
from extensions import db
from models import built_on
from tests.conftest import _config


@pytest.fixture
def empty_app(tmp_path: Path):
    url = os.environ.get("TEST_DATABASE_URL")
    if url:  # a separate schema, so the suite's own tables are untouched
        url_schema = "migration_check"
        app = create_app(_config(tmp_path, url))
        with app.app_context(), db.engine.begin() as connection:
            connection.execute(text(f"DROP SCHEMA IF EXISTS {url_schema} CASCADE"))
            connection.execute(text(f"CREATE SCHEMA {url_schema}"))
        app = create_app(_config(tmp_path, url) | {
            "SQLALCHEMY_ENGINE_OPTIONS": {"connect_args": {"options": f"-csearch_path={url_schema}"}}})
    else:
        app = create_app(_config(tmp_path, f"sqlite:///{tmp_path / 'migrate.db'}"))
    with app.app_context():
        yield app
        db.engine.dispose()


def test_upgrade_to_head_matches_models_then_downgrade_to_empty(empty_app) -> None:
    upgrade(directory=MIGRATIONS_DIR)
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"include_object": (
            lambda obj, *_: built_on(db.engine.dialect.name, obj))})
        diff = compare_metadata(context, db.metadata)
    assert diff == []
    assert {"users", "provinces", "code_items", "audit_events"} <= set(inspect(db.engine).get_table_names())
    downgrade(directory=MIGRATIONS_DIR, revision="base")
    db.engine.dispose()
    assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}


def test_init_is_idempotent(empty_app) -> None:
    runner = empty_app.test_cli_runner()
    first = runner.invoke(args=["init"])
    assert first.exit_code == 0, first.output
    assert "174 code-table values added" in first.output
    second = runner.invoke(args=["init"])
    assert second.exit_code == 0 and "0 code-table values added" in second.output
    from models import Role, User

    assert db.session.query(User).filter_by(role=Role.MIIT).count() == 1


def test_upgrading_queues_the_filed_domains_for_the_registrant_check(empty_app) -> None:
    """Issue 14: the filings approved before the check existed are queued for the worker to flag (not revoked)."""
    upgrade(directory=MIGRATIONS_DIR, revision="b13e0001a1b0")
    with db.engine.begin() as connection:
        connection.execute(text("INSERT INTO provinces (code, name, abbr, sort_order, active) "
                                "VALUES ('120000', '天津市', '津', 1, true)"))
        connection.execute(text(
            "INSERT INTO entities (id, province_code, unit_name, unit_nature, certificate_type, certificate_number, "
            "address, responsible_name, responsible_id_number, responsible_mobile, responsible_email, commercial, "
            "status, website_seq, created_at) VALUES (1, '120000', '某公司', '4', '1', 'X', '', '', '', '', '', "
            "false, 'active', 2, CURRENT_TIMESTAMP)"))
        for website_id, status in ((1, "active"), (2, "cancelled")):
            connection.execute(text(
                "INSERT INTO websites (id, entity_id, name, home_url, service_content, languages, responsible_name, "
                "responsible_mobile, bbs, bbs_sections, status) VALUES (:id, 1, 'w', '', '', '1', '', '', false, '', "
                ":status)"), {"id": website_id, "status": status})
        for name, website_id, live in (("a.cn", 1, True), ("b.cn", 1, False), ("c.cn", 2, True)):
            connection.execute(text("INSERT INTO domains (website_id, name, live) VALUES (:w, :n, :l)"),
                               {"w": website_id, "n": name, "l": live})
    upgrade(directory=MIGRATIONS_DIR)
    with db.engine.connect() as connection:
        queued = connection.execute(text("SELECT domain, what FROM domain_changes")).all()
    assert queued == [("a.cn", "filed")]


def test_upgrading_names_each_preapproval_items_filing_and_province(empty_app) -> None:
    """Issue 15: the items written before b15e0007e1a7 get their website's entity and that entity's province."""
    upgrade(directory=MIGRATIONS_DIR, revision="b15e0006c0a5")
    with db.engine.begin() as connection:
        for code, name, abbr in (("120000", "天津市", "津"), ("110000", "北京市", "京")):
            connection.execute(text("INSERT INTO provinces (code, name, abbr, sort_order, active) "
                                    "VALUES (:code, :name, :abbr, 1, true)"),
                               {"code": code, "name": name, "abbr": abbr})
        for entity_id, province in ((1, "120000"), (2, "110000")):
            connection.execute(text(
                "INSERT INTO entities (id, province_code, unit_name, unit_nature, certificate_type, "
                "certificate_number, address, responsible_name, responsible_id_number, responsible_mobile, "
                "responsible_email, commercial, status, website_seq, created_at) VALUES (:id, :province, '某公司', "
                "'4', '1', :number, '', '', '', '', '', false, 'draft', 0, CURRENT_TIMESTAMP)"),
                {"id": entity_id, "province": province, "number": f"X{entity_id}"})
            connection.execute(text(
                "INSERT INTO websites (id, entity_id, name, home_url, service_content, languages, responsible_name, "
                "responsible_mobile, bbs, bbs_sections, status) VALUES (:id, :id, 'w', '', '', '1', '', '', false, "
                "'', 'draft')"), {"id": entity_id})
        for website_id in (1, 2, 2):
            connection.execute(text(
                "INSERT INTO preapproval_items (website_id, category, document_number, state, reason) "
                "VALUES (:w, '1', 'd', 'pending', '')"), {"w": website_id})
    upgrade(directory=MIGRATIONS_DIR)
    with db.engine.connect() as connection:
        items = connection.execute(text(
            "SELECT website_id, entity_id, province_code FROM preapproval_items ORDER BY id")).all()
    assert items == [(1, 1, "120000"), (2, 2, "110000"), (2, 2, "110000")]


def test_upgrading_a_populated_database_whose_tables_are_rebuilt_keeps_every_row(empty_app) -> None:
    """A table rebuilt by a migration (SQLite's batch mode: copy, drop, rename — `users` in b13e0001a1b0) while
    rows of other tables point at it: the upgrade of a database in use goes through and loses nothing (it failed
    with "FOREIGN KEY constraint failed" on `DROP TABLE users` before foreign keys were off during migrations)."""
    upgrade(directory=MIGRATIONS_DIR, revision="b12e0003c0de")
    with db.engine.begin() as connection:
        connection.execute(text("INSERT INTO users (id, username, password_hash, role, organisation, contact_name, "
                                "mobile, email, status, can_import, created_at, session_epoch) VALUES (1, 'u', 'x', "
                                "'miit', '', '', '', '', 'active', false, CURRENT_TIMESTAMP, 0)"))
        connection.execute(text("INSERT INTO provinces (code, name, abbr, sort_order, active) "
                                "VALUES ('120000', '天津市', '津', 1, true)"))
        connection.execute(text(
            "INSERT INTO entities (id, owner_id, province_code, unit_name, unit_nature, certificate_type, "
            "certificate_number, address, responsible_name, responsible_id_number, responsible_mobile, "
            "responsible_email, commercial, status, website_seq, created_at) VALUES (1, 1, '120000', '某公司', '4', "
            "'1', 'X', '', '', '', '', '', false, 'active', 0, CURRENT_TIMESTAMP)"))
    upgrade(directory=MIGRATIONS_DIR)
    with db.engine.connect() as connection:
        assert connection.execute(text("SELECT owner_id FROM entities")).scalar_one() == 1
        if connection.dialect.name == "sqlite":
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
