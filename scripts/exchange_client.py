"""A client of the data-exchange API (`/api/v1/exchange/`): what an access provider's engineer starts from.

    python scripts/exchange_client.py --url https://beian.example.cn --token "key.secret" \\
        upload 备案导入.xlsx --kind filings
    python scripts/exchange_client.py --url … --token … upload records.json --kind ip/allocations
    python scripts/exchange_client.py --url … --token … events [--follow]

`upload` sends the file's records in batches of up to 1,000, each batch with its own sequence number. Before a
batch is sent its number is written to a state file next to the input (`FILE.exchange-state.json`), and each
answer is written there as it arrives: a client killed mid-upload and started again with the same command resends
the unanswered batches under the same numbers — the server answers a repeated number from its store, so nothing is
written twice — and skips the answered ones. The result of every record is printed as one JSON line (its index in
the file, accepted with its ids or refused with the result code, field and message); the totals go to stderr.

An xlsx is read as the console's import template (importer.COLUMNS: sheet 备案数据, one website per row, the rows
of one entity sharing its certificate number), so an ISP's import file is sent as it is; names in the code-table
columns (天津市, 企业, …) are turned into their codes with the public code tables. A JSON file holds a list of
records in the API's own form (see /api/v1/openapi.json), or an object with a "records" list.

`events` drains the caller's event feed: each page (GET events) is printed as JSON lines, then acknowledged (POST
events/ack), until the feed is empty (`--follow`: keeps polling). An event printed but not acknowledged (the client
killed in between) is delivered again next time: at least once, in order.

Standard library and `requests` only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
import xml.etree.ElementTree as ElementTree
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import requests

BATCH = 1000
API = "/api/v1/exchange"
#: the import template's columns (importer.COLUMNS: key, header; tests check the two agree) — a client has no
#: access to the application's modules
COLUMNS = (
    ("province", "省份"), ("unit_name", "主办单位名称"), ("unit_nature", "单位性质"),
    ("certificate_type", "证件类型"), ("certificate_number", "证件号码"), ("address", "通信地址"),
    ("responsible_name", "负责人姓名"), ("responsible_id_number", "负责人身份证号码"),
    ("responsible_mobile", "负责人手机号码"), ("responsible_email", "负责人电子邮件"),
    ("website_name", "网站名称"), ("domains", "网站域名"), ("home_url", "网站首页地址"),
    ("service_content", "网站服务内容"), ("access_method", "接入方式"), ("server_province", "服务器放置地"),
    ("ip_start", "IP地址段起始"), ("ip_end", "IP地址段终止"), ("preapproval_category", "前置审批类别"),
    ("preapproval_document", "前置审批文号"), ("isp_username", "接入商用户名"),
)
DATA_SHEET = "备案数据"
#: the template's code-table columns and the public code table that names their values
CODED_COLUMNS = {"province": "provinces", "server_province": "provinces", "unit_nature": "unit_nature",
                 "certificate_type": "certificate_type", "service_content": "service_content",
                 "access_method": "access_method", "preapproval_category": "preapproval_category"}
ENTITY_KEYS = ("province", "unit_name", "unit_nature", "certificate_type", "certificate_number", "address",
               "responsible_name", "responsible_id_number", "responsible_mobile", "responsible_email")
#: transient answers worth another try with the same sequence number (the server may have written it)
RETRY_STATUSES = {429, 502, 503, 504}
MAX_TRIES = 8


class ClientError(Exception):
    """A refusal of the whole call (401, 403, 409 sequence gap, 413, 400 envelope): the upload stops."""


# --- HTTP ----------------------------------------------------------------------------------------------------------

class Exchange:
    """The API with one credential: retries what is safe to retry (every call here is: writes carry their
    sequence number), honouring Retry-After."""

    def __init__(self, url: str, token: str, timeout: float = 120.0) -> None:
        self.base = url.rstrip("/")
        self.session = requests.Session()
        self.session.headers["Authorization"] = token if token.startswith("Bearer ") else f"Bearer {token}"
        self.timeout = timeout

    def call(self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None) -> Any:
        for attempt in range(MAX_TRIES):
            try:
                response = self.session.request(method, self.base + path, json=body, params=params,
                                                timeout=self.timeout)
            except requests.ConnectionError:
                time.sleep(min(2 ** attempt, 30))
                continue
            if response.status_code in RETRY_STATUSES:
                time.sleep(_retry_after(response, attempt))
                continue
            answer = response.json() if response.content else {}
            if response.status_code >= 400:
                raise ClientError(f"{response.status_code} {answer.get('code', '')} {answer.get('field') or ''} "
                                  f"{answer.get('message', response.text[:200])}".strip())
            return answer
        raise ClientError(f"{method} {path}: no answer after {MAX_TRIES} tries")

    def public(self, path: str) -> Any:
        """A public API call (the code tables), without the credential."""
        response = requests.get(self.base + path, timeout=self.timeout)
        response.raise_for_status()
        return response.json()


def _retry_after(response: requests.Response, attempt: int) -> float:
    try:
        return max(0.0, min(float(response.headers.get("Retry-After", "")), 60.0))
    except ValueError:
        return float(min(2 ** attempt, 30))


# --- reading the input ---------------------------------------------------------------------------------------------

SHEET_NS = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
REL_NS = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"


def _column_number(reference: str) -> int:
    number = 0
    for letter in reference.rstrip("0123456789"):
        number = number * 26 + ord(letter) - 64
    return number


def _shared_strings(archive: zipfile.ZipFile) -> list[str]:
    if "xl/sharedStrings.xml" not in archive.namelist():
        return []
    root = ElementTree.fromstring(archive.read("xl/sharedStrings.xml"))
    return [_string_item(item) for item in root.iter(f"{SHEET_NS}si")]


def _string_item(item: ElementTree.Element) -> str:
    """A shared string's text: plain or in rich-text runs; Excel's phonetic guides (<rPh>) are not part of it."""
    parts = []
    for child in item:
        if child.tag == f"{SHEET_NS}t":
            parts.append(child.text or "")
        elif child.tag == f"{SHEET_NS}r":
            parts.extend(text.text or "" for text in child.iter(f"{SHEET_NS}t"))
    return "".join(parts)


def _data_sheet_path(archive: zipfile.ZipFile) -> str:
    """The worksheet named 备案数据, else the first one."""
    workbook = ElementTree.fromstring(archive.read("xl/workbook.xml"))
    sheets = [(sheet.get("name"), sheet.get(f"{REL_NS}id")) for sheet in workbook.iter(f"{SHEET_NS}sheet")]
    relations = ElementTree.fromstring(archive.read("xl/_rels/workbook.xml.rels"))
    targets = {rel.get("Id"): rel.get("Target", "") for rel in relations}
    name_id = next((rid for name, rid in sheets if name == DATA_SHEET), sheets[0][1])
    target = targets[name_id].lstrip("/")
    return target if target.startswith("xl/") else f"xl/{target}"


def xlsx_rows(path: Path) -> Iterator[list[str]]:
    """The data sheet's rows as text (shared, inline and number cells), streamed."""
    with zipfile.ZipFile(path) as archive:
        strings = _shared_strings(archive)
        with archive.open(_data_sheet_path(archive)) as sheet:
            for _event, element in ElementTree.iterparse(sheet):
                if element.tag != f"{SHEET_NS}row":
                    continue
                cells: dict[int, str] = {}
                for cell in element.iter(f"{SHEET_NS}c"):
                    cells[_column_number(cell.get("r", "A"))] = _cell_text(cell, strings)
                element.clear()
                yield [cells.get(n, "") for n in range(1, max(cells, default=0) + 1)]


def _cell_text(cell: ElementTree.Element, strings: list[str]) -> str:
    kind, value = cell.get("t"), cell.find(f"{SHEET_NS}v")
    if kind == "inlineStr":
        return "".join(t.text or "" for t in cell.iter(f"{SHEET_NS}t")).strip()
    text = value.text or "" if value is not None else ""
    if kind == "s" and text:
        return strings[int(text)].strip()
    if text.endswith(".0") and text[:-2].isdigit():
        return text[:-2]  # a whole number typed in a number cell
    return text.strip()


def template_rows(path: Path) -> list[dict[str, str]]:
    """The template's rows as {column key: text}, by the header row's names; empty rows skipped."""
    rows = iter(xlsx_rows(path))
    header = next(rows, [])
    keys = dict(COLUMNS)
    by_header = {name: key for key, name in keys.items()}
    positions = {by_header[name.strip()]: index for index, name in enumerate(header) if name.strip() in by_header}
    missing = [keys[key] for key, _name in COLUMNS if key not in positions]
    if missing:
        raise ClientError(f"{path.name} 不是备案导入模板：缺少列 {'、'.join(missing)}")
    result = []
    for values in rows:
        row = {key: values[index].strip() if index < len(values) else "" for key, index in positions.items()}
        if any(row.values()):
            result.append(row)
    return result


class CodeNames:
    """Names in the code-table columns → codes, from the public code tables (a code is kept as it is)."""

    def __init__(self, exchange: Exchange) -> None:
        self.tables: dict[str, dict[str, str]] = {}
        self.exchange = exchange

    def code(self, table: str, value: str) -> str:
        if not value:
            return ""
        if table not in self.tables:
            rows = self.exchange.public(f"/api/v1/public/code-tables/{table}")["values"]
            self.tables[table] = {row["name"]: row["code"] for row in rows}
        return self.tables[table].get(value, value)


def _split_domains(text: str) -> list[str]:
    """Several domains of one website in one cell: a line each, or separated by ; (or ；)."""
    return [part.strip() for part in text.replace("；", ";").replace("\r", "\n").replace(";", "\n").split("\n")
            if part.strip()]


def filing_records(rows: list[dict[str, str]], codes: CodeNames) -> list[dict[str, Any]]:
    """One new-filing record per entity (its rows share the certificate number): the entity from its first row,
    one website per row, each with its access (this ISP, or the row's 接入商用户名 for a bureau)."""
    records: dict[str, dict[str, Any]] = {}
    for row in rows:
        coded = {key: codes.code(table, row[key]) for key, table in CODED_COLUMNS.items()}
        record = records.setdefault(row["certificate_number"] or f"#{len(records)}", {"entity": {
            "province_code" if key == "province" else key: coded.get(key, row[key]) for key in ENTITY_KEYS},
            "websites": []})
        access: dict[str, Any] = {"method": coded["access_method"], "server_province_code": coded["server_province"],
                                  "ip_ranges": [{"start": row["ip_start"], "end": row["ip_end"] or row["ip_start"]}]
                                  if row["ip_start"] else []}
        if row["isp_username"]:
            access["isp"] = row["isp_username"]
        record["websites"].append({
            "name": row["website_name"], "domains": _split_domains(row["domains"]), "home_url": row["home_url"],
            "service_content": coded["service_content"], "accesses": [access],
            "preapprovals": [{"category": coded["preapproval_category"],
                              "document_number": row["preapproval_document"]}]
            if coded["preapproval_category"] or row["preapproval_document"] else []})
    return list(records.values())


def read_records(path: Path, kind: str, exchange: Exchange) -> list[dict[str, Any]]:
    if path.suffix.lower() == ".xlsx":
        if kind != "filings":
            raise ClientError("xlsx 文件只能按备案导入模板上传（--kind filings）")
        return filing_records(template_rows(path), CodeNames(exchange))
    data = json.loads(path.read_text(encoding="utf-8"))
    records = data.get("records") if isinstance(data, dict) else data
    if not isinstance(records, list):
        raise ClientError(f"{path.name}：应为记录的列表，或含 records 列表的对象")
    return records


# --- the upload and its state file ---------------------------------------------------------------------------------

def state_path(path: Path) -> Path:
    return path.with_name(path.name + ".exchange-state.json")


def _digest(records: list[dict[str, Any]], kind: str) -> str:
    return hashlib.sha256(json.dumps([kind, records], sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _save(path: Path, state: dict[str, Any]) -> None:
    """Written to a temporary file, flushed to disk and renamed over the old state: a crash leaves one or the
    other, never half of it."""
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("w", encoding="utf-8") as handle:
        json.dump(state, handle, ensure_ascii=False)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def _load_state(path: Path, digest: str, url: str) -> dict[str, Any] | None:
    if not path.exists():
        return None
    state = json.loads(path.read_text(encoding="utf-8"))
    if state.get("digest") != digest or state.get("url") != url:
        raise ClientError(f"{path.name} 记录的是另一个文件或另一个服务器的上传：确认后删除它再上传")
    return state


def _plan(records: list[dict[str, Any]], first_sequence: int, size: int) -> list[dict[str, Any]]:
    return [{"sequence": first_sequence + n, "first": start, "count": min(size, len(records) - start),
             "answer": None} for n, start in enumerate(range(0, len(records), size))]


def upload(exchange: Exchange, path: Path, kind: str, size: int = BATCH) -> dict[str, int]:
    """Every batch sent once under its planned number and answered; the totals. The batches are planned once (a
    restart keeps the plan of the state file, whatever `size` it is given)."""
    records = read_records(path, kind, exchange)
    digest, where = _digest(records, kind), state_path(path)
    state = _load_state(where, digest, exchange.base)
    if state is None:
        next_sequence = int(exchange.call("GET", f"{API}/credential")["next_sequence"])
        state = {"url": exchange.base, "kind": kind, "digest": digest, "batches": _plan(records, next_sequence, size)}
        _save(where, state)  # the numbers are fixed before the first is sent
    for batch in state["batches"]:
        if batch["answer"] is None:
            chunk = records[batch["first"]:batch["first"] + batch["count"]]
            batch["answer"] = _compact(exchange.call("POST", f"{API}/{kind}",
                                                     {"sequence": batch["sequence"], "records": chunk}))
            _save(where, state)
    return _report(state["batches"])


def _compact(answer: dict[str, Any]) -> dict[str, Any]:
    """What the state file keeps of an answer: each record's outcome."""
    return {"accepted": answer["accepted"], "refused": answer["refused"], "results": answer["results"]}


def _report(batches: Iterable[dict[str, Any]]) -> dict[str, int]:
    totals = {"accepted": 0, "refused": 0}
    for batch in batches:
        for result in batch["answer"]["results"]:
            print(json.dumps({**result, "index": batch["first"] + result["index"], "sequence": batch["sequence"]},
                             ensure_ascii=False))
        totals["accepted"] += batch["answer"]["accepted"]
        totals["refused"] += batch["answer"]["refused"]
    return totals


# --- the event feed ------------------------------------------------------------------------------------------------

def drain_events(exchange: Exchange, follow: bool = False, interval: float = 5.0, limit: int = 1000) -> int:
    """Print every unacknowledged event as a JSON line, acknowledging each page once printed; the count."""
    count = 0
    while True:
        page = exchange.call("GET", f"{API}/events", params={"limit": limit})
        events = page.get("events", [])
        for event in events:
            print(json.dumps(event, ensure_ascii=False))
        sys.stdout.flush()
        if events:
            exchange.call("POST", f"{API}/events/ack", {"up_to": events[-1]["id"]})
            count += len(events)
        elif not follow:
            return count
        else:
            time.sleep(interval)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="数据交换接口客户端：分批上传（可断点续传）、拉取事件。")
    parser.add_argument("--url", required=True, help="系统地址，如 https://beian.example.cn")
    parser.add_argument("--token", default=os.environ.get("BEIAN_TOKEN", ""),
                        help="接口凭证 key_id.secret（或环境变量 BEIAN_TOKEN）")
    commands = parser.add_subparsers(dest="command", required=True)
    sending = commands.add_parser("upload", help="上传 xlsx（备案导入模板）或 JSON 文件")
    sending.add_argument("file", type=Path)
    sending.add_argument("--kind", default="filings",
                         help="操作路径：filings、ip/blocks、ip/allocations、domains … (默认 filings)")
    sending.add_argument("--batch", type=int, default=BATCH, choices=range(1, BATCH + 1), metavar="1..1000",
                         help="每批记录数（默认 1000）")
    feed = commands.add_parser("events", help="拉取并确认事件，逐行输出 JSON")
    feed.add_argument("--follow", action="store_true", help="取完后继续等待新事件")
    feed.add_argument("--interval", type=float, default=5.0)
    options = parser.parse_args(argv)
    if not options.token:
        parser.error("需要 --token 或环境变量 BEIAN_TOKEN")
    exchange = Exchange(options.url, options.token)
    try:
        if options.command == "upload":
            totals = upload(exchange, options.file, options.kind.strip("/"), options.batch)
            print(f"接受 {totals['accepted']} 条，拒绝 {totals['refused']} 条", file=sys.stderr)
        else:
            print(f"收到 {drain_events(exchange, options.follow, options.interval)} 个事件", file=sys.stderr)
    except ClientError as error:
        print(f"错误：{error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
