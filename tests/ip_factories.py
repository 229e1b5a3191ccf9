"""Factories for the IP reports (issue 13): reporting units and their blocks, allocations and self-brought blocks,
made through the workflow as a unit would make them."""

from __future__ import annotations

from datetime import date
from typing import Any

import workflow.ip as ip
from extensions import db
from models import IpAllocation, IpBlock, IpSelfBrought, Role, User
from tests.helpers import TIANJIN, make_user

#: the user-unit fields 分配方式 1 and self-brought blocks require, filled in
USER_UNIT = {
    "usage": "1", "allocated_on": date(2026, 1, 5), "user_name": "天津某科技有限公司", "user_nature": "4",
    "province_code": TIANJIN, "city_code": "120100", "address": "天津市和平区某路1号", "contact_name": "王五",
    "contact_phone": "022-12345678", "contact_email": "ip@example.cn",
}


def reporter(username: str, province_code: str = TIANJIN, **extra: Any) -> User:
    extra.setdefault("organisation", f"{username} 网络公司")
    return make_user(username, Role.IP_REPORTER, province_code, **extra)


def block(unit: User, start: str, end: str, registry: str = "APNIC", **extra: Any) -> IpBlock:
    made = ip.add_block(unit, ip.BlockData(start=start, end=end, registry_code=registry, **extra))
    db.session.commit()
    return made


def allocation(unit: User, start: str, end: str, method: str = "1", **extra: Any) -> IpAllocation:
    fields = {**(USER_UNIT if method == "1" else {}), **extra}
    if method == "3":
        fields = {"usage": "1", "allocated_on": date(2026, 1, 5), **extra}
    made = ip.add_allocation(unit, ip.AllocationData(start=start, end=end, method=method, **fields))
    db.session.commit()
    return made


def self_brought(unit: User, start: str, end: str, **extra: Any) -> IpSelfBrought:
    made = ip.add_self_brought(unit, ip.SelfBroughtData(start=start, end=end, **{**USER_UNIT, **extra}))
    db.session.commit()
    return made
