"""A farm of demo websites on loopback (issue 18): one HTTP server answering for many host names by the Host header,
each name with a behaviour — the stand-ins for filed websites in the inspector's tests, the benchmark and the demo.

    farm = Farm([DemoSite("www.a.cn", number="京ICP备12345678号-1", token=certificate), ...])
    with farm:  # served by a thread (farm.start_process(): by a child process, for the benchmark)
        config = farm.config()  # INSPECTION_STATIC_HOSTS → 127.0.0.1:port, INSPECTION_ALLOWED_NETWORKS 127.0.0.1/32

Behaviours of the home page (any path of a hostile one):
- compliant: the number in the footer, linked to the registry; unlinked: the number as plain text; missing: none;
- error: HTTP 500; dead: nothing listens (the connection is refused); silent: accepts and never answers;
- slow: a body trickled a byte every 0.1 s; huge: a 1 GB body; gzip_bomb: a gzip stream inflating to 1 GB;
- redirect: 302 to `location` (e.g. a private or the metadata address); redirect_loop: 302 to itself, endlessly.
/cert/bazs.cert gives `token` (the certificate, or anything a test wants served as one); "" → 404.
`delay` makes the normal pages wait that long (the per-host concurrency test).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import socket
import threading
import time
import zlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

BEHAVIOURS = ("compliant", "unlinked", "missing", "error", "dead", "silent", "slow", "huge", "gzip_bomb",
              "redirect", "redirect_loop")
REGISTRY_URL = "https://beian.miit.gov.cn/"
#: how long a hostile answer goes on at most, should the client never hang up
HOSTILE_SECONDS = 60.0
GIGABYTE = 1 << 30
BLOCK = 64 * 1024


@dataclass(frozen=True)
class DemoSite:
    """One host name of the farm and how it behaves."""

    host: str
    behaviour: str = "compliant"
    number: str = ""  # the filing number the footer shows
    token: str = ""  # served as /cert/bazs.cert; "" → 404
    location: str = ""  # where "redirect" sends to
    delay: float = 0.0  # seconds before a normal page is answered


def page(site: DemoSite) -> bytes:
    """The home page of a well-behaved demo site."""
    footer = {"compliant": f'<a href="{REGISTRY_URL}" target="_blank">{site.number}</a>',
              "unlinked": f"<span>{site.number}</span>"}.get(site.behaviour, "<span>版权所有</span>")
    return (f'<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>{site.host}</title></head>'
            f"<body><h1>{site.host} 演示网站</h1><p>这是备案检查使用的演示网站。</p>"
            f"<footer>{footer}</footer></body></html>").encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: a benchmark makes tens of thousands of requests."""

    def do_GET(self) -> None:
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]").lower()
        farm = self.server.farm
        farm.enter(host, self.headers.get("User-Agent", ""))
        self._host: str | None = host
        try:
            with contextlib.suppress(OSError):
                self._answer(farm.sites.get(host))
        finally:
            self._leave()

    def _leave(self) -> None:
        """The request no longer counts as open: before its answer is sent (a client that has read the answer may
        connect again before this thread runs on, and would be counted twice), or when a hostile answer ends."""
        if self._host is not None:
            self.server.farm.leave(self._host)
            self._host = None

    def _send(self, status: int, body: bytes = b"", content_type: str = "text/html; charset=utf-8",
              **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self._leave()
        self.end_headers()
        self.wfile.write(body)

    def _answer(self, site: DemoSite | None) -> None:
        if site is None:
            self._send(404, "未知主机".encode())
            return
        hostile = {"redirect": self._redirect, "redirect_loop": self._redirect_loop, "silent": self._silent,
                   "slow": self._slow, "huge": self._huge, "gzip_bomb": self._gzip_bomb}.get(site.behaviour)
        if hostile is not None:
            hostile(site)
            return
        time.sleep(site.delay)
        if self.path.split("?", 1)[0] == "/cert/bazs.cert":
            if site.token:
                self._send(200, site.token.encode(), "text/plain; charset=utf-8")
            else:
                self._send(404, "未找到".encode())
        elif site.behaviour == "error":
            self._send(500, "服务器错误".encode())
        else:
            self._send(200, page(site))

    def _redirect(self, site: DemoSite) -> None:
        self._send(302, Location=site.location)

    def _redirect_loop(self, site: DemoSite) -> None:
        step = int(self.path.rsplit("/", 1)[-1] or 0) if self.path.startswith("/loop/") else 0
        self._send(302, Location=f"/loop/{step + 1}")

    def _silent(self, site: DemoSite) -> None:
        self.connection.settimeout(HOSTILE_SECONDS)
        with contextlib.suppress(OSError):
            self.connection.recv(1)  # returns when the client hangs up

    def _stream(self, headers: dict[str, str], blocks: Iterable[bytes], pause: float = 0.0) -> None:
        self.send_response(200)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        ends = time.monotonic() + HOSTILE_SECONDS
        for block in blocks:
            self.wfile.write(block)
            if pause:
                self.wfile.flush()
                time.sleep(pause)
            if time.monotonic() > ends:
                return

    def _slow(self, site: DemoSite) -> None:
        self._stream({"Content-Type": "text/html; charset=utf-8", "Content-Length": str(GIGABYTE)},
                     (b"<" for _ in range(GIGABYTE)), pause=0.1)

    def _huge(self, site: DemoSite) -> None:
        block = (b"<p>" + "很长的页面".encode() * 4000 + b"</p>")[:BLOCK]
        self._stream({"Content-Type": "text/html; charset=utf-8", "Content-Length": str(GIGABYTE)},
                     (block for _ in range(GIGABYTE // len(block))))

    def _gzip_bomb(self, site: DemoSite) -> None:
        self._stream({"Content-Type": "text/html; charset=utf-8", "Content-Encoding": "gzip"}, _gzip_zeros(GIGABYTE))


def _gzip_zeros(size: int) -> Iterable[bytes]:
    """A gzip stream of `size` zero bytes, made as it is sent (about 1 KB per MB)."""
    packer, zeros = zlib.compressobj(9, zlib.DEFLATED, 31), bytes(1 << 20)
    for _ in range(size // len(zeros)):
        if block := packer.compress(zeros):
            yield block
    yield packer.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # a benchmark connects dozens at a time
    farm: Farm


class Farm:
    """The demo sites served on 127.0.0.1 (one port for all), with a port nothing listens on for the dead ones;
    per host: requests, connections open now and at most, the User-Agents seen."""

    def __init__(self, sites: Iterable[DemoSite]) -> None:
        self.sites = {site.host.lower(): site for site in sites}
        self.requests: Counter[str] = Counter()
        self.active: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.peak_total = 0  # connections open at once, all hosts together, at most
        self.user_agents: set[str] = set()
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.farm = self
        self._dead = socket.socket()  # bound, never listening: connections to it are refused
        self._dead.bind(("127.0.0.1", 0))
        self._thread: threading.Thread | None = None
        self._process: multiprocessing.Process | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def enter(self, host: str, user_agent: str) -> None:
        with self._lock:
            self.requests[host] += 1
            self.active[host] += 1
            self.peak[host] = max(self.peak[host], self.active[host])
            self.peak_total = max(self.peak_total, self.active.total())
            self.user_agents.add(user_agent)

    def leave(self, host: str) -> None:
        with self._lock:
            self.active[host] -= 1

    def static_hosts(self) -> dict[str, str]:
        """INSPECTION_STATIC_HOSTS for the farm: every name → 127.0.0.1 and the farm's port (the dead ones' port)."""
        dead = self._dead.getsockname()[1]
        return {host: f"127.0.0.1:{dead if site.behaviour == 'dead' else self.port}"
                for host, site in self.sites.items()}

    def config(self) -> dict[str, Any]:
        """The settings that point the inspector at the farm, and allow it loopback (127.0.0.1 only)."""
        return {"INSPECTION_STATIC_HOSTS": self.static_hosts(), "INSPECTION_ALLOWED_NETWORKS": "127.0.0.1/32"}

    def start(self) -> Farm:
        """Serve from a thread of this process (tests)."""
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="demo-sites",
                                        daemon=True)  # polled every 0.05 s: stops that soon
        self._thread.start()
        return self

    def start_process(self) -> Farm:
        """Serve from a child process (the benchmark: the farm does not take the inspector's interpreter lock);
        the counters then stay in the child."""
        context = multiprocessing.get_context("fork")
        self._process = context.Process(target=self._server.serve_forever, name="demo-sites", daemon=True)
        self._process.start()
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.join(5)
        elif self._thread is not None:
            self._server.shutdown()
        self._server.server_close()
        self._dead.close()

    def __enter__(self) -> Farm:
        return self if self._thread or self._process else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
