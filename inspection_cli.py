"""`flask --app app inspection …` (issue 18): start an inspection run from the command line — queued for the
workers, or run in this process with its progress printed — and serve a province's filed websites on loopback for
the demo (`demo_inspection`). Registered by `app.register_cli`."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import TextIO

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import select

import demo_inspection
import workflow
from extensions import db
from models import InspectionRun, InspectionScope, Role, RunState, User, UserStatus
from workflow import inspections

#: `inspection run --now` prints its progress at least this often
INSPECTION_PROGRESS_SECONDS = 2.0


@click.group("inspection", cls=AppGroup)
def inspection_group() -> None:
    """Website inspection (issue 18): start a run; serve a province's websites on loopback for the demo."""


@inspection_group.command("run")
@click.option("--province", default=None, help="GB/T 2260 code, 11 or 110000 (default: the bureau's own).")
@click.option("--national", is_flag=True, help="Every province (MIIT only).")
@click.option("--isp", default=None, help="Only the websites this ISP (account name or id) serves now.")
@click.option("--targets", type=click.File("r", encoding="utf-8"), default=None,
              help="Only these: a file of filing numbers, website numbers or domains, one a line.")
@click.option("--as", "username", default=None,
              help="The bureau or MIIT account starting it (default: the first MIIT account).")
@click.option("--now", is_flag=True, help="Run it in this process, printing progress (else a worker takes it).")
def inspection_run(province: str | None, national: bool, isp: str | None, targets: TextIO | None,
                   username: str | None, now: bool) -> None:
    """Queue an inspection run of a province (or the nation), of one ISP's websites or of a list."""
    if (national and province) or (isp and targets):
        raise click.UsageError("choose --province or --national, and --isp or --targets, not both")
    actor = _active_user(username or current_app.config["MIIT_ADMIN_USERNAME"])
    if actor.role == Role.MIIT and not (province or national):
        raise click.UsageError("an MIIT account chooses --province CODE or --national")
    if national and actor.role != Role.MIIT:
        raise click.UsageError("--national is for an MIIT account; a bureau inspects its own province")
    code = _province_code(province) if province else None
    scope = InspectionScope.LIST if targets else InspectionScope.ISP if isp else InspectionScope.ALL
    try:
        run = inspections.start_run(actor, scope, province_code=code, isp_id=_isp_id(isp) if isp else None,
                                    targets=targets.read() if targets else "")
    except workflow.WorkflowError as error:
        raise click.ClickException(error.message) from error
    db.session.commit()
    click.echo(json.dumps({"run": run.id, "scope": run.scope.value, "province": run.province_code,
                           "websites": run.total, "state": run.state.value}, ensure_ascii=False))
    if now:
        _inspect_now(run.id)


@inspection_group.command("demo-sites")
@click.option("--province", required=True, help="GB/T 2260 code, 11 or 110000.")
@click.option("--limit", type=click.IntRange(min=1), default=200, show_default=True,
              help="How many of the province's websites in force to serve (website id order).")
@click.option("--hosts-file", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the static-hosts JSON that INSPECTION_STATIC_HOSTS_FILE names.")
@click.option("--serve-seconds", type=float, default=None, help="Stop after this long (default: until Ctrl-C).")
def inspection_demo_sites(province: str, limit: int, hosts_file: Path, serve_seconds: float | None) -> None:
    """Serve the province's filed websites on 127.0.0.1, most compliant, some failing each check
    (demo_inspection.py), until interrupted."""
    planned = demo_inspection.plan(_province_code(province), limit)
    if not planned:
        raise click.ClickException(f"no website in force in province {province}: seed some first "
                                   "(flask --app app seed-demo --province …)")
    db.session.rollback()  # nothing held open while serving
    with demo_inspection.farm_of(planned) as farm:
        demo_inspection.write_hosts(hosts_file, demo_inspection.static_hosts(planned, farm))
        click.echo(json.dumps({"websites": len(planned), "names": len(farm.sites), "port": farm.port,
                               "behaviours": demo_inspection.summary(planned), "hosts_file": str(hosts_file)},
                              ensure_ascii=False))
        click.echo(f"serve the app and the worker with INSPECTION_STATIC_HOSTS_FILE={hosts_file} "
                   "INSPECTION_ALLOWED_NETWORKS=127.0.0.1/32 FLASK_DEBUG=1; Ctrl-C stops the sites")
        try:
            if serve_seconds is None:
                threading.Event().wait()  # until Ctrl-C
            else:
                time.sleep(serve_seconds)
        except KeyboardInterrupt:
            click.echo("demo sites stopped")


def _active_user(username: str) -> User:
    user = db.session.scalar(select(User).where(User.username == username, User.status == UserStatus.ACTIVE))
    if user is None:
        raise click.ClickException(f"no active account named {username}")
    return user


def _province_code(given: str) -> str:
    """"11" or "110000" → "110000" (the two digits a clerk says, or the code the registry keeps)."""
    code = given.strip()
    return f"{code}0000" if len(code) == 2 and code.isdigit() else code


def _isp_id(given: str) -> int:
    """An ISP's id from its id or account name (the workflow refuses an id that is no ISP)."""
    if given.isdigit():
        return int(given)
    found = db.session.scalar(select(User.id).where(User.username == given, User.role == Role.ISP))
    if found is None:
        raise click.ClickException(f"no ISP account named {given}")
    return found


def _inspect_now(run_id: int) -> None:
    """Run the workers' inspection step in this process until the run is over, a progress line per slice
    (INSPECTION_PROGRESS_SECONDS: the slice after which a worker hands a run back, shortened here). Runs queued
    before it go first, as a worker takes them; a worker running it meanwhile shares the work. Exit 1 unless it
    ends done."""
    current_app.config["INSPECTION_SLICE_SECONDS"] = min(current_app.config["INSPECTION_SLICE_SECONDS"],
                                                         INSPECTION_PROGRESS_SECONDS)
    started, shown = time.perf_counter(), None
    while True:
        ran = inspections.run_inspection_jobs()
        run = db.session.get(InspectionRun, run_id, populate_existing=True)
        if (run.checked, run.state) != shown:
            shown = (run.checked, run.state)
            click.echo(f"run {run.id}: {run.checked}/{run.total} websites checked, {run.failing} failing "
                       f"({run.state.value})")
        if run.state not in (RunState.QUEUED, RunState.RUNNING):
            break
        db.session.rollback()  # the next look sees what the workers committed meanwhile
        if not ran:
            time.sleep(1)  # a worker holds it: watch
    click.echo(json.dumps({"run": run.id, "state": run.state.value, "checked": run.checked, "failing": run.failing,
                           "failing_by_check": inspections.failing_by_check(run.id), "error": run.error,
                           "seconds": round(time.perf_counter() - started, 1)}, ensure_ascii=False))
    if run.state != RunState.DONE:
        sys.exit(1)


