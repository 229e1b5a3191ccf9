"""scripts/exchange_client.py (issue 16 §8) against a live server: an ISP's import file sent as it is, in batches
with sequence numbers; the client killed mid-upload (after the server received a batch, before the client saw its
answer) and started again — every record once; the event feed drained as JSON lines and acknowledged."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

import importer
from extensions import db
from models import Application, Entity, ExchangeCall
from tests import exchange_helpers
from tests.exchange_helpers import credential_for
from tests.helpers import user_named
from tests.import_files import filled_template, valid_row
from workflow import exchange

live_server = exchange_helpers.live_server  # the fixture
CLIENT = Path(__file__).resolve().parent.parent / "scripts" / "exchange_client.py"
sys.path.insert(0, str(CLIENT.parent))
import exchange_client  # noqa: E402


def test_the_client_reads_the_templates_own_columns() -> None:
    """The client cannot import the app; its copy of the template's columns must be the template's."""
    assert tuple((column.key, column.header) for column in importer.COLUMNS) == exchange_client.COLUMNS
    assert exchange_client.ENTITY_KEYS == importer.ENTITY_KEYS
    assert exchange_client.DATA_SHEET == importer.DATA_SHEET
    coded = {column.key: "provinces" if column.codes == "province" else column.codes
             for column in importer.COLUMNS if column.codes}
    assert coded == exchange_client.CODED_COLUMNS


def _client(url: str, token: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(CLIENT), "--url", url, "--token", token, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finished(process: subprocess.Popen[str]) -> tuple[int, list[dict[str, Any]], str]:
    out, err = process.communicate(timeout=120)
    return process.returncode, [json.loads(line) for line in out.splitlines() if line.strip()], err


def test_an_import_file_becomes_one_filing_record_per_entity(app, users, live_server, tmp_path) -> None:
    """Rows sharing a certificate number are one entity's websites; names in the dropdown columns become codes."""
    rows = [valid_row(1), valid_row(2), valid_row(2)]
    rows[2][10:13] = ["第二个网站", "www.second2.cn", "http://www.second2.cn/"]
    path = tmp_path / "备案导入.xlsx"
    path.write_bytes(filled_template(app, rows))
    records = exchange_client.filing_records(exchange_client.template_rows(path), exchange_client.CodeNames(
        exchange_client.Exchange(live_server.url, "unused")))
    assert len(records) == 2 and [len(record["websites"]) for record in records] == [1, 2]
    entity, website = records[0]["entity"], records[0]["websites"][0]
    assert entity["province_code"] == "120000" and entity["unit_nature"] == "4" and entity["certificate_type"] == "1"
    assert website["domains"] == ["www.import1.cn", "import1.cn"] and website["service_content"] == "2"
    assert website["accesses"] == [{"method": "2", "server_province_code": "120000",
                                    "ip_ranges": [{"start": "203.0.113.1", "end": "203.0.113.9"}]}]
    assert records[1]["websites"][1]["name"] == "第二个网站"


class KillOnBatch:
    """WSGI middleware: once the server has handled the `nth` upload, the client is killed (SIGKILL) before the
    answer is sent back — the batch is written, its answer never reaches the client."""

    def __init__(self, wsgi_app: Any, nth: int) -> None:
        self.wsgi_app, self.nth, self.uploads, self.replayed, self.client_pid = wsgi_app, nth, 0, 0, 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        upload = environ["REQUEST_METHOD"] == "POST" and environ["PATH_INFO"] == "/api/v1/exchange/filings"
        self.uploads += upload

        def counting(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
            self.replayed += any(name == "X-Exchange-Replayed" for name, _ in headers)
            return start_response(status, headers, *args)

        answer = self.wsgi_app(environ, counting)
        if upload and self.uploads == self.nth and self.client_pid:
            os.kill(self.client_pid, signal.SIGKILL)
        return answer


def test_a_client_killed_mid_upload_resumes_and_every_record_is_filed_once(app, users, live_server,
                                                                            tmp_path) -> None:
    total, batch = 250, 100
    path = tmp_path / "备案导入.xlsx"
    path.write_bytes(filled_template(app, [valid_row(n) for n in range(total)]))
    with app.app_context():
        _, token = credential_for("tj_isp")
    killer = KillOnBatch(app.wsgi_app, nth=2)
    app.wsgi_app = killer
    first = _client(live_server.url, token, "upload", str(path), "--batch", str(batch))
    killer.client_pid = first.pid
    assert first.wait(timeout=120) == -signal.SIGKILL
    state = json.loads(exchange_client.state_path(path).read_text(encoding="utf-8"))
    assert [b["answer"] is not None for b in state["batches"]] == [True, False, False]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Entity)) == 2 * batch  # the 2nd batch is in

    code, results, err = _finished(_client(live_server.url, token, "upload", str(path)))
    assert code == 0, err
    assert killer.uploads == 4 and killer.replayed == 1  # the 2nd batch resent under its number, answered from store
    assert [result["index"] for result in results] == list(range(total))
    assert all(result["status"] == "accepted" for result in results), results[:3]
    assert f"接受 {total} 条，拒绝 0 条" in err
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Entity)) == total
        assert db.session.scalar(select(func.count()).select_from(Application)) == total
        assert list(db.session.scalars(select(ExchangeCall.sequence).order_by(ExchangeCall.sequence))) == [1, 2, 3]

    again, _, err = _finished(_client(live_server.url, token, "upload", str(path)))
    assert again == 0 and killer.uploads == 4  # all answered: nothing sent again


def test_a_state_file_of_another_upload_is_not_used(app, users, live_server, tmp_path) -> None:
    path = tmp_path / "records.json"
    path.write_text(json.dumps([{"entity": {}}]), encoding="utf-8")
    exchange_client.state_path(path).write_text(json.dumps({"digest": "other", "url": live_server.url}))
    with app.app_context():
        _, token = credential_for("tj_isp")
    code, _, err = _finished(_client(live_server.url, token, "upload", str(path)))
    assert code == 1 and "另一个文件" in err


def test_the_event_feed_is_drained_as_json_lines_and_acknowledged(app, users, live_server) -> None:
    with app.app_context():
        _, token = credential_for("tj_isp", ("events",))
        user_id = user_named("tj_isp").id
        for n in range(1, 1206):
            exchange.emit([user_id], "application.approved", "application", n, {"n": n})
        db.session.commit()
    code, events, err = _finished(_client(live_server.url, token, "events"))
    assert code == 0, err
    assert [event["payload"]["n"] for event in events] == list(range(1, 1206)) and "收到 1205 个事件" in err
    code, events, err = _finished(_client(live_server.url, token, "events"))
    assert code == 0 and events == [] and "收到 0 个事件" in err
