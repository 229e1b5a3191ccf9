"""Does the console stay writable on SQLite while the worker imports (issue 11, item 16)?

    python bench/import_contention.py            # a 100,000-row import; BENCH_IMPORT_ROWS=20000 for less

The worker (its own process, as `flask outbox run`) imports the file while another process signs in over and
over (a POST that writes: the sign-in, its throttle rows and its audit event). Prints the import's time and
the sign-ins' p50 / p99 / max latency and failures; the target is every sign-in answered, p99 ≤ 2 s.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROWS = int(os.environ.get("BENCH_IMPORT_ROWS", "100000"))


def _app(folder: Path):
    from app import create_app
    from bench.filings import PASSWORD

    return create_app({"INSTANCE_PATH": str(folder), "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder / 'b.db'}",
                       "SECRET_KEY": "bench", "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000", "TESTING": True,
                       "CAPTCHA_FIXED_ANSWER": "BNCH", "WTF_CSRF_ENABLED": False, "MIIT_ADMIN_PASSWORD": PASSWORD})


def worker(folder: Path) -> dict[str, object]:
    import workflow
    from extensions import db
    from models import ImportJob

    app = _app(folder)
    with app.app_context():
        started = time.perf_counter()
        workflow.run_import_jobs()
        job = db.session.get(ImportJob, 1)
        return {"seconds": time.perf_counter() - started, "state": job.state.value, "imported": job.imported}


def signer(folder: Path) -> dict[str, object]:
    from bench.filings import PASSWORD

    app = _app(folder)
    client = app.test_client()
    latencies, failures = [], 0
    while not (folder / "stop").exists():
        started = time.perf_counter()
        client.get("/captcha.png")
        response = client.post("/login", data={"username": "miit", "password": PASSWORD, "captcha": "BNCH"})
        latencies.append(time.perf_counter() - started)
        failures += response.status_code != 302
        client.get("/logout")
        time.sleep(0.05)
    return {"latencies": latencies, "failures": failures}


def _child(kind: str, folder: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, "--child", kind, str(folder)], stdout=subprocess.PIPE,
                            text=True)


def _result(process: subprocess.Popen) -> dict:
    output, _ = process.communicate()
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    from sqlalchemy import select

    import workflow
    from bench.filings import fresh_app
    from bench.imports import make_file
    from extensions import db
    from models import Role, User
    from tests.helpers import make_user

    folder = Path(tempfile.mkdtemp(prefix="beian-contention-"))
    path = folder / "bulk.xlsx"
    make_file(path, ROWS)
    app = fresh_app(folder)
    with app.app_context():
        make_user("bench_importer", Role.ISP, "120000", organisation="导入基准接入商", can_import=True)
        with path.open("rb") as stream:
            isp = db.session.scalar(select(User).where(User.username == "bench_importer"))
            workflow.queue_import(isp, "bench.xlsx", stream)
        db.session.commit()
    signing = _child("signer", folder)
    time.sleep(2)  # the signer is up before the import starts
    imported = _result(_child("worker", folder))
    (folder / "stop").touch()
    signed = _result(signing)
    latencies = sorted(signed["latencies"])

    def percentile(share: float) -> float:
        return latencies[min(len(latencies) - 1, int(share * len(latencies)))]

    print(f"import of {ROWS:,} rows by the worker: {imported['seconds']:.1f} s, {imported['state']}, "
          f"{imported['imported']:,} applications")
    print(f"sign-ins meanwhile: {len(latencies):,}, failures {signed['failures']}, p50 {percentile(0.5):.3f} s, "
          f"p99 {percentile(0.99):.3f} s, max {latencies[-1]:.3f} s (target: no failure, p99 ≤ 2 s)")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        result = {"worker": worker, "signer": signer}[sys.argv[2]](Path(sys.argv[3]))
        print(json.dumps(result))
    else:
        main()
