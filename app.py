"""The application factory and the command-line interface."""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import click
from flask import Flask, current_app, has_request_context, render_template, request, session
from flask_babel import format_datetime, get_locale
from flask_babel import lazy_gettext as _l
from flask_migrate import upgrade
from flask_wtf.csrf import CSRFError
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import select
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter, Map
from werkzeug.wrappers import Response

import audit
import backup
import certificates
import demo
import demo_ip
import exchange_api
import exchange_api.openapi
import importer
import inspection_cli
import ip_import
import netguard
import observability
import public_records
import public_site
import security
import validators
import workers
import workflow
from admin_views import init_admin
from admin_views.base import local_time
from admin_views.labels import ROLE_LABELS, action_label
from api_errors import json_error
from auth import bp as auth_bp
from config import BASE_DIR, from_environment, load_or_create_secret_key
from extensions import babel, cache, configure_sqlite, csrf, db, login_manager, migrate
from models import (
    MAX_INTEGER_ID,
    ApplicationState,
    Certificate,
    CertificateStatus,
    Domain,
    DomainReport,
    DomainStatus,
    Entity,
    ImportJob,
    JobState,
    Role,
    User,
    Website,
)
from seed_data import seed_code_tables, seed_divisions
from workflow import domain_imports, domain_reconcile, ip_findings, ip_imports, ip_lookup
from workflow.checks import domain_verdict, reports_of
from workflow.domains import DATA_FIELDS
from workflow.registrant import VERDICT_WORDS

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
        return json_error(code, str(message))
    return render_template("error.html", code=code, title=title, message=message), code


def _run_now(run: Any, job: ImportJob) -> None:
    """Run an import queued by the command line at once; a worker that claimed it first runs it instead."""
    try:
        run(job)
    except workflow.imports.LeaseLost as taken:
        raise click.ClickException(f"a worker took import job {job.id} first; its outcome is on the job's page "
                                   "in the console") from taken


def _echo_import_outcome(job: ImportJob, columns: tuple[str, ...]) -> None:
    """An IP or domain import run from the command line: a JSON summary, each error's `columns` tab-separated,
    where the rest are; exit 1 unless everything was imported."""
    errors = json.loads(job.errors)
    click.echo(json.dumps({"rows": job.total_rows, "imported": job.imported, "errors": job.error_count},
                          ensure_ascii=False))
    for error in errors:
        click.echo("\t".join(str(error.get(key) or "") for key in columns))
    if job.error_count > len(errors):
        local = current_app.config["FILE_STORAGE"] == "local"
        where = (workflow.imports.jobs_dir() / (job.annotated_name or "") if local
                 else f"of import job {job.id} (download it from the job's page in the console)")
        click.echo(f"… {job.error_count - len(errors)} more, all in the marked file {where}")
    if job.state != JobState.DONE:
        sys.exit(1)


def _witnessed_heads_hold(lines: TextIO) -> bool:
    """Check each tree head a witness kept (one JSON answer per line); print what fails. All hold → True."""
    checked = failed = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            seen = json.loads(line)
        except ValueError:
            seen = None
        checked += 1
        if problem := audit.witness_problem(seen):
            failed += 1
            click.echo(f"witnessed tree head on line {number}: {problem}", err=True)
    click.echo(f"witnessed tree heads: {checked - failed} of {checked} hold")
    return failed == 0


class DatabaseId(IntegerConverter):
    """`<int:…>` in a URL: at most what an `Integer` id column holds (every such route's: notices, attachments,
    import jobs), so that /notices/999…9 is a 404, not an overflow in the database driver (a 500). A route over a
    BigId column would say `<int(max=MAX_ID):…>`."""

    def __init__(self, map: Map, *args: Any, **kwargs: Any) -> None:
        super().__init__(map, *args, **{"max": MAX_INTEGER_ID, **kwargs})


def create_app(config: dict[str, Any] | None = None) -> Flask:
    settings = from_environment()
    settings.update(config or {})
    if str(settings["SQLALCHEMY_DATABASE_URI"]).startswith("postgresql"):
        # the pool tries a connection before lending it: after a server restart (or a connection a firewall
        # dropped) a request gets a new one instead of an error — one round trip per request that uses the database
        settings["SQLALCHEMY_ENGINE_OPTIONS"] = {"pool_pre_ping": True, **settings.get("SQLALCHEMY_ENGINE_OPTIONS", {})}
    app = Flask(__name__, instance_path=str(settings["INSTANCE_PATH"]))
    app.config.update(settings)
    app.json.ensure_ascii = False  # Chinese stays readable in the JSON API
    if hops := int(app.config.get("PROXY_FIX_X_FOR") or 0):  # behind nginx: the client's address, not nginx's
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
    if app.config.get("CAPTCHA_FIXED_ANSWER") and not app.config.get("TESTING"):
        raise RuntimeError("CAPTCHA_FIXED_ANSWER is only allowed with TESTING")
    if netguard.parse_networks(app.config.get("INSPECTION_ALLOWED_NETWORKS") or "") and not (
            app.config.get("TESTING") or app.config.get("DEBUG")):  # the inspector reaching the private network
        raise RuntimeError("INSPECTION_ALLOWED_NETWORKS is only allowed with TESTING or DEBUG")
    if unknown := sorted(set(app.config["WEBAUTHN_REQUIRED_ROLES"]) - {str(role) for role in Role}):
        raise RuntimeError(f"WEBAUTHN_REQUIRED_ROLES names roles that do not exist: {', '.join(unknown)} "
                           f"(the roles: {', '.join(str(role) for role in Role)})")
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
    certificates.init_app(app)  # refuses SIGNING_KEY_STORE=database without a valid SIGNING_KEY_KEK
    cache.init_app(app)
    observability.init_app(app)  # /healthz, /readyz, /metrics and the request timer

    app.url_map.converters["int"] = DatabaseId  # before any route: every <int:…> of the app is bounded
    app.register_blueprint(auth_bp)
    app.register_blueprint(public_site.bp)
    app.register_blueprint(public_site.api)
    app.register_blueprint(exchange_api.bp)
    csrf.exempt(exchange_api.bp)
    app.register_blueprint(exchange_api.openapi.bp)
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


def freeze_startup_objects() -> None:
    """In a long-running process (a gunicorn worker, the worker, seed-demo), once the app is made: what starting it
    allocated — ~250,000 objects (modules, routes, mappers, translations) that live as long as the process — is
    moved out of the cyclic garbage collector's reach (`gc.freeze`, as Python's documentation advises for servers).
    Each full collection scanned them all: ~130 ms, every few hundred approvals of a batch; a batch of 2,000
    applications 1,060 → 880 µs an application on PostgreSQL at 5,000,000 websites. The tests' process, which makes
    an app per test, does not freeze (tests/conftest.py)."""
    gc.collect()
    gc.freeze()


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


def domain_check(name: str) -> dict[str, Any]:
    """`flask domain-check`: every report of a domain (the live one first) and the verdict on each filed website
    using it (`workflow.checks.domain_verdict` against its entity, the report that speaks for the domain)."""
    reports = db.session.scalars(select(DomainReport).where(DomainReport.domain == name).order_by(
        DomainReport.status == DomainStatus.DELETED, DomainReport.id.desc())).all()
    speaking = reports_of([name]).get(name)
    uses = db.session.execute(select(Website, Entity).join(Domain, Domain.website_id == Website.id)
                              .join(Entity, Website.entity_id == Entity.id)
                              .where(Domain.name == name, Domain.live).order_by(Website.id)).all()
    return {"domain": name, "display": validators.display_domain(name),
            "reports": [_report_json(report) for report in reports],
            "websites": [_verdict_json(website, entity, domain_verdict(entity, name, speaking))
                         for website, entity in uses]}


def _report_json(report: DomainReport) -> dict[str, Any]:
    return {"id": report.id, "registrar": report.registrar.username,
            "registrar_organisation": report.registrar.organisation, "status": report.status.value,
            **{key: getattr(report, key) for key in DATA_FIELDS if key != "status"},
            "registered_on": report.registered_on.isoformat(), "expires_on": report.expires_on.isoformat(),
            "name_servers": report.name_servers.split(), "updated_at": report.updated_at.isoformat()}


def _verdict_json(website: Website, entity: Entity, check: Any) -> dict[str, Any]:
    return {"website_number": website.number, "website": website.name, "website_status": website.status.value,
            "filing_number": entity.number, "unit_name": entity.unit_name,
            "certificate_number": entity.certificate_number, "verdict": check.verdict.value,
            "verdict_words": str(VERDICT_WORDS[check.verdict]), "blocking": check.blocking,
            "report_id": check.report.id if check.report is not None else None}


def register_cli(app: Flask) -> None:
    @app.cli.command("init")
    def init_command() -> None:
        """Create or upgrade the database, seed the code tables and the first MIIT account."""
        upgrade(directory=MIGRATIONS_DIR)
        added = seed_code_tables()
        divisions = seed_divisions()
        generated = ensure_first_miit_account()
        db.session.commit()
        certificates.keyring()  # the first signing key, made before any request could need it
        click.echo(f"database ready; {added} code-table values added, {divisions} cities and counties added")
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
        queue the bureaus' daily deadline reminders, delete spent throttle and captcha rows, and recompute the
        IP audit findings when the reports changed or IP_FINDINGS_INTERVAL_MINUTES passed, reconcile the domain
        report changes. It outlives any failure of one step (logged; the next pass tries again). Several workers
        may run against one database: each job runs in one of them (workers.py); SIGTERM stops after the pass."""
        if once:
            click.echo(json.dumps(workers.run_pass()))
        else:
            freeze_startup_objects()
            workers.run_forever(interval)

    @app.cli.command("domain-reconcile")
    @click.option("--all", "every_filing", is_flag=True,
                  help="Check every filed domain (once, for the filings approved before the check existed).")
    def domain_reconcile_command(every_filing: bool) -> None:
        """The registrant check after approval: the queued report changes (or every filed domain), 域名核验异常
        flags opened and resolved, owners and ISPs e-mailed; prints the figures."""
        figures = (domain_reconcile.flag_all_filings() if every_filing
                   else domain_reconcile.reconcile_domain_changes())
        click.echo(json.dumps(figures))

    @app.cli.command("domain-import")
    @click.argument("file", type=click.Path(exists=True, dir_okay=False))
    @click.option("--as", "username", required=True, help="The registrar (domain_reporter) reporting the domains.")
    def domain_import_command(file: str, username: str) -> None:
        """Import a filled domain template at once, as the worker does (all rows or none): a JSON summary, then
        each error as row, column, value, result code and message (tab-separated); exit 1 if anything was wrong."""
        actor = db.session.scalar(select(User).where(User.username == username))
        if actor is None:
            raise click.ClickException(f"no account named {username}")
        try:
            with open(file, "rb") as stream:
                job = domain_imports.queue_domain_import(actor, Path(file).name, stream)
            db.session.commit()
        except workflow.WorkflowError as error:
            db.session.rollback()
            raise click.ClickException(f"{username}: {error.message}") from error
        _run_now(domain_imports.run_domain_import, job)
        _echo_import_outcome(job, ("row", "column", "value", "code", "message"))

    @app.cli.command("domain-check")
    @click.argument("domain")
    def domain_check_command(domain: str) -> None:
        """Print as JSON the reports of a domain and, for each filed website using it, the registrant check's
        verdict against its entity; exit 1 for a name that is not a domain."""
        try:
            name = validators.normalise_domain(domain)
        except ValueError as error:
            raise click.ClickException(f"not a domain name: {domain} ({error})") from error
        click.echo(json.dumps(domain_check(name), ensure_ascii=False, indent=2))

    @app.cli.command("ip-findings")
    def ip_findings_command() -> None:
        """Recompute the IP audit findings (核查结果) now; print the counts per kind and the seconds taken."""
        click.echo(json.dumps(ip_findings.recompute_findings()))

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
        _run_now(workflow.run_import, job)
        click.echo(json.dumps({"rows": job.total_rows, "imported": job.imported,
                               "errors": json.loads(job.errors)}, ensure_ascii=False))
        if job.imported == 0:
            sys.exit(1)

    @app.cli.command("ip-import-template")
    @click.argument("out", type=click.Path(dir_okay=False, writable=True))
    def ip_import_template_command(out: str) -> None:
        """Write IP地址备案导入模板.xlsx (the same file as the console's)."""
        Path(out).write_bytes(ip_import.template_bytes())
        click.echo(f"template written to {out}")

    @app.cli.command("ip-import")
    @click.argument("file", type=click.Path(exists=True, dir_okay=False))
    @click.option("--as", "username", required=True, help="The IP reporting unit whose records the file holds.")
    def ip_import_command(file: str, username: str) -> None:
        """Import a filled IP template as the console does, at once: a JSON summary, then each error as
        sheet, row, column, value, result code and message (tab-separated); exit 1 if anything was wrong."""
        actor = db.session.scalar(select(User).where(User.username == username))
        try:
            with open(file, "rb") as stream:
                job = ip_imports.queue_ip_import(actor, Path(file).name, stream)
            db.session.commit()
        except workflow.WorkflowError as error:
            db.session.rollback()
            raise click.ClickException(f"{username} is not an active IP reporting unit") from error
        _run_now(ip_imports.run_ip_import, job)
        _echo_import_outcome(job, ("sheet", "row", "column", "value", "code", "message"))

    @app.cli.command("ip-whois")
    @click.argument("address")
    def ip_whois_command(address: str) -> None:
        """Print, as JSON, the records holding an address: the reported block, the allocations and blocks
        down the chain, the user unit (and a self-brought block)."""
        try:
            chain = ip_lookup.holder_chain(address)
        except ValueError as error:
            raise click.ClickException(f"not an IPv4 or IPv6 address: {address}") from error
        click.echo(json.dumps([step.as_dict() for step in chain], ensure_ascii=False, indent=2))

    @app.cli.command("seed-demo")
    @click.option("--filings", type=int, default=None, help="How many filings to add (default 1000; 0 with "
                  "--ip-blocks).")
    @click.option("--ip-blocks", type=click.IntRange(min=0), default=0,
                  help="How many IP allocation records to add, with their blocks (demo_ipr_* reporting units).")
    @click.option("--password", envvar="DEMO_PASSWORD", default="Demo-pass-2026", show_default=True,
                  help="Password of the demo accounts it creates (demo_isp_*, demo_bureau_*, demo_news, demo_ipr_*).")
    @click.option("--state", type=click.Choice([s.value for s in ApplicationState]), default=None,
                  help="Only this state (default: a realistic mix).")
    @click.option("--province", default=None, help="Only this province (GB/T 2260 code; default: all).")
    @click.option("--workers", type=click.IntRange(min=1), default=None,
                  help="Processes writing the filings (default: the cores + 1 on PostgreSQL, 1 on SQLite).")
    def seed_demo_command(filings: int | None, ip_blocks: int, password: str, state: str | None,
                          province: str | None, workers: int | None) -> None:
        """Realistic filings in every province, ISP and state (approved ones signed); with --ip-blocks, a
        hierarchy of IP reports (registry blocks → carriers → re-allocations → user units, IPv4 and IPv6)."""
        if not sa_inspect(db.engine).has_table("provinces"):
            raise click.ClickException("数据库尚未初始化：请先运行 flask --app app init。")
        started = time.perf_counter()
        freeze_startup_objects()  # minutes of work in this process and its forked writers
        summary: dict[str, object] = {}
        if filings or (filings is None and not ip_blocks):
            summary = demo.seed(filings or 1000, password, ApplicationState(state) if state else None, province,
                                workers)
        if ip_blocks:
            try:
                summary["ip"] = demo_ip.seed(ip_blocks, password)
            except ValueError as error:
                raise click.ClickException(str(error)) from error
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
        """Certificate signing keys (SIGNING_KEY_STORE: instance/keys/ or the database)."""

    @keys_group.command("rotate")
    def keys_rotate() -> None:
        """Add a new signing key; the old ones keep verifying what they signed. Every node signs with it within
        SIGNING_KEY_REFRESH_SECONDS."""
        click.echo(f"new signing key: {certificates.keyring().rotate()}")

    @keys_group.command("list")
    def keys_list() -> None:
        """Every key of the store, oldest first: kid, created (UTC), retired, and which one signs."""
        for key in certificates.keyring().listing():
            retired = f"{key.retired_at:%Y-%m-%d %H:%M:%S}" if key.retired_at else "-"
            click.echo(f"{key.kid}\t{key.created_at:%Y-%m-%d %H:%M:%S}\t{retired}\t{'current' if key.current else ''}")

    @keys_group.command("import-local")
    @click.option("--keep-local", is_flag=True, help="Leave the PEM files in instance/keys/ (plain text).")
    def keys_import_local(keep_local: bool) -> None:
        """Move instance/keys/*.pem into the database store, sealed with SIGNING_KEY_KEK (SIGNING_KEY_STORE=database):
        certificates signed before the switch keep verifying."""
        if app.config["SIGNING_KEY_STORE"] != "database":
            raise click.ClickException("import-local moves keys into the database store: "
                                       "set SIGNING_KEY_STORE=database")
        kids = certificates.import_local_keys(remove=not keep_local)
        click.echo(f"{len(kids)} signing keys in the database store; current: {certificates.keyring().current_kid()}")

    @keys_group.command("reseal")
    def keys_reseal() -> None:
        """Re-seal every private key of the database store under SIGNING_KEY_KEK, from the key-encryption key in
        SIGNING_KEY_OLD_KEK (an environment variable: never on the command line): all keys or none."""
        if app.config["SIGNING_KEY_STORE"] != "database":
            raise click.ClickException("reseal changes the key-encryption key of the database store: "
                                       "set SIGNING_KEY_STORE=database")
        try:
            old_kek = certificates.parse_kek(os.environ.get("SIGNING_KEY_OLD_KEK"), "SIGNING_KEY_OLD_KEK")
            count = certificates.database_store().reseal(old_kek)
        except certificates.KeyStoreError as error:
            raise click.ClickException(f"nothing re-sealed: {error}") from error
        click.echo(f"{count} signing keys re-sealed under SIGNING_KEY_KEK")

    @app.cli.command("certificate")
    @click.argument("number")
    def certificate_command(number: str) -> None:
        """Print the current bazs.cert of the entity with this filing number."""
        token = db.session.scalar(select(Certificate.token).join(Entity).where(
            Entity.number == number, Certificate.status == CertificateStatus.CURRENT))
        if token is None:
            raise click.ClickException(f"no current certificate for {number}")
        click.echo(token)

    @app.cli.command("backup")
    @click.argument("out", type=click.Path(file_okay=False, path_type=Path))
    def backup_command(out: Path) -> None:
        """Write a consistent backup into the folder OUT (new or empty) while the registry runs: the database
        (SQLite's online backup API; pg_dump on PostgreSQL), the stored files, the signing keys and a manifest of
        checksums and row counts (backup.py)."""
        started = time.perf_counter()
        try:
            manifest = backup.backup(out)
        except backup.BackupError as error:
            raise click.ClickException(str(error)) from error
        click.echo(json.dumps({"revision": manifest["revision"], "tables": len(manifest["tables"]),
                               "rows": sum(manifest["tables"].values()), "files": len(manifest["files"]),
                               "bytes": sum(f["size"] for f in manifest["files"].values()),
                               "missing_files": len(manifest["missing_files"]),
                               "seconds": round(time.perf_counter() - started, 1)}))

    @app.cli.command("restore")
    @click.argument("source", metavar="IN", type=click.Path(exists=True, file_okay=False, path_type=Path))
    def restore_command(source: Path) -> None:
        """Restore the backup in the folder IN onto this instance, which must be empty (a database without
        tables, no stored files, no signing keys); every checksum is verified before anything is written."""
        started = time.perf_counter()
        try:
            restored = backup.restore(source)
        except backup.BackupError as error:
            raise click.ClickException(str(error)) from error
        click.echo(json.dumps({**restored, "seconds": round(time.perf_counter() - started, 1)}))

    app.cli.add_command(inspection_cli.inspection_group)

    @app.cli.group("public-records")
    def public_records_group() -> None:
        """The public lookup's stored records (public_records)."""

    @public_records_group.command("rebuild")
    def public_records_rebuild() -> None:
        """Write every record again from the filings, one transaction per 1,000 entities."""
        started = time.perf_counter()
        count = public_records.rebuild_all()
        click.echo(f"public records written again: {count} entities, {time.perf_counter() - started:.1f} s")

    @public_records_group.command("verify")
    def public_records_verify() -> None:
        """Compare every stored record with what the filings say now; name the entities that differ."""
        wrong = public_records.differences(db.session.connection())
        db.session.rollback()
        if wrong:
            click.echo(f"public records differ from their filings: {len(wrong)} entities, "
                       f"first ids {wrong[:20]} (flask public-records rebuild writes them again)", err=True)
            sys.exit(1)
        click.echo("public records match their filings")

    @app.cli.group("audit")
    def audit_group() -> None:
        """The audit log."""

    @audit_group.command("verify")
    @click.option("--witness", type=click.File("r", encoding="utf-8"), default=None,
                  help="Also check tree heads a third party kept: one answer of /api/v1/public/audit/tree-head "
                       "per line.")
    def audit_verify(witness: TextIO | None) -> None:
        """Sequence the waiting events, then check the hash chain and every signed tree head; name the first
        broken row. With --witness, also the tree heads someone kept from the public endpoint."""
        report = audit.verify_chain()
        if witness is not None and not _witnessed_heads_hold(witness):
            sys.exit(1)
        if report.intact:
            click.echo(f"audit chain intact: {report.checked} events")
            return
        where = f"event id {report.broken_id}" if report.broken_id is not None else "a signed tree head"
        click.echo(f"audit chain BROKEN at {where}: {report.reason} "
                   f"({report.checked} events before it are intact)", err=True)
        sys.exit(1)
