"""`flask --app app seed-demo --ip-blocks N`: a realistic hierarchy of IP reports (issue 13), fast.

Three national carriers hold registry blocks (APNIC / CNNIC; IPv4 /16s and IPv6 /32s). The first quarter of
each block is re-allocated (分配方式 2) to the data-centre unit of a province, which receives it as a source
block of its own and allocates it on to user units; the carrier allocates the other three quarters itself
(分配并使用 to user units, 自用, 预留). Every allocation is a CIDR prefix in a slot of its own (a block has 1,024
slots, one in ten left free), so nothing overlaps; N allocation records in all, plus one self-brought block per
1,000 allocations, in space nobody reports.

Written like `demo.seed`: multi-row inserts with explicit ids (`rawsql.BulkInsert`), not the workflow — yet
every record satisfies the rules of `workflow/ip.py` (tests/test_ip_cli.py checks a sample against them).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select, text

import audit
import demo
import ipindex
import workflow
from extensions import db
from models import Division, IpAllocation, IpBlock, IpOrigin, IpSelfBrought, Province, Role, User, utcnow
from rawsql import BulkInsert

BATCH = 20_000  # allocation records per transaction
SLOTS = 1024  # per registry block: slots 0–255 are the re-allocated quarter, 256–1023 the carrier's own
QUARTER = SLOTS // 4
FREE_EVERY = 10  # one slot in ten stays unallocated
SELF_BROUGHT_EVERY = 1000  # one self-brought block per this many allocation records
CARRIERS = (("demo_ipr_ct", "中国电信集团有限公司（演示）", "demo_isp_11_1"),
            ("demo_ipr_cu", "中国联合网络通信集团有限公司（演示）", "demo_isp_11_2"),
            ("demo_ipr_cm", "中国移动通信集团有限公司（演示）", "demo_isp_11_1"))
CARRIER_PROVINCE = "110000"
NAMES = ("王伟", "李娜", "张敏", "刘洋", "陈静", "杨磊", "赵军", "黄丽")


@dataclass(frozen=True)
class Family:
    version: int
    block_bits: int  # host bits of a registry block
    region: int  # the first key the demo uses
    sizes: tuple[int, ...]  # host bits of the user allocations, cycled (each fits a slot)

    @property
    def slot_bits(self) -> int:
        return self.block_bits - SLOTS.bit_length() + 1


V4 = Family(4, 16, ipindex.address_key("58.0.0.0"), (6, 5, 4, 3, 2, 4))  # /26 … /30
V6 = Family(6, 96, ipindex.address_key("240e::"), (80, 72, 64, 84, 80))  # /48, /56, /64, /44
V4_END = ipindex.address_key("255.255.255.255")


@dataclass
class Units:
    carriers: list[int]
    receivers: list[tuple[int, str]]  # (id, province code)
    created: list[str]


@dataclass
class Places:
    """Cities (with their counties) of each province that has any, from the 行政区划 table."""

    cities: dict[str, list[tuple[str, str, list[str]]]]  # province → [(city code, name, county codes)]
    province_names: dict[str, str]


@dataclass
class Batch:
    blocks: list[dict[str, Any]] = field(default_factory=list)  # registry blocks
    given: list[dict[str, Any]] = field(default_factory=list)  # allocations in them (re-allocations too)
    received: list[dict[str, Any]] = field(default_factory=list)  # the blocks re-allocations made
    further: list[dict[str, Any]] = field(default_factory=list)  # allocations in the received blocks
    self_brought: list[dict[str, Any]] = field(default_factory=list)

    @property
    def allocations(self) -> int:
        return len(self.given) + len(self.further)


def _account(username: str, organisation: str, province: str, password: str, isp_id: int | None) -> int:
    user = db.session.scalar(select(User).where(User.username == username))
    if user is None:
        user = workflow.create_user(None, workflow.UserData(
            username=username, role=Role.IP_REPORTER, password=password, province_code=province,
            organisation=organisation, contact_name="演示联系人", mobile="13800000000",
            email=f"{username}@demo.example.cn"))
    user.isp_account_id = isp_id
    return user.id


def ensure_units(password: str) -> Units:
    """The carriers and one data-centre unit per province (IP reporters linked to the demo ISPs)."""
    staff = demo.ensure_staff(password)
    existing = set(db.session.scalars(select(User.username).where(User.username.like("demo_ipr_%"))))
    isps = dict(db.session.execute(select(User.username, User.id).where(User.username.like("demo_isp_%"))).all())
    carriers = [_account(name, organisation, CARRIER_PROVINCE, password, isps.get(isp))
                for name, organisation, isp in CARRIERS]
    receivers = []
    for province in db.session.scalars(select(Province).where(Province.active).order_by(Province.sort_order)):
        unit = _account(f"demo_ipr_{province.code[:2]}", f"{province.name[:2]}云数据中心有限公司（演示）",
                        province.code, password, isps.get(f"demo_isp_{province.code[:2]}_1"))
        receivers.append((unit, province.code))
    db.session.commit()
    created = [name for name, *_rest in CARRIERS if name not in existing]
    created += [f"demo_ipr_{code[:2]}" for _id, code in receivers if f"demo_ipr_{code[:2]}" not in existing]
    return Units(carriers, receivers, staff.created + created)


def load_places() -> Places:
    counties: dict[str, list[str]] = {}
    for code, parent in db.session.execute(select(Division.code, Division.parent_code).where(Division.level == 3)):
        counties.setdefault(parent, []).append(code)
    cities: dict[str, list[tuple[str, str, list[str]]]] = {}
    for code, name, parent in db.session.execute(select(Division.code, Division.name, Division.parent_code).where(
            Division.level == 2).order_by(Division.code)):
        cities.setdefault(parent, []).append((code, name, counties.get(code, [])))
    names = dict(db.session.execute(select(Province.code, Province.name)).all())
    return Places(cities, names)


def _next_free(family: Family) -> int:
    """The first registry-block boundary above every block and self-brought block of the family already there."""
    highest = family.region - 1
    for model, *conditions in ((IpBlock, IpBlock.derived.is_(False)), (IpSelfBrought,)):
        row = db.session.execute(select(model.end_key).where(*conditions, model.family == family.version)
                                 .order_by(model.start_key.desc()).limit(1)).scalar_one_or_none()
        if row is not None:
            highest = max(highest, int(row, 16))
    size = 1 << family.block_bits
    return (highest // size + 1) * size


class Generator:
    """The rows, block by block, with explicit ids; `date_value` makes a date what the driver binds."""

    def __init__(self, units: Units, places: Places, ids: dict[str, int], sqlite: bool) -> None:
        self.units, self.places, self.ids, self.sqlite = units, places, ids, sqlite
        self.rng = random.Random(ids["allocation"])
        self.now = utcnow()
        self.provinces = sorted(places.cities)
        self.next = {4: _next_free(V4), 6: _next_free(V6)}
        self.brought_at = 0  # the next self-brought /24 (0: take a fresh /16 above the registry blocks)
        self.serial = ids["allocation"]

    def _take(self, name: str) -> int:
        self.ids[name] += 1
        return self.ids[name] - 1

    def _date(self) -> Any:
        day = date.today() - timedelta(days=self.rng.randrange(1, 1500))
        return day.isoformat() if self.sqlite else day

    def _range(self, start: int, host_bits: int) -> dict[str, Any]:
        return {"family": ipindex.family_of(start), "start_key": ipindex.hex_key(start),
                "end_key": ipindex.hex_key(start + (1 << host_bits) - 1), "created_at": self.now,
                "updated_at": self.now}

    def _user_unit(self, method: str, province: str, start: int) -> dict[str, Any]:
        blank = {"user_name": "", "user_nature": "", "user_category": "", "user_industry": "", "province_code": None,
                 "city_code": None, "county_code": None, "address": "", "contact_name": "", "contact_phone": "",
                 "contact_email": "", "usage": "", "allocated_on": None, "gateway_ip": "", "gateway_location": "",
                 "redirect_server": False, "remark": ""}
        if method in ("2", "3"):
            return {**blank, "allocated_on": self._date(), "usage": "1" if method == "3" else ""}
        if method == "4":
            return blank
        self.serial += 1
        city, city_name, counties = self.rng.choice(self.places.cities[province])
        place = self.places.province_names[province] if city_name == "市辖区" else city_name
        gateway = ipindex.address_text(start + 1)
        return {**blank, "user_name": f"{place[:3]}{demo.WORDS[self.serial % 12]}{demo.TRADES[self.serial % 8]}"
                                      f"有限公司{self.serial}",
                "user_nature": "4", "user_category": "8", "user_industry": self.rng.choice("IIIIFCLMJ"),
                "province_code": province, "city_code": city,
                "county_code": self.rng.choice(counties) if counties else None,
                "address": f"{place}某路{self.serial % 999 + 1}号", "contact_name": self.rng.choice(NAMES),
                "contact_phone": f"139{self.serial % 10**8:08d}", "contact_email": f"ip{self.serial}@demo.example.cn",
                "usage": self.rng.choice("1112"), "allocated_on": self._date(), "gateway_ip": gateway,
                "gateway_location": place, "redirect_server": self.serial % 97 == 0}

    def _allocation(self, unit: int, block: int, method: str, start: int, host_bits: int, province: str,
                    target: int | None = None) -> dict[str, Any]:
        return {"id": self._take("allocation"), "unit_id": unit, "block_id": block, "method": method,
                "target_unit_id": target, **self._range(start, host_bits), **self._user_unit(method, province, start)}

    def blocks(self, count: int) -> Iterator[Batch]:
        """Registry blocks, each with its re-allocation and up to 1,023 further allocations, until `count`
        allocation records are made; yielded about BATCH records at a time."""
        batch, made, number = Batch(), 0, 0
        while made < count:
            batch, made = self._block(number, batch, made, count)
            number += 1
            if batch.allocations >= BATCH or made >= count:
                self._self_brought(batch)
                yield batch
                batch = Batch()

    def _block(self, number: int, batch: Batch, made: int, count: int) -> tuple[Batch, int]:
        family = V6 if number % 3 == 2 else V4
        start = self.next[family.version]
        if family.version == 4 and start + (1 << family.block_bits) - 1 > V4_END:
            raise ValueError("the IPv4 space above 58.0.0.0 is used up; seed fewer blocks")
        self.next[family.version] = start + (1 << family.block_bits)
        carrier = self.units.carriers[number % len(self.units.carriers)]
        receiver, receiver_province = self.units.receivers[number % len(self.units.receivers)]
        block_id = self._take("block")
        batch.blocks.append({"id": block_id, "unit_id": carrier, "origin": IpOrigin.REGISTRY, "derived": False,
                             "registry_code": "CNNIC" if number % 4 == 3 else "APNIC", "source_unit_id": None,
                             "allocation_id": None, "remark": "", **self._range(start, family.block_bits)})
        quarter_bits = family.block_bits - 2
        given = self._allocation(carrier, block_id, "2", start, quarter_bits, receiver_province, receiver)
        batch.given.append(given)
        received_id = self._take("block")
        batch.received.append({"id": received_id, "unit_id": receiver, "origin": IpOrigin.ALLOCATION,
                               "derived": True, "registry_code": None, "source_unit_id": carrier,
                               "allocation_id": given["id"], "remark": "", **self._range(start, quarter_bits)})
        made += 1
        for slot in range(SLOTS):
            if made >= count:
                break
            if slot % FREE_EVERY == FREE_EVERY - 1:
                continue
            slot_start = start + (slot << family.slot_bits)
            size = family.sizes[(number + slot) % len(family.sizes)]
            method = self.rng.choice("1111111134")
            if slot < QUARTER:
                batch.further.append(self._allocation(receiver, received_id, method, slot_start, size,
                                                      receiver_province))
            else:
                province = self.provinces[(number + slot) % len(self.provinces)]
                batch.given.append(self._allocation(carrier, block_id, method, slot_start, size, province))
            made += 1
        return batch, made

    def _self_brought(self, batch: Batch) -> None:
        """Customers' own /24s brought to the data-centre units' networks, above the registry blocks."""
        for _ in range(max(1, batch.allocations // SELF_BROUGHT_EVERY)):
            if self.brought_at % (1 << V4.block_bits) == 0:  # a fresh /16: later registry blocks go above it
                self.brought_at = self.next[4]
                self.next[4] += 1 << V4.block_bits
            start, self.brought_at = self.brought_at, self.brought_at + 256
            receiver, province = self.units.receivers[self.rng.randrange(len(self.units.receivers))]
            batch.self_brought.append({
                "id": self._take("self_brought"), "unit_id": receiver, "source_unit_id": None,
                "source_name": "客户自有地址（APNIC）", **self._range(start, 8),
                **self._user_unit("1", province, start)})


COLUMNS = {
    "blocks": (IpBlock, ("id", "unit_id", "origin", "derived", "registry_code", "source_unit_id", "allocation_id",
                         "remark", "family", "start_key", "end_key", "created_at", "updated_at")),
    "allocations": (IpAllocation, (
        "id", "unit_id", "block_id", "method", "target_unit_id", "family", "start_key", "end_key", "user_name",
        "user_nature", "user_category", "user_industry", "province_code", "city_code", "county_code", "address",
        "contact_name", "contact_phone", "contact_email", "usage", "allocated_on", "gateway_ip", "gateway_location",
        "redirect_server", "remark", "created_at", "updated_at")),
}
COLUMNS["self_brought"] = (IpSelfBrought, ("source_unit_id", "source_name", *(
    name for name in COLUMNS["allocations"][1] if name not in ("block_id", "method", "target_unit_id"))))
INSERTS = {name: BulkInsert(model.__table__, columns) for name, (model, columns) in COLUMNS.items()}


def _write(batch: Batch) -> None:
    """In the order the foreign keys need: registry blocks, their allocations, the blocks the re-allocations
    made, the allocations in those."""
    for name, rows in (("blocks", batch.blocks), ("allocations", batch.given), ("blocks", batch.received),
                       ("allocations", batch.further), ("self_brought", batch.self_brought)):
        if rows:
            INSERTS[name].run(rows)


def _next_ids() -> dict[str, int]:
    return {name: (db.session.scalar(select(func.max(model.id))) or 0) + 1
            for name, model in (("block", IpBlock), ("allocation", IpAllocation), ("self_brought", IpSelfBrought))}


def _advance_sequences() -> None:
    """PostgreSQL: the id sequences past the explicit ids, so that the workflow's inserts go on after them."""
    if db.engine.dialect.name != "postgresql":
        return
    for model in (IpBlock, IpAllocation, IpSelfBrought):
        table = model.__tablename__
        db.session.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                f"(SELECT COALESCE(max(id), 1) FROM {table}))"))


def seed(allocations: int, password: str) -> dict[str, object]:
    """Add `allocations` allocation records with their blocks; accounts created as needed."""
    units = ensure_units(password)
    places = load_places()
    if not places.cities:
        raise ValueError("the cities and counties (行政区划) are missing: run `flask --app app init` first")
    generator = Generator(units, places, _next_ids(), db.engine.dialect.name == "sqlite")
    totals = {"registry_blocks": 0, "allocations": 0, "received_blocks": 0, "self_brought": 0}
    for batch in generator.blocks(allocations):
        _write(batch)
        db.session.commit()
        totals["registry_blocks"] += len(batch.blocks)
        totals["allocations"] += batch.allocations
        totals["received_blocks"] += len(batch.received)
        totals["self_brought"] += len(batch.self_brought)
    _advance_sequences()
    audit.record("demo.seeded", object_type="demo", changes={"ip_allocations": allocations}, actor_username="cli")
    db.session.commit()
    return {**totals, "accounts_created": len(units.created),
            "ipv4_from": ipindex.address_text(V4.region), "ipv6_from": ipindex.address_text(V6.region)}
