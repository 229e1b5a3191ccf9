"""The safe fetcher of the website inspector (issue 18 §5): it fetches addresses chosen by outsiders, so

- it connects only to addresses `netguard.allowed` lets through — public unicast, or a network the configuration
  names (INSPECTION_ALLOWED_NETWORKS: tests, the demo, the benchmark) — and to the very address it checked (the
  connection is pinned to it: a second resolution cannot point it elsewhere); a host resolving to several addresses
  is reached on the first allowed one;
- each redirect is resolved and checked again, at most `max_redirects` of them;
- one deadline (`total_timeout`) bounds the whole fetch, redirects included: every read waits only for what is left
  of it, so an answer trickled a byte at a time is cut there; connecting waits at most `connect_timeout`;
- at most `max_body` bytes are kept, after gzip / deflate decompression bounded with zlib's max_length (a gzip bomb
  costs 1 MiB, not 1 GB); the raw bytes read are bounded the same way;
- it says who it is (`user_agent`, naming the registry) and holds at most `threads` connections at once, at most
  `per_host` of them to one host name;
- it never raises for anything a website does: the failure is in `Fetched.error` (a code) and `Fetched.message`
  (Chinese, shown to the clerk).

The resolver is dnspython's (INSPECTION_NAMESERVERS, else the system's; A and AAAA), or a static mapping
(INSPECTION_STATIC_HOSTS / _FILE, name → "address[:port]": the port, when given, is where the fetcher connects
instead of 80 / 443, so test servers on loopback need no root).
"""

from __future__ import annotations

import codecs
import http.client
import io
import ipaddress
import json
import re
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit

import dns.exception
import dns.nameserver
import dns.resolver

import netguard

#: who we are, in every request: the registry, and where a webmaster reads about it
USER_AGENT = ("Mozilla/5.0 (compatible; BeianInspector/1.0; ICP filing registry website inspection; "
              "+https://beian.miit.gov.cn/)")
EXCERPT_CHARS = 300
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
#: bytes asked of the socket per read
CHUNK = 64 * 1024
#: ports of other protocols (mail, SSH, DNS, IRC, …) that browsers refuse to fetch from (the Fetch standard's "bad
#: ports"): a filed home page or a redirect naming one would make the registry talk HTTP to that service
BAD_PORTS = frozenset({0, 1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79, 87, 95, 101,
                       102, 103, 104, 109, 110, 111, 113, 115, 117, 119, 123, 135, 137, 139, 143, 161, 179, 389, 427,
                       465, 512, 513, 514, 515, 526, 530, 531, 532, 540, 548, 554, 556, 563, 587, 601, 636, 989, 990,
                       993, 995, 1719, 1720, 1723, 2049, 3659, 4045, 4190, 5060, 5061, 6000, 6566, 6665, 6666, 6667,
                       6668, 6669, 6679, 6697, 10080})


# --- the policy ---------------------------------------------------------------------------------------------------

def _names(value: str | Iterable[str]) -> tuple[str, ...]:
    items = value.replace(",", " ").split() if isinstance(value, str) else value
    return tuple(item.strip().lower().rstrip(".") for item in items if item.strip())


@dataclass(frozen=True)
class Policy:
    """What one fetch may cost and where it may go (the INSPECTION_* settings)."""

    connect_timeout: float = 5.0
    total_timeout: float = 15.0  # the whole fetch, redirects included
    max_body: int = 1024 * 1024  # bytes kept, decompressed
    max_redirects: int = 3
    user_agent: str = USER_AGENT
    threads: int = 32  # fetches at once (and inspect_many's threads)
    per_host: int = 2  # … of them to one host name
    registry_hosts: tuple[str, ...] = ("beian.miit.gov.cn",)
    #: the only non-public networks reachable (tests, the demo, the benchmark); empty in production
    allowed_networks: tuple[netguard.Network, ...] = ()

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Policy:
        return cls(connect_timeout=float(config.get("INSPECTION_CONNECT_TIMEOUT", 5)),
                   total_timeout=float(config.get("INSPECTION_TOTAL_TIMEOUT", 15)),
                   max_body=int(config.get("INSPECTION_MAX_BODY", 1024 * 1024)),
                   user_agent=config.get("INSPECTION_USER_AGENT") or USER_AGENT,
                   threads=max(1, int(config.get("INSPECTION_THREADS", 32))),
                   per_host=max(1, int(config.get("INSPECTION_PER_HOST", 2))),
                   registry_hosts=_names(config.get("INSPECTION_REGISTRY_HOSTS") or "beian.miit.gov.cn"),
                   allowed_networks=netguard.parse_networks(config.get("INSPECTION_ALLOWED_NETWORKS") or ""))


# --- resolving names ----------------------------------------------------------------------------------------------

class ResolveError(Exception):
    """A name that gives no address: `code` "nxdomain" (no such name, or no A / AAAA record) or "error"."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Resolved:
    """An address of a name; `port`, from a static mapping only, is where to connect instead of the URL's. `via`,
    from a static mapping only ("filed=>127.0.0.1:port": the demo), is the address connected to while `address`
    is the one the name is said to have (what the access check compares with the filed ranges)."""

    address: str
    port: int | None = None
    via: str | None = None

    @property
    def connect(self) -> str:
        """The address the fetcher checks (netguard) and connects to."""
        return self.via or self.address


class Resolver(Protocol):
    def resolve(self, name: str) -> list[Resolved]: ...


def ascii_host(name: str) -> str:
    """A host name as DNS and the Host header carry it (IDNA for Chinese names), lower case, no final dot."""
    name = name.strip().rstrip(".").lower()
    try:
        return name.encode("idna").decode("ascii") if not name.isascii() else name
    except UnicodeError as error:
        raise ResolveError("error", f"域名 {name} 不是有效的域名。") from error


def _literal(name: str) -> list[Resolved] | None:
    """An address written as the host itself (http://10.0.0.1/, http://[::1]/): no resolution."""
    try:
        return [Resolved(str(ipaddress.ip_address(name.strip("[]"))))]
    except ValueError:
        return None


def _static_entry(value: str) -> Resolved:
    """ "203.0.113.5", "127.0.0.1:8080", "[::1]:8080", "10.1.2.3=>127.0.0.1:8080" (the name has 10.1.2.3, the
    fetcher connects to 127.0.0.1:8080) → a Resolved."""
    value = value.strip()
    if "=>" in value:
        said, _, actual = value.partition("=>")
        if "=>" in actual:
            raise ValueError(value)
        target = _static_entry(actual)
        return Resolved(str(ipaddress.ip_address(said.strip().strip("[]"))), target.port, target.address)
    if value.startswith("["):
        address, _, port = value[1:].partition("]")
        return Resolved(str(ipaddress.ip_address(address)), int(port[1:]) if port.startswith(":") else None)
    if value.count(":") == 1:
        address, port = value.split(":")
        return Resolved(str(ipaddress.ip_address(address)), int(port))
    return Resolved(str(ipaddress.ip_address(value)))


class StaticResolver:
    """Names from a mapping (name → "address[:port]", or a list of them); any other name does not exist. An entry
    is parsed when first asked for: the workflow makes a resolver per batch, the benchmark's mapping has 14,000."""

    def __init__(self, hosts: Mapping[str, str | list[str]]) -> None:
        self._hosts = {key if key.isascii() else ascii_host(key): value
                       for key, value in ((name.strip().rstrip(".").lower(), value) for name, value in hosts.items())}
        self._parsed: dict[str, list[Resolved]] = {}

    def resolve(self, name: str) -> list[Resolved]:
        host = ascii_host(name)
        if (literal := _literal(host)) is not None:
            return literal
        if host not in self._parsed:
            value = self._hosts.get(host)
            if not value:
                raise ResolveError("nxdomain", f"域名 {name} 不存在（NXDOMAIN）。")
            try:
                self._parsed[host] = [_static_entry(item) for item in ([value] if isinstance(value, str) else value)]
            except ValueError as error:
                raise ResolveError("error", f"静态解析表中 {name} 的地址格式错误。") from error
        return list(self._parsed[host])


class DnsResolver:
    """dnspython, A and AAAA, each query bounded by `lifetime`; answers cached (within their TTL) across sites."""

    def __init__(self, nameservers: list[str], lifetime: float) -> None:
        """`nameservers`: "address" or "address:port" ("[v6]:port"); none → the system's (/etc/resolv.conf)."""
        self._resolver = dns.resolver.Resolver(configure=not nameservers)
        if nameservers:
            servers = [_static_entry(item) for item in nameservers]
            self._resolver.nameservers = [dns.nameserver.Do53Nameserver(server.address, server.port or 53)
                                          for server in servers]
        self._resolver.lifetime = lifetime
        self._resolver.cache = dns.resolver.LRUCache(100_000)

    def resolve(self, name: str) -> list[Resolved]:
        host = ascii_host(name)
        if (found := _literal(host)) is not None:
            return found
        addresses: list[Resolved] = []
        for rdtype in ("A", "AAAA"):
            try:
                answer = self._resolver.resolve(host, rdtype, search=False)
            except dns.resolver.NXDOMAIN as error:
                raise ResolveError("nxdomain", f"域名 {name} 不存在（NXDOMAIN）。") from error
            except dns.resolver.NoAnswer:
                continue
            except dns.exception.DNSException as error:
                raise ResolveError("error", f"域名 {name} 解析失败（{type(error).__name__}）。") from error
            addresses += [Resolved(record.address) for record in answer]
        if not addresses:
            raise ResolveError("nxdomain", f"域名 {name} 没有 A 或 AAAA 记录。")
        return addresses


def resolver_from_config(config: Mapping[str, Any]) -> Resolver:
    """The static mapping when INSPECTION_STATIC_HOSTS (a dict) or INSPECTION_STATIC_HOSTS_FILE (JSON) is set, else
    DNS through INSPECTION_NAMESERVERS (comma list of "address[:port]"; "" = the system's)."""
    static = dict(config.get("INSPECTION_STATIC_HOSTS") or {})
    if path := config.get("INSPECTION_STATIC_HOSTS_FILE"):
        static = {**json.loads(Path(path).read_text(encoding="utf-8")), **static}
    if static or config.get("INSPECTION_STATIC_HOSTS") is not None:
        return StaticResolver(static)
    nameservers = [item.strip() for item in str(config.get("INSPECTION_NAMESERVERS") or "").split(",")
                   if item.strip()]
    return DnsResolver(nameservers, float(config.get("INSPECTION_CONNECT_TIMEOUT", 5)))


# --- what a fetch gives -------------------------------------------------------------------------------------------

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
SPACE = re.compile(r"\s+")
#: Python codecs no browser reads a page in: a page declaring one is read as if it declared none (they raised, or
#: garbled the page, e.g. `charset=punycode`)
NOT_PAGE_ENCODINGS = frozenset({"idna", "punycode", "undefined", "unicode-escape", "raw-unicode-escape", "utf-7"})
CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f\ufffd]")  # NUL and friends: not for the evidence


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _decode(body: bytes, declared: str) -> str:
    """Text of a body: the declared charset (header or <meta>), else UTF-8 — a character cut by the size bound at
    the very end forgiven — else GB18030 (many Chinese sites)."""
    charset = declared or next(iter(_META_CHARSET.findall(body[:4096])), b"").decode("ascii", "ignore")
    if charset:
        try:
            if codecs.lookup(charset).name not in NOT_PAGE_ENCODINGS:
                return body.decode(charset, errors="replace")
        except (LookupError, ValueError):  # unknown, or no text encoding (base64: LookupError; idna: UnicodeError)
            pass
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as error:
        if error.start >= len(body) - 3:
            return body[:error.start].decode("utf-8")
        return body.decode("gb18030", errors="replace")


@dataclass
class Fetched:
    """One fetch: where it went, what came back (the body bounded), or why nothing did."""

    url: str
    final_url: str = ""
    address: str = ""  # the address connected to (of the last hop)
    status: int | None = None
    at: str = ""  # when the fetch started, ISO 8601 UTC
    elapsed_ms: int = 0
    redirects: list[str] = field(default_factory=list)  # the URLs redirected to, in order
    body: bytes = b""
    truncated: bool = False  # more than max_body (or cut at the deadline)
    content_type: str = ""
    error: str = ""  # "" or: url, nxdomain, dns, forbidden, busy, connect, tls, timeout, protocol, redirects
    message: str = ""  # Chinese: what happened

    @property
    def answered(self) -> bool:
        """An HTTP answer came back (whatever its status)."""
        return self.status is not None

    def text(self, limit: int | None = None) -> str:
        """The body (its first `limit` bytes) as text."""
        charset = re.search(r"charset\s*=\s*[\"']?([A-Za-z0-9_.:-]+)", self.content_type or "")
        return _decode(self.body[:limit], charset.group(1) if charset else "")

    def excerpt(self, text: str | None = None, around: str = "") -> str:
        """At most EXCERPT_CHARS characters of the body's text (`text`: already extracted; else the body's start),
        whitespace collapsed, centred on `around` when it is there."""
        flat = SPACE.sub(" ", CONTROL.sub(" ", self.text(16 * 1024) if text is None else text)).strip()
        start = flat.find(around) if around else -1
        start = max(0, start - (EXCERPT_CHARS - len(around)) // 2) if start >= 0 else 0
        return flat[start:start + EXCERPT_CHARS]

    def evidence(self, excerpt: str | None = None) -> dict[str, Any]:
        found = {"url": self.url, "final_url": self.final_url, "address": self.address, "at": self.at,
                 "status": self.status, "elapsed_ms": self.elapsed_ms, "excerpt": self.excerpt()
                 if excerpt is None else excerpt[:EXCERPT_CHARS]}
        if self.redirects:
            found["redirects"] = self.redirects
        if self.truncated:
            found["truncated"] = True
        if self.error:
            found["error"], found["message"] = self.error, self.message
        return found


class _Failure(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# --- the connection: pinned, every read bounded by the deadline ----------------------------------------------------

def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("deadline")
    return left


class _DeadlineSocket:
    """What http.client needs of a socket (sendall, makefile, close), each call bounded by the deadline. As with a
    real socket, the connection closed while its answer is still being read stays open until the reader closes."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock, self._deadline, self._users, self._closed = sock, deadline, 1, False

    def sendall(self, data: bytes) -> None:
        self._sock.settimeout(_remaining(self._deadline))
        self._sock.sendall(data)

    def recv_into(self, buffer: Any) -> int:
        self._sock.settimeout(_remaining(self._deadline))
        return self._sock.recv_into(buffer)

    def makefile(self, mode: str = "rb", *args: Any, **kwargs: Any) -> io.BufferedReader:
        self._users += 1
        return io.BufferedReader(_DeadlineReader(self), CHUNK)

    def release(self) -> None:
        self._users -= 1
        if not self._users:
            self._sock.close()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.release()


class _DeadlineReader(io.RawIOBase):
    """The socket as http.client reads it: each read waits only for what is left of the fetch's time, so an answer
    trickled a byte at a time (status line, headers or body) ends at the deadline."""

    def __init__(self, sock: _DeadlineSocket) -> None:
        super().__init__()
        self._sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self._sock.recv_into(buffer)

    def close(self) -> None:
        if not self.closed:
            self._sock.release()
        super().close()


_TLS = ssl.create_default_context()


class _PinnedConnection(http.client.HTTPConnection):
    """HTTP(S) to `address`:`connect_port` whatever the host name resolves to now; Host header and TLS name (SNI,
    certificate check) from the URL's host."""

    def __init__(self, host: str, port: int, address: str, connect_port: int, tls: bool, connect_timeout: float,
                 deadline: float) -> None:
        super().__init__(host, port, timeout=connect_timeout)
        self.default_port = 443 if tls else 80  # the Host header omits the scheme's own port
        self._address, self._connect_port, self._tls, self._deadline = address, connect_port, tls, deadline

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self._connect_port),
                                        min(self.timeout, _remaining(self._deadline)))
        if self._tls:
            sock.settimeout(_remaining(self._deadline))
            sock = _TLS.wrap_socket(sock, server_hostname=self.host)
        self.sock = _DeadlineSocket(sock, self._deadline)


class _Inflater:
    """The body kept: at most `limit` bytes, gzip / deflate decompressed with zlib's max_length (never more)."""

    def __init__(self, encoding: str, limit: int) -> None:
        self.limit, self.parts, self.size = limit, list[bytes](), 0
        self._zlib = zlib.decompressobj(zlib.MAX_WBITS | 32) if encoding in ("gzip", "x-gzip", "deflate") else None
        self._raw_deflate = encoding == "deflate"  # "deflate" is sometimes sent without its zlib header

    def feed(self, data: bytes) -> bool:
        """Keep what fits; True once the body is larger than the limit (stop reading)."""
        room = self.limit - self.size
        if room <= 0:
            return bool(data)
        if self._zlib is None:
            piece, full = data[:room], len(data) > room
        else:
            piece = self._inflate(data, room)
            full = bool(self._zlib.unconsumed_tail)
        self.parts.append(piece)
        self.size += len(piece)
        return full

    def _inflate(self, data: bytes, room: int) -> bytes:
        assert self._zlib is not None
        try:
            return self._zlib.decompress(data, room)
        except zlib.error as error:
            if self._raw_deflate and not self.size:
                self._raw_deflate, self._zlib = False, zlib.decompressobj(-zlib.MAX_WBITS)
                return self._inflate(data, room)
            raise _Failure("protocol", "网站返回的压缩内容无法解压。") from error

    def body(self) -> bytes:
        return b"".join(self.parts)


# --- the fetcher --------------------------------------------------------------------------------------------------

class _HostSlots:
    """At most `per_host` fetches to one host name at once; a host's semaphore lives while someone uses it."""

    def __init__(self, per_host: int) -> None:
        self._per_host, self._lock = per_host, threading.Lock()
        self._slots: dict[str, list[Any]] = {}  # host → [semaphore, users]

    def acquire(self, host: str, timeout: float) -> bool:
        with self._lock:
            slot = self._slots.setdefault(host, [threading.Semaphore(self._per_host), 0])
            slot[1] += 1
        if slot[0].acquire(timeout=timeout):
            return True
        self._leave(host, slot)
        return False

    def release(self, host: str) -> None:
        with self._lock:
            slot = self._slots[host]
        slot[0].release()
        self._leave(host, slot)

    def _leave(self, host: str, slot: list[Any]) -> None:
        with self._lock:
            slot[1] -= 1
            if not slot[1]:
                del self._slots[host]


def _connect_failure(error: OSError, address: str, port: int) -> _Failure:
    if isinstance(error, ssl.SSLError | ssl.CertificateError):
        return _Failure("tls", f"与 {address} 的 TLS 握手或证书校验失败。")
    if isinstance(error, ConnectionRefusedError):
        return _Failure("connect", f"连接 {address}:{port} 被拒绝。")
    if isinstance(error, TimeoutError):
        return _Failure("connect", f"连接 {address}:{port} 超时。")
    return _Failure("connect", f"无法连接 {address}:{port}。")


class Fetcher:
    """GET with the policy's bounds (see the module's docstring); thread-safe; `fetch` never raises for what a
    website does."""

    def __init__(self, policy: Policy, resolver: Resolver) -> None:
        self.policy, self.resolver = policy, resolver
        self._global = threading.Semaphore(policy.threads)
        self._hosts = _HostSlots(policy.per_host)

    def fetch(self, url: str) -> Fetched:
        started = time.monotonic()
        deadline = started + self.policy.total_timeout
        result, current = Fetched(url=url, at=now_iso()), url
        try:
            for hop in range(self.policy.max_redirects + 1):
                location = self._get(current, deadline, result)
                if location is None:
                    break
                if hop == self.policy.max_redirects:
                    raise _Failure("redirects", f"重定向超过 {self.policy.max_redirects} 次，已停止跟随。")
                current = urljoin(current, location)
                result.redirects.append(current)
        except _Failure as failure:
            result.error, result.message = failure.code, failure.message
        result.final_url = current
        result.elapsed_ms = round((time.monotonic() - started) * 1000)
        return result

    def _target(self, url: str) -> tuple[str, int, bool, str, Resolved]:
        """host, port, tls, path and the address to connect to — one the rules allow — of a URL."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as error:
            raise _Failure("url", f"网址格式错误：{url[:200]}") from error
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _Failure("url", f"网址格式错误或协议不受支持（仅限 http / https）：{url[:200]}")
        if port in BAD_PORTS:
            raise _Failure("forbidden", f"网址的端口 {port} 属于其他服务（浏览器同样拒绝访问），按规定不予连接。")
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if not path.isascii() or any(ord(character) <= 0x20 for character in path):
            raise _Failure("url", f"网址的路径含有空格、控制字符或未编码的字符：{url[:200]}")
        try:
            host = ascii_host(parts.hostname)
            resolved = self.resolver.resolve(host)
        except ResolveError as error:
            raise _Failure("nxdomain" if error.code == "nxdomain" else "dns", error.message) from error
        target = next((item for item in resolved if netguard.allowed(item.connect, self.policy.allowed_networks)),
                      None)
        if target is None:
            listed = "、".join(item.address for item in resolved[:4])
            raise _Failure("forbidden", f"{host} 解析到非公网地址（{listed}），按规定不予连接。")
        tls = parts.scheme == "https"
        return host, port or (443 if tls else 80), tls, path, target

    def _get(self, url: str, deadline: float, result: Fetched) -> str | None:
        """One request: the body into `result`, or the Location of a redirect (returned)."""
        host, port, tls, path, target = self._target(url)
        result.address, result.status, result.body, result.truncated = target.address, None, b"", False
        if not self._global.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise _Failure("busy", "同时进行的检查过多，等待超时。")
        try:
            if not self._hosts.acquire(host, max(0.0, deadline - time.monotonic())):
                raise _Failure("busy", f"对 {host} 的并发访问已达上限，等待超时。")
            try:
                return self._exchange(host, port, tls, path, target, deadline, result)
            finally:
                self._hosts.release(host)
        finally:
            self._global.release()

    def _exchange(self, host: str, port: int, tls: bool, path: str, target: Resolved, deadline: float,
                  result: Fetched) -> str | None:
        connection = _PinnedConnection(host, port, target.connect, target.port or port, tls,
                                       self.policy.connect_timeout, deadline)
        headers = {"User-Agent": self.policy.user_agent, "Accept": "text/html,*/*;q=0.8",
                   "Accept-Encoding": "gzip, deflate", "Connection": "close"}
        response = None
        try:
            try:
                connection.connect()
            except OSError as error:
                raise _connect_failure(error, target.connect, target.port or port) from error
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            result.status = response.status
            result.content_type = response.getheader("Content-Type", "")[:200]
            location = response.getheader("Location")
            if response.status in REDIRECT_STATUSES and location:
                return location
            self._read_body(response, deadline, result)
            return None
        except TimeoutError as error:
            raise _Failure("timeout", f"{self.policy.total_timeout:g} 秒内未收到完整应答，已中止。") from error
        except (OSError, http.client.HTTPException) as error:
            raise _Failure("protocol", "网站的应答不是有效的 HTTP 应答，或连接中途断开。") from error
        finally:
            if response is not None:
                response.close()
            connection.close()

    def _read_body(self, response: http.client.HTTPResponse, deadline: float, result: Fetched) -> None:
        """At most max_body bytes, decompressed; what was read stays in `result` if the deadline cuts it."""
        inflater = _Inflater((response.getheader("Content-Encoding") or "").strip().lower(), self.policy.max_body)
        raw = 0
        try:
            while chunk := response.read1(CHUNK):
                raw += len(chunk)
                if inflater.feed(chunk) or raw > self.policy.max_body:
                    result.truncated = True
                    break
        except TimeoutError:
            result.truncated = True
            raise
        finally:
            result.body = inflater.body()
