"""批量导入 (SPEC §8, FAQ 34, 45): template download, upload (returns at once), the job's page polling its
progress, the errors with the annotated file. The checking and importing run in the worker."""

from __future__ import annotations

import json
from typing import Any

from flask import abort, jsonify, redirect, request
from flask_admin import expose
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from werkzeug.wrappers import Response

import importer
import permissions
import storage
import workflow
from admin_views.base import RoleView, commit_change, posted
from extensions import db
from models import ImportJob
from permissions import Action

PHASE_LABELS = {"": _l("Waiting for the worker"), "reading": _l("Reading the file"),
                "checking": _l("Checking every row"), "importing": _l("Importing")}


class ImportView(RoleView):
    access_action = Action.FILING_IMPORT

    def is_accessible(self) -> bool:
        return super().is_accessible() and permissions.may_import(current_user)

    @expose("/", methods=("GET", "POST"))
    def index(self) -> Any:
        queued: list[ImportJob] = []
        upload = request.files.get("file")
        if posted() and upload and commit_change(lambda: queued.append(workflow.queue_import(
                current_user, upload.filename or "import.xlsx", upload.stream))):
            return redirect(self.get_url(".job", job_id=queued[0].id))
        jobs = db.session.scalars(select(ImportJob).where(ImportJob.user_id == current_user.id)
                                  .order_by(ImportJob.id.desc()).limit(20)).all()
        return self.render("admin/imports/index.html", form=FlaskForm(), jobs=jobs, columns=importer.COLUMNS)

    @expose("/template")
    def template(self) -> Response:
        return Response(importer.template_bytes(), mimetype=importer.XLSX_MIME, headers={
            "Content-Disposition": importer.content_disposition(importer.TEMPLATE_NAME, "import-template.xlsx")})

    def _job(self, job_id: int) -> ImportJob:
        job = db.session.get(ImportJob, job_id)
        if job is None or job.user_id != current_user.id:
            abort(404)
        return job

    @expose("/job/<int:job_id>")
    def job(self, job_id: int) -> str:
        job = self._job(job_id)
        errors = json.loads(job.errors)  # the first 10,000; the marked file holds every one
        return self.render("admin/imports/job.html", job=job, errors=errors, error_count=job.error_count,
                           phase=PHASE_LABELS.get(job.phase, job.phase))

    @expose("/job/<int:job_id>.json")
    def job_status(self, job_id: int) -> Response:
        job = self._job(job_id)
        return jsonify({"state": job.state.value, "phase": str(PHASE_LABELS.get(job.phase, job.phase)),
                        "total_rows": job.total_rows, "done_rows": job.done_rows, "imported": job.imported,
                        "errors": job.error_count})

    @expose("/job/<int:job_id>/marked.xlsx")
    def marked(self, job_id: int) -> Response:
        job = self._job(job_id)
        if not job.annotated_name:
            abort(404)
        response = storage.current().send(workflow.imports.marked_key(job), importer.XLSX_MIME)
        name = job.filename.rsplit(".", 1)[0]
        response.headers["Content-Disposition"] = importer.content_disposition(
            f"{name}（错误已标注）.xlsx", f"import-{job.id}-marked.xlsx")
        return response
