"""The application factory and the command-line interface."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click
from flask import Flask, current_app, has_request_context, jsonify, render_template, request, session
from flask_babel import format_datetime, get_locale
from flask_babel import lazy_gettext as _l
from flask_migrate import upgrade
from flask_wtf.csrf import CSRFError
from sqlalchemy import select
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

import audit
import certificates
import demo
import importer
import notify
import public_site
import security
import workflow
from admin_views import init_admin
from admin_views.base import local_time
from admin_views.labels import ROLE_LABELS, action_label
from auth import bp as auth_bp
from config import BASE_DIR, from_environment, load_or_create_secret_key
from extensions import babel, configure_sqlite, csrf, db, login_manager, migrate
from models import ApplicationState, Certificate, CertificateStatus, Entity, Role, User
from seed_data import seed_code_tables

MIGRATIONS_DIR = str(BASE_DIR / "migrations")


def select_locale() -> str:
    chosen = session.get("lang") if has_request_context() else None
    return chosen if chosen in current_app.config["LANGUAGES"] else current_app.config[
        "BABEL_DEFAULT_LOCALE"]


def _security_headers(response: Response) -> Response:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "object-src 'none'; frame-ancestors 'none'; form-action 'self'; base-uri 'self'",
    )
    return response


ERROR_TEXTS = {
    400: (_l("Bad request"), _l("The request could not be understood. Go back and try again.")),
    403: (_l("Forbidden"), _l("Your account may not open this page.")),
    404: (_l("Not found"), _l("The page or record does not exist, or is not yours to see.")),
    405: (_l("Not allowed"), _l("This address does not accept this kind of request.")),
    413: (_l("Too large"), _l("The upload is larger than the registry accepts.")),
    500: (_l("Server error"), _l("Something went wrong on our side. Nothing was saved; try again.")),
}


def _render_error(error: HTTPException) -> tuple[str, int]:
    code = error.code or 500
    title, message = ERROR_TEXTS.get(code, ERROR_TEXTS[500])
    if isinstance(error, CSRFError):
        message = _l("The form has expired or did not come from this site. Reload the page and try again.")
    if request.path.startswith("/api/"):  # the API answers in JSON, errors included
        return jsonify({"message": str(message)}), code
    return render_template("error.html", code=code, title=title, message=message), code


def create_app(config: dict[str, Any] | None = None) -> Flask:
    settings = from_environment()
    settings.update(config or {})
    app = Flask(__name__, instance_path=str(settings["INSTANCE_PATH"]))
    app.config.update(settings)
    app.json.ensure_ascii = False  # Chinese stays readable in the JSON API
    if app.config.get("CAPTCHA_FIXED_ANSWER") and not app.config.get("TESTING"):
        raise RuntimeError("CAPTCHA_FIXED_ANSWER is only allowed with TESTING")
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = load_or_create_secret_key(Path(app.instance_path))
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)  # SQLite file, sms.log, mail/, keys

    db.init_app(app)
    migrate.init_app(app, db, directory=MIGRATIONS_DIR, render_as_batch=True)
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            configure_sqlite(db.engine, app.config["SQLITE_BUSY_TIMEOUT_MS"])
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = None
    babel.init_app(app, locale_selector=select_locale,
                   default_translation_directories=str(BASE_DIR / "translations"))
    csrf.init_app(app)

    app.register_blueprint(auth_bp)
    app.register_blueprint(public_site.bp)
    app.register_blueprint(public_site.api)
    init_admin(app)
    app.jinja_env.globals.update(
        current_locale_code=lambda: str(get_locale()),
        role_label_of=lambda user: str(ROLE_LABELS.get(user.role, user.role)),
        action_label=action_label,
    )
    app.jinja_env.filters["local_time"] = lambda value: local_time(None, value)
    app.jinja_env.filters["file_size"] = lambda n: (
        str(_l("%(num)d bytes", num=n)) if n < 1024
        else f"{n / 1024:.1f} KB" if n < 1024 ** 2 else f"{n / 1024 ** 2:.1f} MB")
    app.jinja_env.filters["local_date"] = lambda value: format_datetime(value, "yyyy-MM-dd") if value else ""
    app.before_request(security.refuse_nul_bytes)
    app.after_request(_security_headers)
    for code in ERROR_TEXTS:
        app.register_error_handler(code, _render_error)
    register_cli(app)
    return app


def ensure_first_miit_account() -> str | None:
    """FAQ 30: the first MIIT account exists after initialisation. Returns a generated password."""
    if db.session.scalar(select(User.id).where(User.role == Role.MIIT).limit(1)) is not None:
        return None
    configured = current_app.config.get("MIIT_ADMIN_PASSWORD")
    password = configured or workflow.generate_password(16)
    workflow.create_user(None, workflow.UserData(
        username=current_app.config["MIIT_ADMIN_USERNAME"], role=Role.MIIT, password=password,
        organisation="工业和信息化部", contact_name="系统管理员", mobile="13800000000",
        email="admin@miit.example.cn",
    ))
    return None if configured else password


def register_cli(app: Flask) -> None:
    @app.cli.command("init")
    def init_command() -> None:
        """Create or upgrade the database, seed the code tables and the first MIIT account."""
        upgrade(directory=MIGRATIONS_DIR)
        added = seed_code_tables()
        generated = ensure_first_miit_account()
        db.session.commit()
        click.echo(f"database ready; {added} code-table values added")
        if generated:
            click.echo("=" * 60)
            click.echo(f"first MIIT account: {app.config['MIIT_ADMIN_USERNAME']}")
            click.echo(f"password (shown once, change it after signing in): {generated}")
            click.echo("=" * 60)

    @app.cli.command("create-user")
    @click.option("--username", required=True)
    @click.option("--role", required=True, type=click.Choice([r.value for r in Role if r != Role.ICP]))
    @click.option("--province", "province_code", default=None, help="GB/T 2260 code, e.g. 120000")
    @click.option("--contact-name", required=True)
    @click.option("--mobile", required=True)
    @click.option("--email", required=True)
    @click.option("--organisation", default="")
    @click.option("--category", "preapproval_category", default=None)
    @click.option("--can-import", is_flag=True)
    @click.password_option(envvar="NEW_USER_PASSWORD")
    def create_user_command(password: str, **fields: Any) -> None:
        """Create a staff account (the same rules as the console)."""
        try:
            user = workflow.create_user(None, workflow.UserData(
                password=password, role=Role(fields.pop("role")), **fields))
            db.session.commit()
        except workflow.WorkflowError as error:
            db.session.rollback()
            raise click.ClickException(error.message) from error
        click.echo(json.dumps({"id": user.id, "username": user.username, "role": user.role.value}))

    @app.cli.group("outbox")
    def outbox_group() -> None:
        """Message delivery (SPEC §13)."""

    @outbox_group.command("run")
    @click.option("--once", is_flag=True, help="Deliver what is due, print the counts and stop.")
    @click.option("--interval", default=2.0, show_default=True, help="Seconds between passes.")
    def outbox_run(once: bool, interval: float) -> None:
        """The worker: deliver queued e-mail and SMS (retrying failures with back-off), run queued imports,
        queue the bureaus' daily deadline reminders and delete spent throttle and captcha rows.
        It outlives any failure of one pass (logged; the next pass tries again): mail never waits on an import."""
        while True:
            counts: dict[str, Any] = {}
            for name, step in (("outbox", notify.deliver_due), ("imports", workflow.run_import_jobs),
                               ("reminders", workflow.send_deadline_reminders),
                               ("purged", security.purge_spent_guards)):
                try:
                    counts[name] = step()
                except Exception:  # e.g. the database unreachable for a moment
                    db.session.rollback()
                    app.logger.exception("worker: %s failed", name)
                    counts[name] = "failed"
            if once:
                click.echo(json.dumps(counts))
                return
            time.sleep(interval)

    @app.cli.group("deadlines")
    def deadlines_group() -> None:
        """The bureau's statutory deadlines (MIIT Order No. 33: 20 working days)."""

    @deadlines_group.command("remind")
    def deadlines_remind() -> None:
        """Queue today's reminder e-mails now (the worker sends them from 08:00 Beijing time), once per day."""
        click.echo(json.dumps({"queued": workflow.send_deadline_reminders(any_hour=True)}))

    @app.cli.command("import-template")
    @click.argument("out", type=click.Path(dir_okay=False, writable=True))
    def import_template_command(out: str) -> None:
        """Write 备案导入模板.xlsx (the same file as the console's)."""
        Path(out).write_bytes(importer.template_bytes())
        click.echo(f"template written to {out}")

    @app.cli.command("import-xlsx")
    @click.argument("file", type=click.Path(exists=True, dir_okay=False))
    @click.option("--as", "username", required=True, help="An ISP with the import right, or a bureau.")
    def import_xlsx_command(file: str, username: str) -> None:
        """Import a filled template as the console does; print a JSON summary, exit 1 if nothing was imported."""
        actor = db.session.scalar(select(User).where(User.username == username))
        try:
            with open(file, "rb") as stream:
                job = workflow.queue_import(actor, Path(file).name, stream)
            db.session.commit()
        except workflow.WorkflowError as error:
            db.session.rollback()
            raise click.ClickException(error.message or "no import right") from error
        workflow.run_import(job)
        click.echo(json.dumps({"rows": job.total_rows, "imported": job.imported,
                               "errors": json.loads(job.errors)}, ensure_ascii=False))
        if job.imported == 0:
            sys.exit(1)

    @app.cli.command("seed-demo")
    @click.option("--filings", default=1000, show_default=True, help="How many filings to add.")
    @click.option("--password", envvar="DEMO_PASSWORD", default="Demo-pass-2026", show_default=True,
                  help="Password of the demo accounts it creates (demo_isp_*, demo_bureau_*, demo_news).")
    @click.option("--state", type=click.Choice([s.value for s in ApplicationState]), default=None,
                  help="Only this state (default: a realistic mix).")
    @click.option("--province", default=None, help="Only this province (GB/T 2260 code; default: all).")
    def seed_demo_command(filings: int, password: str, state: str | None, province: str | None) -> None:
        """Realistic filings in every province, ISP and state (approved ones signed)."""
        started = time.perf_counter()
        summary = demo.seed(filings, password, ApplicationState(state) if state else None, province)
        summary["seconds"] = round(time.perf_counter() - started, 1)
        click.echo(json.dumps(summary, ensure_ascii=False))

    @app.cli.command("revoke")
    @click.argument("number")
    @click.option("--reason", required=True, help="Why (recorded, e-mailed and audited).")
    @click.option("--as", "username", required=True, help="The acting account: the province's bureau or MIIT.")
    @click.option("--licence", is_flag=True, help="吊销: revoke the commercial licence of the entity.")
    def revoke_command(number: str, reason: str, username: str, licence: bool) -> None:
        """Revoke a filing by its entity, website or licence number (FAQ 39), as the console does."""
        actor = db.session.scalar(select(User).where(User.username == username))
        if actor is None or not actor.is_active:
            raise click.ClickException(f"no active account named {username}")
        try:
            ended = workflow.revoke_by_number(actor, number, reason, licence=licence)
            db.session.commit()
        except workflow.WorkflowError as error:
            db.session.rollback()
            raise click.ClickException(error.message) from error
        click.echo(f"{'licence revoked' if licence else 'revoked'}: {ended} by {username}; reason: {reason.strip()}")

    @app.cli.group("keys")
    def keys_group() -> None:
        """Certificate signing keys (instance/keys/)."""

    @keys_group.command("rotate")
    def keys_rotate() -> None:
        """Add a new signing key; the old ones keep verifying what they signed."""
        click.echo(f"new signing key: {certificates.keyring().rotate()}")

    @app.cli.command("certificate")
    @click.argument("number")
    def certificate_command(number: str) -> None:
        """Print the current bazs.cert of the entity with this filing number."""
        token = db.session.scalar(select(Certificate.token).join(Entity).where(
            Entity.number == number, Certificate.status == CertificateStatus.CURRENT))
        if token is None:
            raise click.ClickException(f"no current certificate for {number}")
        click.echo(token)

    @app.cli.group("audit")
    def audit_group() -> None:
        """The audit log."""

    @audit_group.command("verify")
    def audit_verify() -> None:
        """Check the hash chain; name the first broken row."""
        report = audit.verify_chain()
        if report.intact:
            click.echo(f"audit chain intact: {report.checked} events")
            return
        click.echo(f"audit chain BROKEN at event id {report.broken_id}: {report.reason} "
                   f"({report.checked} events before it are intact)", err=True)
        sys.exit(1)
