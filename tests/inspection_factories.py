"""Websites in force for the inspection tests, and a stand-in for the inspector (no HTTP) that records what it was
asked and whether a transaction was open meanwhile."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select, text

import inspector
import public_records
import workflow
from extensions import db
from models import Domain, Entity, FilingStatus, Website, utcnow
from tests.filing_factories import credit_code, entity_data, website_data
from tests.helpers import user_named

_serial = itertools.count(500)


def filed_website(people: dict[str, str], isps: tuple[str, ...] = ("isp",), province: str = "120000",
                  bureau: str = "bureau", n: int | None = None, **website: Any) -> Website:
    """A website in force: an ICP owner's filing verified by its ISPs and approved by the province's bureau
    (numbers, accesses with their ranges 203.0.113.1–20, a current certificate), committed."""
    n = next(_serial) if n is None else n
    owner = user_named(people["icp"])
    isp_ids = [user_named(people[key]).id for key in isps]
    application = workflow.save_filing_draft(owner, entity_data(n, province), [
        website_data(f"site{n}", isp_ids, **website)])
    workflow.submit_application(owner, application)
    for key in isps:
        workflow.isp_verify(user_named(people[key]), application)
    workflow.approve(user_named(people[bureau]), application)
    db.session.commit()
    return application.entity.websites[0]


def bulk_filed_domains(count: int, province: str = "120000", first: int = 1) -> list[str]:
    """`count` websites in force, one entity and one domain each (`filed{i}.example.cn`), written straight to the
    tables (a 10,000-domain test cannot approve 5,000 filings one by one); their domains."""
    now = utcnow()
    db.session.execute(insert(Entity), [{
        "id": 10_000_000 + i, "province_code": province, "unit_name": f"批量测试单位{i}", "unit_nature": "4",
        "certificate_type": "1", "certificate_number": credit_code(2_000_000 + i), "status": FilingStatus.ACTIVE,
        "number": f"津ICP备26{i:06d}号", "approved_at": now, "created_at": now} for i in range(first, first + count)])
    db.session.execute(insert(Website), [{
        "id": 10_000_000 + i, "entity_id": 10_000_000 + i, "name": f"批量网站{i}", "status": FilingStatus.ACTIVE,
        "number": f"津ICP备26{i:06d}号-1", "home_url": f"http://filed{i}.example.cn/", "approved_at": now}
        for i in range(first, first + count)])
    names = [f"filed{i}.example.cn" for i in range(first, first + count)]
    db.session.execute(insert(Domain), [{"website_id": 10_000_000 + i, "name": name, "registered": name, "live": True}
                                        for i, name in zip(range(first, first + count), names, strict=True)])
    public_records.touch(10_000_000 + i for i in range(first, first + count))  # as the demo's COPY does
    db.session.commit()
    if db.engine.dialect.name == "postgresql":  # the planner's statistics, as autovacuum keeps them in production
        db.session.execute(text("ANALYZE entities, websites, domains"))
        db.session.commit()
    return names


def check(code: str, passed: bool | None = True, outcome: str | None = None, **evidence: Any) -> inspector.Check:
    return inspector.Check(code=code, passed=passed, outcome=outcome or ("ok" if passed else "missing"),
                           message="检查通过" if passed else "检查未通过", evidence=dict(evidence))


@dataclass
class FakeInspector:
    """Replaces `workflow.inspections.inspect_sites`: takes the sites one at a time as `inspect_many` does (so the
    workflow reads its batches as they are asked for) and answers each; every check passes unless
    `failing[website_id]` names checks (code → outcome, or None for "not checked"); `before_each(website_id)` runs
    before a site is answered (a test's interference: a cancellation, a website ended); `raises` makes it fail."""

    failing: dict[int, dict[str, str | None]] = field(default_factory=dict)
    inspected: list[int] = field(default_factory=list)
    in_transaction: list[bool] = field(default_factory=list)
    before_each: Callable[[int], None] | None = None
    raises: Exception | None = None

    def __call__(self, sites: Iterable[inspector.Site]
                 ) -> Iterator[tuple[inspector.Site, list[inspector.Check], float]]:
        for site in sites:
            self.inspected.append(site.website_id)
            self.in_transaction.append(db.session().in_transaction())
            if self.before_each is not None:
                self.before_each(site.website_id)
            if self.raises is not None:
                raise self.raises
            yield site, self.checks(site), 0.01

    def checks(self, site: inspector.Site) -> list[inspector.Check]:
        wrong = self.failing.get(site.website_id, {})
        return [check(code, None, "unreachable") if code in wrong and wrong[code] is None
                else check(code, False, wrong[code]) if code in wrong else check(code, url=f"http://{site.domains[0]}/")
                for code in inspector.CHECKS]


def website_ids() -> list[int]:
    return list(db.session.scalars(select(Website.id).order_by(Website.id)))
