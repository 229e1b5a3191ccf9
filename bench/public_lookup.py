"""Public lookup benchmark (issue #5): /api/v1/public/lookup by domain over 1,000,000 websites (5,000,000 on
the database of BENCH_DATABASE_URL: bench/common.py),
served by gunicorn (2 workers), loaded by wrk on loopback, against a no-database endpoint of the
same app measured in the same run.

    python bench/public_lookup.py              # the database is built once in $BENCH_DIR
    BENCH_FILINGS=100000 python bench/public_lookup.py

Prints requests/s, p50 and p99 of both endpoints and the ratio lookup / no-database (target ≥ 0.6).
Needs `wrk` (Debian package) on the PATH.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, select

from bench import common
from bench.filings import fresh_app
from extensions import db
from models import Domain, Website

ROOT = Path(__file__).resolve().parent.parent
FILINGS = common.LARGE_FILINGS
FOLDER = Path(os.environ.get("BENCH_DIR", Path(tempfile.gettempdir()) / (
    f"beian-bench-public-{FILINGS}" + ("-shared" if common.shared() else ""))))
PORT = int(os.environ.get("BENCH_PORT", "8765"))
DURATION = os.environ.get("BENCH_DURATION", "15s")
CONNECTIONS = os.environ.get("BENCH_CONNECTIONS", "16")
SAMPLE = 2000


def database() -> Path:
    """The benchmark's folder, its database seeded (a SQLite file there, built on the first run and reused
    after; or the shared database), and a Lua script of SAMPLE filed domains drawn from the whole table."""
    FOLDER.mkdir(parents=True, exist_ok=True)
    app = fresh_app(FOLDER)  # also brings a database kept from an earlier run to the current schema
    with app.app_context():
        common.ensure_filings(FILINGS)
        highest = db.session.scalar(select(func.max(Domain.id)))
        ids = random.Random(7).sample(range(1, highest + 1), min(highest, SAMPLE * 3))
        names = list(db.session.scalars(select(Domain.name).join(Website).where(
            Domain.id.in_(ids), Website.number.is_not(None)).order_by(Domain.id)))
        database_url = app.config["SQLALCHEMY_DATABASE_URI"]
    sample = random.Random(7).sample(names, min(SAMPLE, len(names)))
    lua = "local names = {" + ",".join(f'"{n}"' for n in sample) + "}\n" + (
        "local i = 0\nrequest = function()\n  i = i % #names + 1\n"
        '  return wrk.format("GET", "/api/v1/public/lookup?q=" .. names[i])\nend\n')
    (FOLDER / "lookup.lua").write_text(lua)
    (FOLDER / "database_url").write_text(database_url)
    return FOLDER


def serve(folder: Path) -> subprocess.Popen:
    url = (folder / "database_url").read_text()
    return common.gunicorn(PORT, {"DATABASE_URL": url, "BEIAN_INSTANCE_PATH": str(common.instance_folder(folder, url)),
                                  "API_RATE_LIMIT_PER_MINUTE": "100000000"})


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(path: str, script: Path | None = None) -> dict[str, float]:
    command = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{DURATION}", "--latency"]
    command += ["-s", str(script)] if script else []
    output = subprocess.run([*command, f"http://127.0.0.1:{PORT}{path}"], capture_output=True, text=True,
                            check=True).stdout
    if "Non-2xx" in output:
        raise SystemExit(f"errors in the run:\n{output}")
    return {"req/s": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
            "p50 ms": _ms(re.search(r"^\s+50%\s+(\S+)", output, re.M).group(1)),  # not a Stdev column's "76.50%"
            "p99 ms": _ms(re.search(r"^\s+99%\s+(\S+)", output, re.M).group(1))}


def main() -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    server = serve(database())
    load_before = os.getloadavg()[0]
    try:
        wrk("/api/v1/public/ping")  # warm both workers
        wrk("/api/v1/public/lookup", FOLDER / "lookup.lua")
        results = {"no-database endpoint (/ping)": wrk("/api/v1/public/ping"),
                   f"lookup by domain ({FILINGS:,} websites)": wrk("/api/v1/public/lookup", FOLDER / "lookup.lua")}
    finally:
        server.terminate()
        server.wait()
    print(f"\n{'gunicorn -w 2, wrk -c' + CONNECTIONS + ' ' + DURATION:44} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for name, figures in results.items():
        print(f"{name:44} {figures['req/s']:9,.0f} {figures['p50 ms']:8.2f} {figures['p99 ms']:8.2f}")
    ping, lookup = results.values()
    print(f"ratio lookup / no-database: {lookup['req/s'] / ping['req/s']:.2f} (target ≥ 0.6)")
    print(f"load average before / after the runs: {load_before:.2f} / {os.getloadavg()[0]:.2f} "
          f"({os.cpu_count()} cores; the ratio is only comparable between quiet runs)")


if __name__ == "__main__":
    main()
