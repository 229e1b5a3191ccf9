"""A run over real HTTP (issue 18 §2, Tests): filed websites served by the loopback farm (`demo_sites`), the worker
inspecting them with the real inspector — a compliant site; number missing; number not linked; certificate absent,
of another entity, superseded, revoked; address outside the filed range; a dead site — and what the run stores:
the failing checks, their findings, and the evidence of what was fetched."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select, update

import workflow
import workflow.inspections as inspections
from demo_sites import DemoSite
from extensions import db
from models import AccessRange, Certificate, CertificateStatus, InspectionFinding, InspectionResult, RunState, Website
from tests.helpers import user_named
from tests.inspection_factories import filed_website
from tests.inspection_helpers import farms

BEHAVIOURS = {  # key → (what the farm serves, the certificate served, the failing checks and their outcomes)
    "compliant": ("compliant", "own", {}),
    "missing": ("missing", "own", {"number": "missing"}),  # its link: not checked
    "unlinked": ("unlinked", "own", {"link": "unlinked"}),
    "absent": ("compliant", "", {"cert": "absent"}),
    "foreign": ("compliant", "other", {"cert": "foreign"}),
    "superseded": ("compliant", "superseded", {"cert": "superseded"}),
    "revoked": ("compliant", "revoked", {"cert": "revoked"}),
    "outside": ("compliant", "own", {"access": "outside"}),
    "dead": ("dead", "own", {"alive": "dead", "cert": "absent"}),  # number and link: not checked
}


@pytest.fixture
def farm_of():
    with farms() as start:
        yield start


def _loopback(website: Website) -> None:
    """The website's filed access range moved to 127.0.0.1, where the farm serves it."""
    access_ids = [access.id for access in website.accesses]
    db.session.execute(update(AccessRange).where(AccessRange.access_id.in_(access_ids)).values(
        bucket="120:ffff7f0000", start_key="00000000000000000000ffff7f000001",
        end_key="00000000000000000000ffff7f000001"))


def _token(website: Website, kind: str, others: dict[str, Website]) -> str:
    """The certificate the site serves: its own current one, another entity's, or its own made superseded /
    revoked (a newer current one recorded in its place)."""
    if not kind:
        return ""
    entity = (others["compliant"] if kind == "other" else website).entity
    current = db.session.scalar(select(Certificate).where(Certificate.entity_id == entity.id,
                                                          Certificate.status == CertificateStatus.CURRENT))
    if kind in ("superseded", "revoked"):
        current.status = CertificateStatus(kind)
        db.session.add(Certificate(id=f"newer-{website.id}", entity_id=entity.id, kid=current.kid, token="x",
                                   status=CertificateStatus.CURRENT))
    return current.token


def test_a_run_over_real_http_finds_what_each_site_does_wrong(app, people, farm_of) -> None:
    with app.app_context():
        made = {key: filed_website(people) for key in BEHAVIOURS}
        sites = []
        for key, (behaviour, served, _failing) in BEHAVIOURS.items():
            website = made[key]
            if key != "outside":
                _loopback(website)
            token = _token(website, served, made)
            sites += [DemoSite(domain.name, behaviour, number=website.number, token=token)
                      for domain in website.domains]
        db.session.commit()
        farm = farm_of(sites)
        app.config.update(farm.config(), INSPECTION_TOTAL_TIMEOUT=3, INSPECTION_CONNECT_TIMEOUT=1)
        run = inspections.start_run(user_named(people["bureau"]), inspections.InspectionScope.ALL)
        db.session.commit()
        assert workflow.inspections.run_inspection_jobs() == 1
        db.session.expire_all()
        assert (run.state, run.checked, run.failing) == (RunState.DONE, len(BEHAVIOURS), len(BEHAVIOURS) - 1)
        found = {}
        for result in db.session.scalars(select(InspectionResult)):
            evidence = json.loads(result.evidence)
            found[result.website_id] = {code: entry["outcome"] for code, entry in evidence.items()
                                        if entry["passed"] is False}
        assert {key: found[made[key].id] for key in BEHAVIOURS} == {key: failing for key, (_b, _s, failing)
                                                                     in BEHAVIOURS.items()}
        compliant = json.loads(db.session.scalar(select(InspectionResult.evidence).where(
            InspectionResult.website_id == made["compliant"].id)))
        assert compliant["alive"]["evidence"]["status"] == 200 and made["compliant"].number in \
            compliant["number"]["evidence"]["excerpt"]
        findings = {(website_id, check) for website_id, check in db.session.execute(
            select(InspectionFinding.website_id, InspectionFinding.check))}
        assert findings == {(made[key].id, code) for key, (_b, _s, failing) in BEHAVIOURS.items() for code in failing}
        assert farm.user_agents and all("ICP" in agent or "备案" in agent or "beian" in agent.lower()
                                        for agent in farm.user_agents)


def test_a_hostile_site_does_not_hold_up_the_others_results(app, people, farm_of, monkeypatch) -> None:
    """The run's first website trickles its pages (cut at the 2 s deadline, twice: home page and certificate); the
    six others are read in batches of two as the inspector's two threads ask for them, and their results are
    stored while the hostile one is still being inspected — with the cursor kept before it, so that a resumed run
    would inspect it again — not after it."""
    with app.app_context():
        made = [filed_website(people) for _ in range(7)]
        hostile = made[0].id
        farm = farm_of([DemoSite(domain.name, "slow" if website.id == hostile else "compliant",
                                 number=website.number) for website in made for domain in website.domains])
        app.config.update(farm.config(), INSPECTION_TOTAL_TIMEOUT=2, INSPECTION_CONNECT_TIMEOUT=1,
                          INSPECTION_THREADS=2, INSPECTION_BATCH=2)
        stores: list[tuple[list[int], int]] = []
        store = inspections._store
        monkeypatch.setattr(inspections, "_store", lambda claim, owners, inspected, cursor: stores.append(
            (sorted(site.website_id for site, _checks, _seconds in inspected), cursor)) or store(
            claim, owners, inspected, cursor))
        run = inspections.start_run(user_named(people["bureau"]), inspections.InspectionScope.ALL)
        db.session.commit()
        inspections.run_inspection_jobs()
        db.session.expire_all()
        assert (run.state, run.checked) == (RunState.DONE, 7)
        others = sorted(website.id for website in made[1:])
        assert sorted(website_id for ids, _cursor in stores[:-1] for website_id in ids) == others
        assert all(cursor == hostile - 1 for _ids, cursor in stores[:-1])
        assert stores[-1] == ([hostile], others[-1])
        stored = dict(db.session.execute(select(InspectionResult.website_id, InspectionResult.checked_at)).all())
        # well before the hostile one's two 2 s deadlines ended (a loaded machine slows the others down, not those)
        assert max(stored[website_id] for website_id in others) < stored[hostile] - timedelta(seconds=1)
        assert json.loads(db.session.scalar(select(InspectionResult.evidence).where(
            InspectionResult.website_id == hostile)))["alive"]["evidence"]["elapsed_ms"] >= 1900
