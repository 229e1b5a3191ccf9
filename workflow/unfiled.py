"""未备案网站 (issue 18 §3): an ISP or a bureau reports the domains and addresses seen on its network (an xlsx upload
in the console, a list through the API); the registry answers which of them match no filing in force, and keeps
those as sightings of the reporter — first seen, last seen, how many times reported (the data-exchange
specification's first and last detection).

Filed means: a domain (with or without `www.`, as the public lookup matches) that is a live domain of a website in
force; an address inside a live access range (`workflow.ip_lookup.in_live_access_ranges`, the public lookup's rule).
The domains are matched with one IN query per CHUNK names, the addresses with one UNION ALL per ADDRESS_CHUNK
addresses; the sightings are upserted (ON CONFLICT on reporter and value, both databases) in the caller's
transaction.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, exists, literal, select, union_all
from sqlalchemy.dialects import postgresql, sqlite

import audit
import permissions
from extensions import db
from models import Access, AccessRange, Domain, Entity, FilingStatus, UnfiledSighting, User, Website, utcnow
from permissions import Action
from validators import normalise_domain, with_and_without_www
from workflow.errors import NotFound, WorkflowError
from workflow.ip_lookup import in_live_access_ranges

MAX_VALUES = 100_000
CHUNK = 900  # names per IN list (SQLite allows 32,766 parameters; the upsert uses 7 a row)
ADDRESS_CHUNK = 100  # addresses per UNION ALL (about 12 parameters each)


@dataclass
class UnfiledReport:
    """What a report found: the values matching no filing in force (stored as sightings), those filed, and those
    that are neither a domain nor an address, with the reason. Values normalised, each once, in the order given."""

    unfiled: list[str] = field(default_factory=list)
    filed: list[str] = field(default_factory=list)
    invalid: list[tuple[str, str]] = field(default_factory=list)


def sighting_scope(actor: Any) -> ColumnElement[bool]:
    """An ISP its own sightings, a bureau those reported in its province, MIIT all."""
    return permissions.unfiled_sighting_scope(actor)


def report_unfiled(actor: User, values: Sequence[str], source: str) -> UnfiledReport:
    """Match up to MAX_VALUES domains or addresses against the filings in force; the unfiled ones become (or move)
    the reporter's sightings. `source` (console, xlsx, api) goes to the audit log."""
    if not permissions.can(actor, Action.UNFILED_REPORT):
        raise NotFound()
    if len(values) > MAX_VALUES:
        raise WorkflowError(f"一次最多上报 {MAX_VALUES} 个域名或地址。", "values")
    report, kinds = UnfiledReport(), classify(values)
    report.invalid = kinds.pop("invalid")
    filed = _filed_domains(list(kinds["domain"])) | _filed_addresses(list(kinds["ip"]))
    for kind in ("domain", "ip"):
        for value in kinds[kind]:
            (report.filed if value in filed else report.unfiled).append(value)
    _upsert(actor, [(kinds["domain"].get(value) or kinds["ip"][value], value) for value in report.unfiled])
    audit.record("unfiled.reported", object_type="user", object_id=actor.id, actor=actor, changes={
        "source": source, "values": len(values), "unfiled": len(report.unfiled), "filed": len(report.filed),
        "invalid": len(report.invalid)})
    return report


def classify(values: Sequence[str]) -> dict[str, Any]:
    """Each value normalised: an IPv4 / IPv6 address (its canonical text), else a domain (`normalise_domain`), else
    invalid with the reason; blanks skipped, repeats kept once."""
    found: dict[str, Any] = {"domain": {}, "ip": {}, "invalid": []}
    for raw in values:
        text = str(raw).strip()
        if not text:
            continue
        try:
            address = ipaddress.ip_address(text.strip("[]"))
        except ValueError:
            pass
        else:
            if getattr(address, "scope_id", None) is None:
                found["ip"].setdefault(str(address), "ip")
            else:  # `%eth0` names an interface of the reporter's machine, not a website (and may hold anything)
                found["invalid"].append((text[:253], "IP 地址不能带区域标识（%…）。"))
            continue
        try:
            found["domain"].setdefault(normalise_domain(text), "domain")
        except ValueError as error:
            found["invalid"].append((text[:253], str(error)))
    return found


def normalised(value: str) -> str | None:
    """One value as `report_unfiled` matches it (its canonical address or normalised domain); None when invalid."""
    kinds = classify([value])
    return next(iter([*kinds["domain"], *kinds["ip"]]), None)


def times_reported(actor: User, values: list[str]) -> dict[str, int]:
    """How often the reporter has reported each of these (normalised) values as unfiled, this report included."""
    found: dict[str, int] = {}
    for start in range(0, len(values), CHUNK):
        found.update(db.session.execute(select(UnfiledSighting.value, UnfiledSighting.times).where(
            UnfiledSighting.reporter_id == actor.id, UnfiledSighting.value.in_(values[start:start + CHUNK]))).all())
    return found


def _filed_domains(names: list[str]) -> set[str]:
    """The names (given normalised) whose own name or www. variant is a live domain of a website in force."""
    variants: dict[str, list[str]] = {}
    for name in names:
        for variant in with_and_without_www(name):
            variants.setdefault(variant, []).append(name)
    keys, filed = sorted(variants), set()
    for start in range(0, len(keys), CHUNK):
        for variant in db.session.scalars(select(Domain.name).join(Website, Domain.website_id == Website.id)
                                          .join(Entity, Website.entity_id == Entity.id).where(
                Domain.live, Domain.name.in_(keys[start:start + CHUNK]), Website.status == FilingStatus.ACTIVE,
                Entity.status == FilingStatus.ACTIVE)):
            filed.update(variants[variant])
    return filed


def _filed_addresses(addresses: list[str]) -> set[str]:
    """The addresses inside a live access range: one UNION ALL of ADDRESS_CHUNK index probes per statement."""
    filed: set[str] = set()
    for start in range(0, len(addresses), ADDRESS_CHUNK):
        chunk = addresses[start:start + ADDRESS_CHUNK]
        probes = [select(literal(index).label("i")).where(exists(
            select(AccessRange.id).join(Access, AccessRange.access_id == Access.id)
            .where(in_live_access_ranges(ipaddress.ip_address(address))))) for index, address in enumerate(chunk)]
        filed.update(chunk[index] for index in db.session.scalars(union_all(*probes)))
    return filed


def _upsert(actor: User, sightings: list[tuple[str, str]]) -> None:
    """(kind, value) → the reporter's sighting inserted, or its last_seen moved and times counted up: one statement
    compiled once, executed for every row (a multi-row VALUES of 5,000 rows costs seconds to compile)."""
    if not sightings:
        return
    now, table = utcnow(), UnfiledSighting.__table__
    dialect = postgresql if db.engine.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table)
    db.session.execute(statement.on_conflict_do_update(
        index_elements=[table.c.reporter_id, table.c.value],
        set_={"last_seen": statement.excluded.last_seen, "times": table.c.times + 1}), [
        {"reporter_id": actor.id, "province_code": actor.province_code, "kind": kind, "value": value,
         "first_seen": now, "last_seen": now, "times": 1} for kind, value in sightings])
