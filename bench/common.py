"""Which database a benchmark runs on: by default a SQLite file in the benchmark's own folder; with
BENCH_DATABASE_URL (postgresql+psycopg://…) that database, shared by every benchmark.

A shared database is never dropped or re-created: each benchmark counts what it needs and seeds only what is
missing, so the 5,000,000-website seed (`flask --app app seed-demo --filings 5000000`, or the first benchmark
to need it) is made once and reused. The IP and domain benchmarks undo what their measurements add or change
(the rows above id marks taken before deleted: `highest_ids`, `delete_added`), so that the next run finds the
same database; the audit events stay. Benchmarks comparing against a small database (1,000 filings) use
BENCH_SMALL_DATABASE_URL for it when set, else a SQLite file.

On PostgreSQL the instance folder (signing keys, uploads) is one for every benchmark too, BENCH_INSTANCE
(default: $TMPDIR/beian-bench-postgresql), so that the keys which signed the seeded certificates stay.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import delete, func, select, text

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


def highest_ids(*models: Any) -> dict[Any, int]:
    """Each model's highest id now (in the app context): what a measurement adds to a shared database lies
    above it, and `delete_added` removes exactly that."""
    from extensions import db

    return {model: db.session.scalar(select(func.max(model.id))) or 0 for model in models}


def delete_added(marks: dict[Any, int]) -> dict[str, int]:
    """Delete the rows above each model's mark, in the order given (children first), and commit; the rows
    deleted per table. Audit events are never given: the chain is append-only, so what a measurement did stays
    in it (deleting a chained event would make `flask audit verify` report tampering)."""
    from extensions import db

    deleted = {model.__tablename__: db.session.execute(delete(model).where(model.id > mark)).rowcount
               for model, mark in marks.items()}
    db.session.commit()
    return deleted


def migrate(app: Flask) -> None:
    """The database at the head revision (in the app context): a SQLite file or an empty database is upgraded; a
    server's database that has a schema only if it is at the head already, else the run stops. A shared database
    is upgraded by whoever owns it (`flask --app app db upgrade`), never as a side effect of a benchmark: the
    migrations of a working tree, still being written, would be applied to it."""
    from alembic.config import Config
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from app import MIGRATIONS_DIR
    from extensions import db

    url = app.config["SQLALCHEMY_DATABASE_URI"]
    with db.engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    if url.startswith("sqlite") or current is None:
        upgrade(directory=MIGRATIONS_DIR)
        return
    config = Config()
    config.set_main_option("script_location", MIGRATIONS_DIR)
    head = ScriptDirectory.from_config(config).get_current_head()
    if current != head:
        raise SystemExit(f"{url.split('@')[-1]} is at revision {current}, the code's head is {head}: upgrade it "
                         "first (flask --app app db upgrade); a benchmark does not migrate a shared database")


def open_app(folder: Path, sqlite_name: str, small: bool = False, **config: object) -> Flask:
    """The app on the benchmark's database, migrated to the head revision, code tables seeded."""
    from app import create_app
    from extensions import db
    from seed_data import seed_code_tables

    folder.mkdir(parents=True, exist_ok=True)
    url = database_url(folder / sqlite_name, small)
    app = create_app({"INSTANCE_PATH": str(instance_folder(folder, url)), "SQLALCHEMY_DATABASE_URI": url,
                      "SECRET_KEY": "bench", "TESTING": True, "CAPTCHA_FIXED_ANSWER": "BNCH",
                      "WTF_CSRF_ENABLED": False, **config})
    with app.app_context():
        migrate(app)
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


def gunicorn(port: int, settings: dict[str, str], extra: tuple[str, ...] = ()) -> subprocess.Popen[bytes]:
    """The app served by gunicorn (2 workers, an app node's settings: deploy/gunicorn.conf.py) on a loopback port
    with `settings` in its environment, returned once it answers (the no-database endpoint)."""
    root = Path(__file__).resolve().parent.parent
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "-w", "2", *extra,
                               "-b", f"127.0.0.1:{port}", "--log-level", "warning", "app:create_app()"], cwd=root,
                              env={**os.environ, "SECRET_KEY": "bench", **settings})
    for _ in range(150):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/public/ping", timeout=1)
            return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("gunicorn did not start")
