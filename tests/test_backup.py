"""Issue 19 §5: `flask backup` while the registry writes, `flask restore` into a fresh instance — the counts of
every table as the manifest says, the audit chain intact, every certificate verifying with the restored keys,
the attachments downloading from the public page, the import files there; a tampered backup, a non-empty
database or instance, a backup of another configuration: refused, nothing written.

On PostgreSQL the restore goes into a second database: TEST_RESTORE_DATABASE_URL, by default the test database's
name with an "r" (beian_test → beian_testr; `.ci/run` creates it)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, inspect, make_url, select, text

import backup
import certificates
import storage
import workflow
from app import create_app
from extensions import db
from models import Certificate, Entity, ImportJob, JobState, NoticeAttachment, Role
from tests.conftest import _config
from tests.filing_factories import filed_by_isp
from tests.helpers import make_user, user_named
from tests.import_files import plain_xlsx, valid_row
from workflow import imports

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
KEK = "q0tE3Rk2o9G3dbu2cO3s0D2o3fBqXh7a9nU8Yz5wQ4E="  # 32 bytes, base64url: the database key store's KEK
STORES = {"local": {}, "database": {"FILE_STORAGE": "database", "SIGNING_KEY_STORE": "database",
                                    "SIGNING_KEY_KEK": KEK}}
LOAD_ROUNDS_DURING_BACKUP = 2  # the writer's rounds committed between the snapshot and the copy of the files


def _restore_url(tmp_path: Path, source_url: str) -> str:
    """An empty database for the restore: a new SQLite file, or the second PostgreSQL database emptied."""
    if source_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'restored.db'}"
    source = make_url(source_url)
    url = os.environ.get("TEST_RESTORE_DATABASE_URL") or source.set(database=f"{source.database}r").render_as_string(
        hide_password=False)
    cleaner = create_app(_config(tmp_path / "cleaner", url))
    with cleaner.app_context(), db.engine.begin() as connection:
        for schema in inspect(connection).get_schema_names():
            if schema != "information_schema":
                connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        connection.execute(text("CREATE SCHEMA public"))
    with cleaner.app_context():
        db.engine.dispose()
    return url


@pytest.fixture(params=sorted(STORES))
def source(request: pytest.FixtureRequest, app: Flask, tmp_path: Path) -> Iterator[Flask]:
    """The registry backed up: files and keys in the instance folder ("local") or in the database ("database")."""
    node = create_app({**_config(tmp_path / "source", app.config["SQLALCHEMY_DATABASE_URI"]),
                       **STORES[request.param]})
    yield node
    with node.app_context():
        db.engine.dispose()


@pytest.fixture
def restored(source: Flask, tmp_path: Path) -> Iterator[Flask]:
    """A fresh instance configured as the source (same stores, same KEK), on an empty database."""
    overrides = {key: source.config[key] for key in ("FILE_STORAGE", "SIGNING_KEY_STORE", "SIGNING_KEY_KEK")}
    node = create_app({**_config(tmp_path / "restored", _restore_url(tmp_path, source.config[
        "SQLALCHEMY_DATABASE_URI"])), **overrides})
    yield node
    with node.app_context():
        db.engine.dispose()


def _registry(source: Flask, users: dict[str, str], filings: int = 3, importing: bool = True) -> None:
    """Approved filings (certificates), a published notice with an attachment, an import done (its files)."""
    with source.app_context():
        certificates.keyring()  # the first key, as `flask init` makes it (the database store: before any write)
        isp, bureau = user_named(users["isp"]), user_named(users["bureau"])
        for n in range(1, filings + 1):
            workflow.approve(bureau, filed_by_isp(isp, n))
        _published_notice(bureau, "备案须知")
        db.session.commit()
        if not importing:
            return
        importer_isp = make_user("tj_importer", Role.ISP, "120000", organisation="天津导入网络公司", can_import=True)
        job = workflow.queue_import(importer_isp, "备案.xlsx", io.BytesIO(plain_xlsx([valid_row(n) for n in (11, 12)])))
        db.session.commit()
        assert imports.run_import(job).state == JobState.DONE


def _published_notice(bureau: Any, title: str) -> None:
    notice = workflow.save_notice(bureau, None, workflow.NoticeData("bulletin", title, "<p>正文</p>"),
                                  [(f"{title}.pdf", io.BytesIO(PDF))])
    workflow.set_published(bureau, notice, True)


class WriteLoad:
    """A thread filing, approving and publishing (a notice with an attachment) in rounds until stopped: the
    registry in use while the backup runs."""

    def __init__(self, node: Flask, users: dict[str, str]) -> None:
        self.node, self.users, self.rounds = node, users, 0
        self.stop, self.advanced = threading.Event(), threading.Condition()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        try:
            with self.node.app_context():
                isp, bureau = user_named(self.users["isp"]), user_named(self.users["bureau"])
                while not self.stop.is_set():
                    workflow.approve(bureau, filed_by_isp(isp, 100 + self.rounds))
                    _published_notice(bureau, f"通知{self.rounds}")
                    db.session.commit()
                    with self.advanced:
                        self.rounds += 1
                        self.advanced.notify_all()
        except BaseException as error:  # handed to the test
            self.errors.append(error)
            with self.advanced:
                self.advanced.notify_all()

    def wait_for(self, rounds: int) -> None:
        with self.advanced:
            assert self.advanced.wait_for(lambda: self.rounds >= rounds or self.errors, timeout=60)
        assert not self.errors, self.errors


def _counts(node: Flask) -> dict[str, int]:
    with node.app_context(), db.engine.connect() as connection:
        return backup._table_counts(connection)


def test_a_backup_under_write_load_restores_into_a_fresh_instance(
        source: Flask, restored: Flask, users: dict[str, str], tmp_path: Path, monkeypatch) -> None:
    """Backed up while a writer commits (also between the database snapshot and the copy of the files), restored
    into an empty instance: every table as counted in the manifest, the audit chain intact, every certificate
    verifying, every attachment downloading, the import's file there."""
    _registry(source, users)
    load = WriteLoad(create_app(source.config.copy()), users)
    copy_files = backup._copy_instance_files

    def copied_while_writing(out: Path) -> dict[str, Any]:
        load.wait_for(load.rounds + LOAD_ROUNDS_DURING_BACKUP)
        return copy_files(out)

    monkeypatch.setattr(backup, "_copy_instance_files", copied_while_writing)
    load.thread.start()
    load.wait_for(1)
    out = tmp_path / "backup"
    try:
        result = source.test_cli_runner().invoke(args=["backup", str(out)])
    finally:
        load.stop.set()
        load.thread.join(60)
    assert result.exit_code == 0, result.output
    assert not load.errors, load.errors
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    live = _counts(source)
    assert manifest["tables"]["entities"] < live["entities"]  # written after the snapshot: not in the backup
    assert manifest["missing_files"] == []

    result = restored.test_cli_runner().invoke(args=["restore", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["rows"] == sum(manifest["tables"].values())
    assert _counts(restored) == manifest["tables"]
    verified = restored.test_cli_runner().invoke(args=["audit", "verify"])
    assert verified.exit_code == 0 and "audit chain intact" in verified.output, verified.output
    _certificates_verify(restored, manifest["tables"]["certificates"])
    _attachments_download(restored, manifest["tables"]["notice_attachments"])
    with restored.app_context():
        job = db.session.scalars(select(ImportJob)).one()
        assert storage.current().exists(imports.upload_key(job))
        assert db.session.scalar(select(func.count()).select_from(Entity)) == manifest["tables"]["entities"]


def _certificates_verify(node: Flask, expected: int) -> None:
    with node.app_context():
        tokens = db.session.scalars(select(Certificate.token)).all()
        ring = certificates.keyring()
        assert len(tokens) == expected >= 4  # three made before, one or more by the writer
        assert all(certificates.verify(token, ring.jwks())["entity_number"] for token in tokens)


def _attachments_download(node: Flask, expected: int) -> None:
    with node.app_context():
        attachments = db.session.scalars(select(NoticeAttachment)).all()
    client = node.test_client()
    assert len(attachments) == expected >= 2
    for attachment in attachments:
        response = client.get(f"/notices/{attachment.notice_id}/attachments/{attachment.id}")
        assert response.status_code == 200
        assert hashlib.sha256(response.data).hexdigest() == attachment.sha256


def _tables(node: Flask) -> list[str]:
    with node.app_context(), db.engine.connect() as connection:
        return inspect(connection).get_table_names()


@pytest.fixture
def backed_up(source: Flask, users: dict[str, str], tmp_path: Path) -> Path:
    _registry(source, users, filings=1, importing=False)
    with source.app_context():
        backup.backup(tmp_path / "backup")
    return tmp_path / "backup"


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))


TAMPERINGS: list[tuple[Callable[[Path], Any], str]] = [
    (lambda out: _flip_last_byte(next(out.glob("database.*"))), "校验和不符"),
    (lambda out: (out / "extra.txt").write_text("x"), "清单之外的文件"),
    (lambda out: next(out.glob("database.*")).unlink(), "备份缺少文件"),
    (lambda out: (out / "manifest.json").write_text("{"), "不是备份目录"),
]


def test_a_tampered_backup_is_refused_before_anything_is_written(
        backed_up: Path, restored: Flask, tmp_path: Path) -> None:
    """A flipped byte in the dump, a file added, the dump missing, the manifest broken: each refused whole."""
    for number, (tamper, message) in enumerate(TAMPERINGS):
        tampered = shutil.copytree(backed_up, tmp_path / f"tampered-{number}")
        tamper(tampered)
        result = restored.test_cli_runner().invoke(args=["restore", str(tampered)])
        assert result.exit_code == 1 and message in result.output, (message, result.output)
        assert _tables(restored) == []
        keys = Path(restored.instance_path) / "keys"
        assert not keys.exists() or not any(keys.iterdir())


def test_nothing_is_overwritten(backed_up: Path, source: Flask, restored: Flask, tmp_path: Path) -> None:
    """Restore refuses a database that has tables (the registry's own) and an instance configured otherwise;
    backup refuses a folder that holds something."""
    before = _counts(source)
    result = source.test_cli_runner().invoke(args=["restore", str(backed_up)])
    assert result.exit_code == 1 and "目标数据库不是空的" in result.output and "not empty" in result.output
    assert _counts(source) == before

    other = "database" if restored.config["FILE_STORAGE"] == "local" else "local"
    restored.config.update(FILE_STORAGE=other)
    result = restored.test_cli_runner().invoke(args=["restore", str(backed_up)])
    assert result.exit_code == 1 and "file_storage" in result.output
    assert _tables(restored) == []

    result = source.test_cli_runner().invoke(args=["backup", str(backed_up)])
    assert result.exit_code == 1 and "备份目录不是空的" in result.output
