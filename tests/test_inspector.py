"""The website inspector (issue 18 §2, §5): the address rule, the safe fetcher against real HTTP servers on loopback
(demo_sites.Farm, with a static resolver), and the six checks. No database."""

from __future__ import annotations

import json
import socket
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest

import inspector
import ipindex
import netguard
import safe_fetch
from app import create_app
from certificates.keyring import KeyRing
from demo_sites import DemoSite, Farm
from inspector import Check, Fetched, Site, certificate_status_check, inspect, inspect_many
from tests.inspection_helpers import ENTITY, WEBSITE, certificate, farms, fetcher_for, loopback_access

REFUSED = ["127.0.0.1", "127.0.0.2", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "100.64.0.1",
           "0.0.0.0", "224.0.0.1", "240.0.0.1", "255.255.255.255", "192.0.2.1", "198.18.0.1", "::1", "::",
           "fe80::1", "fc00::1", "ff02::1", "ff0e::1", "::ffff:127.0.0.1", "::ffff:169.254.169.254",
           "::ffff:10.0.0.1", "::127.0.0.1", "64:ff9b::a9fe:a9fe", "2002:7f00:1::1", "2002:a9fe:a9fe::1",
           "2001:db8::1", "fe80::1%eth0", "not an address"]


@pytest.fixture
def ring(tmp_path: Path) -> KeyRing:
    return KeyRing.at(tmp_path)


@pytest.fixture
def farm_of() -> Iterator[Callable[[Iterable[DemoSite]], Farm]]:
    with farms() as start:
        yield start


def site(host: str, *, accesses: tuple = (loopback_access(),), current: str = "cert-1", domains: tuple = (),
         home: str = "") -> Site:
    return Site(1, WEBSITE, ENTITY, domains or (host,), home, accesses, current)


def by_code(checks: list[Check]) -> dict[str, Check]:
    return {check.code: check for check in checks}


# --- the address rule -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("address", REFUSED)
def test_no_private_reserved_or_disguised_address_is_reachable(address: str) -> None:
    """Is every non-public address — and every IPv6 form carrying one — refused without an allowed network?"""
    assert not netguard.allowed(address)
    if address != "not an address":
        assert not netguard.public(address)


@pytest.mark.parametrize("address", ["8.8.8.8", "223.5.5.5", "2001:4860:4860::8888", "::ffff:8.8.8.8"])
def test_public_unicast_addresses_are_reachable(address: str) -> None:
    assert netguard.allowed(address) and netguard.public(address)


def test_an_allowed_network_lets_in_exactly_its_addresses() -> None:
    """With 127.0.0.1/32 allowed (the tests' farm), are 127.0.0.2, 10.0.0.1, the metadata address and
    ::ffff:127.0.0.2 still refused?"""
    networks = netguard.parse_networks("127.0.0.1/32, ::1/128")
    assert netguard.allowed("127.0.0.1", networks) and netguard.allowed("::ffff:127.0.0.1", networks)
    assert netguard.allowed("::1", networks)
    for address in ("127.0.0.2", "10.0.0.1", "169.254.169.254", "::ffff:127.0.0.2", "64:ff9b::7f00:2"):
        assert not netguard.allowed(address, networks), address


def test_the_app_refuses_allowed_networks_outside_tests(tmp_path: Path) -> None:
    """Does production configuration refuse INSPECTION_ALLOWED_NETWORKS, and tests accept it?"""
    base = {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'x.db'}", "INSTANCE_PATH": str(tmp_path),
            "SECRET_KEY": "x", "INSPECTION_ALLOWED_NETWORKS": "127.0.0.1/32"}
    with pytest.raises(RuntimeError, match="INSPECTION_ALLOWED_NETWORKS"):
        create_app(base)
    assert create_app({**base, "TESTING": True}).config["INSPECTION_ALLOWED_NETWORKS"] == "127.0.0.1/32"
    assert create_app({**base, "INSPECTION_ALLOWED_NETWORKS": ""}).config["INSPECTION_USER_AGENT"] == ""


def test_policy_from_config_reads_every_setting() -> None:
    policy = inspector.Policy.from_config({
        "INSPECTION_CONNECT_TIMEOUT": "2", "INSPECTION_TOTAL_TIMEOUT": 9, "INSPECTION_MAX_BODY": 1000,
        "INSPECTION_THREADS": 4, "INSPECTION_PER_HOST": 1, "INSPECTION_USER_AGENT": "",
        "INSPECTION_REGISTRY_HOSTS": "beian.miit.gov.cn, Beian.Example.CN.", "INSPECTION_ALLOWED_NETWORKS": ""})
    assert (policy.connect_timeout, policy.total_timeout, policy.max_body, policy.threads, policy.per_host) == (
        2.0, 9.0, 1000, 4, 1)
    assert policy.registry_hosts == ("beian.miit.gov.cn", "beian.example.cn")
    assert policy.allowed_networks == () and "BeianInspector" in policy.user_agent


# --- resolving --------------------------------------------------------------------------------------------------------

def test_static_hosts_give_an_address_and_a_port(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts.json"
    hosts.write_text(json.dumps({"www.a.cn": "203.0.113.5", "中文网站.cn": "127.0.0.1:8080"}), encoding="utf-8")
    resolver = inspector.resolver_from_config({"INSPECTION_STATIC_HOSTS_FILE": str(hosts),
                                               "INSPECTION_STATIC_HOSTS": {"v6.cn": ["[::1]:81", "2001:db8::5"]}})
    assert resolver.resolve("WWW.A.CN.") == [safe_fetch.Resolved("203.0.113.5")]
    assert resolver.resolve("xn--fiq228c37oz8d.cn") == [safe_fetch.Resolved("127.0.0.1", 8080)]
    assert resolver.resolve("v6.cn") == [safe_fetch.Resolved("::1", 81), safe_fetch.Resolved("2001:db8::5")]
    assert resolver.resolve("10.0.0.9") == [safe_fetch.Resolved("10.0.0.9")]
    with pytest.raises(safe_fetch.ResolveError) as refused:
        resolver.resolve("unknown.cn")
    assert refused.value.code == "nxdomain"


def test_a_static_host_can_say_one_address_and_be_reached_at_another(farm_of) -> None:
    """"filed=>127.0.0.1:port" (the demo): the name has the filed address — what the fetch reports and the access
    check compares with the filed ranges — while the fetcher connects to the loopback one, which netguard checks:
    refused without 127.0.0.1 allowed, and a loopback name said to be reached at a private address refused even
    with it."""
    farm = farm_of([DemoSite("www.demo.cn", number=WEBSITE)])
    hosts = {"www.demo.cn": f"10.1.2.3=>127.0.0.1:{farm.port}", "v6.demo.cn": "[2001:db8::7]=>[::1]:81",
             "sneaky.cn": "127.0.0.1=>10.0.0.1:80", "twice.cn": "10.1.2.3=>10.1.2.4=>127.0.0.1:80"}
    resolver = safe_fetch.StaticResolver(hosts)
    assert resolver.resolve("www.demo.cn") == [safe_fetch.Resolved("10.1.2.3", farm.port, "127.0.0.1")]
    assert resolver.resolve("v6.demo.cn")[0].connect == "::1" and resolver.resolve("v6.demo.cn")[0].port == 81
    with pytest.raises(safe_fetch.ResolveError):
        resolver.resolve("twice.cn")
    fetcher = fetcher_for(farm, INSPECTION_STATIC_HOSTS=hosts)
    fetched = fetcher.fetch("http://www.demo.cn/")
    assert (fetched.status, fetched.address, fetched.error) == (200, "10.1.2.3", "") and WEBSITE in fetched.text()
    assert fetcher.fetch("http://sneaky.cn/").error == "forbidden"
    closed = fetcher_for(farm, INSPECTION_STATIC_HOSTS=hosts, INSPECTION_ALLOWED_NETWORKS="").fetch(
        "http://www.demo.cn/")
    assert closed.error == "forbidden" and farm.requests["www.demo.cn"] == 1
    site = Site(1, WEBSITE, ENTITY, ("www.demo.cn",), "", ((1, ((ipindex.address_key("10.1.2.3"),) * 2,)),), None)
    access = inspect(site, fetcher, {})[-1]
    assert (access.passed, access.evidence["addresses"]) == (True, ["10.1.2.3"])


class FakeDns:
    """A DNS server on a loopback UDP port: good.test → 203.0.113.7 (A only), others NXDOMAIN, slow.test never
    answers."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while True:
            try:
                wire, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            query = dns.message.from_wire(wire)
            question = query.question[0]
            name = question.name.to_text()
            if name == "slow.test.":
                continue
            answer = dns.message.make_response(query)
            answer.flags |= dns.flags.RA
            if name == "good.test." and question.rdtype == dns.rdatatype.A:
                answer.answer.append(dns.rrset.from_text(name, 60, "IN", "A", "203.0.113.7"))
            elif name != "good.test.":
                answer.set_rcode(dns.rcode.NXDOMAIN)
            self.sock.sendto(answer.to_wire(), peer)


def test_dns_resolution_through_the_configured_nameserver() -> None:
    """dnspython against a nameserver on loopback: an address, NXDOMAIN, and a timeout bounded by the lifetime."""
    server = FakeDns()
    try:
        port = server.sock.getsockname()[1]
        resolver = inspector.resolver_from_config({"INSPECTION_NAMESERVERS": f"127.0.0.1:{port}",
                                                   "INSPECTION_CONNECT_TIMEOUT": 0.5})
        assert resolver.resolve("good.test") == [safe_fetch.Resolved("203.0.113.7")]
        for name, code in (("missing.test", "nxdomain"), ("slow.test", "error")):
            started = time.monotonic()
            with pytest.raises(safe_fetch.ResolveError) as failed:
                resolver.resolve(name)
            assert failed.value.code == code and time.monotonic() - started < 2
    finally:
        server.sock.close()


# --- the fetcher ------------------------------------------------------------------------------------------------------

def test_a_compliant_site_is_fetched_naming_the_registry(farm_of) -> None:
    farm = farm_of([DemoSite("www.ok.cn", number=WEBSITE)])
    fetched = fetcher_for(farm).fetch("http://www.ok.cn/")
    assert (fetched.status, fetched.error, fetched.address, fetched.final_url) == (200, "", "127.0.0.1",
                                                                                   "http://www.ok.cn/")
    assert WEBSITE in fetched.text() and fetched.at.endswith("+00:00") and fetched.elapsed_ms >= 0
    assert farm.user_agents == {inspector.USER_AGENT} and "ICP filing registry" in inspector.USER_AGENT


def test_a_chinese_host_name_is_asked_for_in_idna(farm_of) -> None:
    farm = farm_of([DemoSite("xn--fiq228c37oz8d.cn", number=WEBSITE)])
    fetched = fetcher_for(farm, INSPECTION_STATIC_HOSTS={"中文网站.cn": f"127.0.0.1:{farm.port}"}).fetch(
        "http://中文网站.cn/")
    assert fetched.status == 200 and farm.requests["xn--fiq228c37oz8d.cn"] == 1


@pytest.mark.parametrize("location", ["http://127.0.0.2/", "http://10.0.0.1/", "http://169.254.169.254/latest/",
                                      "http://[::ffff:127.0.0.2]/", "http://[::ffff:169.254.169.254]/",
                                      "http://[64:ff9b::a9fe:a9fe]/", "http://internal.cn/"])
def test_a_redirect_to_a_private_or_metadata_address_is_refused(farm_of, location: str) -> None:
    """Is each redirect checked again — loopback other than the allowed 127.0.0.1, the private network, the metadata
    address, IPv6 forms of them, and a name resolving to a private address?"""
    farm = farm_of([DemoSite("www.bad.cn", "redirect", location=location)])
    fetched = fetcher_for(farm, INSPECTION_STATIC_HOSTS={**farm.static_hosts(), "internal.cn": "10.1.2.3"}
                          ).fetch("http://www.bad.cn/")
    assert (fetched.status, fetched.error, fetched.redirects) == (302, "forbidden", [location])
    assert "非公网地址" in fetched.message and farm.requests.total() == 1


def test_loopback_is_refused_without_the_allowed_network(farm_of) -> None:
    farm = farm_of([DemoSite("www.ok.cn", number=WEBSITE)])
    fetched = fetcher_for(farm, INSPECTION_ALLOWED_NETWORKS="").fetch("http://www.ok.cn/")
    assert (fetched.status, fetched.error) == (None, "forbidden") and farm.requests.total() == 0


class Rebinding:
    """A resolver whose answer changes after the first question (DNS rebinding): allowed first, private after."""

    def __init__(self, port: int) -> None:
        self.port, self.calls = port, 0

    def resolve(self, name: str) -> list[safe_fetch.Resolved]:
        self.calls += 1
        first = self.calls == 1
        return [safe_fetch.Resolved("127.0.0.1" if first else "10.0.0.1", self.port if first else None)]


def test_the_connection_goes_to_the_address_checked(farm_of) -> None:
    """No rebinding between check and connect: one resolution per request, the connection pinned to its answer; a
    redirect to the same name is resolved and checked again (and refused when it now points inside)."""
    farm = farm_of([DemoSite("www.ok.cn", number=WEBSITE), DemoSite("www.again.cn", "redirect",
                                                                     location="http://www.again.cn/next")])
    policy = fetcher_for(farm).policy
    resolver = Rebinding(farm.port)
    fetched = inspector.Fetcher(policy, resolver).fetch("http://www.ok.cn/")
    assert (fetched.status, fetched.address, resolver.calls) == (200, "127.0.0.1", 1)
    resolver = Rebinding(farm.port)
    fetched = inspector.Fetcher(policy, resolver).fetch("http://www.again.cn/")
    assert (fetched.error, resolver.calls, farm.requests["www.again.cn"]) == ("forbidden", 2, 1)


def test_a_host_with_a_private_and_an_allowed_address_is_reached_on_the_allowed_one(farm_of) -> None:
    farm = farm_of([DemoSite("www.ok.cn", number=WEBSITE)])
    fetched = fetcher_for(farm, INSPECTION_STATIC_HOSTS={"www.ok.cn": ["10.0.0.1", f"127.0.0.1:{farm.port}"]}
                          ).fetch("http://www.ok.cn/")
    assert (fetched.status, fetched.address) == (200, "127.0.0.1")


def test_at_most_three_redirects_are_followed(farm_of) -> None:
    farm = farm_of([DemoSite("www.loop.cn", "redirect_loop")])
    fetched = fetcher_for(farm).fetch("http://www.loop.cn/")
    assert (fetched.error, len(fetched.redirects), farm.requests["www.loop.cn"]) == ("redirects", 3, 4)
    assert fetched.final_url == "http://www.loop.cn/loop/3"


def test_a_silent_site_and_a_trickled_body_end_at_the_total_timeout(farm_of) -> None:
    farm = farm_of([DemoSite("www.silent.cn", "silent"), DemoSite("www.slow.cn", "slow")])
    fetcher = fetcher_for(farm, INSPECTION_TOTAL_TIMEOUT=1)
    with ThreadPoolExecutor(2) as pool:
        silent, slow = pool.map(fetcher.fetch, ["http://www.silent.cn/", "http://www.slow.cn/"])
    # ended at the deadline, not before; the upper bounds leave room for a loaded machine (CI runs two suites at once)
    assert (silent.status, silent.error) == (None, "timeout") and 950 <= silent.elapsed_ms < 3000
    assert (slow.status, slow.error, slow.truncated) == (200, "timeout", True) and 950 <= slow.elapsed_ms < 3000
    assert 3 <= len(slow.body) <= 30  # a byte every 0.1 s for a second: what came is kept


def test_a_dead_site_is_refused_at_once(farm_of) -> None:
    farm = farm_of([DemoSite("www.dead.cn", "dead")])
    fetched = fetcher_for(farm).fetch("http://www.dead.cn/")
    # refused at once, not given up after the 1 s connect timeout
    assert (fetched.status, fetched.error) == (None, "connect") and fetched.elapsed_ms < 900


def test_connecting_waits_at_most_the_connect_timeout() -> None:
    """A listener whose queue is full drops the handshake: the connection gives up after INSPECTION_CONNECT_TIMEOUT,
    long before the total timeout."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = [socket.socket() for _ in range(3)]
    try:
        for filler in fillers:
            filler.setblocking(False)
            filler.connect_ex(listener.getsockname())
        fetcher = inspector.Fetcher(
            inspector.Policy(connect_timeout=0.3, total_timeout=5, allowed_networks=netguard.parse_networks(
                "127.0.0.1/32")), safe_fetch.StaticResolver({"www.full.cn": f"127.0.0.1:{listener.getsockname()[1]}"}))
        fetched = fetcher.fetch("http://www.full.cn/")
        assert (fetched.error, fetched.status) == ("connect", None) and 250 <= fetched.elapsed_ms < 1500
    finally:
        for sock in (*fillers, listener):
            sock.close()


def test_https_that_is_not_tls_is_a_tls_error(farm_of) -> None:
    farm = farm_of([DemoSite("www.ok.cn", number=WEBSITE)])
    fetched = fetcher_for(farm).fetch("https://www.ok.cn/")
    assert (fetched.status, fetched.error) == (None, "tls") and "TLS" in fetched.message


@pytest.mark.parametrize("behaviour", ["huge", "gzip_bomb"])
def test_a_gigabyte_body_or_a_gzip_bomb_costs_one_megabyte(farm_of, behaviour: str) -> None:
    """At most INSPECTION_MAX_BODY bytes kept (decompressed), read quickly, and little memory allocated."""
    farm = farm_of([DemoSite("www.big.cn", behaviour)])
    fetcher = fetcher_for(farm)
    tracemalloc.start()
    try:
        fetched = fetcher.fetch("http://www.big.cn/")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (fetched.status, fetched.error, fetched.truncated) == (200, "", True)
    assert len(fetched.body) == fetcher.policy.max_body == 1024 * 1024
    assert peak < 4 * 1024 * 1024, peak
    assert fetched.elapsed_ms < 3000


@pytest.mark.parametrize("wbits", [zlib.MAX_WBITS | 16, zlib.MAX_WBITS, -zlib.MAX_WBITS])
def test_gzip_and_both_forms_of_deflate_are_inflated_within_the_bound(wbits: int) -> None:
    packer = zlib.compressobj(6, zlib.DEFLATED, wbits)
    packed = packer.compress(b"a" * 5000) + packer.flush()
    encoding = "gzip" if wbits > zlib.MAX_WBITS else "deflate"
    whole = safe_fetch._Inflater(encoding, 10_000)
    assert not whole.feed(packed) and whole.body() == b"a" * 5000
    bounded = safe_fetch._Inflater(encoding, 1000)
    assert bounded.feed(packed) and bounded.body() == b"a" * 1000


def test_a_host_never_gets_more_than_per_host_connections(farm_of) -> None:
    """12 fetches of one host on 8 threads with INSPECTION_PER_HOST=2: at most 2 at once at the server; 4 hosts
    × 3 fetches with INSPECTION_THREADS=3: at most 3 at once in all."""
    farm = farm_of([DemoSite(f"www.s{n}.cn", number=WEBSITE, delay=0.15) for n in range(4)])
    fetcher = fetcher_for(farm, INSPECTION_PER_HOST=2, INSPECTION_THREADS=8)
    with ThreadPoolExecutor(8) as pool:
        assert {fetched.status for fetched in pool.map(fetcher.fetch, ["http://www.s0.cn/"] * 12)} == {200}
    assert farm.peak["www.s0.cn"] == 2
    fetcher = fetcher_for(farm, INSPECTION_PER_HOST=3, INSPECTION_THREADS=3)
    urls = [f"http://www.s{n}.cn/" for n in range(1, 4) for _ in range(3)]
    with ThreadPoolExecutor(9) as pool:
        assert {fetched.status for fetched in pool.map(fetcher.fetch, urls)} == {200}
    assert farm.peak_total <= 3 and max(farm.peak[f"www.s{n}.cn"] for n in range(1, 4)) >= 1


def test_a_bad_url_is_an_error_not_an_exception() -> None:
    fetcher = inspector.Fetcher(inspector.Policy(), safe_fetch.StaticResolver({}))
    for url in ("ftp://www.a.cn/", "http:///", "http://www.a.cn:99999/", "", "http://www.a.cn/a b"):
        assert fetcher.fetch(url).error == "url", url
    assert fetcher.fetch("http://unknown.cn/").error == "nxdomain"


# --- the checks -------------------------------------------------------------------------------------------------------

def test_a_compliant_site_passes_every_check(farm_of, ring: KeyRing) -> None:
    farm = farm_of([DemoSite("www.ok.cn", number=WEBSITE, token=certificate(ring))])
    checks = inspect(site("www.ok.cn", domains=("www.ok.cn", "ok.cn")), fetcher_for(
        farm, INSPECTION_STATIC_HOSTS={**farm.static_hosts(), "ok.cn": f"127.0.0.1:{farm.port}"}), ring.jwks())
    assert [check.code for check in checks] == list(inspector.CHECKS)
    assert [(check.passed, check.outcome) for check in checks] == [(True, "ok")] * 6
    found = by_code(checks)
    assert found["number"].evidence["number"] == WEBSITE and WEBSITE in found["number"].evidence["excerpt"]
    assert found["link"].evidence["href"] == "https://beian.miit.gov.cn/"
    assert found["cert"].evidence["certificate_id"] == "cert-1"
    for check in checks[1:5]:
        assert {"url", "final_url", "address", "at", "status", "elapsed_ms", "excerpt"} <= set(check.evidence)
        assert len(check.evidence["excerpt"]) <= 300


def test_number_missing_and_number_not_linked(farm_of, ring: KeyRing) -> None:
    farm = farm_of([DemoSite("www.missing.cn", "missing", token=certificate(ring)),
                    DemoSite("www.unlinked.cn", "unlinked", number=ENTITY, token=certificate(ring))])
    fetcher = fetcher_for(farm)
    missing = by_code(inspect(site("www.missing.cn"), fetcher, ring.jwks()))
    assert (missing["number"].passed, missing["number"].outcome) == (False, "missing")
    assert (missing["link"].passed, missing["link"].outcome) == (None, "missing")
    unlinked = by_code(inspect(site("www.unlinked.cn"), fetcher, ring.jwks()))
    assert (unlinked["number"].outcome, unlinked["number"].evidence["number"]) == ("ok", ENTITY)
    assert (unlinked["link"].passed, unlinked["link"].outcome) == (False, "unlinked")


def page_checks(html: str, hosts: tuple[str, ...] = ("beian.miit.gov.cn",)) -> tuple[Check, Check]:
    fetched = Fetched(url="http://www.a.cn/", status=200, body=html.encode(), content_type="text/html")
    page = inspector.Page.of(fetched)
    return inspector.number_check(site("www.a.cn"), fetched, page), inspector.link_check(site("www.a.cn"), fetched,
                                                                                         page, hosts)


@pytest.mark.parametrize(("html", "number", "link"), [
    ('<footer><a href="https://beian.miit.gov.cn/">京ICP备 1234 5678 号－１</a></footer>', "ok", "ok"),
    ('<p><span>京ICP备１２３４５６７８号</span> <a href="http://beian.miit.gov.cn">备案查询</a></p>', "ok", "ok"),
    ('<p>京ICP备12345678号</p><p><a href="https://beian.miit.gov.cn/">工信部</a></p>', "ok", "unlinked"),
    ('<a href="https://beian.miit.gov.cn.evil.cn/">京ICP备12345678号-1</a>', "ok", "unlinked"),
    ('<a href="/beian">京ICP备12345678号-1</a>', "ok", "unlinked"),
    ('<script>var n="京ICP备12345678号-1"</script><p>首页</p>', "missing", "missing"),
    ('<p>京ICP备87654321号</p>', "missing", "missing"),
])
def test_the_number_is_read_from_the_visible_text_and_its_link_from_the_anchor(html: str, number: str,
                                                                                link: str) -> None:
    """Whitespace and full-width forms ignored; the link's host exactly a registry host (or a subdomain of one);
    the number in the link's text or in the element around it; a number only in a script does not count."""
    number_check, link_check = page_checks(f"<html><body>{html}</body></html>")
    assert (number_check.outcome, link_check.outcome) == (number, link)


def test_the_registry_hosts_are_configurable() -> None:
    html = '<a href="https://beian.example.cn/x">京ICP备12345678号-1</a>'
    assert page_checks(html)[1].outcome == "unlinked"
    assert page_checks(html, ("beian.miit.gov.cn", "beian.example.cn"))[1].outcome == "ok"


def test_a_page_in_gb18030_is_read() -> None:
    fetched = Fetched(url="http://www.a.cn/", status=200, body="<p>京ICP备12345678号-1</p>".encode("gb18030"))
    assert inspector.number_check(site("www.a.cn"), fetched, inspector.Page.of(fetched)).outcome == "ok"


def test_certificate_absent_malformed_invalid_foreign_and_stale(farm_of, ring: KeyRing, tmp_path: Path) -> None:
    other_ring = KeyRing.at(tmp_path / "other")
    genuine = certificate(ring)
    header, _, signature = genuine.split(".")
    tampered = certificate(ring, entity_number="京ICP备99999999号").split(".")[1]
    cases = {"absent": "", "malformed": "这不是证书", "malformed.": "abc.def", "invalid": certificate(other_ring),
             "invalid.": f"{header}.{tampered}.{signature}",
             "foreign": certificate(ring, entity_number="京ICP备99999999号", website_number="京ICP备99999999号-1"),
             "foreign.": certificate(ring, website_number=f"{ENTITY}-2"),
             "stale": certificate(ring, certificate_id="cert-0"), "ok": genuine}
    farm = farm_of([DemoSite(f"www.c{n}.cn", number=WEBSITE, token=token) for n, token in enumerate(cases.values())])
    fetcher = fetcher_for(farm)
    for n, expected in enumerate(cases):
        check = by_code(inspect(site(f"www.c{n}.cn"), fetcher, ring.jwks()))["cert"]
        assert (check.outcome, check.passed) == (expected.rstrip("."), expected == "ok"), (expected, check.message)
        assert check.evidence["url"] == f"http://www.c{n}.cn/cert/bazs.cert"
    stale = by_code(inspect(site("www.c7.cn"), fetcher, ring.jwks()))["cert"]
    assert stale.evidence["certificate_id"] == "cert-0"
    assert (certificate_status_check(stale, "superseded").outcome, certificate_status_check(stale, "revoked").outcome,
            certificate_status_check(stale, None).outcome) == ("superseded", "revoked", "unknown")
    assert certificate_status_check(stale, "current").passed is True
    ok = by_code(inspect(site("www.c8.cn"), fetcher, ring.jwks()))["cert"]
    assert certificate_status_check(ok, "revoked") is ok


def test_the_certificate_is_fetched_on_the_home_pages_host_and_scheme() -> None:
    assert inspector.certificate_url(site("a.cn", home="https://www.a.cn:8443/index.html")) == (
        "https://www.a.cn:8443/cert/bazs.cert")
    assert inspector.certificate_url(site("a.cn")) == "http://a.cn/cert/bazs.cert"


def test_addresses_outside_the_filed_ranges_and_unused_accesses(farm_of, ring: KeyRing) -> None:
    """Under-reported (an address in no filed range), over-reported (an access holding no address), unchecked."""
    farm = farm_of([DemoSite("www.ok.cn", number=WEBSITE, token=certificate(ring))])
    fetcher = fetcher_for(farm)
    elsewhere = (2, ((inspector.ipindex.address_key("203.0.113.1"), inspector.ipindex.address_key("203.0.113.9")),))
    outside = by_code(inspect(site("www.ok.cn", accesses=(elsewhere,)), fetcher, ring.jwks()))["access"]
    assert (outside.passed, outside.outcome, outside.evidence["outside"]) == (False, "outside", ["127.0.0.1"])
    unused = by_code(inspect(site("www.ok.cn", accesses=(loopback_access(), elsewhere)), fetcher, ring.jwks()))
    assert (unused["access"].outcome, unused["access"].evidence["unused"]) == ("unused", [2])
    unchecked = by_code(inspect(site("www.ok.cn", accesses=()), fetcher, ring.jwks()))["access"]
    assert (unchecked.passed, unchecked.outcome) == (None, "unchecked")


def test_dead_erring_and_unresolved_sites(farm_of, ring: KeyRing) -> None:
    farm = farm_of([DemoSite("www.dead.cn", "dead"), DemoSite("www.error.cn", "error")])
    fetcher = fetcher_for(farm)
    dead = by_code(inspect(site("www.dead.cn"), fetcher, ring.jwks()))
    assert (dead["alive"].outcome, dead["number"].passed, dead["number"].outcome) == ("dead", None, "unreachable")
    assert (dead["cert"].passed, dead["cert"].outcome) == (False, "absent")
    erring = by_code(inspect(site("www.error.cn"), fetcher, ring.jwks()))
    assert (erring["alive"].outcome, erring["alive"].evidence["status"]) == ("error", 500)
    unresolved = by_code(inspect(site("www.error.cn", domains=("www.error.cn", "gone.cn")), fetcher, ring.jwks()))
    assert (unresolved["dns"].passed, unresolved["dns"].outcome) == (False, "nxdomain")
    assert unresolved["dns"].evidence["domains"] == {"www.error.cn": ["127.0.0.1"], "gone.cn": "nxdomain"}
    nowhere = by_code(inspect(site("gone.cn"), fetcher, ring.jwks()))
    assert (nowhere["alive"].outcome, nowhere["access"].outcome) == ("dead", "unchecked")


def test_inspect_many_yields_every_site_and_hostile_ones_do_not_hold_up_the_rest(farm_of, ring: KeyRing) -> None:
    """40 compliant sites and the hostile ones (silent, slow, endless redirects, 1 GB, gzip bomb) on 8 threads: each
    compliant site within a fraction of a second, each hostile one within the deadline."""
    hostile = ["silent", "slow", "redirect_loop", "huge", "gzip_bomb"]
    token = certificate(ring)
    farm = farm_of([DemoSite(f"www.h{n}.cn", kind) for n, kind in enumerate(hostile)]
                   + [DemoSite(f"www.n{n}.cn", number=WEBSITE, token=token) for n in range(40)])
    fetcher = fetcher_for(farm, INSPECTION_THREADS=8, INSPECTION_TOTAL_TIMEOUT=3)
    sites = [Site(n, WEBSITE, ENTITY, (f"www.h{n}.cn",), "", (loopback_access(),), "cert-1")
             for n in range(len(hostile))] + [Site(100 + n, WEBSITE, ENTITY, (f"www.n{n}.cn",), "",
                                                   (loopback_access(),), "cert-1") for n in range(40)]
    results = {done.website_id: (checks, seconds) for done, checks, seconds in inspect_many(sites, fetcher,
                                                                                              ring.jwks())}
    assert len(results) == 45
    assert all(all(check.passed for check in results[100 + n][0]) for n in range(40))
    assert max(results[100 + n][1] for n in range(40)) < 1.5  # not one waited for a hostile site's deadline
    assert all(seconds < 7 for _, seconds in results.values())  # two fetches of at most 3 s each
    assert by_code(results[2][0])["alive"].outcome == "error"  # endless redirects


def test_closing_inspect_many_early_does_not_wait_for_the_sites_in_flight(farm_of, ring: KeyRing) -> None:
    """A run cancelled or taken over closes the generator: it returns at once — not after the silent sites in flight
    have used their deadline — and the sites not started are never fetched."""
    farm = farm_of([DemoSite("www.fast.cn", number=WEBSITE, token=certificate(ring))]
                   + [DemoSite(f"www.s{n}.cn", "silent") for n in range(4)])
    fetcher = fetcher_for(farm, INSPECTION_THREADS=4, INSPECTION_TOTAL_TIMEOUT=3)
    sites = [Site(0, WEBSITE, ENTITY, ("www.fast.cn",), "", (loopback_access(),), "cert-1")] + [
        Site(1 + n, WEBSITE, ENTITY, (f"www.s{n}.cn",), "", (loopback_access(),), "cert-1") for n in range(4)]
    results = inspect_many(sites, fetcher, ring.jwks())
    assert next(results)[0].website_id == 0
    started = time.monotonic()
    results.close()
    assert time.monotonic() - started < 1.5  # the silent sites' deadline is 3 s


def test_a_bug_in_a_check_is_reported_for_that_site_only(monkeypatch, farm_of, ring: KeyRing) -> None:
    farm = farm_of([DemoSite("www.ok.cn", number=WEBSITE, token=certificate(ring))])

    def broken(*args: object) -> Check:
        raise ValueError("bug")

    monkeypatch.setattr(inspector, "access_check", broken)
    [(_, checks, _)] = list(inspect_many([site("www.ok.cn")], fetcher_for(farm), ring.jwks()))
    assert {(check.passed, check.outcome) for check in checks} == {(None, "error")}


def test_the_farm_serves_hosts_by_name_and_404_for_others() -> None:
    with Farm([DemoSite("www.a.cn", number=WEBSITE)]) as farm:
        assert farm.static_hosts() == {"www.a.cn": f"127.0.0.1:{farm.port}"}
        fetcher = fetcher_for(farm, INSPECTION_STATIC_HOSTS={"www.b.cn": f"127.0.0.1:{farm.port}"})
        assert fetcher.fetch("http://www.b.cn/").status == 404
