"""The console's search box and filters (issue 12) at 1,000 and 1,000,000 filings.

    python bench/console_search.py            # seeds both databases in temporary folders (1M: 6–15 min)
    BENCH_SEARCH_BIG=/tmp/search/bench1m BENCH_SEARCH_SMALL=/tmp/search/bench1k python bench/console_search.py
    BENCH_SEARCH_PLANS=1 python bench/console_search.py   # also print each page's query plans (for the README)
    BENCH_SEARCH_PAGES='ISP|pre-approval' python bench/console_search.py   # only the pages whose list and label match
    BENCH_DATABASE_URL=postgresql+psycopg://…/beian_5m BENCH_SMALL_DATABASE_URL=postgresql+psycopg://…/beian_1k \
        python bench/console_search.py        # 5,000,000 filings against 1,000, both on PostgreSQL

A folder given is reused when it holds a seeded database (`beian.db`), else seeded there; either way it is
brought to the head revision and ANALYZEd. Signed in as 天津's bureau (demo_bureau_12), each search kind and
filter combination of the bureau's queue (待审核备案) and the filings list (备案信息) is requested 6 times;
the median of the last 5 is printed for both sizes with their ratio and the rows each page shows (rendering
50 rows costs more than rendering 2), and any full scan of a table (bench/run.py's `full_scans`) or sort
of the matches at the large size. The small database holds its 1,000 filings in 天津, so that both sizes
render full pages where a search or filter matches that many.
"""

from __future__ import annotations

import os
import re
import statistics
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import select

from bench import common
from bench.run import full_scans, timed_get
from extensions import db
from models import Application, ApplicationState, Domain, Entity, PreapprovalItem, User, Website, utcnow

PASSWORD = common.DEMO_PASSWORD
TIANJIN = "120000"
TARGET_MS = 150
PAGE_ROWS = 50  # the console's page
ROW_ID = re.compile(r"details/\?id=(\d+)")
BIG_TABLES = re.compile(r"\bFROM (entities|applications|websites|domains)\b")
#: PostgreSQL reads a code table of 31 provinces whole, rightly: only a big table's scan counts
BIG_TABLE_SEQ_SCAN = re.compile(r"Seq Scan on (entities|applications|websites|domains)\b")


def open_app(folder: Path, filings: int, province: str | None):
    """The app on `folder`'s database (the shared ones with BENCH_DATABASE_URL and BENCH_SMALL_DATABASE_URL:
    bench/common.py), seeded with `filings` unless it already holds them; migrated, ANALYZEd when seeded."""
    app = common.open_app(folder, "beian.db", small=province is not None)
    with app.app_context():
        common.ensure_filings(filings, None, province)
    return app


def full_preapproval_queue(app) -> int:
    """Give a 新闻 pre-approval item to queued 天津 filings of the small database until a full page (50) of the queue
    has one; how many were added. The demo gives one filing in 50 such an item: at 1,000 filings the filter's page
    listed 2 applications against 50 at the large size, and rendering 50 rows alone costs more than twice rendering
    2 — the pages compared would not be the same page."""
    with app.app_context():
        with_item = set(db.session.scalars(select(PreapprovalItem.entity_id).where(PreapprovalItem.category == "1")))
        queued = db.session.scalars(select(Application).where(
            Application.province_code == TIANJIN, Application.state == ApplicationState.BUREAU_REVIEW)
            .order_by(Application.id)).all()
        missing = max(0, PAGE_ROWS - sum(1 for a in queued if a.entity_id in with_item))
        chosen = [a for a in queued if a.entity_id not in with_item][:missing]
        for application in chosen:
            website = application.entity.websites[0]
            db.session.add(PreapprovalItem(website_id=website.id, entity_id=application.entity_id,
                                           province_code=TIANJIN, category="1",
                                           document_number=f"新闻[bench]{application.id}号"))
        db.session.commit()
        return len(chosen)


def terms(app) -> dict[str, str]:
    """Values of this database to search for, chosen the same way at both sizes (天津, under review)."""
    with app.app_context():
        queued = db.session.scalar(select(Entity).join(Application, Application.entity_id == Entity.id).where(
            Application.province_code == TIANJIN, Application.state == ApplicationState.BUREAU_REVIEW)
            .order_by(Application.id.desc()).limit(1))
        filed = db.session.scalar(select(Entity).where(Entity.province_code == TIANJIN, Entity.number.is_not(None))
                                  .order_by(Entity.id.desc()).limit(1))
        domain = db.session.scalar(select(Domain.name).join(Website).where(Website.entity_id == queued.id)
                                   .order_by(Domain.name).limit(1))
        isp = db.session.scalar(select(User.id).where(User.username == "demo_isp_12_1"))
    return {"name": queued.unit_name, "fragment": queued.unit_name[:-1], "domain": f"HTTPS://WWW.{domain.upper()}./",
            "certificate": queued.certificate_number, "number_prefix": filed.number[:6],
            "number": filed.number, "website_number": f"{filed.number}-1", "isp": str(isp)}


def pages(t: dict[str, str]) -> list[tuple[str, str, str]]:
    today = utcnow().date()
    month = f"{(today - timedelta(days=30)).isoformat()}+to+{today.isoformat()}"
    q = {key: quote(value) for key, value in t.items()}
    queue, filings = "/admin/bureau_queue/", "/admin/filings/"
    return [
        ("待审核备案", "(none)", queue),
        ("待审核备案", "unit name (whole)", f"{queue}?search={q['name']}"),
        ("待审核备案", "unit name prefix", f"{queue}?search={q['fragment']}"),
        ("待审核备案", "domain (URL, upper case)", f"{queue}?search={q['domain']}"),
        ("待审核备案", "certificate number", f"{queue}?search={q['certificate']}"),
        ("待审核备案", "kind = new filing", f"{queue}?flt0_2=new_filing"),
        ("待审核备案", "submitting ISP", f"{queue}?flt0_3={t['isp']}"),
        ("待审核备案", "pre-approval 新闻", f"{queue}?flt0_4=1"),
        ("待审核备案", "submitted last 30 days", f"{queue}?flt0_5={month}"),
        ("待审核备案", "ISP + kind + 30 days", f"{queue}?flt0_3={t['isp']}&flt1_2=new_filing&flt2_5={month}"),
        ("待审核备案", "name prefix + ISP", f"{queue}?search={q['fragment']}&flt0_3={t['isp']}"),
        ("备案信息", "(none)", filings),
        ("备案信息", "unit name (whole)", f"{filings}?search={q['name']}"),
        ("备案信息", "unit name prefix", f"{filings}?search={q['fragment']}"),
        ("备案信息", "number prefix 津ICP备YY", f"{filings}?search={q['number_prefix']}"),
        ("备案信息", "filing number", f"{filings}?search={q['number']}"),
        ("备案信息", "website number", f"{filings}?search={q['website_number']}"),
        ("备案信息", "domain (URL, upper case)", f"{filings}?search={q['domain']}"),
        ("备案信息", "certificate number", f"{filings}?search={q['certificate']}"),
        ("备案信息", "status = filed", f"{filings}?flt0_1=active"),
        ("备案信息", "unit nature = 企业", f"{filings}?flt0_3=4"),
        ("备案信息", "approved last 30 days", f"{filings}?flt0_4={month}"),
        ("备案信息", "status + nature + 30 days", f"{filings}?flt0_1=active&flt1_3=4&flt2_4={month}"),
        ("备案信息", "number prefix + filed", f"{filings}?search={q['number_prefix']}&flt0_1=active"),
    ]


def chosen(listed: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """The pages whose "list label" matches BENCH_SEARCH_PAGES (a regular expression), or all of them."""
    wanted = re.compile(os.environ.get("BENCH_SEARCH_PAGES", ""))
    return [(page, label, path) for page, label, path in listed if wanted.search(f"{page} {label}")]


def signed_in(app):
    client = app.test_client()
    client.get("/captcha.png")
    response = client.post("/login", data={"username": "demo_bureau_12", "password": PASSWORD, "captcha": "BNCH"})
    assert response.status_code == 302, "sign-in failed"
    return client


def measure(app, client, path: str) -> tuple[float, list[tuple[str, object]], int]:
    """Median of 5 requests after a warm-up one, the statements of the warm-up, the rows the page shows."""
    median, statements, response = timed_get(client, path, warm_up=True, context=app.app_context)
    return median, statements, len(set(ROW_ID.findall(response.get_data(as_text=True))))


def on_big_tables(statements: list[tuple[str, object]]) -> list[tuple[str, object]]:
    """The statements reading filings, websites, domains or applications (the small ones — the page's ISP
    verifications by id, the code tables, the user list of a filter — sort a few rows, by design)."""
    return [(sql, params) for sql, params in statements if BIG_TABLES.search(sql)]


def plans(app, statements: list[tuple[str, object]]) -> list[str]:
    """EXPLAIN QUERY PLAN of the statements reading filings, websites, domains or applications."""
    shown = []
    with app.app_context(), db.engine.connect() as connection:
        for sql, params in on_big_tables(statements):
            if not sql.lstrip().upper().startswith("SELECT"):
                continue
            sqlite = connection.dialect.name == "sqlite"
            rows = connection.exec_driver_sql(("EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN ") + sql, params)
            shown.append("; ".join(str(row[-1] if sqlite else row[0]).strip() for row in rows))
    return shown


def table_scans(app, statements: list[tuple[str, object]]) -> tuple[list[str], list[str]]:
    """`full_scans` of the statements on the big tables, split into whole-table scans and sorts (a sort of a
    search's or a filter's matches, the rows an index found, is no scan)."""
    with app.app_context():
        found = full_scans(on_big_tables(statements))
    scans = [line for line in found if line.startswith("SCAN") or BIG_TABLE_SEQ_SCAN.search(line)]
    return scans, [line for line in found if "TEMP B-TREE" in line]


def main() -> None:
    small_dir = Path(os.environ.get("BENCH_SEARCH_SMALL") or tempfile.mkdtemp(prefix="beian-search-1k-"))
    big_dir = Path(os.environ.get("BENCH_SEARCH_BIG") or tempfile.mkdtemp(prefix="beian-search-1m-"))
    big_n = common.LARGE_FILINGS
    small_app, big_app = open_app(small_dir, 1000, TIANJIN), open_app(big_dir, big_n, None)
    if added := full_preapproval_queue(small_app):
        print(f"the 1k database: a 新闻 pre-approval item given to {added} more queued filings (a full page)")
    with big_app.app_context():
        size = db.session.scalar(select(Entity.id).order_by(Entity.id.desc()).limit(1))
    small_client, big_client = signed_in(small_app), signed_in(big_app)
    print(f"\n{'list':10} {'search / filter':28} {'1k ms':>8} {f'{size:,} ms':>13} {'ratio':>6} {'rows':>7}  "
          f"table scans / sorts of the matches at {size:,}")
    failed, results = [], []
    big_pages = {(page, label): path for page, label, path in pages(terms(big_app))}
    # the two sizes alternate, page by page, so that the machine's load weighs on both alike
    for page, label, small_path in chosen(pages(terms(small_app))):
        small_ms, _, small_rows = measure(small_app, small_client, small_path)
        big_ms, statements, big_rows = measure(big_app, big_client, big_pages[page, label])
        scans, sorts = table_scans(big_app, statements)
        results.append(((page, label), big_ms, statements))
        print(f"{page:10} {label:28} {small_ms:8.1f} {big_ms:13.1f} {big_ms / small_ms:6.2f} "
              f"{f'{small_rows}/{big_rows}':>7}  "
              f"{', '.join(scans) or 'no scan'}{f' / {len(sorts)} sort(s)' if sorts else ''}", flush=True)
        if big_ms > TARGET_MS or big_ms > 2 * small_ms or scans:
            failed.append((page, label))
    print(f"\nmedian over the pages at {size:,}: {statistics.median(ms for _, ms, _ in results):.1f} ms; "
          f"over target (>{TARGET_MS} ms, >2× the 1k time, or a table scan): {failed or 'none'}")
    if os.environ.get("BENCH_SEARCH_PLANS"):
        for (page, label), _ms, statements in results:
            print(f"\n{page} · {label}")
            for line in plans(big_app, statements):
                print(f"    {line}")


if __name__ == "__main__":
    main()
