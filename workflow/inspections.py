"""网站备案检查 (issue 18 §1, §2, §4): inspection runs — started by a bureau (its province) or MIIT, or by the
rolling schedule —, run by the workers, their results and the open findings. The one module the console,
the API and the CLI call for the whole of issue 18: it re-exports the rectification notices (`workflow.rectification`)
and the unfiled websites (`workflow.unfiled`).

The worker (`run_inspection_jobs`, every worker at once) claims a run as the imports claim a job (FOR UPDATE SKIP
LOCKED on PostgreSQL, SQLite's write lock otherwise) under a lease; `attempts`, one higher per claim, is the claim's
fencing token. The run is pipelined (`_Reader`), so that a slow website holds one thread and not the run: the
inspector is fed the websites after `cursor` (website id order), read INSPECTION_BATCH at a time in read
transactions of the worker's thread as it asks for more, and fetches with no transaction open; the results are
stored as they complete (every INSPECTION_BATCH, or STORE_SECONDS), each time in ONE write transaction that begins
by renewing the lease under the token — a run taken over (its worker stalled past the lease) or cancelled meanwhile
writes nothing and stops. The results, the findings and the progress commit together, the cursor at the lowest
website still being inspected minus one; a resumed run reads again after it and skips the websites this run already
stored, so it never stores one twice. A run whose lease ran out MAX_TAKEOVERS times (its workers died) is failed.
After INSPECTION_SLICE_SECONDS a worker reads no more, stores what is in flight, hands its run back (lease cleared)
and goes on with its other steps; the next pass claims it again. A run that raises is marked failed with the
reason; the worker goes on.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)

import audit
import certificates
import inspector
import leases
import permissions
from extensions import db
from models import (
    Access,
    AccessRange,
    Certificate,
    CertificateStatus,
    CheckCode,
    Domain,
    Entity,
    FilingStatus,
    InspectionFinding,
    InspectionResult,
    InspectionRun,
    InspectionScope,
    Province,
    Role,
    RunState,
    User,
    Website,
    utcnow,
)
from permissions import Action
from validators import normalise_domain, with_and_without_www
from workflow import imports
from workflow.errors import NotFound, WorkflowError
from workflow.rectification import (
    answer_notice,
    beijing_today,
    close_notice,
    issue_notice,
    notice_scope,
    overdue,
    overdue_condition,
)
from workflow.unfiled import UnfiledReport, report_unfiled, sighting_scope

__all__ = [
    "UnfiledReport", "answer_notice", "beijing_today", "cancel_run", "close_notice", "failing_by_check",
    "finding_scope", "issue_notice",
    "notice_scope", "overdue", "overdue_condition", "report_unfiled", "run_inspection_jobs", "run_scope",
    "schedule_due", "sighting_scope", "start_run", "website_history",
]

#: lines of a LIST run (filing numbers or domains)
LIST_MAX = 10_000
#: ids per IN list of a query
CHUNK = 500
#: characters of one result's evidence (JSON); past it the excerpts are cut, then the evidence dropped
EVIDENCE_MAX = 16_000
EXCERPT_CUT = 300
#: results kept on a website's history page
HISTORY_MAX = 200
#: a province whose last rolling run took every website then due is looked at again after this long
SCHEDULE_RECHECK = timedelta(hours=1)
UNFINISHED = (RunState.QUEUED, RunState.RUNNING)
#: a run whose worker died this many times (each death a takeover) is failed at the last takeover: a website that
#: kills the worker would otherwise have the run taken over forever
MAX_TAKEOVERS = 3
TAKEN_OVER = ("检查多次中断（处理进程异常退出），已停止；已检查的结果保留，请重新发起检查，"
              "若仍中断请联系管理员查看工作进程日志。")
#: seconds after which the results inspected so far are stored, however few (the run's page shows progress)
STORE_SECONDS = 5.0

def run_scope(actor: Any) -> ColumnElement[bool]:
    """The runs of the bureau's province; MIIT all."""
    return permissions.inspection_run_scope(actor)


def finding_scope(actor: Any) -> ColumnElement[bool]:
    """The findings of the bureau's province; MIIT all."""
    return permissions.inspection_finding_scope(actor)


# --- which websites a run inspects ------------------------------------------------------------------------------

def in_force() -> tuple[ColumnElement[bool], ...]:
    """A website in force: its own status and its entity's active (a query joining Website and Entity)."""
    return Website.status == FilingStatus.ACTIVE, Entity.status == FilingStatus.ACTIVE


def _websites(province_code: str | None, scope: InspectionScope, isp_id: int | None,
              cutoff: datetime | None = None) -> Select[Any]:
    """The ids of the websites in force a run of this scope covers (LIST: the caller adds the listed ids)."""
    query = select(Website.id).join(Entity, Website.entity_id == Entity.id).where(*in_force())
    if province_code is not None:
        query = query.where(Entity.province_code == province_code)
    if scope == InspectionScope.ISP:
        query = query.where(Website.id.in_(permissions.served_websites(isp_id or 0)))
    if scope == InspectionScope.SCHEDULE:
        query = query.where(~exists().where(InspectionResult.website_id == Website.id,
                                            InspectionResult.checked_at >= cutoff))
    return query


def parse_targets(text: str) -> tuple[list[str], list[str]]:
    """A LIST run's lines → (targets: filing numbers as typed, domains normalised; refused: lines that are
    neither), each once, in order."""
    targets, refused = [], []
    for line in dict.fromkeys(part.strip() for part in text.splitlines()):
        if not line:
            continue
        if "ICP" in line:
            targets.append(line)
            continue
        try:
            targets.append(normalise_domain(line))
        except ValueError:
            refused.append(line)
    return targets, refused


def _listed_websites(targets: Sequence[str], province_code: str | None) -> dict[str, set[int]]:
    """Each target → the websites in force (of the province) it names: a website number its website, an entity
    number the entity's websites, a domain (with or without www.) the website filing it."""
    found: dict[str, set[int]] = {}
    numbers = [target for target in targets if "ICP" in target]
    variants = {variant: target for target in targets if "ICP" not in target
                for variant in with_and_without_www(target)}
    base = _websites(province_code, InspectionScope.ALL, None)
    for start in range(0, len(numbers), CHUNK):
        chunk = numbers[start:start + CHUNK]
        for key, website_id in db.session.execute(base.where(Website.number.in_(chunk))
                                                  .with_only_columns(Website.number, Website.id)):
            found.setdefault(key, set()).add(website_id)
        for key, website_id in db.session.execute(base.where(Entity.number.in_(chunk))
                                                  .with_only_columns(Entity.number, Website.id)):
            found.setdefault(key, set()).add(website_id)
    names = sorted(variants)
    for start in range(0, len(names), CHUNK):
        for name, website_id in db.session.execute(base.join(Domain, Domain.website_id == Website.id).where(
                Domain.live, Domain.name.in_(names[start:start + CHUNK])).with_only_columns(Domain.name, Website.id)):
            found.setdefault(variants[name], set()).add(website_id)
    return found


# --- starting and cancelling -------------------------------------------------------------------------------------

def start_run(actor: User, scope: InspectionScope, *, province_code: str | None = None, isp_id: int | None = None,
              targets: str = "") -> InspectionRun:
    """Queue a run for the workers: a bureau over its province only, MIIT over a province or the nation (None).
    ALL: every website in force; ISP: those one ISP serves now; LIST: filing numbers and domains, one per line —
    a line naming no website in force in the run's province refuses the run, with the lines named."""
    if not permissions.can(actor, Action.INSPECTION_RUN):
        raise NotFound()
    if actor.role == Role.BUREAU:
        province_code = province_code or actor.province_code
    if not permissions.may_inspect(actor, Action.INSPECTION_RUN, province_code):
        raise WorkflowError("只能检查本省的网站。", "province_code")
    if province_code is not None and db.session.get(Province, province_code) is None:
        raise WorkflowError("没有这个省份。", "province_code")
    scope = InspectionScope(scope)
    if scope == InspectionScope.SCHEDULE:
        raise WorkflowError("滚动检查由系统按周期自动发起，不能手动发起。", "scope")
    listed = _check_scope(scope, province_code, isp_id, targets)
    total = len(set().union(*listed.values())) if scope == InspectionScope.LIST else db.session.scalar(
        select(func.count()).select_from(_websites(province_code, scope, isp_id).subquery()))
    if not total:
        raise WorkflowError("检查范围内没有在用的网站。", "scope")
    run = InspectionRun(province_code=province_code, scope=scope, created_by_id=actor.id, created_at=utcnow(),
                        isp_id=isp_id if scope == InspectionScope.ISP else None, total=total,
                        targets="\n".join(listed) if scope == InspectionScope.LIST else "", state=RunState.QUEUED)
    db.session.add(run)
    db.session.flush()
    audit.record("inspection.started", object_type="inspection_run", object_id=run.id, actor=actor,
                 province_code=province_code, changes={"scope": scope.value, "province": province_code,
                                                       "isp_id": run.isp_id, "websites": total})
    return run


def _check_scope(scope: InspectionScope, province_code: str | None, isp_id: int | None,
                 targets: str) -> dict[str, set[int]]:
    """Refuse an ISP id that is no ISP, and a list with lines naming nothing; a LIST's targets → websites."""
    if scope == InspectionScope.ISP:
        isp = db.session.get(User, isp_id) if isp_id else None
        if isp is None or isp.role != Role.ISP:
            raise WorkflowError("请选择一个接入服务商。", "isp_id")
    if scope != InspectionScope.LIST:
        return {}
    lines, refused = parse_targets(targets)
    if refused:
        raise WorkflowError(f"以下内容既不是备案号也不是有效的域名：{_named(refused)}", "targets")
    if not lines:
        raise WorkflowError("请填写要检查的备案号或域名，每行一个。", "targets")
    if len(lines) > LIST_MAX:
        raise WorkflowError(f"一次最多检查 {LIST_MAX} 个备案号或域名。", "targets")
    listed = _listed_websites(lines, province_code)
    if unknown := [line for line in lines if line not in listed]:
        where = "本省" if province_code else "全国"
        raise WorkflowError(f"以下备案号或域名在{where}没有在用的备案：{_named(unknown)}", "targets")
    return {line: listed[line] for line in lines}


def _named(values: Sequence[str], shown: int = 20) -> str:
    named = "、".join(values[:shown])
    return named if len(values) <= shown else f"{named} 等 {len(values)} 个"


def cancel_run(actor: User, run: InspectionRun) -> None:
    """Cancel a queued or running run; its worker stops at its next batch (that batch's write is fenced off)."""
    if not permissions.may_inspect(actor, Action.INSPECTION_RUN, run.province_code):
        raise NotFound()
    if run.state not in UNFINISHED:
        raise WorkflowError("该检查已经结束，不能取消。")
    run.state, run.finished_at, run.lease_until = RunState.CANCELLED, utcnow(), None
    audit.record("inspection.cancelled", object_type="inspection_run", object_id=run.id, actor=actor,
                 province_code=run.province_code, changes={"checked": run.checked, "total": run.total})


def website_history(actor: User, website_id: int) -> list[InspectionResult]:
    """Every inspection of a website the actor may see, newest first (the last HISTORY_MAX)."""
    return list(db.session.scalars(select(InspectionResult).where(
        InspectionResult.website_id == website_id, permissions.inspection_finding_scope(actor, InspectionResult))
        .order_by(InspectionResult.id.desc()).limit(HISTORY_MAX)))


def fails_check(check: CheckCode) -> ColumnElement[bool]:
    """A result that failed `check` (`failing` holds the codes comma separated: matched whole, with its commas)."""
    return (literal(",") + InspectionResult.failing + literal(",")).contains(f",{check.value},", autoescape=True)


def failing_by_check(run_id: int) -> dict[str, int]:
    """How many of the run's websites failed each check: one count per check over the run's failing results."""
    row = db.session.execute(select(*(func.count().filter(fails_check(check)) for check in CheckCode))
                             .where(InspectionResult.run_id == run_id, InspectionResult.failing != "")).one()
    return {check.value: count for check, count in zip(CheckCode, row, strict=True)}


# --- the rolling pass (a singleton worker step) --------------------------------------------------------------

def schedule_due(now: datetime | None = None) -> dict[str, int]:
    """One rolling run per province with websites not inspected for INSPECTION_CYCLE_DAYS (at most
    INSPECTION_SCHEDULE_LIMIT each). A province is not counted while it has one unfinished, nor for SCHEDULE_RECHECK
    after its last one took every website due then or after a count found none (the count reads the province's
    websites: not at every pass of the worker)."""
    days, limit = current_app.config["INSPECTION_CYCLE_DAYS"], current_app.config["INSPECTION_SCHEDULE_LIMIT"]
    if days <= 0:
        return {"runs": 0, "websites": 0}
    now = now or utcnow()
    quiet = current_app.extensions.setdefault("inspection_schedule_quiet", {})  # province → not counted before
    due = {}
    with imports._reading():
        for code in _provinces_to_look_at(now, limit):
            if quiet.get(code, now) > now:
                continue
            due[code] = db.session.scalar(select(func.count()).select_from(_websites(
                code, InspectionScope.SCHEDULE, None, now - timedelta(days=days)).limit(limit).subquery()))
            if not due[code]:
                quiet[code] = now + SCHEDULE_RECHECK
                del due[code]
    if due:
        with imports._writing():
            leases.fence()
            for code, count in due.items():
                run = InspectionRun(province_code=code, scope=InspectionScope.SCHEDULE, created_at=now, total=count,
                                    state=RunState.QUEUED)
                db.session.add(run)
                db.session.flush()
                audit.record("inspection.scheduled", object_type="inspection_run", object_id=run.id,
                             province_code=code, actor_username="schedule", changes={"websites": count})
    return {"runs": len(due), "websites": sum(due.values())}


def _provinces_to_look_at(now: datetime, limit: int) -> list[str]:
    """The active provinces, less those with a rolling run unfinished or one that took every website due less
    than SCHEDULE_RECHECK ago."""
    newest = select(func.max(InspectionRun.id)).where(InspectionRun.scope == InspectionScope.SCHEDULE).group_by(
        InspectionRun.province_code)
    resting = {code for code, state, total, created in db.session.execute(select(
        InspectionRun.province_code, InspectionRun.state, InspectionRun.total, InspectionRun.created_at).where(
        InspectionRun.id.in_(newest))) if state in UNFINISHED or (total < limit and created > now - SCHEDULE_RECHECK)}
    return [code for code in db.session.scalars(select(Province.code).where(Province.active).order_by(Province.code))
            if code not in resting]


# --- the worker ----------------------------------------------------------------------------------------------

class RunStopped(Exception):
    """The run was cancelled, or taken over by another worker, since this worker's claim: write nothing more."""


@dataclass(frozen=True)
class Claim:
    """A run as this worker claimed it: what its batches need, read once."""

    id: int
    token: int
    scope: InspectionScope
    province_code: str | None
    isp_id: int | None
    targets: str
    created_at: datetime
    total: int
    takeovers: int


def _lease() -> datetime:
    return utcnow() + timedelta(seconds=current_app.config["INSPECTION_LEASE_SECONDS"])


def _claimable(now: datetime) -> ColumnElement[bool]:
    """Queued; running but handed back (no lease); or running under a lease nobody renewed (its worker died)."""
    return or_(InspectionRun.state == RunState.QUEUED, and_(InspectionRun.state == RunState.RUNNING, or_(
        InspectionRun.lease_until.is_(None), InspectionRun.lease_until < now)))


def _dead() -> ColumnElement[bool]:
    """A claimable run still under a lease: one that ran out, its worker dead or stalled (not handed back)."""
    return and_(InspectionRun.state == RunState.RUNNING, InspectionRun.lease_until.is_not(None))


def _claim_next() -> Claim | None:
    """The oldest claimable run, set running under a new lease and token; two workers never take the same one."""
    now = utcnow()
    oldest = select(InspectionRun.id).where(_claimable(now)).order_by(InspectionRun.id).limit(1)
    if db.engine.dialect.name == "postgresql":
        oldest = oldest.with_for_update(skip_locked=True)
    with imports._writing():
        run_id = db.session.scalar(oldest)
        if run_id is None:
            return None
        claimed = db.session.execute(update(InspectionRun).where(InspectionRun.id == run_id, _claimable(now)).values(
            state=RunState.RUNNING, lease_until=_lease(), attempts=InspectionRun.attempts + 1,
            takeovers=InspectionRun.takeovers + case((_dead(), 1), else_=0),
            started_at=func.coalesce(InspectionRun.started_at, now)).returning(
            InspectionRun.attempts, InspectionRun.scope, InspectionRun.province_code, InspectionRun.isp_id,
            InspectionRun.targets, InspectionRun.created_at, InspectionRun.total, InspectionRun.takeovers)
            .execution_options(synchronize_session=False)).one_or_none()
    return Claim(run_id, *claimed) if claimed is not None else None


def _fence(claim: Claim, **values: Any) -> None:
    """The first statement of each write transaction of a run: the lease renewed (and `values` set) if the run is
    still running under this claim's token, else RunStopped (the caller's transaction rolled back)."""
    renewed = db.session.execute(update(InspectionRun).where(
        InspectionRun.id == claim.id, InspectionRun.attempts == claim.token, InspectionRun.state == RunState.RUNNING)
        .values(**({"lease_until": _lease()} | values)).execution_options(synchronize_session=False)).rowcount
    if renewed != 1:
        raise RunStopped(claim.id)


def run_inspection_jobs(limit: int = 1) -> int:
    """The worker's step: run the claimable runs, oldest first, each for a slice; how many ran. Never raises for a
    run."""
    ran = 0
    while ran < limit and (claim := _claim_next()) is not None:
        ran += 1
        _run_or_fail(claim)
    return ran


def _run_or_fail(claim: Claim) -> None:
    if claim.takeovers >= MAX_TAKEOVERS:
        _fail(claim, TAKEN_OVER)
        return
    try:
        _run(claim, time.monotonic() + current_app.config["INSPECTION_SLICE_SECONDS"])
    except RunStopped:
        db.session.rollback()
        current_app.logger.info("inspection run %s: cancelled or taken over; this worker stops", claim.id)
    except Exception as error:  # one run, whatever happens in it, never stops the worker
        db.session.rollback()
        current_app.logger.exception("inspection run %s failed", claim.id)
        _fail(claim, f"检查时发生内部错误（{type(error).__name__}），已停止；已检查的结果保留，请重新发起检查。")


def _fail(claim: Claim, message: str) -> None:
    """Mark the run failed; if even that fails (the database is gone), its lease runs out and it is taken over."""
    try:
        with imports._writing():
            _finish(claim, RunState.FAILED, error=message)
    except RunStopped:
        pass
    except Exception:  # see the docstring
        db.session.rollback()
        current_app.logger.exception("inspection run %s could not be marked failed", claim.id)


def _finish(claim: Claim, state: RunState, error: str = "") -> None:
    """In the caller's write transaction: the run over (fenced), audited."""
    _fence(claim, state=state, finished_at=utcnow(), error=error[:500], lease_until=None)
    run = db.session.get(InspectionRun, claim.id, populate_existing=True)
    audit.record(f"inspection.{state.value}", object_type="inspection_run", object_id=claim.id,
                 province_code=claim.province_code, actor_username="worker", changes={
                     "checked": run.checked, "failing": run.failing, "total": run.total, "error": error})


def _run(claim: Claim, deadline: float) -> None:
    """One slice of a run: the websites read batch by batch as the inspector asks for them, the results stored as
    they complete (every INSPECTION_BATCH, or STORE_SECONDS), so a slow website holds one thread, not the run."""
    reader = _Reader.resume(claim, deadline)
    pending: list[Inspected] = []
    stored_at = time.monotonic()
    for done in inspect_sites(reader.sites()):
        reader.completed(done[0].website_id)
        pending.append(done)
        if (len(pending) >= current_app.config["INSPECTION_BATCH"] or reader.stopped
                or time.monotonic() - stored_at > STORE_SECONDS):
            _store_pending(claim, reader, pending)
            pending, stored_at = [], time.monotonic()
    if pending:
        _store_pending(claim, reader, pending)
    with imports._writing():
        if reader.over:
            _finish(claim, RunState.DONE)
        else:  # handed back: claimable again at once, by any worker
            _fence(claim, lease_until=None, cursor=reader.cursor)


@dataclass
class _Reader:
    """A run's websites read INSPECTION_BATCH at a time, each read in a read transaction of the worker's thread
    when the inspector asks for more (`inspect_many` takes a few ahead of its threads); which are still being
    inspected, so that the stored cursor never passes one of them."""

    claim: Claim
    deadline: float
    cursor: int  # the last website read
    counted: int  # websites of the run stored or read (a rolling run stops at its total)
    listed: list[int]  # a LIST run's websites
    owners: dict[int, tuple[int, str]] = field(default_factory=dict)  # read, not stored: entity id, province
    in_flight: set[int] = field(default_factory=set)  # read, not inspected yet
    over: bool = False  # no website left to read: the run is done once those read are stored
    stopped: bool = False  # nothing more to read in this slice (over, or the slice's time is up)

    @classmethod
    def resume(cls, claim: Claim, deadline: float) -> _Reader:
        with imports._reading():
            cursor, checked = db.session.execute(select(InspectionRun.cursor, InspectionRun.checked).where(
                InspectionRun.id == claim.id)).one()
            return cls(claim, deadline, cursor, checked, _listed_ids(claim))

    def sites(self) -> Iterator[inspector.Site]:
        """Batch after batch; at least one per slice, then none after the slice's deadline."""
        while not self.stopped:
            yield from self._read()
            if time.monotonic() > self.deadline:
                self.stopped = True

    def _read(self) -> list[inspector.Site]:
        """The next batch, less the websites already stored in this run (a resumed run's cursor is the lowest
        website that was in flight, those after it may be stored)."""
        wanted = current_app.config["INSPECTION_BATCH"]
        if self.claim.scope == InspectionScope.SCHEDULE:
            wanted = min(wanted, self.claim.total - self.counted)
        with imports._reading():
            ids, after = _next_batch(self.claim, self.cursor, self.listed, wanted) if wanted > 0 else ([], self.cursor)
            stored = set(db.session.scalars(select(InspectionResult.website_id).where(
                InspectionResult.run_id == self.claim.id, InspectionResult.website_id.in_(ids)))) if ids else set()
            loaded = load_sites([website_id for website_id in ids if website_id not in stored])
        if after == self.cursor:
            self.over = self.stopped = True
            return []
        for site, entity_id, province in loaded:
            self.owners[site.website_id] = (entity_id, province)
            self.in_flight.add(site.website_id)
        self.cursor, self.counted = after, self.counted + len(loaded)
        return [site for site, _entity, _province in loaded]

    def completed(self, website_id: int) -> None:
        self.in_flight.discard(website_id)

    def stored_cursor(self) -> int:
        """Where a resumed run goes on: before the lowest website still being inspected, else after the last read."""
        return min(self.in_flight) - 1 if self.in_flight else self.cursor


def _store_pending(claim: Claim, reader: _Reader, pending: list[Inspected]) -> None:
    with imports._reading():
        pending = settle_certificates(pending)
    _store(claim, {site.website_id: reader.owners.pop(site.website_id) for site, _checks, _seconds in pending},
           pending, reader.stored_cursor())


def _listed_ids(claim: Claim) -> list[int]:
    """A LIST run's websites (in force when the batch is read, checked then), in id order."""
    if claim.scope != InspectionScope.LIST:
        return []
    return sorted(set().union(*_listed_websites(claim.targets.splitlines(), claim.province_code).values()))


def _next_batch(claim: Claim, cursor: int, listed: list[int], wanted: int) -> tuple[list[int], int]:
    """The next websites in force of the run after `cursor`, and the cursor after them (unchanged: the run is
    over). A website that stopped being in force since the run began is skipped."""
    if claim.scope == InspectionScope.LIST:
        candidates = [website_id for website_id in listed if website_id > cursor][:wanted]
        if not candidates:
            return [], cursor
        return list(db.session.scalars(_websites(claim.province_code, claim.scope, claim.isp_id).where(
            Website.id.in_(candidates)).order_by(Website.id))), candidates[-1]
    cutoff = claim.created_at - timedelta(days=current_app.config["INSPECTION_CYCLE_DAYS"])
    ids = list(db.session.scalars(_websites(claim.province_code, claim.scope, claim.isp_id, cutoff).where(
        Website.id > cursor).order_by(Website.id).limit(wanted)))
    return ids, ids[-1] if ids else cursor


def load_sites(ids: Sequence[int]) -> list[tuple[inspector.Site, int, str]]:
    """The websites as the inspector needs them, each with its entity id and province: four queries."""
    if not ids:
        return []
    rows = db.session.execute(select(Website.id, Website.number, Website.home_url, Entity.id, Entity.number,
                                     Entity.province_code).join(Entity, Website.entity_id == Entity.id)
                              .where(Website.id.in_(ids)).order_by(Website.id)).all()
    domains: dict[int, list[str]] = {}
    for website_id, name in db.session.execute(select(Domain.website_id, Domain.name).where(
            Domain.website_id.in_(ids), Domain.live).order_by(Domain.id)):
        domains.setdefault(website_id, []).append(name)
    ranges: dict[int, dict[int, dict[tuple[int, int], None]]] = {}
    for website_id, access_id, start, end in db.session.execute(
            select(Access.website_id, Access.id, AccessRange.start_key, AccessRange.end_key)
            .outerjoin(AccessRange, AccessRange.access_id == Access.id)
            .where(Access.website_id.in_(ids), Access.live).order_by(Access.id, AccessRange.start_key)):
        spans = ranges.setdefault(website_id, {}).setdefault(access_id, {})
        if start is not None:  # a range is stored once per index bucket it touches: kept once
            spans[(int(start, 16), int(end, 16))] = None
    current = dict(db.session.execute(select(Certificate.entity_id, Certificate.id).where(
        Certificate.entity_id.in_({row[3] for row in rows}), Certificate.status == CertificateStatus.CURRENT)).all())
    return [(inspector.Site(website_id=website_id, website_number=number or "", entity_number=entity_number or "",
                            domains=tuple(domains.get(website_id, ())), home_url=home_url or "",
                            accesses=tuple((access_id, tuple(spans)) for access_id, spans
                                           in ranges.get(website_id, {}).items()),
                            current_certificate_id=current.get(entity_id)), entity_id, province)
            for website_id, number, home_url, entity_id, entity_number, province in rows]


def inspect_sites(sites: Iterable[inspector.Site]) -> Iterator[tuple[inspector.Site, list[inspector.Check], float]]:
    """The inspector on the app's settings (the static-hosts file re-read: once a slice) and the registry's public
    keys, as the sites complete; no transaction open while it fetches."""
    config = current_app.config
    fetcher = inspector.Fetcher(inspector.Policy.from_config(config), inspector.resolver_from_config(config))
    return inspector.inspect_many(sites, fetcher, certificates.keyring().jwks())


Inspected = tuple[inspector.Site, list[inspector.Check], float]


def settle_certificates(inspected: list[Inspected]) -> list[Inspected]:
    """A certificate found that is not the entity's current one ("stale"): superseded, revoked or unknown, read in
    one query."""
    stale = {str(check.evidence.get("certificate_id")) for _site, checks, _seconds in inspected for check in checks
             if check.code == CheckCode.CERT and check.outcome == "stale"}
    if not stale:
        return inspected
    statuses = {certificate_id: status.value for certificate_id, status in db.session.execute(
        select(Certificate.id, Certificate.status).where(Certificate.id.in_(stale)))}
    return [(site, [inspector.certificate_status_check(check, statuses.get(str(check.evidence.get("certificate_id"))))
                    if check.code == CheckCode.CERT and check.outcome == "stale" else check for check in checks],
             seconds) for site, checks, seconds in inspected]


# --- storing a batch -----------------------------------------------------------------------------------------------

def evidence_json(checks: Iterable[inspector.Check]) -> str:
    """Every check's outcome, message and evidence, bounded (EVIDENCE_MAX): long texts cut first, then the
    evidence dropped (the outcomes and messages stay)."""
    entries = {check.code: {"passed": check.passed, "outcome": check.outcome, "message": check.message,
                            "evidence": check.evidence} for check in checks}
    text = json.dumps(entries, ensure_ascii=False, default=str)
    if len(text) > EVIDENCE_MAX:
        for entry in entries.values():
            entry["evidence"] = {key: value[:EXCERPT_CUT] + "…" if isinstance(value, str) and len(value) > EXCERPT_CUT
                                 else value for key, value in entry["evidence"].items()}
        text = json.dumps(entries, ensure_ascii=False, default=str)
    if len(text) > EVIDENCE_MAX:
        for entry in entries.values():
            entry["evidence"] = {"truncated": True}
        text = json.dumps(entries, ensure_ascii=False, default=str)
    return text


def _store(claim: Claim, owners: dict[int, tuple[int, str]], inspected: list[Inspected], cursor: int) -> None:
    """One write transaction, fenced: the results, the findings moved, the progress."""
    now = utcnow()
    failing = {site.website_id: [check.code for check in checks if check.passed is False]
               for site, checks, _seconds in inspected}
    with imports._writing():
        _fence(claim, cursor=cursor, checked=InspectionRun.checked + len(inspected),
               failing=InspectionRun.failing + sum(1 for codes in failing.values() if codes),
               seconds=InspectionRun.seconds + sum(seconds for _site, _checks, seconds in inspected))
        if not inspected:
            return
        result_ids = dict(db.session.execute(insert(InspectionResult).returning(
            InspectionResult.website_id, InspectionResult.id), [{
                "run_id": claim.id, "website_id": site.website_id, "entity_id": owners[site.website_id][0],
                "province_code": owners[site.website_id][1], "checked_at": now,
                "passed": not failing[site.website_id], "failing": ",".join(failing[site.website_id]),
                "evidence": evidence_json(checks), "duration_ms": round(seconds * 1000)}
                for site, checks, seconds in inspected]).all())
        _move_findings(owners, inspected, result_ids, now)


def _move_findings(owners: dict[int, tuple[int, str]], inspected: list[Inspected], result_ids: dict[int, int],
                   now: datetime) -> None:
    """A failing check opens its finding (first seen now) or moves it (last seen now); a passing one deletes it; a
    check not made (None) leaves it as it was."""
    ids = sorted(owners)
    open_now = {tuple(row) for row in db.session.execute(select(InspectionFinding.website_id, InspectionFinding.check)
                                                         .where(InspectionFinding.website_id.in_(ids)))}
    new, moved, passed = [], [], {}
    for site, checks, _seconds in inspected:
        for check in checks:
            key = (site.website_id, CheckCode(check.code))
            if check.passed:
                passed.setdefault(key[1], []).append(site.website_id)
            elif check.passed is False:
                values = {"outcome": check.outcome[:32], "message": check.message[:500], "last_seen": now,
                          "last_result_id": result_ids[site.website_id]}
                if key in open_now:
                    moved.append({"b_website": key[0], "b_check": key[1], **values})
                else:
                    new.append({"website_id": key[0], "check": key[1], "entity_id": owners[key[0]][0],
                                "province_code": owners[key[0]][1], "first_seen": now, **values})
    if new:
        db.session.execute(insert(InspectionFinding), new)
    if moved:
        table = InspectionFinding.__table__
        db.session.execute(update(table).where(table.c.website_id == bindparam("b_website"),
                                               table.c.check == bindparam("b_check")), moved)
    for code, website_ids in passed.items():
        db.session.execute(delete(InspectionFinding).where(InspectionFinding.check == code,
                                                           InspectionFinding.website_id.in_(website_ids)))
