"""批量导入 (SPEC §8, FAQ 45): an ISP holding the import right, or a bureau (its province), uploads a
spreadsheet; the worker checks every row first and imports nothing if one is wrong, else imports every
row in one transaction as applications in bureau review (the importing ISP counts as verified).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

import audit
import importer
import permissions
from extensions import db
from models import (
    Access,
    Application,
    ApplicationKind,
    ApplicationState,
    Domain,
    Entity,
    FilingStatus,
    ImportJob,
    IspVerification,
    JobState,
    PreapprovalItem,
    ReviewState,
    User,
    Website,
    utcnow,
)
from rawsql import BulkInsert
from workflow.errors import NotFound, WorkflowError

PROGRESS_EVERY = 5000
CHUNK = 5000


def jobs_dir() -> Path:
    folder = Path(current_app.config["INSTANCE_PATH"]) / "imports"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def queue_import(actor: User, filename: str, stream: IO[bytes]) -> ImportJob:
    """Store the upload (outside the web root, generated name) and queue it for the worker."""
    if not permissions.may_import(actor):
        raise NotFound()
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    data = stream.read(limit + 1)
    if not data:
        raise WorkflowError(str(_l("Choose the file to import.")), "file")
    if len(data) > limit:
        raise WorkflowError(str(_l("The file is too large.")), "file")
    stored = uuid.uuid4().hex
    (jobs_dir() / stored).write_bytes(data)
    job = ImportJob(user_id=actor.id, filename=filename[-255:] or "import.xlsx", stored_name=stored,
                    sha256=hashlib.sha256(data).hexdigest(), size=len(data), state=JobState.QUEUED)
    db.session.add(job)
    db.session.flush()
    audit.record("import.queued", object_type="import", object_id=job.id, actor=actor,
                 changes={"file": job.filename, "sha256": job.sha256, "bytes": job.size})
    return job


def run_import_jobs(limit: int = 3) -> int:
    """The worker's part: run the queued jobs, oldest first; returns how many ran."""
    ids = list(db.session.scalars(select(ImportJob.id).where(ImportJob.state == JobState.QUEUED)
                                  .order_by(ImportJob.id).limit(limit)))
    db.session.commit()
    for job_id in ids:
        run_import(db.session.get(ImportJob, job_id))
    return len(ids)


def _progress(job: ImportJob, **values: Any) -> None:
    for key, value in values.items():
        setattr(job, key, value)
    db.session.commit()  # the page polling the job sees it; no import transaction is open yet


def _finish(job: ImportJob, actor: User, state: JobState, errors: list[dict[str, object]] | None = None) -> None:
    job.state, job.finished_at = state, utcnow()
    job.errors = json.dumps(errors or [], ensure_ascii=False)
    audit.record("import.done" if state == JobState.DONE else "import.refused", object_type="import",
                 object_id=job.id, actor=actor, changes={
                     "file": job.filename, "sha256": job.sha256, "rows": job.total_rows, "imported": job.imported,
                     "errors": len(errors or [])})
    db.session.commit()


def run_import(job: ImportJob) -> ImportJob:
    """Check the whole file, then import all of it or nothing. Never raises for a bad file."""
    actor = db.session.get(User, job.user_id)
    path = jobs_dir() / job.stored_name
    _progress(job, state=JobState.RUNNING, phase="reading")
    if actor is None or not permissions.may_import(actor):
        _finish(job, actor, JobState.FAILED, [{"row": 0, "column": "", "value": "", "message": "无导入权限。"}])
        return job
    try:
        kind = importer.check_container(path)
        header, rows, count = importer.read_rows(path, kind)
        _progress(job, total_rows=count, phase="checking")
        checker = importer.RowChecker(actor)
        _check_header(header)
        done = 0
        for done, (number, cells) in enumerate(rows, start=1):
            checker.check(number, cells)
            if done % PROGRESS_EVERY == 0:
                _progress(job, done_rows=done)
        _progress(job, done_rows=done, total_rows=max(count, done), phase="importing")
        checker.check_registry()
        if not checker.entities and not checker.errors:
            checker.errors.append(importer.CellError(2, 0, "", "文件中没有数据行。"))
        if checker.errors:
            return _refuse(job, actor, path, checker.errors)
        job.imported = import_filings(actor, checker)
    except importer.ImportRefused as refused:
        db.session.rollback()
        _finish(job, actor, JobState.FAILED, [{"row": 0, "column": "", "value": "", "message": refused.message}])
        return job
    except IntegrityError:
        raced = importer.CellError(0, 0, "", "导入期间有域名或证件号码被其他备案占用，请重新上传。")
        return _refuse(job, actor, path, [raced])
    finally:
        if "checker" in locals():
            checker.close()
    _finish(job, actor, JobState.DONE)
    return job


def _check_header(header: list[str]) -> None:
    expected = [column.header for column in importer.COLUMNS]
    if header[:len(expected)] != expected:
        raise importer.ImportRefused("第一行不是导入模板的表头；请下载最新的导入模板，在其中填写。")


def _refuse(job: ImportJob, actor: User, path: Path, errors: list[importer.CellError]) -> ImportJob:
    db.session.rollback()
    errors = sorted(errors, key=lambda e: (e.row, e.column))
    if any(error.row for error in errors):
        job.annotated_name = f"{job.stored_name}-marked.xlsx"
        (jobs_dir() / job.annotated_name).write_bytes(importer.annotated_bytes(path, errors))
    _finish(job, actor, JobState.FAILED, [error.as_dict() for error in errors])
    return job


_INSERTS: dict[str, BulkInsert] = {}


def _insert(model: Any, rows: Iterable[dict[str, Any]]) -> None:
    """executemany on the session's connection (no ORM objects, no RETURNING), a chunk at a time: the
    rows are generated as they are written, never all at once."""
    rows = iter(rows)
    while chunk := list(itertools.islice(rows, CHUNK)):
        key = f"{model.__tablename__}:{','.join(chunk[0])}"
        if key not in _INSERTS:
            _INSERTS[key] = BulkInsert(model.__table__, chunk[0])
        _INSERTS[key].run(chunk)


def _ids_by(column: Any, key: Any, values: list[Any], *where: Any) -> dict[Any, list[int]]:
    """The new rows' ids per key, in insertion order (ids grow in the order of a multi-row insert)."""
    found: dict[Any, list[int]] = {}
    for start in range(0, len(values), 500):
        for row_id, value in db.session.execute(select(column, key).where(
                key.in_(values[start:start + 500]), *where).order_by(column)):
            found.setdefault(value, []).append(row_id)
    return found


def import_filings(actor: User, checker: importer.RowChecker) -> int:
    """Every checked filing as an application in bureau review, in the caller's transaction, 5,000 rows at a
    time from the checker's spill file. New rows are found again by keys the checks made unique (the
    certificate number of a new entity, its websites by id order, one open application per entity)
    rather than by RETURNING, which SQLite answers one row at a time."""
    if not permissions.may_import(actor):
        raise NotFound()
    now = utcnow()
    entity_ids: dict[str, int] = {}  # certificate number → id
    provinces: dict[int, str] = {}  # entity id → province
    isps: dict[int, int | set[int]] = {}  # entity id → its ISP (a set only when it has several)
    for chunk in checker.websites():
        new = [w.entity for w in chunk if w.entity is not None]
        before = db.session.scalar(select(func.max(Entity.id))) or 0  # the new rows come after: a PK range
        _insert(Entity, ({**dict(zip(importer.ENTITY_KEYS[1:], fields[1:], strict=True)), "province_code": fields[0],
                          "owner_id": None, "commercial": False, "status": FilingStatus.DRAFT, "website_seq": 0,
                          "number": None, "licence_number": None, "approved_at": None, "created_at": now}
                         for fields in new))
        numbers = {fields[importer.ENTITY_KEYS.index("certificate_number")] for fields in new}
        for entity_id, number, province in db.session.execute(select(
                Entity.id, Entity.certificate_number, Entity.province_code).where(Entity.id > before)):
            if number in numbers:
                entity_ids[number], provinces[entity_id] = entity_id, province
        _insert_websites(chunk, entity_ids, checker.isp_ids, isps)
    order = list(entity_ids.values())
    _insert(Application, ({
        "entity_id": entity_id, "province_code": province_code, "kind": ApplicationKind.NEW_FILING,
        "state": ApplicationState.BUREAU_REVIEW, "submitted_by_id": actor.id, "submitted_at": now,
        "decided_by_id": None, "decided_at": None, "reasons": "{}", "proposal": "{}"}
        for entity_id, province_code in provinces.items()))
    applications = _ids_by(Application.id, Application.entity_id, order,
                           Application.state == ApplicationState.BUREAU_REVIEW)
    _insert(IspVerification, ({"application_id": applications[entity_id][0], "isp_id": isp_id,
                               "state": ReviewState.CONFIRMED, "reason": "", "at": now}
                              for entity_id in order for isp_id in _isp_list(isps[entity_id])))
    for start in range(0, len(order), CHUNK):
        audit.record_many([("application.imported", {
            "object_type": "application", "object_id": applications[entity_id][0], "province_code": code,
            "actor": actor}) for entity_id in order[start:start + CHUNK] for code in (provinces[entity_id],)])
    db.session.flush()
    return len(order)


def _isp_list(isps: int | set[int]) -> list[int]:
    return sorted(isps) if isinstance(isps, set) else [isps]


def _insert_websites(chunk: list[importer.ImportedWebsite], entity_ids: dict[str, int],
                     isp_ids: dict[str, int], isps: dict[int, int | set[int]]) -> None:
    """One chunk of websites with their domains, pre-approval items and accesses."""
    before = db.session.scalar(select(func.max(Website.id))) or 0
    owners = [entity_ids[w.certificate_number] for w in chunk]
    _insert(Website, ({"entity_id": owner, "name": w.name, "home_url": w.home_url,
                       "service_content": w.service_content, "languages": "1", "responsible_name": "",
                       "responsible_mobile": "", "bbs": False, "bbs_sections": "", "status": FilingStatus.DRAFT,
                       "number": None, "approved_at": None} for owner, w in zip(owners, chunk, strict=True)))
    created = _ids_by(Website.id, Website.entity_id, sorted(set(owners)), Website.id > before)
    taken = {owner: iter(ids) for owner, ids in created.items()}
    sites = [(next(taken[owner]), owner, w) for owner, w in zip(owners, chunk, strict=True)]
    _insert(Domain, ({"website_id": wid, "name": name, "live": True} for wid, _o, w in sites for name in w.domains))
    _insert(PreapprovalItem, ({"website_id": wid, "category": c, "document_number": d, "state": ReviewState.PENDING,
                               "reason": "", "reviewer_id": None, "reviewed_at": None}
                              for wid, _o, w in sites for c, d in w.preapprovals))
    _insert(Access, ({"website_id": wid, "isp_id": isp_ids[w.isp_username], "method": w.access_method,
                      "server_province_code": w.server_province_code, "live": True,
                      "ip_ranges": "\n".join(f"{s}-{e}" for s, e in w.ip_ranges)} for wid, _o, w in sites))
    for _wid, owner, w in sites:
        isp, known = isp_ids[w.isp_username], isps.get(owner)
        if known is None or known == isp:
            isps[owner] = isp
        else:
            isps[owner] = (known if isinstance(known, set) else {known}) | {isp}
