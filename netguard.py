"""The one rule of which addresses the registry may connect to on an outsider's say-so — a webhook's URL (issue 16)
or a filed website (issue 18): globally routable unicast addresses only, never loopback, the private networks,
link-local, the metadata service (169.254.169.254), shared (100.64.0.0/10), reserved or multicast addresses.

An IPv6 address carrying an IPv4 one — IPv4-mapped (::ffff:0:0/96), IPv4-translated (::ffff:0:0:0/96, SIIT),
IPv4-compatible (::/96), NAT64 (64:ff9b::/96 and the local-use 64:ff9b:1::/48), 6to4 (2002::/16) — is judged as that
IPv4 address, which a translating gateway would reach. Any other IPv6 address must lie in 2000::/3, the global
unicast space (site-local fec0::/10 and the unassigned space are refused, whatever the Python version's table says).

Tests, the demo and the benchmark serve websites on loopback: they name the exact networks they need
(`allowed_networks`, e.g. 127.0.0.1/32) rather than switching the rule off, so a redirect to 127.0.0.2 or
10.0.0.1 is still refused there.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: prefixes whose last 32 bits are the IPv4 address a translator reaches: NAT64 (well-known and local-use, RFC 8215)
#: and IPv4-translated (RFC 2765, SIIT)
TRANSLATED = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"),
              ipaddress.ip_network("::ffff:0:0:0/96"))
GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")
#: inside 2000::/3 yet not reachable, newer than some Python versions' tables: documentation (RFC 9637)
NOT_GLOBAL = (ipaddress.ip_network("3fff::/20"),)


def effective(address: str) -> Address:
    """The address a connection to `address` really reaches: the IPv4 one inside a mapped, translated, compatible,
    NAT64 or 6to4 IPv6 address, else the address itself (a zone index, `%eth0`, dropped). ValueError if not an
    address."""
    ip: Address = ipaddress.ip_address(address.split("%", 1)[0])
    if ip.version == 6:
        inner = ip.ipv4_mapped or ip.sixtofour
        compatible = 1 < int(ip) < 1 << 32  # ::/96, but :: and ::1 themselves
        if inner is None and (compatible or any(ip in prefix for prefix in TRANSLATED)):
            inner = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        return inner or ip
    return ip


def public(address: str) -> bool:
    """Whether an address is globally routable unicast (judged by the IPv4 address it carries, if any)."""
    return _global_unicast(effective(address))


def _global_unicast(ip: Address) -> bool:
    if ip.version == 6 and (ip not in GLOBAL_UNICAST or any(ip in network for network in NOT_GLOBAL)):
        return False
    return ip.is_global and not ip.is_multicast


def parse_networks(text: str | Iterable[str]) -> tuple[Network, ...]:
    """Networks from a comma- or whitespace-separated list ("127.0.0.1/32, ::1/128"), or a list of them; ValueError
    for one that is not a network."""
    items = text.replace(",", " ").split() if isinstance(text, str) else [str(item).strip() for item in text]
    return tuple(ipaddress.ip_network(item, strict=False) for item in items if item)


def allowed(address: str, networks: Iterable[Network] = ()) -> bool:
    """Whether the registry may connect to `address`: public, or inside one of the explicitly allowed networks
    (compared with the address it effectively reaches, so ::ffff:127.0.0.2 is not let in by 127.0.0.1/32)."""
    try:
        ip = effective(address)
    except ValueError:
        return False
    if _global_unicast(ip):
        return True
    return any(ip.version == network.version and ip in network for network in networks)
