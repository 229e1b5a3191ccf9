"""The website inspector (issue 18): BENCH_INSPECTION_SITES (10,000) websites served by the demo farm
(demo_sites.Farm, a child process, one loopback port, hosts by name) — target ≥ 200 websites/s on this 2-core machine
with a peak memory ≤ 300 MB, and one hostile site of each kind (slow body, endless redirects, a 1 GB body, a gzip
bomb) slowing the others by at most 10 %.

- stage 1, `inspector.inspect_many` alone: 10,000 `Site`s, certificates signed by a real key ring (a temporary
  instance); 90 % compliant, 4 % number missing, 4 % not linked, 2 % dead. Run without, then with the hostile sites
  (placed first), then without again (the load of the machine moves: both clean runs are printed).
- stage 2, the whole run through the worker (`workflow.inspections.run_inspection_jobs`) on a SQLite database of
  10,000 demo filings (`seed-demo`), the farm built from the database's websites and their current certificates:
  reading the batches, inspecting, storing results and findings — the figure that counts.

Figures: websites/s, p50 / p99 seconds per website, peak RSS of the inspecting process (ru_maxrss), the load average.

    python bench/inspection.py
    BENCH_INSPECTION_SITES=2000 BENCH_INSPECTION_STAGES=1 python bench/inspection.py
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import ipindex  # noqa: E402
from certificates.keyring import KeyRing  # noqa: E402
from demo_sites import DemoSite, Farm  # noqa: E402
from inspector import Fetcher, Policy, Site, inspect_many, resolver_from_config  # noqa: E402

SITES = int(os.environ.get("BENCH_INSPECTION_SITES", "10000"))
STAGES = os.environ.get("BENCH_INSPECTION_STAGES", "1,2").split(",")
THREADS = int(os.environ.get("BENCH_INSPECTION_THREADS", "32"))
MIIT = "bench_inspection_miit"
HOSTILE = ("slow", "redirect_loop", "huge", "gzip_bomb")
LOOPBACK = ipindex.address_key("127.0.0.1")
#: the settings every stage runs with: the production defaults but the farm's loopback address allowed
SETTINGS: dict[str, Any] = {"INSPECTION_THREADS": THREADS, "INSPECTION_TOTAL_TIMEOUT": 15,
                            "INSPECTION_CONNECT_TIMEOUT": 5}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def behaviour(n: int) -> str:
    """90 % compliant, 4 % number missing, 4 % not linked, 2 % dead."""
    return {0: "missing", 1: "missing", 2: "unlinked", 3: "unlinked", 4: "dead"}.get(n % 50, "compliant")


def synthetic(ring: KeyRing) -> tuple[list[DemoSite], list[Site]]:
    """SITES websites, each its own entity and certificate, plus one hostile site of each kind (ids < 0)."""
    farm_sites, sites = [], []
    for n in range(SITES):
        entity = f"京ICP备{20_000_000 + n}号"
        website, host = f"{entity}-1", f"www.bench{n}.cn"
        token = ring.sign({"certificate_id": f"c{n}", "entity_number": entity, "websites": [{"number": website}]})
        farm_sites.append(DemoSite(host, behaviour(n), number=website, token=token))
        sites.append(Site(n, website, entity, (host,), f"http://{host}/", ((n, ((LOOPBACK, LOOPBACK),)),), f"c{n}"))
    hostile = [DemoSite(f"www.{kind.replace('_', '-')}.cn", kind) for kind in HOSTILE]
    return farm_sites + hostile, [Site(-1 - n, "京ICP备1号-1", "京ICP备1号", (site.host,), "", (), None)
                                  for n, site in enumerate(hostile)] + sites


Inspected = list[tuple[int, float, float]]  # (website id, seconds it took, perf_counter when it was done)


def timed(inspect: Callable[[], Inspected]) -> dict[str, float]:
    """Run `inspect`; the figures of the ordinary websites (ids ≥ 0): their rate is counted until the last of them
    is done, whatever the hostile ones still do."""
    load = os.getloadavg()[0]
    started = time.perf_counter()
    done = [(seconds, finished) for website_id, seconds, finished in inspect() if website_id >= 0]
    wall = max(finished for _, finished in done) - started
    seconds = sorted(elapsed for elapsed, _ in done)
    return {"sites": len(seconds), "wall": wall, "rate": len(seconds) / wall, "p50": statistics.median(seconds),
            "p99": seconds[int(len(seconds) * 0.99) - 1], "load": load, "rss": peak_rss_mb()}


def stage1() -> list[tuple[str, dict[str, float]]]:
    ring = KeyRing.at(tempfile.mkdtemp(prefix="bench-inspection-keys-"))
    farm_sites, sites = synthetic(ring)
    farm = Farm(farm_sites).start_process()
    try:
        config = {**SETTINGS, **farm.config()}
        fetcher = Fetcher(Policy.from_config(config), resolver_from_config(config))
        jwks = ring.jwks()

        def run(with_hostile: bool) -> Callable[[], Inspected]:
            chosen = sites if with_hostile else [site for site in sites if site.website_id >= 0]
            return lambda: [(site.website_id, seconds, time.perf_counter())
                            for site, _, seconds in inspect_many(chosen, fetcher, jwks)]

        return [("inspect_many, clean", timed(run(False))), ("inspect_many, + 4 hostile sites", timed(run(True))),
                ("inspect_many, clean again", timed(run(False)))]
    finally:
        farm.stop()


def database_farm(hostile: int) -> tuple[list[DemoSite], list[int]]:
    """The farm of the database's websites in force (in the app context): each live domain served with the
    website's number and its entity's current certificate, behaving as in stage 1; with `hostile`, the first
    websites of the run behave as the hostile kinds instead (their ids returned)."""
    from sqlalchemy import select

    from extensions import db
    from models import Certificate, CertificateStatus, Domain, Entity, Website
    from workflow.inspections import in_force

    rows = db.session.execute(
        select(Website.id, Website.number, Domain.name, Certificate.token)
        .join(Entity, Website.entity_id == Entity.id).join(Domain, Domain.website_id == Website.id)
        .outerjoin(Certificate, (Certificate.entity_id == Entity.id)
                   & (Certificate.status == CertificateStatus.CURRENT))
        .where(*in_force(), Domain.live).order_by(Website.id)).all()
    ids = list(dict.fromkeys(website_id for website_id, *_ in rows))
    kinds = dict(zip(ids[:hostile], HOSTILE, strict=False))
    return [DemoSite(domain, kinds.get(website_id) or behaviour(website_id), number=number or "", token=token or "")
            for website_id, number, domain, token in rows], list(kinds)


def worker_run(hostile: int) -> tuple[str, dict[str, float]]:
    """One national run of MIIT through the worker's step (in the app context), the farm built for it."""
    from flask import current_app
    from sqlalchemy import select

    from extensions import db
    from models import InspectionResult, InspectionRun, InspectionScope, Role, RunState, User, utcnow
    from tests.helpers import make_user
    from workflow import inspections

    farm_sites, hostile_ids = database_farm(hostile)
    farm = Farm(farm_sites).start_process()
    current_app.config.update(farm.config())
    try:
        miit = db.session.scalar(select(User).where(User.username == MIIT)) or make_user(MIIT, Role.MIIT)
        run_id = inspections.start_run(miit, InspectionScope.ALL).id
        db.session.commit()

        def work() -> Inspected:
            """The run to its end; each website done when its result was stored (the run itself ends with its
            slowest website)."""
            started, started_at = time.perf_counter(), utcnow()
            while db.session.get(InspectionRun, run_id, populate_existing=True).state != RunState.DONE:
                inspections.run_inspection_jobs()
            return [(-1 if website_id in hostile_ids else website_id, duration / 1000,
                     started + (checked_at - started_at).total_seconds())
                    for website_id, duration, checked_at in db.session.execute(select(
                        InspectionResult.website_id, InspectionResult.duration_ms, InspectionResult.checked_at).where(
                        InspectionResult.run_id == run_id))]

        name = "worker run, + 4 hostile sites" if hostile else "worker run, clean"
        return f"{name} ({len(farm_sites):,} domains)", timed(work)
    finally:
        farm.stop()


def stage2() -> list[tuple[str, dict[str, float]]]:
    """National runs through the worker on a SQLite file of SITES demo filings: clean, then with the first four
    websites hostile."""
    from bench import common

    folder = Path(tempfile.mkdtemp(prefix="bench-inspection-"))
    app = common.open_app(folder, "inspection.db", PASSWORD_HASH_METHOD="pbkdf2:sha256:1000",
                          INSPECTION_ALLOWED_NETWORKS="127.0.0.1/32", **SETTINGS)
    started = time.perf_counter()  # seeded by the command line, so that its memory is not the worker's
    subprocess.run([sys.executable, "-m", "flask", "--app", "app", "seed-demo", "--filings", str(SITES)], cwd=ROOT,
                   check=True, stdout=subprocess.DEVNULL, env={
                       **os.environ, "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"], "SECRET_KEY": "bench",
                       "BEIAN_INSTANCE_PATH": str(folder), "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000"})
    print(f"seed-demo --filings {SITES:,}: {time.perf_counter() - started:.0f} s", flush=True)
    with app.app_context():
        return [worker_run(0), worker_run(len(HOSTILE))]


def row(name: str, figures: dict[str, float]) -> str:
    return (f"{name:40} {figures['sites']:>7,.0f} {figures['wall']:>7.1f} {figures['rate']:>9.0f} "
            f"{figures['p50'] * 1000:>7.0f} {figures['p99'] * 1000:>7.0f} {figures['rss']:>8.0f} "
            f"{figures['load']:>6.1f}")


def main() -> None:
    if len(STAGES) > 1:  # each stage in a process of its own: its peak memory is its own
        for stage in STAGES:
            subprocess.run([sys.executable, __file__], check=True, env={**os.environ,
                                                                         "BENCH_INSPECTION_STAGES": stage})
        return
    print(f"website inspector: {SITES:,} websites on the demo farm (loopback), {THREADS} threads", flush=True)
    results: list[tuple[str, dict[str, float]]] = []
    if "1" in STAGES:
        results += stage1()
        for name, figures in results:
            print(row(name, figures), flush=True)
    if "2" in STAGES:
        results += stage2()
        for name, figures in results[-2:]:
            print(row(name, figures), flush=True)
    print(f"\n{'':40} {'sites':>7} {'s':>7} {'sites/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'RSS MB':>8} {'load':>6}")
    for name, figures in results:
        print(row(name, figures))
    print("targets: ≥ 200 websites/s, peak RSS ≤ 300 MB, hostile sites slow the others by ≤ 10 %")


if __name__ == "__main__":
    main()
