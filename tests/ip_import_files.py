"""IP import files for the tests (issue 13): the template's sheets filled with rows given as dicts of the
workflow's field names, written the way a spreadsheet program writes them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from openpyxl import Workbook

import ip_import

#: a valid user unit (分配方式 1) as a reporter types it: names from the dropdowns, not codes
USER_UNIT_CELLS = {
    "usage": "静态", "allocated_on": "2026-01-05", "user_name": "天津某科技有限公司", "user_nature": "企业",
    "province_code": "天津市", "city_code": "市辖区", "county_code": "和平区", "address": "天津市和平区某路1号",
    "contact_name": "王五", "contact_phone": "022-12345678", "contact_email": "ip@example.cn",
}


def ip_file(path: Path, blocks: list[dict[str, Any]] = (), allocations: list[dict[str, Any]] = (),
            self_brought: list[dict[str, Any]] = (), sheets: tuple[str, ...] | None = None) -> Path:
    """A workbook with the template's three sheets (or only those named), a header row and the rows given."""
    rows = {"block": blocks, "allocation": allocations, "self_brought": self_brought}
    workbook = Workbook(write_only=True)
    for sheet in ip_import.SHEETS:
        if sheets is not None and sheet.kind not in sheets:
            continue
        out = workbook.create_sheet(sheet.title)
        out.append(sheet.headers)
        for row in rows[sheet.kind]:
            out.append([row.get(column.key, "") for column in sheet.columns])
    workbook.save(path)
    return path


def allocation_row(start: str, end: str, method: str = "分配并使用", **cells: Any) -> dict[str, Any]:
    return {"start": start, "end": end, "method": method, **(USER_UNIT_CELLS if method in ("1", "分配并使用") else {}),
            **cells}
