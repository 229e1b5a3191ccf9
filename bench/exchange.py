"""The data-exchange API over HTTP (issue 16), on a fresh SQLite file served by gunicorn on loopback, driven by
the client an ISP would use (scripts/exchange_client.py):

- BENCH_EXCHANGE_FILINGS (10,000) new filings (entity + website + access each) uploaded in batches of 1,000 with
  sequence numbers, end to end: records/s (target ≥ 1,000);
- a repeated batch (the last one, same number and body) answered from the stored result: median ms of 5
  (target ≤ 50);
- draining a feed of BENCH_EXCHANGE_EVENTS (100,000) events — pages of 1,000, each acknowledged — events/s
  (target ≥ 5,000); the events are inserted and sequenced first (the worker's `sequence_events`, timed apart).

    python bench/exchange.py
    BENCH_EXCHANGE_FILINGS=2000 BENCH_EXCHANGE_EVENTS=20000 python bench/exchange.py
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import exchange_client  # noqa: E402

from bench import common  # noqa: E402
from extensions import db  # noqa: E402
from models import Role  # noqa: E402
from tests.filing_factories import credit_code  # noqa: E402
from tests.helpers import make_user  # noqa: E402
from workflow import exchange  # noqa: E402

FILINGS = int(os.environ.get("BENCH_EXCHANGE_FILINGS", "10000"))
EVENTS = int(os.environ.get("BENCH_EXCHANGE_EVENTS", "100000"))
PORT = int(os.environ.get("BENCH_PORT", "8766"))
REPEAT = 5
ISP = "bench_exchange_isp"


def filing(n: int) -> dict[str, Any]:
    """A new filing in the API's form: a company in 天津, one website on two domains, hosted by the caller."""
    return {"entity": {"province_code": "120000", "unit_name": f"天津基准交换科技有限公司{n}", "unit_nature": "4",
                       "certificate_type": "1", "certificate_number": credit_code(700_000 + n),
                       "responsible_name": "王五", "responsible_id_number": "11010519491231002X",
                       "responsible_mobile": "13912345678", "responsible_email": f"x{n}@example.cn",
                       "address": f"天津市南开区某路{n}号"},
            "websites": [{"name": f"基准交换网站{n}", "domains": [f"www.xbench{n}.cn", f"xbench{n}.cn"],
                          "home_url": f"http://www.xbench{n}.cn/", "service_content": "2",
                          "accesses": [{"method": "2", "server_province_code": "120000",
                                        "ip_ranges": [{"start": "203.0.113.1", "end": "203.0.113.9"}]}]}]}


def prepare(folder: Path) -> str:
    """A fresh database with the ISP, its credential (returned) and the feed's events, sequenced."""
    app = common.open_app(folder, "exchange.db", PASSWORD_HASH_METHOD="pbkdf2:sha256:1000")
    with app.app_context():
        isp = make_user(ISP, Role.ISP, "120000", organisation="天津基准接入公司")
        _credential, token = exchange.create_credential(isp, "bench", ("filings", "events"))
        db.session.commit()
        started = time.perf_counter()
        for first in range(0, EVENTS, 10_000):
            exchange.emit_many((isp.id, "application.approved", "application", n, {"application_id": n, "n": n})
                               for n in range(first, min(first + 10_000, EVENTS)))
            db.session.commit()
        exchange.sequence_events()
        print(f"{EVENTS:,} events inserted and sequenced: {time.perf_counter() - started:.1f} s", flush=True)
        (folder / "database_url").write_text(app.config["SQLALCHEMY_DATABASE_URI"])
    return token


def serve(folder: Path) -> subprocess.Popen[bytes]:
    return common.gunicorn(PORT, {"DATABASE_URL": (folder / "database_url").read_text(),
                                  "BEIAN_INSTANCE_PATH": str(folder), "EXCHANGE_RATE_LIMIT_PER_MINUTE": "100000000"},
                           extra=("--timeout", "300"))


def upload(client: exchange_client.Exchange, folder: Path) -> tuple[float, dict[str, int]]:
    path = folder / "filings.json"
    path.write_text(json.dumps([filing(n) for n in range(FILINGS)], ensure_ascii=False), encoding="utf-8")
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # the client's result lines
        totals = exchange_client.upload(client, path, "filings")
    return time.perf_counter() - started, totals


def repeated_batch(client: exchange_client.Exchange, folder: Path) -> float:
    """The last batch again, as a client that lost its answer would send it: the median ms of REPEAT."""
    path = folder / "filings.json"
    records = json.loads(path.read_text(encoding="utf-8"))
    last = json.loads(exchange_client.state_path(path).read_text(encoding="utf-8"))["batches"][-1]
    body = {"sequence": last["sequence"], "records": records[last["first"]:last["first"] + last["count"]]}
    timings = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        answer = client.call("POST", f"{exchange_client.API}/filings", body)
        timings.append((time.perf_counter() - started) * 1000)
        assert answer["accepted"] == last["answer"]["accepted"]
    return statistics.median(timings)


def drain(client: exchange_client.Exchange) -> tuple[float, int]:
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # the event lines
        count = exchange_client.drain_events(client)
    return time.perf_counter() - started, count


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="beian-bench-exchange-"))
    token = prepare(folder)
    server = serve(folder)
    client = exchange_client.Exchange(f"http://127.0.0.1:{PORT}", token)
    try:
        seconds, totals = upload(client, folder)
        if totals["accepted"] != FILINGS:
            raise SystemExit(f"{totals['refused']} filings refused: the figure would not be of {FILINGS:,} filings")
        replay_ms = repeated_batch(client, folder)
        drain_seconds, drained = drain(client)
    finally:
        server.terminate()
        server.wait(30)
    if drained != EVENTS:
        raise SystemExit(f"{drained:,} events drained of {EVENTS:,}")
    print(f"\n{'data-exchange API, SQLite, gunicorn -w 2, loopback':52} {'figure':>14} {'target':>10}")
    print(f"{f'{FILINGS:,} new filings, batches of 1,000 ({seconds:.1f} s)':52} "
          f"{f'{FILINGS / seconds:,.0f} rec/s':>14} {'≥ 1,000':>10}")
    print(f"{'repeated batch answered from the store (median of 5)':52} {f'{replay_ms:.1f} ms':>14} {'≤ 50':>10}")
    print(f"{f'drain {EVENTS:,} events, pages of 1,000 + ack ({drain_seconds:.1f} s)':52} "
          f"{f'{EVENTS / drain_seconds:,.0f} ev/s':>14} {'≥ 5,000':>10}")


if __name__ == "__main__":
    main()
