"""Filing benchmarks (issue #4): batch approval throughput, and queue/list pages at 1,000 vs 1,000,000.

    python bench/filings.py                    # both; the 1,000,000-filing database is built once
    BENCH_FILINGS=200000 python bench/filings.py
    BENCH_DATABASE_URL=postgresql+psycopg://… python bench/filings.py   # 5,000,000 there (bench/common.py)

Prints approvals/s for a 10,000-application batch (numbers + certificates + e-mails + audit events,
one transaction) and, for the bureau's queue and the filings list filtered by province, the median
render time of 5 requests at each size and their ratio. The small database holds its 1,000 filings
in one province, so that both sizes render full pages.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, select, update

import demo
import workflow
from app import ensure_first_miit_account
from bench import common
from extensions import db
from models import Application, ApplicationState, PreapprovalItem, ReviewState, User, Website

PASSWORD = common.DEMO_PASSWORD
BIG = common.LARGE_FILINGS


def fresh_app(folder: Path, small: bool = False):
    """The app on the benchmark's database (bench/common.py), with the first MIIT account. The registrant check
    warns: under "block" the batch would be refused for the demo's 5 % of failing checks (issue 14), and the
    figure is for approving all of them, as in bench/approval_contention.py."""
    app = common.open_app(folder, "b.db", small, PASSWORD_HASH_METHOD="pbkdf2:sha256:1000",
                          MIIT_ADMIN_PASSWORD=PASSWORD, DOMAIN_REGISTRANT_CHECK="warn")
    with app.app_context():
        ensure_first_miit_account()
        db.session.commit()
    return app


def batch_approval(count: int = 10000) -> None:
    """`count` applications queued in 天津 (added on a shared database: each run approves its own), approved in
    one transaction."""
    app = fresh_app(Path(tempfile.mkdtemp(prefix="beian-approve-")))
    with app.app_context():
        before = db.session.scalar(select(func.max(Application.id))) or 0
        websites_before = db.session.scalar(select(func.max(Website.id))) or 0
        demo.seed(count, PASSWORD, ApplicationState.BUREAU_REVIEW, "120000")
        db.session.execute(update(PreapprovalItem).where(PreapprovalItem.website_id > websites_before)
                           .values(state=ReviewState.CONFIRMED))  # the authority agreed
        bureau = db.session.scalar(select(User).where(User.username == "demo_bureau_12"))
        applications = list(db.session.scalars(select(Application).where(
            Application.state == ApplicationState.BUREAU_REVIEW, Application.id > before).order_by(Application.id)))
        started = time.perf_counter()
        workflow.batch_approve(bureau, applications)
        db.session.commit()
        seconds = time.perf_counter() - started
    print(f"batch approval: {len(applications):,} applications in {seconds:.1f} s = "
          f"{len(applications) / seconds:,.0f} approvals/s (numbers, certificates, e-mails, audit events)")


def median_ms(client, path: str) -> float:
    timings = []
    for _ in range(6):
        started = time.perf_counter()
        response = client.get(path)
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (path, response.status_code)
    return statistics.median(timings[1:])  # the first request warms the caches


def pages(size: int, province_code: str | None = None) -> dict[str, float]:
    """The bureau of 天津's pages over `size` filings (all in 天津 when `province_code` says so)."""
    app = fresh_app(Path(tempfile.mkdtemp(prefix=f"beian-list-{size}-")), small=province_code is not None)
    with app.app_context():
        common.ensure_filings(size, None, province_code)
    client = app.test_client()
    client.get("/captcha.png")
    assert client.post("/login", data={"username": "demo_bureau_12", "password": PASSWORD,
                                       "captcha": "BNCH"}).status_code == 302
    return {"bureau queue": median_ms(client, "/admin/bureau_queue/"),
            "filings list, province 天津": median_ms(client, "/admin/filings/?flt0_0=120000")}


def main() -> None:
    batch_approval()
    # 1,000 filings all in 天津, so that both sizes render full pages of 50 rows: what is compared is
    # how the queries scale, not how many rows a page happens to show
    small, big = pages(1000, "120000"), pages(BIG)
    print(f"\n{'page':32} {'1,000 ms':>10} {f'{BIG:,} ms':>14} {'ratio':>7}")
    for name in small:
        print(f"{name:32} {small[name]:10.1f} {big[name]:14.1f} {big[name] / small[name]:7.2f}")


if __name__ == "__main__":
    main()
