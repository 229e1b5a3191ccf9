"""Issue 15: one storage interface for attachments and import files — the contract, on both back ends
(`FILE_STORAGE` local and database), and the attachments of notices stored in the database."""

from __future__ import annotations

import hashlib
import io
import os
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

import storage
from extensions import db
from models import Notice, NoticeAttachment, StoredFile, StoredFileChunk, utcnow
from tests.helpers import post

KINDS = ("local", "database")
MIB = 1024 * 1024


@pytest.fixture(params=KINDS)
def store_app(request, app):
    app.config["FILE_STORAGE"] = request.param
    return app


def _rows(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def _local_files(app) -> list[Path]:
    return sorted(p for p in Path(app.config["INSTANCE_PATH"]).rglob("*") if p.is_file() and p.parent.name
                  in storage.FOLDERS)


class Exploding(io.RawIOBase):
    """A stream that fails after `good` bytes, as a dropped upload would."""

    def __init__(self, good: int) -> None:
        self.left = good

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.left <= 0:
            raise ConnectionResetError("the client went away")
        size = min(len(buffer), self.left)
        buffer[:size] = b"x" * size
        self.left -= size
        return size


def test_put_open_exists_delete(store_app) -> None:
    with store_app.app_context():
        files = storage.current()
        stored = files.put("imports/abc123", io.BytesIO(b"hello"))
        db.session.commit()
        assert stored == storage.Stored(5, hashlib.sha256(b"hello").hexdigest())
        assert files.exists("imports/abc123") and not files.exists("imports/other")
        assert files.open("imports/abc123").read() == b"hello"
        files.delete("imports/abc123")
        assert files.exists("imports/abc123") == (store_app.config["FILE_STORAGE"] == "local")  # until commit
        db.session.commit()
        assert not files.exists("imports/abc123")
        with pytest.raises(storage.FileMissing):
            files.open("imports/abc123")


def test_a_5_mb_file_round_trips_in_1_mib_chunks(store_app) -> None:
    """Can a 5 MB file be stored and read back unchanged, never in one row?"""
    data = os.urandom(5 * MIB + 123)
    with store_app.app_context():
        files = storage.current()
        stored = files.put("imports/big", io.BytesIO(data))
        db.session.commit()
        pieces = list(files.chunks("imports/big"))
        assert b"".join(pieces) == data and stored.sha256 == hashlib.sha256(data).hexdigest()
        assert max(len(piece) for piece in pieces) <= MIB and len(pieces) == 6
        if store_app.config["FILE_STORAGE"] == "database":
            assert _rows(StoredFileChunk) == 6
            assert db.session.scalar(select(func.max(func.length(StoredFileChunk.data)))) == MIB
        with files.local_copy("imports/big") as path:
            assert path.read_bytes() == data and path.name == "big"
        assert path.exists() == (store_app.config["FILE_STORAGE"] == "local")  # the copy is gone


def test_an_error_mid_write_leaves_nothing(store_app) -> None:
    """A stream that breaks after 2.5 MiB: no file, no chunk, no partial file — even if the transaction commits."""
    with store_app.app_context():
        with pytest.raises(ConnectionResetError):
            storage.current().put("imports/broken", io.BufferedReader(Exploding(int(2.5 * MIB))))
        db.session.commit()
        assert not storage.current().exists("imports/broken")
        assert _rows(StoredFile) == 0 and _rows(StoredFileChunk) == 0
    assert _local_files(store_app) == []


def test_a_rolled_back_put_leaves_nothing(store_app) -> None:
    with store_app.app_context():
        storage.current().put("attachments/rolledback", io.BytesIO(b"data"))
        db.session.rollback()
        assert not storage.current().exists("attachments/rolledback") and _rows(StoredFile) == 0
    assert _local_files(store_app) == []


def test_too_large_is_refused_with_nothing_stored(store_app) -> None:
    with store_app.app_context():
        with pytest.raises(storage.TooLarge):
            storage.current().put("imports/huge", io.BytesIO(b"x" * (MIB + 10)), limit=MIB)
        db.session.commit()
        assert not storage.current().exists("imports/huge") and _rows(StoredFile) == 0
    assert _local_files(store_app) == []


@pytest.mark.parametrize("key", ["imports/../secret", "other/x", "imports/a/b", "imports/.hidden", "/etc/passwd",
                                 "imports/"])
def test_keys_are_checked(key) -> None:
    """Every operation of both stores checks the key first (`check_key`)."""
    with pytest.raises(ValueError, match="not a storage key"):
        storage.check_key(key)


def test_a_bad_key_stores_nothing(store_app) -> None:
    with store_app.app_context(), pytest.raises(ValueError, match="not a storage key"):
        storage.current().put("imports/../secret", io.BytesIO(b"x"))
    assert _local_files(store_app) == []


def test_keys_older_than(store_app) -> None:
    with store_app.app_context():
        files = storage.current()
        files.put("imports/old", io.BytesIO(b"1"))
        files.put("attachments/old", io.BytesIO(b"1"))
        db.session.commit()
        assert files.keys_older_than("imports", utcnow() + timedelta(minutes=1)) == ["imports/old"]
        assert files.keys_older_than("imports", utcnow() - timedelta(minutes=1)) == []


def test_writable(store_app) -> None:
    with store_app.app_context():
        assert storage.current().writable()
        assert _rows(StoredFile) == 0  # the probe leaves nothing


def test_an_unknown_storage_is_refused(app) -> None:
    app.config["FILE_STORAGE"] = "s3"
    with app.app_context(), pytest.raises(RuntimeError, match="FILE_STORAGE"):
        storage.current()


# --- attachments in the database -------------------------------------------------------------------------------

PDF = b"%PDF-1.4\n" + os.urandom(3 * MIB) + b"\n%%EOF\n"


def test_attachments_upload_and_download_with_the_database(app, as_user) -> None:
    """An attachment stored in the database: no file in the instance folder, downloaded whole (streamed, with
    its length), removed with the notice."""
    app.config["FILE_STORAGE"] = "database"
    console = as_user("bureau")
    response = post(console, "/admin/notices/new/", {
        "category": "bulletin", "title": "通知", "body": "<p>正文</p>",
        "new_attachments": [(io.BytesIO(PDF), "备案须知.pdf")]}, content_type="multipart/form-data")
    assert response.status_code == 302, response.get_data(as_text=True)
    assert _local_files(app) == []
    with app.app_context():
        attachment = db.session.scalar(select(NoticeAttachment))
        notice_id, attachment_id = attachment.notice_id, attachment.id
        assert db.session.scalar(select(StoredFile.key)) == f"attachments/{attachment.stored_name}"
        assert _rows(StoredFileChunk) == 4
    download = console.get(f"/admin/notices/attachment/{attachment_id}")
    assert download.status_code == 200 and download.data == PDF and download.content_length == len(PDF)
    assert download.headers["Content-Disposition"].startswith("attachment;")
    assert post(console, "/admin/notices/delete/", {"id": notice_id}).status_code == 302
    with app.app_context():
        assert db.session.get(Notice, notice_id) is None
        assert _rows(StoredFile) == 0 and _rows(StoredFileChunk) == 0
    assert console.get(f"/admin/notices/attachment/{attachment_id}").status_code == 404
