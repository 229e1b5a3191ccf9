"""The filing workflow as a state machine: random sequences of every action by every role, with the
registry's invariants checked after each step (issue 11: the loops the step-by-step tests never ran).

Each step is one transaction, as a console request is: a refusal (WorkflowError) rolls it back, anything
else fails the test. Each example starts from an empty registry with the same accounts.
"""

from __future__ import annotations

import itertools
import re
import sys
from collections import Counter

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test
from sqlalchemy import func, select

import permissions
import public_records
import workflow
from extensions import db
from models import (
    CLOSED_APPLICATION_STATES,
    Application,
    ApplicationKind,
    ApplicationState,
    Certificate,
    CertificateStatus,
    Domain,
    Entity,
    FilingStatus,
    MessageChannel,
    OutboxMessage,
    RequestState,
    ReviewState,
    RevocationRequest,
    Role,
    User,
    Website,
)
from tests.filing_factories import entity_data, website_data
from tests.helpers import BEIJING, TIANJIN, make_user

LIVE = (FilingStatus.ACTIVE, FilingStatus.NO_ACCESS)
ACCOUNTS = {
    "owner1": (Role.ICP, None, {}), "owner2": (Role.ICP, None, {}),
    "isp_a": (Role.ISP, TIANJIN, {"can_import": True, "organisation": "甲接入"}),
    "isp_b": (Role.ISP, TIANJIN, {"organisation": "乙接入"}),
    "isp_c": (Role.ISP, BEIJING, {"can_import": True, "organisation": "丙接入"}),
    "bureau_tj": (Role.BUREAU, TIANJIN, {}), "bureau_bj": (Role.BUREAU, BEIJING, {}), "miit": (Role.MIIT, None, {}),
}
ISPS = ("isp_a", "isp_b")
FILERS = ("owner1", "owner2", *ISPS)
EVERYONE = tuple(ACCOUNTS)
PICK = st.integers(min_value=0, max_value=50)
WHO = st.one_of(st.none(), st.sampled_from(EVERYONE))  # None: the user the step is meant for
KEPT_TABLES = {"users", "provinces", "code_items", "audit_head"}
OUTCOMES: Counter[tuple[str, str]] = Counter()  # (rule, done | refused): the test must not become vacuous


def _exists(model, *criteria) -> bool:
    return db.session.scalar(select(model.id).where(*criteria).limit(1)) is not None


def applications_in(state: ApplicationState):
    return precondition(lambda _machine: _exists(Application, Application.state == state))


live_filings = precondition(lambda _machine: _exists(Entity, Entity.status.in_(LIVE)))
pending_requests = precondition(lambda _machine: _exists(RevocationRequest,
                                                         RevocationRequest.state == RequestState.PENDING))


class FilingMachine(RuleBasedStateMachine):
    users: dict[str, int] = {}  # the accounts, made once per test (committed); everything else rolls back

    def __init__(self) -> None:
        super().__init__()
        self.serial = itertools.count(1)
        self.codes: dict[int, str] = {}  # entity id → a code its owner made, not yet used

    def teardown(self) -> None:
        db.session.rollback()
        for table in reversed(db.metadata.sorted_tables):
            if table.name not in KEPT_TABLES:
                db.session.execute(table.delete())
        db.session.commit()

    # --- helpers ---------------------------------------------------------------------------------------
    def user(self, name: str) -> User:
        return db.session.get(User, self.users[name])

    def step(self, change) -> None:
        """One request: a refusal leaves nothing behind; any other exception is a defect."""
        name = sys._getframe(1).f_code.co_name  # the rule, for OUTCOMES
        try:
            change()
            db.session.commit()
        except workflow.WorkflowError:
            db.session.rollback()
            OUTCOMES[name, "refused"] += 1
        else:
            OUTCOMES[name, "done"] += 1

    def actor(self, who: str | None, *rightful_ids: int | None) -> User:
        """The named account, or (None) the first one the step is meant for, so that loops get far."""
        if who is None:
            rightful = [i for i in rightful_ids if i is not None]
            return db.session.get(User, rightful[0]) if rightful else self.user("miit")
        return self.user(who)

    def province_bureau(self, province_code: str) -> int:
        return self.users["bureau_tj" if province_code == TIANJIN else "bureau_bj"]

    def pick(self, model, index: int, *criteria):
        rows = db.session.scalars(select(model).where(*criteria).order_by(model.id)).all()
        return rows[index % len(rows)] if rows else None

    def websites(self, isps: list[str], shared: bool) -> list[workflow.WebsiteData]:
        name = "shared" if shared else f"s{next(self.serial)}"
        return [website_data(name, [self.users[i] for i in isps])]

    # --- filing -----------------------------------------------------------------------------------------
    @rule(filer=st.sampled_from(FILERS), isps=st.lists(st.sampled_from(ISPS), min_size=1, max_size=2, unique=True),
          shared=st.booleans(), submit=st.booleans(), province=st.sampled_from((TIANJIN, BEIJING)))
    @precondition(lambda _machine: db.session.scalar(select(func.count(Entity.id))) < 4)  # a few filings, far
    def file_new(self, filer, isps, shared, submit, province) -> None:
        actor = self.user(filer)

        def change() -> None:
            application = workflow.save_filing_draft(actor, entity_data(10_000 + next(self.serial), province),
                                                     self.websites(isps, shared))
            if submit:
                workflow.submit_application(actor, application)
        self.step(change)

    @rule(who=WHO, index=PICK, edit=st.booleans(), shared=st.booleans())
    @applications_in(ApplicationState.DRAFT)
    def resubmit(self, who, index, edit, shared) -> None:
        application = self.pick(Application, index, Application.state == ApplicationState.DRAFT)
        if application is None:
            return
        actor = self.actor(who, application.created_by_id)

        def change() -> None:
            if edit:
                entity = application.entity
                isps = sorted({a.isp.username.removeprefix("sm_") for w in entity.websites for a in w.accesses})
                data = entity_data(10_000 + next(self.serial), entity.province_code,
                                   certificate_number=entity.certificate_number, unit_name=entity.unit_name)
                workflow.save_filing_draft(actor, data, self.websites(isps or ["isp_a"], shared), application)
            workflow.submit_application(actor, application)
        self.step(change)

    @rule(who=WHO, index=PICK, verify=st.booleans())
    @applications_in(ApplicationState.ISP_REVIEW)
    def isp_decides(self, who, index, verify) -> None:
        application = self.pick(Application, index, Application.state == ApplicationState.ISP_REVIEW)
        if application is not None:
            actor = self.actor(who, *(v.isp_id for v in application.verifications if v.state == ReviewState.PENDING))
            self.step(lambda: workflow.isp_verify(actor, application) if verify
                      else workflow.isp_return(actor, application, "请更正"))

    @rule(who=WHO, index=PICK, approve=st.booleans())
    @applications_in(ApplicationState.BUREAU_REVIEW)
    def bureau_decides(self, who, index, approve) -> None:
        application = self.pick(Application, index, Application.state == ApplicationState.BUREAU_REVIEW)
        if application is not None:
            actor = self.actor(who, self.province_bureau(application.province_code))
            self.step(lambda: workflow.approve(actor, application) if approve
                      else workflow.reject(actor, application, {"other": "不符合要求"}))

    @rule(who=WHO, index=PICK)
    @precondition(lambda _machine: _exists(Application, Application.state == ApplicationState.BUREAU_REVIEW,
                                           Application.kind != ApplicationKind.NEW_FILING))
    def withdraw(self, who, index) -> None:
        application = self.pick(Application, index, Application.state == ApplicationState.BUREAU_REVIEW,
                                Application.kind != ApplicationKind.NEW_FILING)
        if application is not None:
            actor = self.actor(who, application.submitted_by_id)
            self.step(lambda: workflow.withdraw_application(actor, application))

    # --- after approval -----------------------------------------------------------------------------------
    def live_website(self, index: int) -> Website | None:
        return self.pick(Website, index, Website.status.in_(LIVE))

    @rule(who=WHO, index=PICK)
    @live_filings
    def change_domains(self, who, index) -> None:
        website = self.live_website(index)
        if website is not None:
            actor = self.actor(who, *(a.isp_id for a in website.accesses if a.live))
            self.step(lambda: workflow.propose_domains(actor, website, [f"more{next(self.serial)}.cn"]))

    @rule(who=WHO, index=PICK)
    @live_filings
    def owner_makes_code(self, who, index) -> None:
        entity = self.pick(Entity, index, Entity.status.in_(LIVE))
        if entity is not None:
            actor = self.actor(who, entity.owner_id)
            self.step(lambda: self.codes.__setitem__(entity.id, workflow.owner_access_code(actor, entity)))

    @rule(who=st.one_of(st.none(), st.sampled_from(ISPS)), index=PICK, with_code=st.booleans())
    @live_filings
    def add_access(self, who, index, with_code) -> None:
        """The owner's code (made now if it has none at hand) or a wrong one, then 新增接入."""
        website = self.live_website(index)
        if website is None:
            return
        serving = {a.isp_id for a in website.accesses if a.live}
        actor = self.actor(who, *(self.users[i] for i in ISPS if self.users[i] not in serving))
        access = workflow.AccessData(isp_id=actor.id, method="2", server_province_code=actor.province_code or TIANJIN)
        owner = db.session.get(User, website.entity.owner_id) if website.entity.owner_id else None

        def change() -> None:
            code = self.codes.pop(website.entity_id, None) if with_code else "WRONG-CODE-0000"
            if code is None and owner is not None:
                code = workflow.owner_access_code(owner, website.entity)
            elif code is None:  # no owner account: the registry sends the code to the responsible person
                workflow.send_access_code(actor, website.entity)
                sms = db.session.scalar(select(OutboxMessage.body).where(
                    OutboxMessage.channel == MessageChannel.SMS).order_by(OutboxMessage.id.desc()).limit(1))
                code = re.search(r"接入授权码 (\S+) ", sms).group(1)
            workflow.add_access(actor, website, access, code)
        self.step(change)

    @rule(isp=st.sampled_from(ISPS), index=PICK)
    @live_filings
    def ask_for_code(self, isp, index) -> None:
        entity = self.pick(Entity, index, Entity.status.in_(LIVE))
        if entity is not None:
            actor = self.user(isp)
            self.step(lambda: workflow.send_access_code(actor, entity))

    @rule(who=WHO, index=PICK)
    @live_filings
    def cancel_access(self, who, index) -> None:
        website = self.live_website(index)
        if website is not None:
            actor = self.actor(who, *(a.isp_id for a in website.accesses if a.live))
            self.step(lambda: workflow.cancel_access(actor, website))

    @rule(who=WHO, index=PICK, whole=st.booleans())
    @live_filings
    def request_cancellation(self, who, index, whole) -> None:
        website = self.live_website(index)
        if website is not None:
            actor = self.actor(who, website.entity.owner_id, *(a.isp_id for a in website.accesses if a.live))
            self.step(lambda: workflow.request_cancellation(actor, website.entity, None if whole else website, "停办"))

    @rule(who=WHO, index=PICK)
    @live_filings
    def request_revocation(self, who, index) -> None:
        entity = self.pick(Entity, index, Entity.status.in_(LIVE))
        if entity is not None:
            actor = self.actor(who, entity.owner_id, self.province_bureau(entity.province_code))
            self.step(lambda: workflow.request_revocation(actor, entity, None, "信息不实"))

    @rule(who=WHO, index=PICK, accept=st.booleans())
    @pending_requests
    def process_revocation(self, who, index, accept) -> None:
        request = self.pick(RevocationRequest, index, RevocationRequest.state == RequestState.PENDING)
        if request is not None:
            actor = self.actor(who, self.users["miit"] if request.processor_role == Role.MIIT
                               else self.province_bureau(request.province_code))
            self.step(lambda: workflow.process_revocation_requests(actor, [request], accept, "不予撤销"))

    @rule(who=WHO, index=PICK)
    @live_filings
    def revoke(self, who, index) -> None:
        entity = self.pick(Entity, index, Entity.status.in_(LIVE))
        if entity is not None:
            actor = self.actor(who, self.province_bureau(entity.province_code))
            self.step(lambda: workflow.revoke_by_number(actor, entity.number, "违规"))

    # --- invariants ---------------------------------------------------------------------------------------
    @invariant()
    def isps_reach_only_what_they_serve_now(self) -> None:
        entities = db.session.scalars(select(Entity)).all()
        for name in ISPS:
            isp = self.user(name)
            visible = set(db.session.scalars(select(Entity.id).where(permissions.entity_scope(isp))))
            serving = {e.id for e in entities if permissions.serves(isp, e)}
            assert visible == serving, (name, visible, serving)
            for entity in entities:
                assert permissions.may_see_entity(isp, entity) == (entity.id in serving)
                if permissions.may_request_revocation(isp, entity):
                    assert entity.id in serving
            for application in db.session.scalars(select(Application).where(permissions.application_scope(isp))):
                assert (application.entity_id in serving or isp.id in (application.created_by_id,
                                                                        application.submitted_by_id))
                if permissions.may_edit_application(isp, application):
                    assert application.created_by_id == isp.id

    @invariant()
    def public_records_say_what_the_filings_say(self) -> None:
        assert not public_records.differences(db.session.connection())

    @invariant()
    def numbers_unique_and_one_open_application(self) -> None:
        for model in (Entity, Website):
            numbers = [n for n in db.session.scalars(select(model.number)) if n]
            assert len(numbers) == len(set(numbers))
        open_ones = Counter(db.session.scalars(select(Application.entity_id).where(
            Application.state.not_in(CLOSED_APPLICATION_STATES))))
        assert all(count == 1 for count in open_ones.values())
        live_domains = list(db.session.scalars(select(Domain.name).where(Domain.live)))
        assert len(live_domains) == len(set(live_domains))

    @invariant()
    def live_websites_have_access_and_certificates_match(self) -> None:
        for entity in db.session.scalars(select(Entity)):
            current = db.session.scalars(select(Certificate).where(
                Certificate.entity_id == entity.id, Certificate.status == CertificateStatus.CURRENT)).all()
            assert len(current) == (1 if entity.status in LIVE else 0), (entity.status, len(current))
            for website in entity.websites:
                live_accesses = [a for a in website.accesses if a.live]
                if website.status == FilingStatus.ACTIVE:
                    assert live_accesses
                if website.status in (FilingStatus.NO_ACCESS, FilingStatus.CANCELLED, FilingStatus.REVOKED):
                    assert not live_accesses
                if website.status in (FilingStatus.CANCELLED, FilingStatus.REVOKED):
                    assert not any(d.live for d in website.domains)
                if website.status in LIVE:
                    assert entity.status in LIVE and website.number and website.number.startswith(entity.number)
            if entity.status == FilingStatus.DRAFT:
                kinds = {a.kind for a in db.session.scalars(select(Application).where(
                    Application.entity_id == entity.id))}
                assert kinds <= {ApplicationKind.NEW_FILING}


def test_workflow_state_machine(ctx) -> None:
    FilingMachine.users = {name: make_user(f"sm_{name}", role, province, **extra).id
                           for name, (role, province, extra) in ACCOUNTS.items()}
    try:
        run_state_machine_as_test(FilingMachine, settings=settings(
            max_examples=60, stateful_step_count=40, deadline=None, derandomize=True,
            suppress_health_check=list(HealthCheck)))
    finally:
        db.session.rollback()
    done = {name for (name, outcome), count in OUTCOMES.items() if outcome == "done" and count}
    assert {"file_new", "resubmit", "isp_decides", "bureau_decides", "add_access", "cancel_access",
            "request_cancellation", "request_revocation", "process_revocation", "revoke", "withdraw"} <= done, " ".join(
        f"{name}:{outcome}={count}" for (name, outcome), count in sorted(OUTCOMES.items()))
