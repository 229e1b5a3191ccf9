"""The console's search box and filters (issue 12, item 1): each kind finds exactly the right records,
within the user's scope only; filters combine; totals, estimates and page numbers; bad input is no 500."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

import demo
from extensions import db
from models import (
    Application,
    ApplicationKind,
    ApplicationState,
    Domain,
    Entity,
    ImportJob,
    PreapprovalItem,
    Role,
    User,
    Website,
    utcnow,
)
from tests.helpers import BEIJING, PASSWORD, TIANJIN, make_user, sign_in

ROW_ID = re.compile(r"details/\?id=(\d+)")


@pytest.fixture
def world(app: Flask) -> dict[str, list[Entity]]:
    """Two filings per province in a mix of states, and queues of 12 (天津) and 5 (北京) applications."""
    with app.app_context():
        demo.seed(62, PASSWORD)
        demo.seed(12, PASSWORD, ApplicationState.BUREAU_REVIEW, TIANJIN)
        demo.seed(5, PASSWORD, ApplicationState.BUREAU_REVIEW, BEIJING)
        entities = list(db.session.scalars(select(Entity).order_by(Entity.id)))
        db.session.expunge_all()
    return {"all": entities, TIANJIN: [e for e in entities if e.province_code == TIANJIN],
            BEIJING: [e for e in entities if e.province_code == BEIJING]}


@pytest.fixture
def demo_user(app: Flask) -> Callable[[str], FlaskClient]:
    def signed_in(username: str) -> FlaskClient:
        client = app.test_client()
        assert sign_in(client, username, PASSWORD).status_code == 302
        return client
    return signed_in


@pytest.fixture
def bureau(world: dict, demo_user: Callable[[str], FlaskClient]) -> FlaskClient:
    return demo_user("demo_bureau_12")


@pytest.fixture
def miit(app: Flask, world: dict) -> Iterator[FlaskClient]:
    with app.app_context():
        make_user("miit_search", Role.MIIT)
    client = app.test_client()
    assert sign_in(client, "miit_search").status_code == 302
    yield client


def shown(client: FlaskClient, path: str) -> set[int]:
    """The ids of the rows a list page shows (each row links to its details page)."""
    response = client.get(path)
    assert response.status_code == 200, path
    return {int(x) for x in ROW_ID.findall(response.get_data(as_text=True))}


def search(client: FlaskClient, endpoint: str, term: str, extra: str = "") -> set[int]:
    return shown(client, f"/admin/{endpoint}/?search={quote(term)}&page_size=100{extra}")


def entity_ids(entities: list[Entity], test: Callable[[Entity], bool]) -> set[int]:
    return {e.id for e in entities if test(e)}


def domains_of(app: Flask, entity_id: int) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(Domain.name).join(Website).where(Website.entity_id == entity_id)))


def applications_of(app: Flask, entity_ids_: set[int], **where: object) -> set[int]:
    with app.app_context():
        query = select(Application.id).where(Application.entity_id.in_(entity_ids_)).filter_by(**where)
        return set(db.session.scalars(query))


# --- each kind finds exactly the right records -------------------------------------------------------

def test_unit_name_prefix_finds_exactly_its_filings(bureau: FlaskClient, world: dict) -> None:
    """Does a fragment of the unit name (its beginning) find exactly the filings whose name starts so?"""
    tianjin = world[TIANJIN]
    target = tianjin[0]
    for prefix in (target.unit_name, target.unit_name[:6], "天津"):
        assert search(bureau, "filings", prefix) == entity_ids(tianjin, lambda e, p=prefix: e.unit_name.startswith(p))
    assert search(bureau, "filings", target.unit_name[:6]) >= {target.id}
    assert search(bureau, "filings", "不存在的单位") == set()


def test_number_prefixes(bureau: FlaskClient, world: dict) -> None:
    """Does `津ICP备YY`, a whole number and a website number find exactly the filings they begin?"""
    approved = [e for e in world[TIANJIN] if e.number]
    assert approved
    prefix = approved[0].number[:6]  # 津ICP备YY
    assert search(bureau, "filings", prefix) == entity_ids(world[TIANJIN], lambda e: bool(e.number)
                                                           and e.number.startswith(prefix))
    assert search(bureau, "filings", approved[0].number) == {approved[0].id}
    assert search(bureau, "filings", approved[0].number + "-1") == {approved[0].id}
    assert search(bureau, "filings", approved[0].number.replace("ICP", "icp")) == {approved[0].id}
    assert search(bureau, "filings", "津ICP证") == set()


def test_domain_is_normalised(app: Flask, bureau: FlaskClient, world: dict) -> None:
    """Upper case, a trailing dot, a URL, with or without www.: the same filing, and only it."""
    target = world[TIANJIN][1]
    bare = min(domains_of(app, target.id), key=len)  # demoN.cn (www.demoN.cn is the other)
    for typed in (bare, bare.upper(), f"{bare}.", f"https://www.{bare}/index.html?x=1", f"WWW.{bare.upper()}."):
        assert search(bureau, "filings", typed) == {target.id}, typed
        assert search(bureau, "applications", typed) == applications_of(app, {target.id}), typed


def test_idn_domain_is_found_in_unicode_and_punycode(app: Flask, bureau: FlaskClient, world: dict) -> None:
    target = world[TIANJIN][2]
    with app.app_context():
        website_id = db.session.scalar(select(Website.id).where(Website.entity_id == target.id))
        db.session.add(Domain(website_id=website_id, name="xn--fiqs8s.xn--fiqs8s", live=True))  # 中国.中国
        db.session.commit()
    for typed in ("中国.中国", "xn--fiqs8s.xn--fiqs8s", "http://中国.中国/"):
        assert search(bureau, "filings", typed) == {target.id}, typed


def test_certificate_number_prefix(bureau: FlaskClient, world: dict) -> None:
    target = world[TIANJIN][3]
    code = target.certificate_number
    assert search(bureau, "filings", code) == {target.id}
    assert search(bureau, "filings", code.lower()) == {target.id}
    assert search(bureau, "filings", code[:14]) == entity_ids(world[TIANJIN],
                                                               lambda e: e.certificate_number.startswith(code[:14]))


def test_application_number_finds_the_application(app: Flask, bureau: FlaskClient, world: dict) -> None:
    """Digits alone on an application list also find the application of that number."""
    ids = applications_of(app, {e.id for e in world[TIANJIN]})
    one = min(ids)
    assert one in search(bureau, "applications", str(one))


def test_queue_search_finds_only_the_queue(app: Flask, bureau: FlaskClient, world: dict) -> None:
    """The bureau's queue searched by unit name: its province's applications under review only."""
    expected = applications_of(app, entity_ids(world[TIANJIN], lambda e: e.unit_name.startswith("天津")),
                               state=ApplicationState.BUREAU_REVIEW)
    assert len(expected) >= 12
    assert search(bureau, "bureau_queue", "天津") == expected


# --- scope: a 天津 bureau never finds a 北京 filing ------------------------------------------------------

def beijing_terms(app: Flask, entity: Entity) -> list[str]:
    terms = [entity.unit_name, entity.unit_name[:4], entity.certificate_number, *domains_of(app, entity.id)]
    return terms + ([entity.number, entity.number[:6], entity.number + "-1"] if entity.number else [])


@pytest.mark.parametrize("endpoint", ["filings", "applications", "bureau_queue"])
def test_tianjin_bureau_never_finds_a_beijing_filing(app: Flask, bureau: FlaskClient, miit: FlaskClient,
                                                     world: dict, endpoint: str) -> None:
    beijing = world[BEIJING]
    beijing_ids = {e.id for e in beijing} if endpoint == "filings" else applications_of(app, {e.id for e in beijing})
    approved = next(e for e in beijing if e.number)
    for entity in (approved, beijing[-1]):
        for term in beijing_terms(app, entity):
            assert not search(bureau, endpoint, term) & beijing_ids, term
    assert search(miit, "filings", approved.unit_name) == {approved.id}  # it exists: MIIT finds it
    assert search(miit, "filings", approved.number[:6]) == entity_ids(
        world["all"], lambda e: bool(e.number) and e.number.startswith(approved.number[:6]))


# --- filters --------------------------------------------------------------------------------------------

def test_filters_combine_with_the_search(app: Flask, bureau: FlaskClient, world: dict) -> None:
    """State + kind + submitting ISP + submitted dates + search: the intersection, exactly."""
    with app.app_context():
        isp = db.session.scalar(select(User).where(User.username == "demo_isp_12_1"))
        rows = db.session.execute(select(Application.id, Application.state, Application.kind,
                                         Application.submitted_by_id, Application.submitted_at)
                                  .where(Application.province_code == TIANJIN)).all()
    today = utcnow().date()
    span = f"{(today - timedelta(days=400)).isoformat()}+to+{(today + timedelta(days=1)).isoformat()}"
    expected = {r.id for r in rows if r.state == ApplicationState.BUREAU_REVIEW
                and r.kind == ApplicationKind.NEW_FILING and r.submitted_by_id == isp.id and r.submitted_at}
    assert expected
    path = (f"/admin/applications/?flt0_0=bureau_review&flt1_2=new_filing&flt2_3={isp.id}&flt3_5={span}"
            "&page_size=100")
    assert shown(bureau, path) == expected
    assert shown(bureau, path + "&search=" + quote("天津")) == expected
    assert shown(bureau, path.replace("new_filing", "change")) == set()
    future = f"{(today + timedelta(days=2)).isoformat()}+to+{(today + timedelta(days=3)).isoformat()}"
    assert shown(bureau, path.replace(span, future)) == set()


def test_preapproval_category_and_unit_nature_filters(app: Flask, bureau: FlaskClient, world: dict) -> None:
    with app.app_context():
        with_news = set(db.session.scalars(select(Website.entity_id).join(PreapprovalItem).where(
            PreapprovalItem.category == "1")))
        db.session.get(Entity, world[TIANJIN][0].id).unit_nature = "1"
        db.session.commit()
    news = applications_of(app, with_news & {e.id for e in world[TIANJIN]})
    assert shown(bureau, "/admin/applications/?flt0_4=1&page_size=100") == news
    assert shown(bureau, "/admin/filings/?flt0_3=1&page_size=100") == {world[TIANJIN][0].id}


def test_province_filter_only_for_national_users(bureau: FlaskClient, miit: FlaskClient, world: dict) -> None:
    """A bureau is offered no 省份 filter (and one forged in the URL changes nothing); MIIT is."""
    assert "省份" not in _filter_names(bureau, "/admin/filings/")
    assert "省份" in _filter_names(miit, "/admin/filings/")
    assert shown(bureau, "/admin/filings/?flt0_0=110000&page_size=100") == {e.id for e in world[TIANJIN]}
    assert shown(miit, "/admin/filings/?flt0_0=110000&page_size=100") == {e.id for e in world[BEIJING]}


def _filter_names(client: FlaskClient, path: str) -> str:
    html = client.get(path).get_data(as_text=True)
    return re.search(r'id="filter-groups-data"[^>]*>(.*?)</div>', html, re.S).group(1)


# --- totals, estimates, page numbers, sorting ---------------------------------------------------------------

def test_total_is_exact_below_the_limit(bureau: FlaskClient, world: dict) -> None:
    html = bureau.get("/admin/filings/").get_data(as_text=True)
    assert f"共 {len(world[TIANJIN])} 条" in html
    assert "估计" not in html


def test_total_is_an_estimate_above_the_limit(app: Flask, miit: FlaskClient, world: dict) -> None:
    """Counted no further than the limit: "超过 N 条（估计）", and a next page while pages are full."""
    app.config["CONSOLE_COUNT_LIMIT"] = 5
    html = miit.get("/admin/filings/?page_size=20").get_data(as_text=True)
    assert "超过 5 条（估计）" in html and "共 " not in html
    assert 'href="/admin/filings/?page=1&amp;page_size=20"' in html
    last = miit.get("/admin/filings/?page_size=20&page=3").get_data(as_text=True)  # 79 filings: 19 on page 4
    assert 'href="/admin/filings/?page=3&amp;page_size=20"' in last
    app.config["CONSOLE_COUNT_LIMIT"] = 100
    assert f"共 {len(world['all'])} 条" in miit.get("/admin/filings/").get_data(as_text=True)


def test_rows_of_a_staging_import_are_neither_listed_nor_counted(app: Flask, bureau: FlaskClient,
                                                                  world: dict) -> None:
    """The total leaves the staged-rows criterion out only while no import is staging."""
    staged = world[TIANJIN][0]
    with app.app_context():
        uploader = db.session.scalar(select(User.id).where(User.username == "demo_isp_12_1"))
        job = ImportJob(user_id=uploader, filename="a.xlsx", stored_name="staged-job", sha256="0" * 64, size=1,
                        staging=True)
        db.session.add(job)
        db.session.flush()
        db.session.execute(update(Entity).where(Entity.id == staged.id).values(import_job_id=job.id))
        db.session.commit()
    html = bureau.get("/admin/filings/?page_size=100").get_data(as_text=True)
    assert f"共 {len(world[TIANJIN]) - 1} 条" in html and staged.id not in {int(x) for x in ROW_ID.findall(html)}
    with app.app_context():
        db.session.execute(update(ImportJob).values(staging=False))
        db.session.commit()
    assert f"共 {len(world[TIANJIN])} 条" in bureau.get("/admin/filings/").get_data(as_text=True)


def test_page_numbers(miit: FlaskClient, world: dict) -> None:
    """Numbered pages (not only ‹ ›), each page its own rows."""
    total = len(world["all"])
    html = miit.get("/admin/filings/?page_size=20").get_data(as_text=True)
    pages = -(-total // 20)
    assert f"共 {total} 条" in html and pages >= 4
    for n in range(2, pages + 1):
        assert f'page={n - 1}&amp;page_size=20">{n}</a>' in html
    seen = [shown(miit, f"/admin/filings/?page_size=20&page={p}") for p in range(pages)]
    assert set().union(*seen) == {e.id for e in world["all"]} and sum(map(len, seen)) == total


def test_unit_name_results_in_name_order(bureau: FlaskClient, world: dict) -> None:
    """A unit-name search lists in name order (the index's: a page stops at its last row)."""
    html = bureau.get("/admin/filings/?search=" + quote("天津") + "&page_size=100").get_data(as_text=True)
    listed = re.findall(r"天津[^<>\s]*有限公司\d+", html)
    assert sorted(listed) == listed and set(listed) == {e.unit_name for e in world[TIANJIN]}


# --- bad input --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("term", ["x" * 254, "%", "_", "'; DROP TABLE entities; --", "津ICP", "\\", "a.b.", "..",
                                  "http://", "[::1]", "1.2.3.4", "津ICP备-", "\u0000", "🙂", "-1", "9" * 40])
def test_bad_search_is_no_500(bureau: FlaskClient, term: str) -> None:
    """A NUL byte is refused before any view (400: PostgreSQL cannot hold one); anything else lists."""
    for endpoint in ("filings", "applications", "bureau_queue"):
        assert bureau.get(f"/admin/{endpoint}/?search={quote(term)}").status_code == (400 if "\x00" in term else 200)


def test_too_long_search_says_so(bureau: FlaskClient) -> None:
    html = bureau.get("/admin/filings/?search=" + "x" * 254).get_data(as_text=True)
    assert "搜索内容过长" in html and not ROW_ID.search(html)


@pytest.mark.parametrize("query", ["flt0_5=2026-13-01+to+2026-01-01", "flt0_5=2026-02-01+to+2026-01-01",
                                   "flt0_3=abc", "flt0_3=99999999999999999999", "flt0_4=zz", "flt0_2=nonsense",
                                   "flt9_99=1", "sort=99", "page=-1"])
def test_bad_filter_is_no_500(bureau: FlaskClient, query: str) -> None:
    assert bureau.get(f"/admin/applications/?{query}").status_code == 200


def test_sorting_by_unit_name_and_approval_date(bureau: FlaskClient, world: dict) -> None:
    html = bureau.get("/admin/filings/?sort=1&page_size=100").get_data(as_text=True)
    listed = re.findall(r"天津[^<>\s]*有限公司\d+", html)
    assert listed == sorted(e.unit_name for e in world[TIANJIN])
    assert bureau.get("/admin/filings/?sort=2&desc=1").status_code == 200


def test_users_search_by_username_prefix(world: dict, miit: FlaskClient) -> None:
    html = miit.get("/admin/filing_users/?search=demo_isp_12").get_data(as_text=True)
    assert set(re.findall(r"demo_isp_\d+_\d", html)) == {"demo_isp_12_1", "demo_isp_12_2"}
    assert "共 2 条" in html


def test_preapproval_filter_finds_each_province_s_filings(app: Flask, bureau: FlaskClient, miit: FlaskClient,
                                                           world: dict) -> None:
    """Does the 前置审批 filter find a national user's filings in every province, and a bureau's in its own only
    (the item's province is compared with the application's)?"""
    news = {world[TIANJIN][-1].id: TIANJIN, world[BEIJING][-1].id: BEIJING}
    with app.app_context():
        for entity_id, province in news.items():
            website = db.session.scalar(select(Website).where(Website.entity_id == entity_id))
            db.session.add(PreapprovalItem(website=website, entity_id=entity_id, province_code=province, category="3",
                                           document_number="教育[2026]1号"))
        db.session.commit()
    both = applications_of(app, set(news))
    tianjin = applications_of(app, {world[TIANJIN][-1].id})
    assert len(both) == 2 and tianjin < both
    assert shown(miit, "/admin/applications/?flt0_4=3&page_size=100") == both
    assert shown(bureau, "/admin/applications/?flt0_4=3&page_size=100") == tianjin
    assert shown(bureau, "/admin/bureau_queue/?flt0_4=3&page_size=100") == tianjin
    assert shown(bureau, "/admin/bureau_queue/?flt0_4=4&page_size=100") == set()
