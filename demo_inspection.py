"""`flask --app app inspection demo-sites`: a province's filed websites served on loopback by the demo farm
(`demo_sites.Farm`), so that an inspection of the province has something real to fetch (issue 18, the demo and the
browser walk).

The websites in force of the province (website id order, at most `limit`) each get a behaviour by their position
in a cycle of twenty (`CYCLE`): fourteen compliant — the footer shows the website's number linked to the registry,
/cert/bazs.cert serves the entity's current certificate (its real token, signed by the registry's keys) — and one
each failing one check: the number missing, the number not linked, no certificate, a certificate that is not the
current one (the entity's superseded one if it has one, else another entity's: "foreign"), a dead site, an error
page, and one compliant page served from an address outside the filed ranges ("outside"). Every domain of a
website is served.

The access check compares the addresses a name resolves to with the filed ranges, which `seed-demo` files in
10.x.y.z — never reachable here. So the farm's names go to a static-hosts JSON file as "filed=>127.0.0.1:port":
each name resolves to its website's filed address (the first of each live access's ranges: every access holds
one), which is what the access check sees, while the fetcher connects to the farm on loopback (and checks that
address against INSPECTION_ALLOWED_NETWORKS). The "outside" website's names resolve to plain 127.0.0.1, in no
filed range (under-reported access, 少报). INSPECTION_STATIC_HOSTS_FILE points the app and the workers at the
file (re-read at every slice of a run, so a farm restarted on another port is picked up), with
INSPECTION_ALLOWED_NETWORKS=127.0.0.1/32, which the app accepts only in DEBUG or TESTING.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select

import ipindex
from demo_sites import DemoSite, Farm
from extensions import db
from models import Access, AccessRange, Certificate, CertificateStatus, Domain, Entity, FilingStatus, Website

#: the behaviour of the website at each position of the cycle ("old_cert": a certificate not the current one;
#: "outside": compliant, but its names resolve to an address in none of its filed ranges)
CYCLE: tuple[str, ...] = ("compliant",) * 13 + ("outside", "missing", "unlinked", "no_cert", "old_cert", "dead",
                                                  "error")
#: the farm's behaviour of each (the certificate served is chosen apart)
FARM_BEHAVIOUR = {"compliant": "compliant", "outside": "compliant", "missing": "missing", "unlinked": "unlinked",
                  "no_cert": "compliant", "old_cert": "compliant", "dead": "dead", "error": "error"}


@dataclass(frozen=True)
class PlannedWebsite:
    """One website of the demo: what it is, and how its stand-in behaves."""

    website_id: int
    number: str
    domains: tuple[str, ...]
    behaviour: str  # one of CYCLE
    token: str  # the certificate /cert/bazs.cert serves ("" → 404)
    addresses: tuple[str, ...] = ()  # a filed address of each live access: what its names resolve to


def plan(province_code: str, limit: int) -> list[PlannedWebsite]:
    """The province's first `limit` websites in force with their behaviours, certificates and filed addresses:
    four queries."""
    rows = db.session.execute(select(Website.id, Website.number, Website.entity_id).join(
        Entity, Website.entity_id == Entity.id).where(
        Entity.province_code == province_code, Entity.status == FilingStatus.ACTIVE,
        Website.status == FilingStatus.ACTIVE).order_by(Website.id).limit(limit)).all()
    ids = [row[0] for row in rows]
    domains: dict[int, list[str]] = {}
    for website_id, name in db.session.execute(select(Domain.website_id, Domain.name).where(
            Domain.website_id.in_(ids), Domain.live).order_by(Domain.id)) if ids else ():
        domains.setdefault(website_id, []).append(name)
    tokens = _tokens({row[2] for row in rows})
    addresses = _filed_addresses(ids)
    planned = []
    for position, (website_id, number, entity_id) in enumerate(rows):
        behaviour = CYCLE[position % len(CYCLE)]
        current, superseded = tokens.get(entity_id, ("", ""))
        other = tokens.get(rows[(position + 1) % len(rows)][2], ("", ""))[0] if len(rows) > 1 else ""
        token = {"no_cert": "", "old_cert": superseded or other}.get(behaviour, current)
        planned.append(PlannedWebsite(website_id, number or "", tuple(domains.get(website_id, ())), behaviour, token,
                                      addresses.get(website_id, ())))
    return planned


def _tokens(entity_ids: set[int]) -> dict[int, tuple[str, str]]:
    """Entity id → (its current certificate's token, its latest superseded one's or "")."""
    found: dict[int, dict[CertificateStatus, str]] = {}
    for entity_id, status, token in db.session.execute(select(
            Certificate.entity_id, Certificate.status, Certificate.token).where(
            Certificate.entity_id.in_(entity_ids), Certificate.status.in_(
                (CertificateStatus.CURRENT, CertificateStatus.SUPERSEDED))).order_by(Certificate.issued_at)
            ) if entity_ids else ():
        found.setdefault(entity_id, {})[status] = token  # the latest of each status wins
    return {entity_id: (tokens.get(CertificateStatus.CURRENT, ""), tokens.get(CertificateStatus.SUPERSEDED, ""))
            for entity_id, tokens in found.items()}


def _filed_addresses(website_ids: list[int]) -> dict[int, tuple[str, ...]]:
    """Website id → the first address of each live access's lowest filed range (a range is stored once per index
    bucket it touches: the lowest start is the range's own)."""
    found: dict[int, list[str]] = {}
    for website_id, start in db.session.execute(select(Access.website_id, func.min(AccessRange.start_key)).join(
            AccessRange, AccessRange.access_id == Access.id).where(Access.website_id.in_(website_ids), Access.live)
            .group_by(Access.website_id, Access.id).order_by(Access.id)) if website_ids else ():
        found.setdefault(website_id, []).append(ipindex.address_text(start))
    return {website_id: tuple(dict.fromkeys(addresses)) for website_id, addresses in found.items()}


def static_hosts(planned: Sequence[PlannedWebsite], farm: Farm) -> dict[str, str | list[str]]:
    """The static-hosts mapping of the demo: each name → its website's filed addresses, reached at the farm
    ("10.1.2.3=>127.0.0.1:port"); an "outside" website's names, or a website with no range filed, → the farm's
    plain address."""
    loopback = farm.static_hosts()
    return {domain: [f"{address}=>{loopback[domain]}" for address in site.addresses]
            if site.addresses and site.behaviour != "outside" else loopback[domain]
            for site in planned for domain in site.domains}


def farm_of(planned: Sequence[PlannedWebsite]) -> Farm:
    """The farm serving every domain of every planned website (not started)."""
    return Farm(DemoSite(host=domain, behaviour=FARM_BEHAVIOUR[site.behaviour], number=site.number, token=site.token)
                for site in planned for domain in site.domains)


def write_hosts(path: Path, hosts: Mapping[str, str | list[str]]) -> None:
    """The JSON file INSPECTION_STATIC_HOSTS_FILE names, written whole then moved into place (a worker reading it
    meanwhile sees the old one or the new one)."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(hosts, ensure_ascii=False, indent=1, sort_keys=True), encoding="utf-8")
    temporary.replace(path)


def summary(planned: Sequence[PlannedWebsite]) -> dict[str, int]:
    """How many websites of each behaviour."""
    return dict(Counter(site.behaviour for site in planned))
