"""域名报备 › 导入与导出 (SPEC §8, §11): the template, a registrar's upload (checked and imported by the worker, its
job's page polling the progress, the errors with their result codes and the marked file — the filings import's
job pages, `ImportView`), and the export of the reports in the template's columns: a registrar its own, a
bureau its province's, MIIT all."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from flask import abort, redirect, request, send_file
from flask_admin import expose
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from werkzeug.wrappers import Response

import domain_import
import importer
import permissions
from admin_views.base import commit_change, posted
from admin_views.imports import PHASE_LABELS, ImportView
from extensions import db
from models import ImportJob
from permissions import Action
from workflow.domain_imports import KIND, export_reports, queue_domain_import

EXPORT_NAME = "域名报备信息.xlsx"


class DomainFilesView(ImportView):
    access_action = Action.DOMAIN_REPORT

    def is_accessible(self) -> bool:
        return permissions.can(current_user, Action.DOMAIN_REPORT) or permissions.can(current_user,
                                                                                     Action.DOMAIN_LIST)

    @expose("/", methods=("GET", "POST"))
    def index(self) -> Any:
        registrar = permissions.can(current_user, Action.DOMAIN_REPORT)
        queued: list[ImportJob] = []
        upload = request.files.get("file")
        if registrar and posted() and upload and commit_change(lambda: queued.append(queue_domain_import(
                current_user, upload.filename or "import.xlsx", upload.stream))):
            return redirect(self.get_url(".job", job_id=queued[0].id))
        jobs = db.session.scalars(select(ImportJob).where(ImportJob.user_id == current_user.id, ImportJob.kind == KIND)
                                  .order_by(ImportJob.id.desc()).limit(20)).all() if registrar else []
        return self.render("admin/domain_files/index.html", form=FlaskForm(), jobs=jobs, registrar=registrar,
                           template_name=domain_import.TEMPLATE_NAME)

    @expose("/template")
    def template(self) -> Response:
        return Response(domain_import.template_bytes(), mimetype=importer.XLSX_MIME, headers={
            "Content-Disposition": importer.content_disposition(domain_import.TEMPLATE_NAME,
                                                                "domain-import-template.xlsx")})

    @expose("/export.xlsx")
    def export(self) -> Response:
        """Streamed to a temporary file (bounded memory), sent and removed; audited."""
        handle, name = tempfile.mkstemp(suffix=".xlsx", prefix="domain-export-")
        os.close(handle)
        try:
            export_reports(current_user, Path(name))
        except BaseException:
            os.unlink(name)
            raise
        response = send_file(name, mimetype=importer.XLSX_MIME, max_age=0)
        response.call_on_close(lambda: os.unlink(name))
        response.headers["Content-Disposition"] = importer.content_disposition(EXPORT_NAME, "domain-reports.xlsx")
        return response

    def _job(self, job_id: int) -> ImportJob:
        job = super()._job(job_id)
        if job.kind != KIND:
            abort(404)
        return job

    @expose("/job/<int:job_id>")
    def job(self, job_id: int) -> str:
        job = self._job(job_id)
        return self.render("admin/domain_files/job.html", job=job, errors=json.loads(job.errors),
                           error_count=job.error_count, phase=PHASE_LABELS.get(job.phase, job.phase))
