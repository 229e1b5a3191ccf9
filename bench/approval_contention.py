"""Batch approval throughput, and sign-ins in another province while it runs (issue 15).

    python bench/approval_contention.py                         # 10,000 applications on SQLite
    BENCH_APPROVALS=2000 python bench/approval_contention.py    # fewer
    BENCH_DATABASE_URL=postgresql+psycopg://... python bench/approval_contention.py   # PostgreSQL (bench/common.py)
    BENCH_APPROVAL_MODES=one,chunked ...                        # also the old all-or-nothing transaction
    BENCH_PROFILE=1 ...                                         # pyinstrument's report of the approval (stderr)

Seeds N more applications in the bureau's review in 天津 (demo.py's seeding, pre-approvals confirmed; on the
shared PostgreSQL database beside its 5,000,000 filings, which are left as they are). One process
signs in as 北京's bureau every 50 ms through the test client (a write with its audit event: the real sign-in);
another process batch-approves the N applications as 天津's bureau. Prints the batch's seconds and approvals/s,
and the sign-ins' median and max latency alone (before the batch) and during it, with failures, beside the
figures issue 15 measured before chunked approval.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

COUNT = int(os.environ.get("BENCH_APPROVALS", "10000"))
MODES = [mode.strip() for mode in os.environ.get("BENCH_APPROVAL_MODES", "chunked").split(",") if mode.strip()]
SIGN_IN_EVERY = 0.05  # seconds between two sign-ins
ALONE_SECONDS = 3.0  # sign-ins measured before the batch starts
#: issue 15, measured before this change (10,000 applications, one transaction)
TODAY = {"postgresql": {"batch": "14–16 s", "rate": "629–714/s", "alone": "~0.005 s", "during": "0.45–0.74 s"},
         "sqlite": {"batch": "8.7–9.4 s", "rate": "1,060–1,150/s", "alone": "—", "during": "8.4–9.2 s"}}


def _app(folder: Path):
    """The app on the benchmark's database (bench/common.py: a SQLite file in `folder`, or the shared one)."""
    from bench import common

    # the demo's 5 % failing registrant checks would be refused under "block": the figure is for approving all
    # N (refusals are counted and printed all the same)
    return common.open_app(folder, "b.db", PASSWORD_HASH_METHOD="pbkdf2:sha256:1000",
                           DOMAIN_REGISTRANT_CHECK="warn")


def seed(folder: Path) -> list[int]:
    """COUNT more applications waiting for 天津's bureau, nothing blocking them (on a shared database they are
    added: each run approves its own); their ids."""
    from sqlalchemy import func, select, text, update

    import demo
    from bench import common
    from extensions import db
    from models import Application, ApplicationState, PreapprovalItem, ReviewState, Website

    app = _app(folder)
    with app.app_context():
        before = db.session.scalar(select(func.max(Application.id))) or 0
        websites_before = db.session.scalar(select(func.max(Website.id))) or 0
        demo.seed(COUNT, common.DEMO_PASSWORD, ApplicationState.BUREAU_REVIEW, "120000")
        db.session.execute(update(PreapprovalItem).where(PreapprovalItem.website_id > websites_before)
                           .values(state=ReviewState.CONFIRMED))  # the authority agreed
        db.session.commit()
        if db.engine.dialect.name == "postgresql":
            db.session.execute(text("ANALYZE applications, entities, websites, domains"))
            db.session.commit()
        return list(db.session.scalars(select(Application.id).where(
            Application.id > before, Application.state == ApplicationState.BUREAU_REVIEW).order_by(Application.id)))


def approver(folder: Path, mode: str) -> dict[str, Any]:
    """Approve the seeded applications as 天津's bureau: chunked (the console's way) or in one transaction."""
    from sqlalchemy import select

    import workflow
    from app import freeze_startup_objects
    from extensions import db
    from models import Application, User

    ids = json.loads((folder / "ids.json").read_text())
    app = _app(folder)
    freeze_startup_objects()  # as a gunicorn worker of deploy/gunicorn.conf.py does, where the console approves
    with app.app_context():
        bureau = db.session.scalar(select(User).where(User.username == "demo_bureau_12"))
        db.session.commit()
        profiler = _profiler()
        started, cpu = time.time(), time.process_time()
        if mode == "chunked":
            outcome = workflow.batch_approve_chunked(bureau, ids)
            approved, refused = len(outcome.approved), len(outcome.refused) + len(outcome.not_done)
        else:
            applications = list(db.session.scalars(select(Application).where(Application.id.in_(ids))))
            workflow.batch_approve(bureau, applications)
            db.session.commit()
            approved, refused = len(applications), 0
        ended, cpu = time.time(), time.process_time() - cpu
        if profiler is not None:
            profiler.stop()
            sys.stderr.write(profiler.output_text(unicode=True, color=False, show_all=False))
    return {"started": started, "ended": ended, "cpu": cpu, "approved": approved, "refused": refused}


def _profiler() -> Any:
    if not os.environ.get("BENCH_PROFILE"):
        return None
    from pyinstrument import Profiler  # installed by hand: `.venv/bin/pip install pyinstrument`

    profiler = Profiler(interval=0.001)
    profiler.start()
    return profiler


def signer(folder: Path) -> dict[str, Any]:
    """Sign in as 北京's bureau every 50 ms until told to stop: (start, seconds, answered) per sign-in."""
    from sqlalchemy.exc import OperationalError

    from bench import common

    client = _app(folder).test_client()
    samples = []
    while not (folder / "stop").exists():
        started = time.time()
        try:
            client.get("/captcha.png")
            started = time.time()
            answered = client.post("/login", data={"username": "demo_bureau_11", "password": common.DEMO_PASSWORD,
                                                   "captcha": "BNCH"}).status_code == 302
            client.get("/logout")
        except OperationalError:  # SQLite's "database is locked" after its busy timeout: a failed sign-in
            answered = False
        samples.append((started, time.time() - started, answered))
        time.sleep(SIGN_IN_EVERY)
    return {"samples": samples}


def _child(kind: str, folder: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, "--child", kind, str(folder), *extra],
                            stdout=subprocess.PIPE, text=True)


def _result(process: subprocess.Popen) -> dict[str, Any]:
    output, _ = process.communicate()
    if process.returncode:
        raise SystemExit(f"a bench process failed ({process.returncode})")
    return json.loads(output.strip().splitlines()[-1])


def _latencies(samples: list[list[Any]], first: float, last: float) -> tuple[list[float], int]:
    chosen = [sample for sample in samples if first <= sample[0] <= last]
    return sorted(sample[1] for sample in chosen), sum(not sample[2] for sample in chosen)


def run(mode: str) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="beian-approval-"))
    (folder / "ids.json").write_text(json.dumps(seed(folder)))
    signing = _child("signer", folder)
    time.sleep(ALONE_SECONDS + 2)  # the signer's start-up, then ALONE_SECONDS of sign-ins alone
    batch = _result(_child("approver", folder, mode))
    time.sleep(0.5)
    (folder / "stop").touch()
    samples = _result(signing)["samples"]
    alone, alone_failed = _latencies(samples, batch["started"] - ALONE_SECONDS, batch["started"])
    during, during_failed = _latencies(samples, batch["started"], batch["ended"])
    seconds = batch["ended"] - batch["started"]
    return {"mode": mode, "seconds": seconds, "rate": batch["approved"] / seconds, "approved": batch["approved"],
            "cpu": batch["cpu"],
            "refused": batch["refused"], "alone": alone, "during": during,
            "failures": alone_failed + during_failed}


def _figure(latencies: list[float]) -> str:
    if not latencies:
        return "—"
    return f"{statistics.median(latencies) * 1000:.0f} / {latencies[-1] * 1000:.0f} ms"


def report(dialect: str, results: list[dict[str, Any]]) -> None:
    today = TODAY[dialect]
    print(f"\nbatch approval of {COUNT:,} applications in 天津, sign-ins of 北京's bureau every 50 ms ({dialect})")
    print(f"{'':34} {'batch':>9} {'approvals/s':>12} {'sign-in alone':>16} {'sign-in during':>16} {'failed':>7}")
    print(f"{'issue 15 (one transaction)':34} {today['batch']:>9} {today['rate']:>12} {today['alone']:>16} "
          f"{'max ' + today['during']:>16} {'':>7}")
    for result in results:
        name = {"chunked": "now: chunked", "one": "now: one transaction"}[result["mode"]]
        print(f"{name:34} {result['seconds']:8.1f}s {result['rate']:12,.0f} {_figure(result['alone']):>16} "
              f"{_figure(result['during']):>16} {result['failures']:7}")
        print(f"{'':34} approved {result['approved']:,}, not approved {result['refused']:,}; approver's CPU "
              f"{result['cpu']:.1f} s; {len(result['during'])} sign-ins during the batch (latency: median / max)")


def main() -> None:
    from bench import common

    report("postgresql" if common.shared() else "sqlite", [run(mode) for mode in MODES])


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "--child":
        kind, where = sys.argv[2], Path(sys.argv[3])
        print(json.dumps(approver(where, sys.argv[4]) if kind == "approver" else signer(where)))
    else:
        main()
