"""Issue 12 item 9: the public lookup by an IP address inside a filed access range (indexed), and long
queries refused without breaking the page."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select, text

import ipindex
import workflow
from extensions import db
from models import Access, AccessRange
from tests.filing_factories import entity_data, website_data
from tests.helpers import user_named


@pytest.fixture
def ranged(app, people):
    """Two approved filings on IPv4 and IPv6 ranges, one waiting for the bureau on a range of its own."""
    with app.app_context():
        isp, bureau = user_named(people["isp"]), user_named(people["bureau"])

        def filing(n: int, name: str, ranges: list[tuple[str, str]], approve: bool = True) -> None:
            site = website_data(name, [isp.id])
            site.accesses[0].ip_ranges = ranges
            application = workflow.save_filing_draft(isp, entity_data(n, unit_name=f"天津{name}科技有限公司"), [site])
            workflow.submit_application(isp, application)
            if approve:
                workflow.approve(bureau, application)

        filing(601, "范围", [("198.51.100.10", "198.51.100.20"), ("2001:db8::1", "2001:db8::ff")])
        filing(602, "大段", [("10.0.0.0", "10.3.255.255")])  # spans 1,024 /24s: stored at /16 level, 4 rows
        filing(603, "待审", [("192.0.2.1", "192.0.2.9")], approve=False)
        db.session.commit()


def _units(client, query: str) -> list[str]:
    response = client.get("/api/v1/public/lookup", query_string={"q": query})
    assert response.status_code == 200, response.get_json()
    return [record["unit_name"] for record in response.get_json()["results"]]


@pytest.mark.parametrize(("query", "units"), [
    ("198.51.100.10", ["天津范围科技有限公司"]), ("198.51.100.15", ["天津范围科技有限公司"]),
    ("198.51.100.20", ["天津范围科技有限公司"]), ("198.51.100.21", []), ("198.51.100.9", []),
    ("2001:db8::80", ["天津范围科技有限公司"]), ("[2001:DB8::ff]", ["天津范围科技有限公司"]), ("2001:db8::100", []),
    ("10.2.3.4", ["天津大段科技有限公司"]), ("10.4.0.0", []), ("192.0.2.5", []),  # the last: not approved
])
def test_an_address_inside_a_filed_range_finds_the_filing(client, ranged, query: str, units: list[str]) -> None:
    assert _units(client, query) == units


def test_ranges_cost_at_most_four_rows_and_are_found_by_index(app, ranged) -> None:
    with app.app_context():
        counts = {}
        for (access_id,) in db.session.execute(select(AccessRange.access_id)):
            counts[access_id] = counts.get(access_id, 0) + 1
        assert max(counts.values()) <= ipindex.MAX_BUCKETS
        key = ipindex.address_key("10.2.3.4")
        query = select(AccessRange.access_id).where(AccessRange.bucket.in_(ipindex.lookup_buckets(key)),
                                                    AccessRange.start_key <= ipindex.hex_key(key))
        sql = str(query.compile(db.engine, compile_kwargs={"literal_binds": True}))
        sqlite = db.engine.dialect.name == "sqlite"
        plan = " ".join(str(row) for row in db.session.execute(
            text(("EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN ") + sql)))
        if sqlite:  # PostgreSQL may rightly prefer a scan of a table this small
            assert "ix_access_ranges_bucket" in plan and "SCAN access_ranges" not in plan


def test_cancelled_access_is_no_longer_found(app, client, ranged, people) -> None:
    with app.app_context():
        isp = user_named(people["isp"])
        first_indexed = db.session.scalar(select(AccessRange.access_id).order_by(AccessRange.id))
        website = db.session.get(Access, first_indexed).website  # the 范围 filing's
        application = workflow.cancel_access(isp, website)
        workflow.approve(user_named(people["bureau"]), application)
        db.session.commit()
    assert _units(client, "198.51.100.15") == []


def test_range_rows_choose_the_finest_level() -> None:
    assert [b for b, _s, _e in ipindex.range_rows("198.51.100.10-198.51.100.20")] == ["120:ffffc63364"]
    assert len(ipindex.range_rows("10.0.0.0-10.3.255.255")) == 4
    assert len(ipindex.range_rows("::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")) == 1
    assert ipindex.range_rows("bogus-1.2.3.4\n5.6.7.8-1.2.3.4") == []


def test_long_queries_are_refused_with_a_message(client) -> None:
    page = client.get("/", query_string={"q": "a" * 3000})
    visible = re.sub(r"<[^>]*>", " ", page.get_data(as_text=True))  # the URL may stand in attributes
    assert page.status_code == 200 and "不超过 253 个字符" in visible and "a" * 254 not in visible
    api = client.get("/api/v1/public/lookup", query_string={"q": "a" * 254})
    assert api.status_code == 400 and "253" in api.get_json()["message"]
    assert client.get("/api/v1/public/lookup", query_string={"q": "a" * 253}).status_code == 200
