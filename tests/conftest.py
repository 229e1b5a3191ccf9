"""Fixtures: an app on a fresh database (SQLite, or PostgreSQL when TEST_DATABASE_URL is set)."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade
from hypothesis import settings
from sqlalchemy import text

import public_records
from app import MIGRATIONS_DIR, create_app
from extensions import db
from models import Role, User
from seed_data import seed_code_tables, seed_divisions
from tests.exchange_helpers import live_server as live_server  # a fixture for every test module
from tests.helpers import BEIJING, TIANJIN, make_user, sign_in

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")
#: Hypothesis: no per-example deadline anywhere (a 200 ms deadline fails a test on a busy machine, not on a bug);
#: `.ci/run` chooses "ci": the same examples every run, no example database shared by the two suites — a random
#: discovery is for a developer's run to make, not for CI to fail on once in a while
settings.register_profile("dev", deadline=None)
settings.register_profile("ci", deadline=None, derandomize=True, database=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
#: tests/cluster runs against a running `make cluster` (`make cluster-test`, and `.ci/run` after the suites)
collect_ignore_glob = [] if os.environ.get("CLUSTER_URL") else ["cluster/*"]


def _config(tmp: Path, database_url: str) -> dict[str, object]:
    return {
        "TESTING": True,
        "INSTANCE_PATH": str(tmp / "instance"),
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SECRET_KEY": "test-secret-key",
        "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000",
        "FLASK_ADMIN_RAISE_ON_VIEW_EXCEPTION": True,
        "MIIT_ADMIN_PASSWORD": "Miit-admin-1",
        "CAPTCHA_FIXED_ANSWER": "TEST",
        # the filings of the older tests have unreported domains; tests/test_domain_*.py set "block" themselves
        "DOMAIN_REGISTRANT_CHECK": "warn",
        # the older tests sign every role in with a password; tests/test_security_keys*.py require keys themselves
        "WEBAUTHN_REQUIRED_ROLES": [],
    }


@pytest.fixture(scope="session", autouse=True)
def _no_frozen_garbage() -> Iterator[None]:
    """This process makes an app per test: `app.freeze_startup_objects` (seed-demo and the worker run here) would
    keep every one of them from the garbage collector for the rest of the run."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gc, "freeze", lambda: None)
        yield


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One database per test run, brought to the head revision by the migrations."""
    url = TEST_DATABASE_URL or f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    app = create_app(_config(tmp_path_factory.mktemp("setup"), url))
    with app.app_context():
        if TEST_DATABASE_URL:
            with db.engine.begin() as connection:
                connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        upgrade(directory=MIGRATIONS_DIR)
        seed_divisions()
        db.session.commit()
        db.engine.dispose()
    return url


#: seeded once per run and never changed by a test (3,317 cities and counties): not emptied before each test
KEPT_TABLES = frozenset({"divisions"})


#: PostgreSQL: the tables holding a row or whose id sequence was used since the last emptying — TRUNCATE costs
#: ~4 ms a table (59 tables: ~240 ms a test), most tests touch a dozen
_USED_SEQUENCE_TABLES = text("""
    SELECT DISTINCT owner.relname FROM pg_sequences used
    JOIN pg_class sequence ON sequence.relname = used.sequencename AND sequence.relkind = 'S'
    JOIN pg_depend link ON link.objid = sequence.oid AND link.classid = 'pg_class'::regclass
                       AND link.refclassid = 'pg_class'::regclass
    JOIN pg_class owner ON owner.oid = link.refobjid
    WHERE used.schemaname = current_schema() AND used.last_value IS NOT NULL""")


def _tables_to_empty(tables: list[str]) -> list[str]:
    holding = " UNION ALL ".join(f"SELECT '{name}' WHERE EXISTS (SELECT 1 FROM \"{name}\")" for name in tables)
    used = set(db.session.scalars(text(holding))) | set(db.session.scalars(_USED_SEQUENCE_TABLES))
    return [name for name in tables if name in used]


def _empty_tables() -> None:
    tables = [table.name for table in reversed(db.metadata.sorted_tables) if table.name not in KEPT_TABLES]
    if db.engine.dialect.name == "postgresql":
        if tables := _tables_to_empty(tables):
            db.session.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    else:
        for name in tables:
            db.session.execute(text(f'DELETE FROM "{name}"'))
    db.session.commit()


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    """A fresh app on emptied, re-seeded tables. No app context stays pushed: each request
    gets its own (as in production), tests open one with `with app.app_context()`."""
    app = create_app(_config(tmp_path, database_url))
    with app.app_context():
        _empty_tables()
        seed_code_tables()
        db.session.commit()
    yield app
    with app.app_context():
        db.session.rollback()
        try:
            _check_public_records()
        finally:
            db.engine.dispose()


def _check_public_records() -> None:
    """After every test: each stored public record is what its filing says (public_records), whichever code path
    the test took — a rebuild marked by a code's new name carried out first, as the worker would."""
    public_records.rebuild_due(chunks=10_000)
    wrong = public_records.differences(db.session.connection())
    db.session.rollback()
    assert not wrong, f"public records out of step with their filings: entities {wrong[:10]}"


@pytest.fixture
def ctx(app: Flask) -> Iterator[None]:
    """An app context for tests that call workflow.py directly; their uncommitted changes are dropped."""
    with app.app_context():
        yield
        db.session.rollback()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def users(app: Flask) -> dict[str, str]:
    """One account per role (bureau and ISP in 天津, plus a 北京 bureau and ISP): key → username."""
    with app.app_context():
        return {key: user.username for key, user in _one_account_per_role().items()}


def _one_account_per_role() -> dict[str, User]:
    return {
        "miit": make_user("miitadmin", Role.MIIT),
        "bureau": make_user("tj_bureau", Role.BUREAU, TIANJIN, organisation="天津市通信管理局"),
        "bureau_bj": make_user("bj_bureau", Role.BUREAU, BEIJING, organisation="北京市通信管理局"),
        "isp": make_user("tj_isp", Role.ISP, TIANJIN, organisation="天津某网络公司"),
        "isp_bj": make_user("bj_isp", Role.ISP, BEIJING, organisation="北京某网络公司"),
        "icp": make_user("icp_owner", Role.ICP),
        "ip_reporter": make_user("tj_ipreport", Role.IP_REPORTER, TIANJIN),
        "domain_reporter": make_user("tj_domain", Role.DOMAIN_REPORTER, TIANJIN),
        "preapproval": make_user("news_preapp", Role.PREAPPROVAL),
        "content_admin": make_user("content_adm", Role.CONTENT_ADMIN),
        "special_query": make_user("query_user", Role.SPECIAL_QUERY),
    }


@pytest.fixture
def people(app: Flask, users: dict[str, str]) -> dict[str, str]:
    """The fixture accounts plus a second 天津 ISP and a 天津 ISP with the import right."""
    with app.app_context():
        make_user("tj_isp2", Role.ISP, TIANJIN, organisation="天津第二网络公司")
        make_user("tj_importer", Role.ISP, TIANJIN, organisation="天津导入网络公司", can_import=True)
    return {**users, "isp2": "tj_isp2", "importer": "tj_importer"}


@pytest.fixture
def as_user(app: Flask, users: dict[str, str]):
    """`as_user("bureau")` → a client signed in as that fixture account."""

    def signed_in(key: str) -> FlaskClient:
        client = app.test_client()
        response = sign_in(client, users[key])
        assert response.status_code == 302, response.get_data(as_text=True)
        return client

    return signed_in
