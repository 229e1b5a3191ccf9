"""The website inspector (issue 18 §2, §5): a fetcher that is safe against the websites it fetches, and the checks of
one website. No database: `workflow.inspections` loads the websites (`Site`), runs `inspect_many`, and stores the
checks (`Check`) as results and findings.

CONTRACT (issue 18, written by the lead before the helpers build it; the helper of this module replaces this
paragraph with the module's real description):

- `Policy.from_config(config)` reads INSPECTION_* settings; `resolver_from_config(config)` gives the resolver
  (dnspython; INSPECTION_NAMESERVERS, or INSPECTION_STATIC_HOSTS for tests, the demo and the benchmark).
- `Fetcher(policy, resolver).fetch(url) -> Fetched` — thread-safe, never raises for anything the website does.
- `inspect(site, fetcher, jwks) -> list[Check]` — the six checks, in CHECKS order.
- `inspect_many(sites, fetcher, jwks) -> Iterator[tuple[Site, list[Check], float]]` — concurrently
  (policy.threads, policy.per_host), each site with its checks and the seconds it took, as they complete.
- The certificate check cannot know from here whether a certificate other than the entity's current one was
  superseded or revoked: it answers outcome "stale" with evidence["certificate_id"]; the workflow looks the status up
  (one query per batch) and calls `certificate_status_check(check, status)` for the final check.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: the checks' codes, in the order they are run and shown (models.CheckCode has the same values)
CHECKS = ("dns", "alive", "number", "link", "cert", "access")


@dataclass(frozen=True)
class Site:
    """What the checks of one website need to know from the registry."""

    website_id: int
    website_number: str
    entity_number: str
    domains: tuple[str, ...]
    home_url: str  # the filed home page; "" → http://<first domain>/
    #: the live accesses' filed ranges: (access id, ((start key, end key), ...)) as `ipindex` keys
    accesses: tuple[tuple[int, tuple[tuple[int, int], ...]], ...] = ()
    current_certificate_id: str | None = None


@dataclass(frozen=True)
class Check:
    """One check's result. `passed` None: not checked (e.g. the number of a page that could not be fetched)."""

    code: str  # one of CHECKS
    passed: bool | None
    outcome: str  # "ok", or why not: "nxdomain", "dead", "error", "missing", "unlinked", "absent", "malformed",
    # "invalid", "foreign", "stale" (→ "superseded" / "revoked" / "unknown"), "outside", "unused", "unreachable"
    message: str  # Chinese, shown to the clerk
    evidence: dict[str, Any] = field(default_factory=dict)  # url, address, at, status, excerpt, addresses, ...
