"""Backup and restore (issue 19): `flask --app app backup OUT` and `flask --app app restore IN`.

A backup is a folder:

- `database.sqlite3` (SQLite, copied through the online backup API: one consistent snapshot while the registry
  keeps writing — WAL lets writers go on meanwhile) or `database.pgdump` (PostgreSQL: `pg_dump` custom format,
  run in a snapshot exported by a REPEATABLE READ transaction of ours, in which the row counts are taken too);
- `files/attachments/…`, `files/imports/…` — with FILE_STORAGE=local, the files behind `storage` (notice
  attachments, import uploads and marked files). With FILE_STORAGE=database they are rows of the dump already;
- `keys/*.pem`, `keys/current` — with SIGNING_KEY_STORE=local, the signing keys. With the database store they
  are rows of the dump, still sealed under SIGNING_KEY_KEK: the restored instance needs the same KEK;
- `secret_key` — instance/secret_key when there is one (sessions, and everything else signed with SECRET_KEY);
- `manifest.json` — every other file with its size and SHA-256, the database kind, the schema revision, when,
  the stores, and the row count of every table of the database (all tables, read from the database itself).

Files are copied after the database snapshot. Stored files never change once written (their names are generated)
and a row's file is deleted only after the row's deletion committed, so every file the snapshot names is still
there to copy — unless housekeeping deletes it in between (an import file older than IMPORT_FILES_KEEP_DAYS, a
notice attachment removed that second): such a row is listed in the manifest's `missing_files`. A file written
after the snapshot is copied too, and named by no row: the worker's housekeeping deletes it after restore.

Restore writes onto an empty instance only (a database without tables, no stored files, no signing keys), and
checks every checksum of the backup before it writes anything: a backup altered in any byte, or with a file
added or taken away, is refused whole. It restores the database, then the files and the keys, and ends by
counting every table again against the manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import current_app
from sqlalchemy import Connection, create_engine, inspect, select, text
from sqlalchemy.engine import URL

import storage
from extensions import db
from models import ImportJob, NoticeAttachment, utcnow

FORMAT = 1
MANIFEST = "manifest.json"
DUMPS = {"sqlite": "database.sqlite3", "postgresql": "database.pgdump"}
READ_BYTES = 1024 * 1024


class BackupError(RuntimeError):
    """The backup could not be written, or a backup is refused for restore; the message says why (中文 / English)."""


@dataclass(frozen=True)
class Snapshot:
    """What a backup read from the database in its one snapshot."""

    revision: str
    tables: dict[str, int]
    named_files: list[str]


# --- reading the database -----------------------------------------------------------------------------------

def _table_counts(connection: Connection) -> dict[str, int]:
    """Every table of the database (not a list written here: tables added later are counted too)."""
    preparer = connection.dialect.identifier_preparer
    return {name: connection.scalar(text(f"SELECT count(*) FROM {preparer.quote(name)}"))
            for name in sorted(inspect(connection).get_table_names())}


def _named_files(connection: Connection) -> list[str]:
    """The storage keys the rows name: notice attachments, import uploads and marked files."""
    keys = [f"attachments/{name}" for name in connection.scalars(select(NoticeAttachment.stored_name))]
    for stored, marked in connection.execute(select(ImportJob.stored_name, ImportJob.annotated_name)):
        keys += [f"imports/{name}" for name in (stored, marked) if name]
    return sorted(keys)


def _snapshot(connection: Connection) -> Snapshot:
    return Snapshot(connection.scalar(text("SELECT version_num FROM alembic_version")) or "",
                    _table_counts(connection), _named_files(connection))


def _libpq_environment(url: URL) -> dict[str, str]:
    """The database's address for pg_dump / pg_restore in libpq's variables: the password never on a command
    line (where `ps` shows it)."""
    values = {"PGHOST": url.host, "PGPORT": url.port, "PGUSER": url.username, "PGPASSWORD": url.password,
              "PGDATABASE": url.database}
    return {**os.environ, **{key: str(value) for key, value in values.items() if value is not None}}


def _run(command: list[str], url: URL) -> None:
    done = subprocess.run(command, env=_libpq_environment(url), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BackupError(f"{command[0]} 失败 / failed ({done.returncode}): {done.stderr.strip()[-2000:]}")


# --- backup ----------------------------------------------------------------------------------------------------

def _sqlite_path() -> Path:
    return Path(db.engine.url.database or "")


def _dump_sqlite(target: Path) -> Snapshot:
    """The online backup API: a consistent copy of the live database; the counts read from the copy."""
    source = sqlite3.connect(_sqlite_path(), timeout=current_app.config["SQLITE_BUSY_TIMEOUT_MS"] / 1000)
    copy = sqlite3.connect(target)
    try:
        source.backup(copy)
    finally:
        source.close()
        copy.close()
    engine = create_engine(f"sqlite:///{target}")
    try:
        with engine.connect() as connection:
            return _snapshot(connection)
    finally:
        engine.dispose()


def _dump_postgresql(target: Path) -> Snapshot:
    """pg_dump in a snapshot exported by our REPEATABLE READ transaction, which counts the rows in that snapshot:
    the counts and the named files are exactly the dump's."""
    reading = db.engine.connect().execution_options(isolation_level="REPEATABLE READ")
    with reading as connection, connection.begin():
        connection.execute(text("SET TRANSACTION READ ONLY"))
        exported = connection.scalar(text("SELECT pg_export_snapshot()"))
        _run(["pg_dump", "--format=custom", f"--snapshot={exported}", "--no-owner", "--no-privileges",
              f"--file={target}"], db.engine.url)
        return _snapshot(connection)


def _hashed(source: Path, copy_to: Path | None = None) -> dict[str, Any]:
    """The file's size and SHA-256, read a chunk at a time; copied to `copy_to` on the way when given."""
    digest, size = hashlib.sha256(), 0
    if copy_to is not None:
        copy_to.parent.mkdir(parents=True, exist_ok=True)
    with source.open("rb") as reading, (copy_to.open("wb") if copy_to else nullcontext()) as writing:
        while piece := reading.read(READ_BYTES):
            digest.update(piece)
            size += len(piece)
            if writing is not None:
                writing.write(piece)
    return {"size": size, "sha256": digest.hexdigest()}


def _local_folders() -> dict[str, Path]:
    """The folders behind FILE_STORAGE=local, by storage folder name."""
    return storage.LocalStore(current_app.config["INSTANCE_PATH"], current_app.config.get("ATTACHMENT_DIR")).folders


def _keys_folder() -> Path:
    return Path(current_app.instance_path) / "keys"


def _secret_key_file() -> Path:
    return Path(current_app.instance_path) / "secret_key"


def _instance_files() -> Iterator[tuple[str, Path]]:
    """(name in the backup, source path) of every file outside the database that the instance needs."""
    if current_app.config["FILE_STORAGE"] == "local":
        for folder, path in _local_folders().items():
            if path.is_dir():
                for entry in sorted(path.iterdir()):
                    if entry.is_file() and not entry.name.startswith("."):  # ".x.partial": a write in progress
                        yield f"files/{folder}/{entry.name}", entry
    if current_app.config["SIGNING_KEY_STORE"] == "local" and _keys_folder().is_dir():
        for entry in sorted(_keys_folder().iterdir()):
            if entry.suffix == ".pem" or entry.name == "current":
                yield f"keys/{entry.name}", entry
    if _secret_key_file().is_file():
        yield "secret_key", _secret_key_file()


def _copy_instance_files(out: Path) -> dict[str, dict[str, Any]]:
    copied = {}
    for name, source in _instance_files():
        try:
            copied[name] = _hashed(source, out / name)
        except FileNotFoundError:  # deleted by housekeeping since it was listed
            (out / name).unlink(missing_ok=True)
    return copied


def backup(out: Path) -> dict[str, Any]:
    """Write a backup into `out` (a new or empty folder); the manifest it wrote."""
    if out.exists() and any(out.iterdir()):
        raise BackupError(f"备份目录不是空的 / the backup folder is not empty: {out}")
    out.mkdir(parents=True, exist_ok=True)
    kind = db.engine.dialect.name
    started = utcnow()
    dump = out / DUMPS[kind]
    snapshot = _dump_sqlite(dump) if kind == "sqlite" else _dump_postgresql(dump)
    files = {DUMPS[kind]: _hashed(dump), **_copy_instance_files(out)}
    local = current_app.config["FILE_STORAGE"] == "local"
    manifest = {
        "format": FORMAT, "database": kind, "revision": snapshot.revision,
        "started_at": started.isoformat() + "Z", "finished_at": utcnow().isoformat() + "Z",
        "file_storage": current_app.config["FILE_STORAGE"],
        "signing_key_store": current_app.config["SIGNING_KEY_STORE"],
        "tables": snapshot.tables, "files": files,
        "missing_files": [key for key in snapshot.named_files if local and f"files/{key}" not in files],
    }
    (out / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
    return manifest


# --- restore ---------------------------------------------------------------------------------------------------

def read_manifest(source: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((source / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise BackupError(f"不是备份目录（没有可读的 {MANIFEST}） / not a backup: no readable {MANIFEST} "
                          f"in {source}") from error
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"备份格式不受支持 / unsupported backup format: {manifest.get('format')!r}")
    return manifest


def verify(source: Path, manifest: dict[str, Any]) -> None:
    """Every file the manifest lists, with its size and SHA-256, and no other file: else refused."""
    listed = manifest["files"]
    present = {str(path.relative_to(source)) for path in source.rglob("*") if path.is_file()} - {MANIFEST}
    if extra := sorted(present - set(listed)):
        raise BackupError(f"备份中有清单之外的文件，拒绝恢复 / files not in the manifest: {', '.join(extra[:5])}")
    for name, expected in listed.items():
        path = source / name
        if not path.is_file():
            raise BackupError(f"备份缺少文件，拒绝恢复 / a file of the manifest is missing: {name}")
        if _hashed(path) != {"size": expected["size"], "sha256": expected["sha256"]}:
            raise BackupError(f"校验和不符（备份已损坏或被改动），未写入任何数据 / checksum mismatch, nothing "
                              f"written: {name}")


def _check_matches(manifest: dict[str, Any]) -> None:
    """The instance is configured as the backed-up one was: database kind and stores."""
    wanted = {"database": db.engine.dialect.name, "file_storage": current_app.config["FILE_STORAGE"],
              "signing_key_store": current_app.config["SIGNING_KEY_STORE"]}
    for key, value in wanted.items():
        if manifest[key] != value:
            raise BackupError(f"备份的 {key} 为 {manifest[key]}，本实例为 {value}：请按备份时的配置恢复 / the "
                              f"backup's {key} is {manifest[key]}, this instance's {value}")


def _check_empty() -> None:
    """A database without tables (in any schema), and no stored files or keys in the instance folder."""
    with db.engine.connect() as connection:
        found = inspect(connection)
        tables = [name for schema in found.get_schema_names() if schema != "information_schema"
                  for name in found.get_table_names(schema=schema)]
    if tables:
        raise BackupError(f"目标数据库不是空的（已有 {len(tables)} 张表），只能恢复到新建的空数据库 / the target "
                          "database is not empty: restore into a new, empty database")
    occupied = [name for name, _path in _instance_files() if name != "secret_key"]
    if occupied:
        raise BackupError(f"实例目录中已有文件或签名密钥（{occupied[0]} 等 {len(occupied)} 个），只能恢复到空实例 / "
                          "the instance folder already holds files or signing keys")


def _restore_database(source: Path, manifest: dict[str, Any]) -> None:
    dump = source / DUMPS[manifest["database"]]
    db.engine.dispose()
    if manifest["database"] == "sqlite":
        backup_copy, target = sqlite3.connect(dump), sqlite3.connect(_sqlite_path())
        try:
            backup_copy.backup(target)
        finally:
            backup_copy.close()
            target.close()
    else:
        _run(["pg_restore", "--single-transaction", "--exit-on-error", "--no-owner", "--no-privileges",
              f"--dbname={db.engine.url.database}", str(dump)], db.engine.url)


def _place(source: Path, target: Path, private: bool) -> None:
    """Copy a file into the instance, written under a temporary name and renamed (keys: 0600 in a 0700 folder)."""
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700 if private else 0o777)
    with tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{target.name}.", delete=False) as partial, \
            source.open("rb") as reading:
        shutil.copyfileobj(reading, partial, READ_BYTES)
    os.chmod(partial.name, 0o600 if private else 0o644)
    os.replace(partial.name, target)


def _restore_files(source: Path, manifest: dict[str, Any]) -> int:
    folders = _local_folders()
    placed = 0
    for name in manifest["files"]:
        parts = name.split("/")
        if parts[0] == "files":
            _place(source / name, folders[parts[1]] / storage.check_key("/".join(parts[1:])).split("/")[1], False)
        elif parts[0] == "keys":
            _place(source / name, _keys_folder() / Path(name).name, True)
        elif name == "secret_key":
            _place(source / name, _secret_key_file(), True)
        else:
            continue
        placed += 1
    return placed


def _counts_after(manifest: dict[str, Any]) -> None:
    with db.engine.connect() as connection:
        counts = _table_counts(connection)
    if counts != manifest["tables"]:
        differ = sorted(name for name in set(counts) | set(manifest["tables"])
                        if counts.get(name) != manifest["tables"].get(name))
        raise BackupError(f"恢复后的行数与清单不符 / row counts differ from the manifest: {', '.join(differ[:10])}")


def restore(source: Path) -> dict[str, Any]:
    """Restore the backup in `source` onto this (empty) instance; what was restored. Everything is checked —
    the manifest, every checksum, the instance's configuration and emptiness — before the first write."""
    manifest = read_manifest(source)
    verify(source, manifest)
    _check_matches(manifest)
    _check_empty()
    _restore_database(source, manifest)
    placed = _restore_files(source, manifest)
    _counts_after(manifest)
    return {"revision": manifest["revision"], "tables": len(manifest["tables"]),
            "rows": sum(manifest["tables"].values()), "files": placed}
