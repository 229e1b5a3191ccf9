"""Inspection runs (issue 18 §1, §4): who may start one over what; the worker's batches — results, findings opened,
moved and closed, progress —, no transaction open while websites are fetched; cancellation, failure, takeover after
a lease ran out, a hand-back after a slice; the rolling schedule. The inspector is replaced by a stand-in here
(tests/test_inspection_sites.py runs real HTTP against the loopback farm)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from sqlalchemy import delete, func, select, update

import workers
import workflow.inspections as inspections
from extensions import db
from models import (
    Access,
    AuditEvent,
    FilingStatus,
    InspectionFinding,
    InspectionResult,
    InspectionRun,
    InspectionScope,
    RunState,
    Website,
    utcnow,
)
from tests.helpers import user_named
from tests.inspection_factories import FakeInspector, filed_website
from workflow.errors import NotFound, WorkflowError

ALL, ISP, LIST = InspectionScope.ALL, InspectionScope.ISP, InspectionScope.LIST


@pytest.fixture
def fake(monkeypatch) -> FakeInspector:
    stand_in = FakeInspector()
    monkeypatch.setattr(inspections, "inspect_sites", stand_in)
    return stand_in


@pytest.fixture
def sites(app, people) -> dict[str, int]:
    """Three 天津 websites (the second served by both 天津 ISPs) and one 北京 website: key → website id."""
    with app.app_context():
        made = {"tj1": filed_website(people), "tj2": filed_website(people, ("isp", "isp2")),
                "tj3": filed_website(people, ("isp2",)),
                "bj": filed_website(people, ("isp_bj",), province="110000", bureau="bureau_bj")}
        return {key: website.id for key, website in made.items()}


def _start(username: str, scope: InspectionScope = ALL, **options) -> int:
    run = inspections.start_run(user_named(username), scope, **options)
    db.session.commit()
    return run.id


def _run(run_id: int) -> InspectionRun:
    db.session.expire_all()
    return db.session.get(InspectionRun, run_id)


def _results(run_id: int) -> list[int]:
    return list(db.session.scalars(select(InspectionResult.website_id).where(InspectionResult.run_id == run_id)
                                   .order_by(InspectionResult.website_id)))


# --- who may start what -------------------------------------------------------------------------------------------

def test_a_bureau_inspects_its_province_and_miit_a_province_or_the_nation(app, people, sites) -> None:
    """Does a run cover exactly the websites in force of its scope, counted when it starts?"""
    with app.app_context():
        tianjin = _run(_start(people["bureau"]))
        assert (tianjin.province_code, tianjin.total, tianjin.state) == ("120000", 3, RunState.QUEUED)
        assert _run(_start(people["miit"])).total == 4  # national: province None
        assert _run(_start(people["miit"], province_code="110000")).total == 1
        assert _run(_start(people["bureau"], ISP, isp_id=user_named(people["isp2"]).id)).total == 2
        assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "inspection.started")) == 4


REFUSALS = [
    ("bureau", {"province_code": "110000"}, "只能检查本省"),
    ("miit", {"province_code": "999999"}, "没有这个省份"),
    ("bureau", {"scope": ISP, "isp_id": None}, "接入服务商"),
    ("bureau", {"scope": ISP, "isp_key": "icp"}, "接入服务商"),
    ("bureau", {"scope": InspectionScope.SCHEDULE}, "滚动检查"),
    ("bureau", {"scope": LIST, "targets": ""}, "每行一个"),
    ("bureau", {"scope": LIST, "targets": "not a domain!\nsite1.cn"}, "not a domain!"),
    ("bureau", {"scope": ISP, "isp_key": "isp_bj"}, "没有在用的网站"),
]


def test_refused_runs_say_why_and_other_roles_find_nothing(app, people, sites) -> None:
    """A bureau for another province, an unknown province, an ISP id that is no ISP, a scope with nothing in it:
    refused with the reason; an ISP, an ICP, an IP reporter, a special-query account: not found."""
    with app.app_context():
        for who, options, message in REFUSALS:
            options = dict(options)
            if "isp_key" in options:
                options["isp_id"] = user_named(people[options.pop("isp_key")]).id
            scope = options.pop("scope", ALL)
            with pytest.raises(WorkflowError, match=message):
                inspections.start_run(user_named(people[who]), scope, **options)
        for who in ("isp", "icp", "ip_reporter", "special_query"):
            with pytest.raises(NotFound):
                inspections.start_run(user_named(people[who]), ALL)
        assert db.session.scalar(select(func.count()).select_from(InspectionRun)) == 0


def test_a_list_takes_website_and_entity_numbers_and_domains_and_names_what_it_does_not_find(app, people,
                                                                                               sites) -> None:
    """Unknown lines (or another province's) refuse the list, each named; known ones give their websites."""
    with app.app_context():
        tj1, tj2, bj = (db.session.get(Website, sites[key]) for key in ("tj1", "tj2", "bj"))
        bj_domain = bj.domains[0].name
        with pytest.raises(WorkflowError) as refused:
            inspections.start_run(user_named(people["bureau"]), LIST,
                                  targets=f"{tj1.number}\nnowhere.example.cn\n{bj_domain}")
        assert "nowhere.example.cn" in refused.value.message and bj_domain in refused.value.message
        assert tj1.number not in refused.value.message
        bare = tj2.domains[0].name.removeprefix("www.")
        run = _run(_start(people["bureau"], LIST, targets=f"{tj1.entity.number}\n WWW.{bare.upper()}. \n{tj1.number}"))
        assert run.total == 2 and run.targets.splitlines() == [tj1.entity.number, f"www.{bare}", tj1.number]


# --- the worker ---------------------------------------------------------------------------------------------------

def test_a_run_stores_results_and_findings_in_batches_with_no_transaction_open_while_fetching(app, people, sites,
                                                                                             fake, monkeypatch) -> None:
    """Results with evidence, findings opened for failing checks, progress counted; the websites are read in
    batches of INSPECTION_BATCH as the inspector asks for them, with no transaction open while it inspects."""
    app.config["INSPECTION_BATCH"] = 2
    read: list[list[int]] = []
    load_sites = inspections.load_sites
    monkeypatch.setattr(inspections, "load_sites", lambda ids: read.append(list(ids)) or load_sites(ids))
    with app.app_context():
        fake.failing = {sites["tj2"]: {"number": "missing", "cert": "absent"}, sites["tj3"]: {"alive": "dead",
                                                                                            "number": None}}
        run_id = _start(people["bureau"])
        assert inspections.run_inspection_jobs() == 1
        run = _run(run_id)
        assert (run.state, run.checked, run.failing, run.total, run.cursor) == (RunState.DONE, 3, 2, 3, sites["tj3"])
        assert read == [[sites["tj1"], sites["tj2"]], [sites["tj3"]], []] and fake.in_transaction == [False] * 3
        assert _results(run_id) == [sites["tj1"], sites["tj2"], sites["tj3"]]
        failing = dict(db.session.execute(select(InspectionResult.website_id, InspectionResult.failing)).all())
        assert failing == {sites["tj1"]: "", sites["tj2"]: "number,cert", sites["tj3"]: "alive"}
        evidence = json.loads(db.session.scalar(select(InspectionResult.evidence).where(
            InspectionResult.website_id == sites["tj2"])))
        assert evidence["cert"]["outcome"] == "absent" and evidence["dns"]["evidence"]["url"].startswith("http://")
        findings = {tuple(row) for row in db.session.execute(select(InspectionFinding.website_id,
                                                                    InspectionFinding.check))}
        assert findings == {(sites["tj2"], "number"), (sites["tj2"], "cert"), (sites["tj3"], "alive")}
        assert run.seconds == pytest.approx(0.03) and run.finished_at is not None
        assert inspections.run_inspection_jobs() == 0  # nothing left to claim


def test_findings_keep_first_seen_move_last_seen_and_close_when_the_check_passes(app, people, sites, fake) -> None:
    """A later run: a still-failing check moves its finding; a passing one deletes it; one not checked (None)
    leaves it as it was."""
    with app.app_context():
        fake.failing = {sites["tj1"]: {"number": "missing", "link": "unlinked", "cert": "absent"}}
        first_run = _start(people["bureau"])
        inspections.run_inspection_jobs()
        first = {row.check: (row.first_seen, row.last_seen, row.last_result_id)
                 for row in db.session.scalars(select(InspectionFinding))}
        for finding in db.session.scalars(select(InspectionFinding)):
            finding.first_seen -= timedelta(days=3)
            finding.last_seen -= timedelta(days=3)
        db.session.commit()
        fake.failing = {sites["tj1"]: {"number": "missing", "link": None}}
        second_run = _start(people["bureau"])
        inspections.run_inspection_jobs()
        after = {row.check: row for row in db.session.scalars(select(InspectionFinding))}
        assert set(after) == {"number", "link"}  # cert passed: closed
        assert after["number"].first_seen == first["number"][0] - timedelta(days=3)
        assert after["number"].last_seen > first["number"][1]
        assert after["link"].last_seen == first["link"][1] - timedelta(days=3)  # not checked: untouched
        assert after["number"].last_result_id != first["number"][2]
        history = inspections.website_history(user_named(people["bureau"]), sites["tj1"])
        assert [result.run_id for result in history] == [second_run, first_run]
        assert inspections.website_history(user_named(people["bureau_bj"]), sites["tj1"]) == []
        assert inspections.website_history(user_named(people["isp"]), sites["tj1"]) == []


def test_a_website_ended_between_batches_is_skipped(app, people, sites, fake) -> None:
    app.config["INSPECTION_BATCH"] = 1

    def end_tj3(website_id: int) -> None:
        if website_id == sites["tj1"]:
            with app.app_context():
                db.session.get(Website, sites["tj3"]).status = FilingStatus.CANCELLED
                db.session.commit()

    fake.before_each = end_tj3
    with app.app_context():
        run_id = _start(people["bureau"])
        inspections.run_inspection_jobs()
        assert _results(run_id) == [sites["tj1"], sites["tj2"]] and _run(run_id).state == RunState.DONE


def test_a_cancelled_run_stops_at_its_next_batch_and_writes_nothing_more(app, people, sites, fake) -> None:
    app.config["INSPECTION_BATCH"] = 1
    with app.app_context():
        run_id = _start(people["bureau"])

        def cancel_during_the_second(website_id: int) -> None:
            if website_id == sites["tj2"]:
                with app.app_context():
                    inspections.cancel_run(user_named(people["bureau"]), db.session.get(InspectionRun, run_id))
                    db.session.commit()

        fake.before_each = cancel_during_the_second
        inspections.run_inspection_jobs()
        run = _run(run_id)
        assert (run.state, run.checked, _results(run_id)) == (RunState.CANCELLED, 1, [sites["tj1"]])
        with pytest.raises(WorkflowError, match="已经结束"):
            inspections.cancel_run(user_named(people["bureau"]), run)
        with pytest.raises(NotFound):
            inspections.cancel_run(user_named(people["bureau_bj"]), run)


def test_a_run_that_raises_is_failed_with_a_message_and_the_worker_goes_on(app, people, sites, fake) -> None:
    with app.app_context():
        failing, fine = _start(people["bureau"]), _start(people["bureau_bj"])
        fake.before_each = lambda website_id: setattr(fake, "raises", RuntimeError("boom")
                                                      if website_id == sites["tj1"] else None)
        assert workers.run_step(next(step for step in workers.STEPS if step.name == "inspections")) == 1
        assert inspections.run_inspection_jobs() == 1
        assert (_run(failing).state, _run(fine).state) == (RunState.FAILED, RunState.DONE)
        assert "内部错误（RuntimeError）" in _run(failing).error and _results(failing) == []
        assert db.session.scalar(select(AuditEvent.action).where(AuditEvent.object_id == str(failing)).order_by(
            AuditEvent.id.desc()).limit(1)) == "inspection.failed"


def test_a_stalled_worker_is_taken_over_and_its_late_batch_is_fenced_off(app, people, sites, fake) -> None:
    """Worker A claims and stalls past its lease; worker B takes the run over and finishes it; A, resuming,
    writes nothing — every website once in the run's results."""
    app.config["INSPECTION_BATCH"] = 1
    with app.app_context():
        run_id = _start(people["bureau"])
        stalled = inspections._claim_next()
        db.session.execute(update(InspectionRun).values(lease_until=utcnow() - timedelta(seconds=1)))
        db.session.commit()
        assert inspections.run_inspection_jobs() == 1  # B
        assert _run(run_id).state == RunState.DONE and _run(run_id).attempts == 2
        with pytest.raises(inspections.RunStopped):
            inspections._run(stalled, deadline=float("inf"))  # A resumes
        db.session.rollback()
        assert _results(run_id) == [sites["tj1"], sites["tj2"], sites["tj3"]] and _run(run_id).checked == 3


def _lease_runs_out() -> None:
    db.session.execute(update(InspectionRun).where(InspectionRun.lease_until.is_not(None)).values(
        lease_until=utcnow() - timedelta(seconds=1)))
    db.session.commit()


def test_a_resumed_run_skips_the_websites_stored_after_its_cursor(app, people, sites, fake) -> None:
    """A worker died with tj1 still being inspected and tj2 stored (the cursor kept before tj1): the worker taking
    the run over inspects tj1 and tj3 only, and each website is once in the results."""
    with app.app_context():
        run_id = _start(people["bureau"])
        died = inspections._claim_next()
        with inspections.imports._reading():
            [(site, entity_id, province)] = inspections.load_sites([sites["tj2"]])
        inspections._store(died, {site.website_id: (entity_id, province)}, [(site, fake.checks(site), 0.01)],
                           sites["tj1"] - 1)
        _lease_runs_out()
        assert inspections.run_inspection_jobs() == 1
        run = _run(run_id)
        assert fake.inspected == [sites["tj1"], sites["tj3"]] and (run.state, run.checked) == (RunState.DONE, 3)
        assert _results(run_id) == [sites["tj1"], sites["tj2"], sites["tj3"]]


def test_a_run_whose_worker_keeps_dying_is_failed_and_a_hand_back_is_no_takeover(app, people, sites, fake) -> None:
    """A claim of a run whose lease ran out is a takeover, a claim after a slice handed back is not; the takeover
    that would be the MAX_TAKEOVERS-th fails the run with the reason (its results kept). A run taken over fewer
    times finishes."""
    app.config.update(INSPECTION_BATCH=1, INSPECTION_SLICE_SECONDS=0)
    with app.app_context():
        run_id, survivor = _start(people["bureau"]), _start(people["bureau_bj"])
        inspections.run_inspection_jobs()  # two slices of 天津's run (the oldest), each handed back
        inspections.run_inspection_jobs()
        assert (_run(run_id).attempts, _run(run_id).takeovers, _results(run_id)) == (2, 0, [sites["tj1"], sites["tj2"]])
        claimed = [inspections._claim_next(), inspections._claim_next()]  # claimed, and their workers die
        assert {(claim.id, claim.takeovers) for claim in claimed} == {(run_id, 0), (survivor, 0)}
        for takeover in range(1, inspections.MAX_TAKEOVERS):
            _lease_runs_out()
            taken = [inspections._claim_next(), inspections._claim_next()]  # both taken over, both die again
            assert {(claim.id, claim.takeovers) for claim in taken} == {(survivor, takeover), (run_id, takeover)}
        _lease_runs_out()
        db.session.execute(update(InspectionRun).where(InspectionRun.id == survivor).values(
            takeovers=inspections.MAX_TAKEOVERS - 2))  # 北京's worker died less often
        db.session.commit()
        app.config["INSPECTION_SLICE_SECONDS"] = 60
        assert inspections.run_inspection_jobs(limit=5) == 2
        failed, finished = _run(run_id), _run(survivor)
        assert (failed.state, failed.error, failed.takeovers) == (RunState.FAILED, inspections.TAKEN_OVER,
                                                                 inspections.MAX_TAKEOVERS)
        assert _results(run_id) == [sites["tj1"], sites["tj2"]] and failed.finished_at is not None
        assert (finished.state, _results(survivor)) == (RunState.DONE, [sites["bj"]])
        assert db.session.scalar(select(AuditEvent.action).where(AuditEvent.object_id == str(run_id)).order_by(
            AuditEvent.id.desc()).limit(1)) == "inspection.failed"


def test_a_run_is_handed_back_after_its_slice_and_resumed_after_its_cursor(app, people, sites, fake) -> None:
    app.config.update(INSPECTION_BATCH=2, INSPECTION_SLICE_SECONDS=0)
    with app.app_context():
        run_id = _start(people["bureau"])
        inspections.run_inspection_jobs()
        run = _run(run_id)
        assert (run.state, run.lease_until, run.checked, run.cursor) == (RunState.RUNNING, None, 2, sites["tj2"])
        inspections.run_inspection_jobs()  # tj3, handed back again
        inspections.run_inspection_jobs()  # nothing after the cursor: done
        assert _run(run_id).state == RunState.DONE and fake.inspected == [sites["tj1"], sites["tj2"], sites["tj3"]]


def test_an_isp_run_inspects_what_the_isp_serves_now(app, people, sites, fake) -> None:
    with app.app_context():
        run_id = _start(people["bureau"], ISP, isp_id=user_named(people["isp2"]).id)
        db.session.execute(update(Access).where(Access.website_id == sites["tj3"]).values(live=False))
        db.session.commit()
        inspections.run_inspection_jobs()
        assert _results(run_id) == [sites["tj2"]]


def test_two_claims_take_two_different_runs(app, people, sites) -> None:
    """FOR UPDATE SKIP LOCKED (PostgreSQL) or the write lock (SQLite): a claimed run is not claimed again."""
    with app.app_context():
        runs = {_start(people["bureau"]), _start(people["bureau_bj"])}
        first, second = inspections._claim_next(), inspections._claim_next()
        assert {first.id, second.id} == runs and inspections._claim_next() is None


# --- the rolling schedule -----------------------------------------------------------------------------------------

def test_the_rolling_pass_queues_one_run_per_province_of_websites_not_inspected_lately(app, people, sites,
                                                                                          fake) -> None:
    with app.app_context():
        assert inspections.schedule_due() == {"runs": 0, "websites": 0}  # INSPECTION_CYCLE_DAYS 0: off
        app.config.update(INSPECTION_CYCLE_DAYS=30, INSPECTION_SCHEDULE_LIMIT=2)
        assert inspections.schedule_due() == {"runs": 2, "websites": 3}  # 天津 2 (the limit), 北京 1
        assert inspections.schedule_due() == {"runs": 0, "websites": 0}  # unfinished: not twice
        assert inspections.run_inspection_jobs(limit=5) == 2
        assert sorted(fake.inspected) == sorted([sites["tj1"], sites["tj2"], sites["bj"]])
        assert inspections.schedule_due() == {"runs": 1, "websites": 1}  # 天津's last run was full: tj3 next
        inspections.run_inspection_jobs(limit=5)
        assert inspections.schedule_due(utcnow() + timedelta(hours=2)) == {"runs": 0, "websites": 0}
        db.session.execute(update(InspectionResult).where(InspectionResult.website_id == sites["tj1"]).values(
            checked_at=utcnow() - timedelta(days=31)))
        db.session.commit()
        assert inspections.schedule_due() == {"runs": 0, "websites": 0}  # 天津 rests an hour after a partial run
        # … and an hour after a count found nothing due (at +2 h): counted again at +4 h
        assert inspections.schedule_due(utcnow() + timedelta(hours=2, minutes=30)) == {"runs": 0, "websites": 0}
        assert inspections.schedule_due(utcnow() + timedelta(hours=4)) == {"runs": 1, "websites": 1}
        assert db.session.scalar(select(func.count()).select_from(InspectionRun).where(
            InspectionRun.scope == InspectionScope.SCHEDULE, InspectionRun.created_by_id.is_(None))) == 4


# --- the run as a state machine -----------------------------------------------------------------------------------

class RunMachine(RuleBasedStateMachine):
    """Two workers claim, run one batch each, stall (their lease expired and taken over), fail; the bureau
    cancels. After every step: a finished run stays as it ended, a website is never twice in the run's results, and
    `checked` counts the results."""

    def __init__(self) -> None:
        super().__init__()
        self.run_id = _start(PEOPLE["bureau"])
        self.claims: dict[str, inspections.Claim | None] = {"a": None, "b": None}
        self.ended: RunState | None = None

    def teardown(self) -> None:
        db.session.rollback()
        FAKE.raises = None
        for model in (InspectionFinding, InspectionResult, InspectionRun):
            db.session.execute(delete(model))
        db.session.commit()

    def _current(self, claim: inspections.Claim) -> bool:
        run = _run(self.run_id)
        return run.state == RunState.RUNNING and run.attempts == claim.token

    @rule(worker=st.sampled_from(["a", "b"]))
    def claim(self, worker: str) -> None:
        claimed = inspections._claim_next()
        if self.ended is not None:
            assert claimed is None
        if claimed is not None:
            self.claims[worker] = claimed

    @precondition(lambda self: any(self.claims.values()))
    @rule(worker=st.sampled_from(["a", "b"]), fails=st.booleans())
    def one_batch(self, worker: str, fails: bool) -> None:
        claim = self.claims[worker]
        if claim is None:
            return
        current, FAKE.raises = self._current(claim), RuntimeError("boom") if fails else None
        before = len(_results(self.run_id))
        try:
            inspections._run(claim, deadline=float("-inf"))  # one batch, then handed back (or done)
            assert current and not fails
            if _run(self.run_id).state == RunState.DONE:
                self.ended = RunState.DONE
        except inspections.RunStopped:
            db.session.rollback()
            assert not current
        except RuntimeError:
            db.session.rollback()
            inspections._fail(claim, "失败")
            if current:
                self.ended = RunState.FAILED
        if not current or fails:
            assert len(_results(self.run_id)) == before
        self.claims[worker] = None

    @rule()
    def lease_runs_out(self) -> None:
        db.session.execute(update(InspectionRun).where(InspectionRun.state == RunState.RUNNING).values(
            lease_until=utcnow() - timedelta(seconds=1)))
        db.session.commit()

    @rule()
    def cancel(self) -> None:
        run = _run(self.run_id)
        if self.ended is None:
            inspections.cancel_run(user_named(PEOPLE["bureau"]), run)
            db.session.commit()
            self.ended = RunState.CANCELLED
        else:
            with pytest.raises(WorkflowError):
                inspections.cancel_run(user_named(PEOPLE["bureau"]), run)

    @invariant()
    def results_once_and_counted(self) -> None:
        run, results = _run(self.run_id), _results(self.run_id)
        assert len(results) == len(set(results)) == run.checked <= run.total
        assert run.state == (self.ended or run.state) and (run.finished_at is not None) == (self.ended is not None)
        assert self.ended is not None or run.state in (RunState.QUEUED, RunState.RUNNING)


PEOPLE: dict[str, str] = {}
FAKE = FakeInspector()


def test_the_run_state_machine(app, people, sites, monkeypatch) -> None:
    global PEOPLE
    PEOPLE = people
    monkeypatch.setattr(inspections, "inspect_sites", FAKE)
    app.config["INSPECTION_BATCH"] = 1
    with app.app_context():
        machine = settings(max_examples=20, stateful_step_count=10, deadline=None,
                           suppress_health_check=list(HealthCheck))(RunMachine)
        machine.TestCase().runTest()
