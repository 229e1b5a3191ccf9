"""Address ranges as index rows, so that "which filed access ranges contain this address" is a few index
lookups, never a scan (是否备案查询 by IP; later the IP reports).

Every address is a 128-bit key (IPv4 as IPv4-mapped IPv6), written as 32 hex digits so that text order
is numeric order on SQLite and PostgreSQL alike. A range is stored once per *bucket* it touches, at
the finest level where it touches at most `MAX_BUCKETS` — a /24 of IPv4 or a /64 of IPv6 typically, a
huge range at a coarse level — so a range costs at most 4 rows, and an address is looked up in one
bucket per level (9 index probes), each probe reading only ranges of that bucket.
"""

from __future__ import annotations

import ipaddress

#: prefix lengths over the 128-bit key, finest first: IPv4 /24, /16, /8, /0; IPv6 /64, /48, /32, /16, /0
LEVELS = (120, 112, 104, 96, 64, 48, 32, 16, 0)
MAX_BUCKETS = 4
_MAPPED = 0xFFFF << 32


def address_key(text: str) -> int:
    """The 128-bit key of an address; ValueError if it is not one."""
    return key_of(ipaddress.ip_address(text.strip().strip("[]")))


def key_of(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> int:
    return int(address) | _MAPPED if address.version == 4 else int(address)


def hex_key(key: int) -> str:
    return f"{key:032x}"


def _bucket(level: int, key: int) -> str:
    return f"{level}:{key >> (128 - level):x}"


def range_rows(ip_ranges: str) -> list[tuple[str, str, str]]:
    """(bucket, start, end) rows of an access's ranges ("start-end" per line, as stored); bad lines skipped
    (the workflow checked them when they were filed)."""
    rows = []
    for line in ip_ranges.splitlines():
        start_text, _, end_text = line.partition("-")
        try:
            start, end = address_key(start_text), address_key(end_text or start_text)
        except ValueError:
            continue
        if start > end:
            continue
        level = next(level for level in LEVELS if (end >> (128 - level)) - (start >> (128 - level)) < MAX_BUCKETS)
        shift = 128 - level
        rows += [(f"{level}:{prefix:x}", hex_key(start), hex_key(end))
                 for prefix in range(start >> shift, (end >> shift) + 1)]
    return rows


def lookup_buckets(key: int) -> list[str]:
    """The buckets in which a range containing `key` can be stored: one per level."""
    return [_bucket(level, key) for level in LEVELS]


def family_of(key: int) -> int:
    """4 for an IPv4(-mapped) key, else 6."""
    return 4 if key >> 32 == 0xFFFF else 6


def is_mapped_span(start: int, end: int) -> bool:
    """Whether an IPv6 range reaches into the IPv4-mapped space ::ffff:0:0/96 (which holds the IPv4 keys)."""
    return start <= _MAPPED | 0xFFFFFFFF and end >= _MAPPED


def address_text(key: int | str) -> str:
    """The address of a key (hex text or int) as a person writes it: dotted IPv4, compressed IPv6."""
    value = int(key, 16) if isinstance(key, str) else key
    if family_of(value) == 4:
        return str(ipaddress.IPv4Address(value & 0xFFFFFFFF))
    return str(ipaddress.IPv6Address(value))


def range_text(start: int | str, end: int | str) -> str:
    """"a–b", or the CIDR prefix when the range is exactly one ("1.2.3.0/24"), or one address."""
    first = int(start, 16) if isinstance(start, str) else start
    last = int(end, 16) if isinstance(end, str) else end
    if first == last:
        return address_text(first)
    size = last - first + 1
    if size & (size - 1) == 0 and first % size == 0:
        bits = 32 if family_of(first) == 4 else 128
        return f"{address_text(first)}/{bits - size.bit_length() + 1}"
    return f"{address_text(first)}–{address_text(last)}"
