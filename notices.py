"""Notices (SPEC §9): the rich-text sanitiser and the attachment files — type by content, stored (`storage.py`)
outside the web root under generated names, removal only once the database change is committed.
"""

from __future__ import annotations

import hashlib
import io
import unicodedata
import uuid
import zipfile
from dataclasses import dataclass
from typing import IO

import nh3
from flask import current_app
from flask_babel import lazy_gettext as _l
from werkzeug.wrappers import Response

import storage
from importer import content_disposition
from models import NoticeAttachment

ALLOWED_TAGS = {
    "p", "br", "strong", "b", "em", "i", "u", "s", "a", "ul", "ol", "li", "h2", "h3", "h4", "blockquote",
    "table", "thead", "tbody", "tr", "th", "td", "hr",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "th": {"colspan", "rowspan"}, "td": {"colspan", "rowspan"}}


def sanitise_html(html: str) -> str:
    """Keep formatting, links (http, https, mailto) and tables; drop scripts, styles, handlers, other URLs."""
    return nh3.clean(html, tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES,
                     url_schemes={"http", "https", "mailto"}, link_rel="noopener noreferrer nofollow").strip()


# --- attachment types, recognised by their bytes --------------------------------------------------

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
#: extension → MIME type of every accepted kind of file
MIME_TYPES = {
    "pdf": "application/pdf", "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "doc": "application/msword", "xls": "application/vnd.ms-excel", "ppt": "application/vnd.ms-powerpoint",
    "zip": "application/zip", "rar": "application/vnd.rar",
}
_OOXML_PARTS = {"docx": "word/", "xlsx": "xl/", "pptx": "ppt/"}


def _zip_kind(data: bytes) -> str | None:
    try:
        names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    except (zipfile.BadZipFile, ValueError):
        return None
    if "[Content_Types].xml" in names:
        for kind, prefix in _OOXML_PARTS.items():
            if any(name.startswith(prefix) for name in names):
                return kind
    return "zip"


def content_kinds(data: bytes) -> set[str]:
    """The extensions the bytes may carry; empty when the content is of no accepted kind."""
    if data.startswith(b"%PDF-"):
        return {"pdf"}
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return {"png"}
    if data.startswith(b"\xff\xd8\xff"):
        return {"jpg", "jpeg"}
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return {"gif"}
    if data.startswith(OLE_MAGIC):
        return {"doc", "xls", "ppt"}
    if data.startswith(b"Rar!\x1a\x07"):
        return {"rar"}
    if data.startswith(b"PK\x03\x04"):
        kind = _zip_kind(data)
        return {kind} if kind else set()
    return set()


def clean_filename(name: str) -> str:
    """The name the user gave, as a plain file name: no folders, no control characters, ≤ 120 characters."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C").strip().lstrip(".")
    return base[-120:]


@dataclass(frozen=True)
class CheckedFile:
    original_name: str
    content_type: str
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def check_attachment(filename: str, stream: IO[bytes]) -> CheckedFile:
    """An accepted attachment, or ValueError with the reason (size, name, type by content)."""
    limit = current_app.config["ATTACHMENT_MAX_BYTES"]
    data = stream.read(limit + 1)
    name = clean_filename(filename)
    if len(data) > limit:
        raise ValueError(_l("%(name)s is larger than %(size)s MB.", name=name, size=limit // (1024 * 1024)))
    if not data:
        raise ValueError(_l("%(name)s is empty.", name=name or "?"))
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if extension not in MIME_TYPES:
        raise ValueError(_l("%(name)s: only PDF, images, Office documents, ZIP and RAR files may be attached.",
                            name=name or "?"))
    if extension not in content_kinds(data):
        raise ValueError(_l("%(name)s: the content of the file is not a .%(ext)s file.", name=name, ext=extension))
    return CheckedFile(name, MIME_TYPES[extension], data)


# --- storage (`storage.py`: the instance folder, or the database shared by every node) -----------------------

def attachment_key(stored_name: str) -> str:
    return f"attachments/{stored_name}"


def store(checked: CheckedFile) -> str:
    """Store the file under a generated name; it is gone again if the transaction rolls back."""
    stored_name = uuid.uuid4().hex
    storage.current().put(attachment_key(stored_name), io.BytesIO(checked.data))
    return stored_name


def remove_after_commit(stored_name: str) -> None:
    """Delete the file once the row that points to it is gone for good (kept if the transaction fails)."""
    storage.current().delete(attachment_key(stored_name))


def download(attachment: NoticeAttachment) -> Response:
    """Always a download (never rendered inline), with the original name by RFC 6266."""
    response = storage.current().send(attachment_key(attachment.stored_name), attachment.content_type)
    extension = attachment.original_name.rsplit(".", 1)[-1]
    response.headers["Content-Disposition"] = content_disposition(
        attachment.original_name, f"attachment-{attachment.id}.{extension}")
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
