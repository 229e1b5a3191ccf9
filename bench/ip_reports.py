"""IP reports at scale (issue 13): N allocation records (`seed-demo --ip-blocks N`), then

- the address lookup (`workflow.ip_lookup.holder_chain`, as `flask ip-whois` prints it) of sampled addresses,
- adding one allocation through the workflow (every check, the audit event, the commit),
- the audit findings recomputed (`workflow.ip_findings.recompute_findings`) over the records and the filed
  access ranges (SQLite: BENCH_IP_ACCESSES approved filings, one range each),
- the import of a file of BENCH_IP_ROWS allocation rows for one carrier holding a third of the records (a
  quarter of the rows in the free slots of its existing blocks, the rest in new blocks the file reports), in a
  process of its own so that its peak memory (max RSS) is its own.

On SQLite the seeded file is copied and the copy measured, then thrown away. With BENCH_DATABASE_URL the
benchmark runs on that shared database beside its filings (the 5,000,000 of `bench/common.py`, whose access
ranges the findings check): the N records are seeded into it once and kept, like the filings; what the
measurements add (the allocations, the imported blocks and the findings computed: ids above the marks taken
before) is deleted afterwards, so that the next run finds the same free slots and the same N. A scratch copy
of the database (CREATE DATABASE … TEMPLATE) would copy 22 GB per run; a database of its own without the
filings would not measure the findings at 5,000,000. The audit events of the measurements stay: the chain is
append-only.

    python bench/ip_reports.py                      # N = 1,000,000, 100,000 rows, 1,000,000 access ranges
    BENCH_IP_N=100000 BENCH_IP_ROWS=20000 BENCH_IP_ACCESSES=0 python bench/ip_reports.py
    BENCH_DIR=/var/tmp/bench python bench/ip_reports.py   # keeps the seeded database there for the next run
    BENCH_DATABASE_URL=postgresql+psycopg://… python bench/ip_reports.py   # on that database (bench/common.py)
"""

from __future__ import annotations

import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask import Flask
from sqlalchemy import func, select, text

N = int(os.environ.get("BENCH_IP_N", "1000000"))
ROWS = int(os.environ.get("BENCH_IP_ROWS", "100000"))
ACCESSES = int(os.environ.get("BENCH_IP_ACCESSES", "1000000"))
SAMPLES = 1000
ADDS = 200
PASSWORD = "Bench-pass-1"
CARRIER = "demo_ipr_ct"


def _peak_mb() -> float:
    """The process's peak resident memory: Linux's VmHWM, which starts afresh at exec (ru_maxrss keeps the peak
    of the process forked from, here a parent grown by the findings run), else ru_maxrss."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]) / 1024


def build_app(folder: Path) -> Flask:
    from app import create_app, ensure_first_miit_account
    from bench import common
    from extensions import db
    from seed_data import seed_code_tables, seed_divisions

    url = common.database_url(folder / "ip.db")
    app = create_app({"INSTANCE_PATH": str(common.instance_folder(folder, url)), "SQLALCHEMY_DATABASE_URI": url,
                      "SECRET_KEY": "bench", "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000", "TESTING": True,
                      "MIIT_ADMIN_PASSWORD": PASSWORD, "IMPORT_MAX_ROWS": max(200_000, ROWS + 10_000)})
    with app.app_context():
        common.migrate(app)
        seed_code_tables()
        seed_divisions()
        ensure_first_miit_account()
        db.session.commit()
    return app


def database() -> Path:
    """The seeded folder: built once per (N, accesses) in $BENCH_DIR when set, else in a temporary folder."""
    import demo
    import demo_ip
    from models import ApplicationState

    base = Path(os.environ["BENCH_DIR"]) if os.environ.get("BENCH_DIR") else Path(tempfile.mkdtemp())
    folder = base / f"ip-reports-{N}-{ACCESSES}"
    if (folder / "ready").exists():
        print(f"reusing {folder}")
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    app = build_app(folder)
    with app.app_context():
        started = time.perf_counter()
        summary = demo_ip.seed(N, PASSWORD)
        print(f"seed-demo --ip-blocks {N:,}: {time.perf_counter() - started:.0f} s {json.dumps(summary)}")
        if ACCESSES:
            started = time.perf_counter()
            demo.seed(ACCESSES, PASSWORD, ApplicationState.APPROVED)
            print(f"seed-demo --filings {ACCESSES:,} (approved, one access range each): "
                  f"{time.perf_counter() - started:.0f} s")
    (folder / "ready").touch()
    return folder


def _median_ms(times: list[float]) -> str:
    ordered = sorted(times)
    return (f"median {statistics.median(times) * 1000:.2f} ms, p95 {ordered[int(len(times) * 0.95)] * 1000:.2f} ms "
            f"({len(times)} runs)")


def lookups(app: Flask) -> list[float]:
    """holder_chain of an address inside a random allocation, as the CLI prints it (nothing cached between)."""
    from extensions import db
    from ipindex import address_text
    from models import IpAllocation
    from workflow.ip_lookup import holder_chain

    times, depths = [], []
    with app.app_context():
        highest = db.session.scalar(select(func.max(IpAllocation.id)))
        rng = random.Random(13)
        for _ in range(SAMPLES):
            allocation = db.session.get(IpAllocation, rng.randint(1, highest))
            address = address_text(int(allocation.start_key, 16) + 1) if allocation else "58.0.0.1"
            db.session.expunge_all()
            started = time.perf_counter()
            chain = [step.as_dict() for step in holder_chain(address)]
            times.append(time.perf_counter() - started)
            depths.append(len(chain))
            db.session.rollback()
    print(f"chains: {min(depths)}–{max(depths)} steps, mean {statistics.mean(depths):.1f}")
    return times


def free_slots(unit: Any, kind: str) -> list[tuple[int, int]]:
    """The slots demo_ip left free (one in ten) in the unit's blocks: the carrier's part of its registry blocks
    ("registry") or the whole of the blocks it received ("received")."""
    import demo_ip
    from extensions import db
    from models import IpBlock

    slots = []
    derived = kind == "received"
    for start_key, family in db.session.execute(select(IpBlock.start_key, IpBlock.family).where(
            IpBlock.unit_id == unit.id, IpBlock.derived.is_(derived)).order_by(IpBlock.start_key)):
        shape = demo_ip.V4 if family == 4 else demo_ip.V6
        first = range(demo_ip.QUARTER) if derived else range(demo_ip.QUARTER, demo_ip.SLOTS)
        for slot in first:
            if slot % demo_ip.FREE_EVERY == demo_ip.FREE_EVERY - 1:
                start = int(start_key, 16) + (slot << shape.slot_bits)
                slots.append((start, start + (1 << shape.slot_bits) - 1))
    return slots


def adds(app: Flask) -> list[float]:
    """add_allocation (分配并使用, every check) and its commit, in free slots of the data-centre units' blocks."""
    import demo_ip
    import workflow.ip as ip
    from extensions import db
    from ipindex import address_text
    from models import User

    fields = {"usage": "1", "allocated_on": date(2026, 1, 5), "user_name": "基准测试科技有限公司",
              "user_nature": "4", "province_code": "120000", "city_code": "120100", "address": "天津市和平区某路1号",
              "contact_name": "王五", "contact_phone": "022-12345678", "contact_email": "ip@example.cn"}
    times = []
    with app.app_context():
        carriers = [name for name, *_rest in demo_ip.CARRIERS]
        units = list(db.session.scalars(select(User).where(User.username.like("demo_ipr___"),
                                                           User.username.not_in(carriers))))
        slots = {unit.id: free_slots(unit, "received") for unit in units}
        for index in range(ADDS):
            unit = units[index % len(units)]
            start, end = slots[unit.id][index // len(units)]
            data = ip.AllocationData(start=address_text(start), end=address_text(end), method="1", **fields)
            db.session.commit()
            started = time.perf_counter()
            ip.add_allocation(unit, data)
            db.session.commit()
            times.append(time.perf_counter() - started)
    return times


def findings(app: Flask) -> dict[str, Any] | None:
    try:
        from workflow.ip_findings import recompute_findings
    except ImportError:
        return None
    with app.app_context():
        return recompute_findings()


def make_file(app: Flask, path: Path, rows: int) -> int:
    """ROWS allocation rows for the carrier: its free slots first, then /26s in new /16 blocks the file reports
    (its first sheet). Returns the block rows."""
    import xlsxwriter

    import demo_ip
    import ip_import
    from extensions import db
    from ipindex import address_text
    from models import User

    with app.app_context():
        unit = db.session.scalar(select(User).where(User.username == CARRIER))
        slots = free_slots(unit, "registry")[:rows // 4]
        next_block = demo_ip._next_free(demo_ip.V4)
    blocks = []
    while len(slots) < rows:
        blocks.append((next_block, next_block + 0xFFFF))
        slots += [(next_block + slot * 64, next_block + slot * 64 + 63) for slot in range(1024)][:rows - len(slots)]
        next_block += 0x10000
    workbook = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    sheets = {sheet.kind: workbook.add_worksheet(sheet.title) for sheet in ip_import.SHEETS}
    for sheet in ip_import.SHEETS:
        sheets[sheet.kind].write_row(0, 0, sheet.headers)
    for index, (start, end) in enumerate(blocks, start=1):
        sheets["block"].write_row(index, 0, [address_text(start), address_text(end), "互联网地址注册机构", "APNIC"])
    methods = ["分配并使用"] * 8 + ["自用", "预留"]
    for index, (start, end) in enumerate(slots, start=1):
        method = methods[index % 10]
        cells = [address_text(start), address_text(end), method, ""]
        if method == "分配并使用":
            cells += ["静态", "2026-01-05", f"导入基准科技有限公司{index}", "企业", "企业",
                      "信息传输、软件和信息技术服务业", "天津市", "市辖区", "和平区",
                      f"天津市和平区某路{index % 999 + 1}号", "王五", "13912345678", f"ip{index}@bench.example.cn",
                      address_text(start + 1), "天津市", "否"]
        elif method == "自用":
            cells += ["动态", "2025-12-01"]
        sheets["allocation"].write_row(index, 0, cells)
    workbook.close()
    return len(blocks)


def child_import(folder: str, path: str) -> dict[str, Any]:
    from extensions import db
    from models import JobState, User
    from workflow.ip_imports import queue_ip_import, run_ip_import

    app = build_app(Path(folder))
    with app.app_context():
        before = _peak_mb()
        started = time.perf_counter()
        with open(path, "rb") as stream:
            job = queue_ip_import(db.session.scalar(select(User).where(User.username == CARRIER)), "bench.xlsx",
                                  stream)
        db.session.commit()
        run_ip_import(job)
        errors = json.loads(job.errors)
        return {"seconds": time.perf_counter() - started, "rows": job.total_rows, "imported": job.imported,
                "done": job.state == JobState.DONE, "first_error": errors[0] if errors else None,
                "peak_mb": _peak_mb(), "before_mb": before}


def seeded_shared_database(work: Path) -> Flask:
    """The shared database with its filings (`common.ensure_filings`) and N allocation records: those it lacks
    seeded (once, kept like the filings)."""
    import demo_ip
    from bench import common
    from extensions import db
    from models import IpAllocation

    app = build_app(work)
    with app.app_context():
        common.ensure_filings(common.LARGE_FILINGS)
        present = db.session.scalar(select(func.count()).select_from(IpAllocation)) or 0
        if present < N:
            started = time.perf_counter()
            summary = demo_ip.seed(N - present, PASSWORD)
            for table in ("ip_blocks", "ip_allocations", "ip_self_brought"):  # what the planner knows of them
                db.session.execute(text(f"ANALYZE {table}"))
            db.session.commit()
            print(f"seed-demo --ip-blocks {N - present:,}: {time.perf_counter() - started:.0f} s "
                  f"{json.dumps(summary)}")
    return app


def access_ranges(app: Flask) -> int:
    """The filed access ranges the findings check against (all the shared database holds)."""
    from extensions import db
    from models import AccessRange

    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(AccessRange)) or 0


def measure(app: Flask, work: Path, accesses: int) -> None:
    database_name = "SQLite" if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite") else "PostgreSQL"
    print(f"\nIP reports, {N:,} allocation records ({database_name})")
    print(f"address lookup (holder_chain + as_dict): {_median_ms(lookups(app))}  [target ≤ 5 ms]")
    print(f"add one allocation (all checks, audit, commit): {_median_ms(adds(app))}  [target ≤ 10 ms]")
    found = findings(app) if accesses else None
    if found is not None:
        print(f"findings recomputed over {N:,} records and {accesses:,} access ranges: {json.dumps(found)}  "
              "[target ≤ 300 s]")
    path = work / "ip-import.xlsx"
    started = time.perf_counter()
    blocks = make_file(app, path, ROWS)
    print(f"generated {ROWS:,} allocation rows and {blocks} block rows ({path.stat().st_size / 1e6:.1f} MB) in "
          f"{time.perf_counter() - started:.0f} s")
    output = subprocess.run([sys.executable, __file__, "--child", str(work), str(path)], check=True,
                            capture_output=True, text=True).stdout
    result = json.loads(output.strip().splitlines()[-1])
    assert result["done"] and result["imported"] == ROWS + blocks, result
    print(f"import of {ROWS:,} allocation rows (upload → committed, audit events included): "
          f"{result['seconds']:.1f} s = {ROWS / result['seconds']:,.0f} rows/s, peak {result['peak_mb']:.0f} MB "
          f"(app alone {result['before_mb']:.0f} MB)  [targets ≤ 60 s, ≤ 300 MB]")


def main() -> None:
    from bench import common
    from models import IpAllocation, IpBlock, IpFinding

    work = Path(tempfile.mkdtemp(prefix="beian-ip-"))
    if not common.shared():
        shutil.copy(database() / "ip.db", work / "ip.db")
        measure(build_app(work), work, ACCESSES)
        shutil.rmtree(work)
        return
    app = seeded_shared_database(work)
    with app.app_context():
        marks = common.highest_ids(IpFinding, IpAllocation, IpBlock)
    try:
        measure(app, work, access_ranges(app) if ACCESSES else 0)  # BENCH_IP_ACCESSES=0: no findings
    finally:
        with app.app_context():
            restore(marks)
        shutil.rmtree(work)


def restore(marks: dict[Any, int]) -> None:
    """What the measurements added to the shared database deleted, the findings they computed too (millions
    at 5,000,000 filings: every filed range outside the demo's IP space), and the findings marked for a new
    run, which the worker makes from the records as they are again."""
    from bench import common
    from extensions import db
    from workflow.ip_findings import mark_stale

    deleted = common.delete_added(marks)  # findings, then allocations: the imported ones lie in imported blocks
    mark_stale()
    db.session.commit()
    print(f"removed what the measurements added: {json.dumps(deleted)}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        print(json.dumps(child_import(sys.argv[2], sys.argv[3]), ensure_ascii=False))
    else:
        main()
