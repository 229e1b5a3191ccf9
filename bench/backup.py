"""Backup and restore of the large database (issue 19): `flask backup` then `flask restore` into a new instance, each
in its own process; the time, the peak memory and the backup's size.

    python bench/backup.py                              # a 1,000,000-filing SQLite database (seeded once, kept)
    BENCH_BACKUP_INSTANCE=/path/to/instance python bench/backup.py    # an instance folder of your own (beian.db)
    BENCH_DATABASE_URL=postgresql+psycopg://… BENCH_RESTORE_DATABASE_URL=postgresql+psycopg://…/empty \\
        python bench/backup.py                          # PostgreSQL: restored into the second (empty) database

The backup and the restored copy are written under $TMPDIR and deleted after.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import LARGE_FILINGS, ensure_filings, open_app

ROOT = Path(__file__).resolve().parent.parent


def _source() -> tuple[Path, str]:
    """The instance folder and database to back up: BENCH_BACKUP_INSTANCE's, else the bench's large database."""
    if folder := os.environ.get("BENCH_BACKUP_INSTANCE"):
        return Path(folder), os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{Path(folder) / 'beian.db'}"
    app = open_app(Path(tempfile.gettempdir()) / "beian-bench-backup-source", "beian.db")  # seeded once, kept
    with app.app_context():
        ensure_filings(LARGE_FILINGS)
    return Path(app.config["INSTANCE_PATH"]), app.config["SQLALCHEMY_DATABASE_URI"]


def _flask(instance: Path, url: str, *args: str) -> tuple[dict[str, object], float, float]:
    """A command in its own process: its JSON answer, seconds, and that process's own peak memory (MB, from
    its rusage: `os.wait4` reaps it, where `Popen.wait` would drop the figure)."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as errors:
        command = subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", *args], cwd=ROOT,
                                   stdout=subprocess.PIPE, stderr=errors,
                                   env={**os.environ, "BEIAN_INSTANCE_PATH": str(instance), "DATABASE_URL": url})
        output = command.stdout.read().decode()
        _pid, status, usage = os.wait4(command.pid, 0)
        command.returncode = os.waitstatus_to_exitcode(status)
        command.stdout.close()
        seconds = time.perf_counter() - started
        if command.returncode != 0:
            errors.seek(0)
            raise SystemExit(f"flask {' '.join(args)} failed: {errors.read().decode().strip()[-2000:]}")
    return json.loads(output.strip().splitlines()[-1]), seconds, usage.ru_maxrss / 1024


def main() -> None:
    instance, url = _source()
    work = Path(tempfile.mkdtemp(prefix="beian-bench-backup-"))
    restore_url = (os.environ.get("BENCH_RESTORE_DATABASE_URL", "") if not url.startswith("sqlite")
                   else f"sqlite:///{work / 'restored' / 'beian.db'}")
    try:
        made, backup_seconds, backup_peak = _flask(instance, url, "backup", str(work / "backup"))
        print(f"{'step':<10} {'seconds':>8} {'peak MB':>8}  result")
        print(f"{'backup':<10} {backup_seconds:>8.1f} {backup_peak:>8.0f}  {made['rows']:,} rows in {made['tables']} "
              f"tables, {made['files']} files, {made['bytes'] / 1024 ** 2:,.0f} MB")
        if not restore_url:
            print("restore    skipped: set BENCH_RESTORE_DATABASE_URL to an empty database")
            return
        restored, restore_seconds, restore_peak = _flask(work / "restored", restore_url, "restore",
                                                         str(work / "backup"))
        print(f"{'restore':<10} {restore_seconds:>8.1f} {restore_peak:>8.0f}  {restored['rows']:,} rows, "
              f"{restored['files']} files, counts checked against the manifest")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
