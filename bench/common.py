"""Which database a benchmark runs on: by default a SQLite file in the benchmark's own folder; with
BENCH_DATABASE_URL (postgresql+psycopg://…) that database, shared by every benchmark.

A shared database is never dropped or re-created: each benchmark counts what it needs and seeds only what is
missing, so the 5,000,000-website seed (`flask --app app seed-demo --filings 5000000`, or the first benchmark
to need it) is made once and reused. Benchmarks comparing against a small database (1,000 filings) use
BENCH_SMALL_DATABASE_URL for it when set, else a SQLite file.

On PostgreSQL the instance folder (signing keys, uploads) is one for every benchmark too, BENCH_INSTANCE
(default: $TMPDIR/beian-bench-postgresql), so that the keys which signed the seeded certificates stay.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import func, select, text

from models import ApplicationState

BENCH_DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "")
BENCH_SMALL_DATABASE_URL = os.environ.get("BENCH_SMALL_DATABASE_URL", "")
#: the password of the demo accounts (demo_bureau_12 …): seed-demo's default, so that a database seeded from
#: the command line serves the benchmarks
DEMO_PASSWORD = "Demo-pass-2026"
#: filings in the large database: the issue's national scale on PostgreSQL, 1,000,000 on SQLite
LARGE_FILINGS = int(os.environ.get("BENCH_FILINGS", "5000000" if BENCH_DATABASE_URL else "1000000"))


def shared() -> bool:
    """Whether the benchmarks run on the shared database of BENCH_DATABASE_URL."""
    return bool(BENCH_DATABASE_URL)


def database_url(sqlite_file: Path, small: bool = False) -> str:
    """The shared database (BENCH_SMALL_DATABASE_URL for a `small` one), else the benchmark's SQLite file."""
    url = BENCH_SMALL_DATABASE_URL if small else BENCH_DATABASE_URL
    return url or f"sqlite:///{sqlite_file}"


def instance_folder(folder: Path, url: str) -> Path:
    """The instance folder for a database: the benchmark's own folder for a SQLite file, one shared folder for
    a server's database."""
    if url.startswith("sqlite"):
        return folder
    shared_folder = Path(os.environ.get("BENCH_INSTANCE") or Path(tempfile.gettempdir()) / "beian-bench-postgresql")
    shared_folder.mkdir(parents=True, exist_ok=True)
    return shared_folder


def skipped_on_shared_database(benchmark: str) -> bool:
    """For the benchmarks that copy their SQLite file between measurements (no PostgreSQL port yet): say so
    and skip them on a shared database rather than measure something else."""
    if shared():
        print(f"{benchmark}: SQLite only (it copies its database file between measurements); "
              "not run with BENCH_DATABASE_URL", flush=True)
    return shared()


def open_app(folder: Path, sqlite_name: str, small: bool = False, **config: object) -> Flask:
    """The app on the benchmark's database, migrated to the head revision, code tables seeded."""
    from app import MIGRATIONS_DIR, create_app
    from extensions import db
    from seed_data import seed_code_tables

    folder.mkdir(parents=True, exist_ok=True)
    url = database_url(folder / sqlite_name, small)
    app = create_app({"INSTANCE_PATH": str(instance_folder(folder, url)), "SQLALCHEMY_DATABASE_URI": url,
                      "SECRET_KEY": "bench", "TESTING": True, "CAPTCHA_FIXED_ANSWER": "BNCH",
                      "WTF_CSRF_ENABLED": False, **config})
    with app.app_context():
        upgrade(directory=MIGRATIONS_DIR)
        seed_code_tables()
        db.session.commit()
    return app


def ensure_filings(filings: int, state: ApplicationState | None = None, province: str | None = None) -> int:
    """Seed demo filings up to `filings` (in the app context), then ANALYZE; how many there were before. A
    database already holding them is left as it is."""
    import demo
    from extensions import db
    from models import Entity

    present = db.session.scalar(select(func.count()).select_from(Entity)) or 0
    if present < filings:
        started = time.perf_counter()
        demo.seed(filings - present, DEMO_PASSWORD, state, province)
        db.session.commit()
        print(f"seed-demo --filings {filings - present:,}: {time.perf_counter() - started:.0f} s", flush=True)
        db.session.execute(text("ANALYZE"))
        db.session.commit()
    return present
