"""Inspection test helpers (issue 18): demo websites served on loopback (`demo_sites.Farm`), a fetcher pointed at
them, certificates signed by a key ring. A test of the workflow points the app at a farm:

    with farms() as start:
        farm = start([DemoSite("www.a.cn", number="京ICP备12345678号-1", token=certificate(ring))])
        app.config.update(farm.config())  # www.a.cn resolves to the farm; 127.0.0.1 (only) allowed
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import ipindex
from certificates.keyring import KeyRing
from demo_sites import DemoSite, Farm
from inspector import Fetcher, Policy, resolver_from_config

ENTITY = "京ICP备12345678号"
WEBSITE = f"{ENTITY}-1"
LOOPBACK = ipindex.address_key("127.0.0.1")


def certificate(ring: KeyRing, certificate_id: str = "cert-1", entity_number: str = ENTITY,
                website_number: str = WEBSITE) -> str:
    """A bazs.cert token as the registry issues it (only the fields the inspector reads, and a name)."""
    return ring.sign({"certificate_id": certificate_id, "entity_number": entity_number, "unit_name": "演示单位",
                      "websites": [{"number": website_number, "name": "演示网站"}]})


def loopback_access(access_id: int = 1) -> tuple[int, tuple[tuple[int, int], ...]]:
    """A live access whose filed range is 127.0.0.1 (the farm's address)."""
    return access_id, ((LOOPBACK, LOOPBACK),)


def fetcher_for(farm: Farm, **settings: Any) -> Fetcher:
    """A fetcher resolving the farm's names to it, loopback 127.0.0.1 allowed, short timeouts for tests."""
    config = {"INSPECTION_TOTAL_TIMEOUT": 2, "INSPECTION_CONNECT_TIMEOUT": 1, **farm.config(), **settings}
    return Fetcher(Policy.from_config(config), resolver_from_config(config))


@contextmanager
def farms() -> Iterator[Callable[[Iterable[DemoSite]], Farm]]:
    """Start farms of demo sites (each served by a thread); all stopped at the end. As a fixture:

        @pytest.fixture
        def farm_of():
            with farms() as start:
                yield start
    """
    started: list[Farm] = []

    def start(sites: Iterable[DemoSite]) -> Farm:
        started.append(Farm(sites).start())
        return started[-1]

    try:
        yield start
    finally:
        for farm in started:
            farm.stop()
