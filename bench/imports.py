"""Import and export benchmarks (issue #7).

    python bench/imports.py                 # 100,000-row import, and the export of 1,000,000 filings
    python bench/imports.py --errors        # every row wrong; 200,001 rows; 131 MB of shared strings
    BENCH_IMPORT_ROWS=20000 BENCH_FILINGS=100000 python bench/imports.py
    BENCH_EXPORT=0 python bench/imports.py  # the import only (the export of 5,000,000 filings takes long)

Each measurement runs in its own process, so that its peak memory (max RSS) is its own:
- openpyxl's read-only mode merely iterating the file (the issue's reference),
- the import: the worker's job from the queued upload to the committed applications (reading with
  calamine, checking every row, bulk registry checks, one transaction of multi-row inserts),
- the export of the filings list as MIIT (every filing) through the console's export URL.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROOT = Path(__file__).resolve().parent.parent
ROWS = int(os.environ.get("BENCH_IMPORT_ROWS", "100000"))
FILINGS = int(os.environ.get("BENCH_FILINGS", "1000000"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))  # the medians are reported


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_file(path: Path, rows: int, mobile: str = "13912345678", first: int = 5_000_000) -> None:
    """A realistic file: every row a website of its own entity, spread over the provinces (every row valid,
    unless `mobile` is a wrong number); credit codes, names and domains numbered from `first` + 1."""
    from openpyxl import Workbook

    import demo
    import importer
    from seed_data import PROVINCES

    provinces = [name for _code, name, _abbr in PROVINCES]
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(importer.DATA_SHEET)
    sheet.append([column.header for column in importer.COLUMNS])
    for n in range(first + 1, first + rows + 1):
        province = provinces[n % len(provinces)]
        sheet.append([province, f"{province[:2]}导入数据科技有限公司{n}", "企业", "统一社会信用代码证书",
                      demo.credit_code(n), f"{province}某区某路{n % 999 + 1}号", "王五",
                      "11010519491231002X", mobile, f"owner{n}@import.example.cn", f"导入网站{n}",
                      f"www.bulk{n}.cn;bulk{n}.cn", f"http://www.bulk{n}.cn/", "单位门户网站", "主机托管", province,
                      "203.0.113.1", "203.0.113.20", "", "", ""])
    workbook.save(path)


def child_iterate(path: str) -> dict[str, float]:
    from openpyxl import load_workbook

    started = time.perf_counter()
    workbook = load_workbook(path, read_only=True)
    count = sum(1 for _row in workbook.active.iter_rows(values_only=True))
    return {"seconds": time.perf_counter() - started, "rows": count - 1, "peak_mb": _peak_mb()}


def _app(folder: Path):
    from bench.filings import fresh_app

    return fresh_app(folder)


def child_import(path: str) -> dict[str, float]:
    from sqlalchemy import select

    import workflow
    from extensions import db
    from models import Role, User
    from tests.helpers import make_user

    app = _app(Path(tempfile.mkdtemp(prefix="beian-import-")))
    with app.app_context():
        if not db.session.scalar(select(User.id).where(User.username == "bench_importer")):  # a shared database
            make_user("bench_importer", Role.ISP, "120000", organisation="导入基准接入商", can_import=True)
        before = _peak_mb()
        started = time.perf_counter()
        with open(path, "rb") as stream:
            importer_isp = db.session.scalar(select(User).where(User.username == "bench_importer"))
            job = workflow.queue_import(importer_isp, "bench.xlsx", stream)
        db.session.commit()
        workflow.run_import(job)
        seconds = time.perf_counter() - started
        errors = json.loads(job.errors)
        return {"seconds": seconds, "job": job.id, "rows": job.total_rows, "imported": job.imported,
                "errors": len(errors),
                "first_error": errors[0] if errors else None, "peak_mb": _peak_mb(), "before_mb": before}


def remove_imported(job_id: int) -> None:
    """On the shared database, what an import run added (its entities with everything under them, and its audit
    events not yet chained: chained ones stay, the chain must not change), so that repeated runs leave the 5M
    registry as they found it."""
    from sqlalchemy import String, and_, cast, delete, or_, select, text

    from extensions import db
    from models import (
        Access,
        Application,
        AuditEvent,
        Domain,
        Entity,
        ImportJob,
        IspVerification,
        PreapprovalItem,
        Website,
    )

    applications = select(cast(Application.id, String)).where(Application.import_job_id == job_id)
    own_events = or_(and_(AuditEvent.object_type == "import", AuditEvent.object_id == str(job_id)),
                     and_(AuditEvent.action == "application.imported", AuditEvent.object_type == "application",
                          AuditEvent.object_id.in_(applications)))
    with _app(Path(tempfile.mkdtemp(prefix="beian-import-clean-"))).app_context():
        # fresh statistics first: with the pending events' count stale (the sequencer chains them), PostgreSQL
        # chose to scan every pending event for each application id instead of the (object_id, …) index
        db.session.execute(text("ANALYZE audit_events"))
        db.session.execute(delete(AuditEvent).where(AuditEvent.seq.is_(None), own_events))
        db.session.execute(delete(Domain).where(Domain.website_id.in_(
            select(Website.id).where(Website.import_job_id == job_id))))
        for model in (IspVerification, Application, Access, PreapprovalItem, Website, Entity):
            db.session.execute(delete(model).where(model.import_job_id == job_id))
        db.session.execute(delete(ImportJob).where(ImportJob.id == job_id))
        db.session.commit()


def make_shared_strings_file(path: Path, megabytes: int = 131) -> None:
    """The template's header and one row, plus a shared-strings table of `megabytes` MB of distinct texts,
    streamed into the archive (this process stays small: a child forked from it inherits its peak memory)."""
    import io
    import zipfile

    from tests.import_files import plain_xlsx

    count = megabytes * 1_000_000 // 40
    with zipfile.ZipFile(io.BytesIO(plain_xlsx([["天津市"]]))) as source, \
            zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            target.writestr(item.filename, source.read(item.filename))
        with target.open("xl/sharedStrings.xml", "w", force_zip64=True) as part:
            part.write(b'<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/'
                       b'spreadsheetml/2006/main">')
            for start in range(0, count, 100_000):
                part.write("".join(f"<si><t>共享字符串第{n:09d}个</t></si>"
                                   for n in range(start, min(count, start + 100_000))).encode())
            part.write(b"</sst>")


def child_reader(path: str) -> dict[str, float]:
    """The reader alone on a file (the shared-strings table, rows refused past the maximum)."""
    import xlsx_reader

    app = _app(Path(tempfile.mkdtemp(prefix="beian-reader-")))
    with app.app_context():
        started = time.perf_counter()
        outcome = "read"
        try:
            xlsx_reader.check_container(Path(path))
            _header, rows, _count = xlsx_reader.read_rows(Path(path))
            rows_read = sum(1 for _row in rows)
            outcome = f"read {rows_read:,} rows"
        except xlsx_reader.ImportRefused as refused:
            outcome = refused.message
        return {"seconds": time.perf_counter() - started, "outcome": outcome, "peak_mb": _peak_mb()}


def child_export(folder: str) -> dict[str, float]:
    from sqlalchemy import select

    from extensions import db
    from models import Role, User
    from tests.helpers import PASSWORD, make_user

    app = _app(Path(folder))
    with app.app_context():
        if not db.session.scalar(select(User.id).where(User.username == "bench_exporter")):  # a shared database
            make_user("bench_exporter", Role.MIIT)
    client = app.test_client()
    client.get("/captcha.png")
    assert client.post("/login", data={"username": "bench_exporter", "password": PASSWORD,
                                       "captcha": "BNCH"}).status_code == 302
    from openpyxl import load_workbook

    before = _peak_mb()
    started = time.perf_counter()
    response = client.get("/admin/filings/export/xlsx/", buffered=False)
    assert response.status_code == 200
    out = Path(folder) / "export.xlsx"
    with out.open("wb") as target:
        for chunk in response.response:
            target.write(chunk)
    response.close()
    seconds, peak = time.perf_counter() - started, _peak_mb()
    rows = sum(1 for _row in load_workbook(out, read_only=True).active.iter_rows(values_only=True)) - 1
    return {"seconds": seconds, "rows": rows, "bytes": out.stat().st_size, "peak_mb": peak, "before_mb": before}


def run_child(kind: str, argument: str) -> dict[str, float]:
    output = subprocess.run([sys.executable, __file__, "--child", kind, argument], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def export_database() -> Path:
    """The folder of bench/public_lookup.py's database (1,000,000 filings, built there once, reused; or the
    shared database)."""
    from bench import public_lookup

    return public_lookup.database()


def import_file(folder: Path, run: int) -> Path:
    """The file of an import run: one for every run on a fresh SQLite database; on a shared database one per
    run, numbered past every entity there (so that no row is a duplicate of an earlier run's)."""
    from bench import common

    if run and not common.shared():
        return folder / "bulk-0.xlsx"
    first = 5_000_000
    if common.shared():
        from sqlalchemy import func, select

        from extensions import db
        from models import Entity

        with _app(folder).app_context():
            first += db.session.scalar(select(func.max(Entity.id))) or 0
    path = folder / f"bulk-{run}.xlsx"
    started = time.perf_counter()
    make_file(path, ROWS, first=first)
    print(f"generated {ROWS:,} rows × 21 columns ({path.stat().st_size / 1e6:.1f} MB) in "
          f"{time.perf_counter() - started:.0f} s", flush=True)
    return path


def main() -> None:
    from bench import common

    folder = Path(tempfile.mkdtemp(prefix="beian-bench-import-"))
    runs: dict[str, list[dict[str, float]]] = {"iterate": [], "import": []}
    for run in range(REPEAT):  # interleaved, so that a slow spell of the machine hits both alike
        path = import_file(folder, run)
        for kind in runs:
            runs[kind].append(run_child(kind, str(path)))
        if common.shared():
            remove_imported(runs["import"][-1]["job"])
    assert all(run["imported"] == ROWS for run in runs["import"]), runs["import"]
    for kind, results in runs.items():
        print(f"{kind}: " + ", ".join(f"{r['seconds']:.1f} s" for r in results))
    iterate, imported = (sorted(results, key=lambda r: r["seconds"])[len(results) // 2] for results in runs.values())
    print(f"\n{'import of ' + format(ROWS, ',') + ' rows (median of ' + str(REPEAT) + ')':40} "
          f"{'s':>7} {'rows/s':>9} {'peak MB':>8}")
    print(f"{'openpyxl read-only, iterate only':40} {iterate['seconds']:7.1f} "
          f"{iterate['rows'] / iterate['seconds']:9,.0f} {iterate['peak_mb']:8.0f}")
    print(f"{'import: upload → committed':40} {imported['seconds']:7.1f} "
          f"{imported['rows'] / imported['seconds']:9,.0f} {imported['peak_mb']:8.0f}")
    print(f"ratio import / bare iteration: {imported['seconds'] / iterate['seconds']:.2f} (target ≤ 1.0); "
          f"peak memory {imported['peak_mb']:.0f} MB (target ≤ 300)")
    if os.environ.get("BENCH_EXPORT", "1") == "0":
        return
    exported = run_child("export", str(export_database()))
    print(f"\nexport of the filings list as MIIT: {exported['rows']:,} rows in {exported['seconds']:.1f} s = "
          f"{exported['rows'] / exported['seconds']:,.0f} rows/s; {exported['bytes'] / 1e6:.0f} MB; "
          f"peak memory {exported['peak_mb']:.0f} MB (before the export: {exported['before_mb']:.0f} MB)")


def errors_and_bounds() -> None:
    """Issue 11, item 15: every row wrong; a file one row over the maximum; a huge shared-strings table."""
    folder = Path(tempfile.mkdtemp(prefix="beian-bench-errors-"))
    wrong, over, shared = folder / "wrong.xlsx", folder / "over.xlsx", folder / "shared.xlsx"
    make_file(wrong, ROWS, mobile="1391234567")
    result = run_child("import", str(wrong))
    print(f"{ROWS:,} rows each with an error → error list and marked file: {result['seconds']:.1f} s, "
          f"{result['errors']:,} errors on the page, peak {result['peak_mb']:.0f} MB (target ≤ 60 s, ≤ 300 MB)")
    make_file(over, 200_001)
    result = run_child("reader", str(over))
    print(f"200,001 rows: {result['outcome']} in {result['seconds']:.1f} s, peak {result['peak_mb']:.0f} MB")
    make_shared_strings_file(shared)
    result = run_child("reader", str(shared))
    import zipfile

    size = zipfile.ZipFile(shared).getinfo("xl/sharedStrings.xml").file_size / 1e6
    print(f"{size:.0f} MB of shared strings: {result['outcome']} in {result['seconds']:.1f} s, "
          f"peak {result['peak_mb']:.0f} MB")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        result = {"iterate": child_iterate, "import": child_import, "export": child_export,
                  "reader": child_reader}[sys.argv[2]](sys.argv[3])
        print(json.dumps(result, ensure_ascii=False, default=str))
    elif sys.argv[1:] == ["--errors"]:
        errors_and_bounds()
    else:
        main()
