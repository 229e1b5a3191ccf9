"""The website inspector (issue 18 §2): the six checks of one website, run with the safe fetcher (`safe_fetch`:
where it may connect, and what a website may cost — its bounds are listed there). No database:
`workflow.inspections` loads the websites (`Site`), runs `inspect_many`, and stores the checks (`Check`) as results
and findings. The fetcher's names (`Policy`, `Fetcher`, `Fetched`, `resolver_from_config`) are re-exported here.

The checks (`inspect(site, fetcher, jwks)`, in CHECKS order; `passed` None = not checked), each with its evidence
(url, final url, address, when, status, elapsed ms, an excerpt of at most 300 characters):
- dns: every domain resolves — ok / nxdomain / error;
- alive: the home page answers — ok / dead (no answer) / error (an error status, too many redirects, a refused
  address, a broken answer);
- number: the page's visible text shows the website's or the entity's filing number (whitespace and full-width
  forms ignored) — ok / missing (unreachable: the page could not be read);
- link: an `<a href>` to a registry host whose text, or the text of the element around it, holds the number — ok
  / unlinked (missing: no number to link);
- cert: /cert/bazs.cert on the home page's host verifies with the registry's keys, names this entity and this
  website, and is the entity's current certificate — ok / absent / malformed / invalid / foreign / stale;
- access: every resolved address lies in a live access's filed ranges (else outside: under-reported, 少报) and
  every live access holds one of them (else unused: over-reported, 多报) — unchecked when no range is filed.
The certificate check cannot know from here whether another certificate of ours was superseded or revoked: it
answers "stale" with evidence["certificate_id"]; the workflow looks the status up (one query per batch) and calls
`certificate_status_check(check, status)` for the final check.

`inspect_many(sites, fetcher, jwks)` runs them on `policy.threads` threads and yields each site with its checks and
the seconds it took, as they complete.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import time
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from selectolax.lexbor import LexborHTMLParser

import ipindex
from certificates.jws import CertificateError, verify
from safe_fetch import (
    EXCERPT_CHARS,
    SPACE,
    USER_AGENT,
    Fetched,
    Fetcher,
    Policy,
    ResolveError,
    Resolver,
    now_iso,
    resolver_from_config,
)

__all__ = ["CHECKS", "USER_AGENT", "Check", "Fetched", "Fetcher", "Policy", "Site", "certificate_status_check",
           "inspect", "inspect_many", "resolver_from_config"]

log = logging.getLogger(__name__)

CERT_PATH = "/cert/bazs.cert"

#: <a href> elements looked at for the number's link: a page of a million links costs no more than this
MAX_LINKS = 5000
#: elements around those links whose text is read (each once, however many links it holds), and their characters in
#: all: a page of links each in an element around the next cannot make the check copy its megabyte once per link
MAX_AROUNDS = 50
AROUND_CHARS = 2_000_000
#: open elements a page may nest (Blink flattens its DOM at 512): deeper start tags are dropped before parsing —
#: lexbor scans the open elements at each block start tag, so a megabyte of nested <div> took it 257 s
MAX_DEPTH = 512
_TAG = re.compile(r"<(/?)([A-Za-z][^\s/>]*)")
#: elements that never hold others, or that the next of their kind closes (no nesting by repetition; a link is
#: kept however deep): not counted
UNCOUNTED = frozenset({"a", "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param",
                       "source", "track", "wbr", "keygen", "p", "li", "dt", "dd", "option", "optgroup", "tr", "td",
                       "th", "thead", "tbody", "tfoot", "rb", "rp", "rt", "rtc", "caption", "colgroup", "html", "head",
                       "body"})

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
    # "invalid", "foreign", "stale" (→ "superseded" / "revoked" / "unknown"), "outside", "unused", "unreachable",
    # "unchecked" (access: no range filed, or no address resolved)
    message: str  # Chinese, shown to the clerk
    evidence: dict[str, Any] = field(default_factory=dict)  # url, address, at, status, excerpt, addresses, ...


# --- the checks ---------------------------------------------------------------------------------------------------

def _flat(text: str) -> str:
    """Text as the number is looked for in it: NFKC (full-width forms folded), all whitespace removed."""
    return "".join(unicodedata.normalize("NFKC", text).split())


def _check(code: str, passed: bool | None, outcome: str, message: str, **evidence: Any) -> Check:
    return Check(code, passed, outcome, message, evidence)


def home_url(site: Site) -> str:
    """The filed home page, else http://<first domain>/."""
    return site.home_url or (f"http://{site.domains[0]}/" if site.domains else "")


def dns_check(site: Site, resolver: Resolver) -> tuple[Check, list[str]]:
    """Every domain resolves; the check and the addresses found (for the access check)."""
    found: dict[str, Any] = {}
    failures: dict[str, str] = {}
    for domain in site.domains:
        try:
            found[domain] = sorted({item.address for item in resolver.resolve(domain)})
        except ResolveError as error:
            found[domain], failures[domain] = error.code, error.message
    addresses = sorted({address for value in found.values() if isinstance(value, list) for address in value})
    if not site.domains:
        return _check("dns", None, "unchecked", "该网站没有登记域名。", at=now_iso()), addresses
    if not failures:
        return _check("dns", True, "ok", f"{len(site.domains)} 个域名均已解析。", at=now_iso(), domains=found,
                      addresses=addresses), addresses
    outcome = "nxdomain" if any(found[domain] == "nxdomain" for domain in failures) else "error"
    return _check("dns", False, outcome, " ".join(failures.values())[:500], at=now_iso(), domains=found,
                  addresses=addresses), addresses


DEAD_ERRORS = frozenset({"nxdomain", "dns", "connect", "timeout"})


def alive_check(home: Fetched, page: Page | None) -> Check:
    """The home page answers: ok (an answer below 400, even if cut at the size or time bound), dead (no answer:
    no address, no connection, nothing within the deadline), error (an error status, too many redirects, a refused
    address, a broken answer)."""
    evidence = home.evidence(home.excerpt(page.text) if page is not None else None)
    if home.answered and home.status < 400 and home.error in ("", "timeout"):  # type: ignore[operator]
        cut = "（应答超时，已截断）" if home.error else ("（应答超过大小上限，已截断）" if home.truncated else "")
        return Check("alive", True, "ok", f"首页可以访问：HTTP {home.status}，{home.elapsed_ms} 毫秒{cut}。", evidence)
    if not home.answered and home.error in DEAD_ERRORS:
        return Check("alive", False, "dead", f"首页无法访问：{home.message}", evidence)
    reason = home.message or f"首页应答 HTTP {home.status}。"
    return Check("alive", False, "error", f"首页访问出错：{reason}", evidence)


@dataclass(frozen=True)
class Page:
    """The home page's visible text (scripts and styles removed) and its links, parsed once for two checks."""

    text: str
    flat: str
    links: tuple[tuple[str, str, str], ...]  # (href, the link's text, the text of the element around it)

    @classmethod
    def of(cls, fetched: Fetched, registry_hosts: tuple[str, ...] | None = None) -> Page:
        """The page read; `registry_hosts` given, only the links to them are kept (the link check's)."""
        tree = LexborHTMLParser(bounded_nesting(fetched.text()))
        for node in tree.css("script, style, noscript, template"):
            node.decompose()
        root = tree.body or tree.root
        text = root.text(separator=" ") if root is not None else ""
        return cls(text, _flat(text), _links(tree, registry_hosts))


def _links(tree: LexborHTMLParser, registry_hosts: tuple[str, ...] | None) -> tuple[tuple[str, str, str], ...]:
    """(href, text, the text of the element around it) of the first MAX_LINKS links (to a registry host, when
    given); an element's text read once, for at most MAX_AROUNDS elements and AROUND_CHARS characters in all."""
    links, arounds, budget = [], dict[int, str](), AROUND_CHARS
    for anchor in tree.css("a[href]")[:MAX_LINKS]:
        href = anchor.attributes.get("href") or ""
        if registry_hosts is not None and not _registry_link(href, registry_hosts):
            continue
        parent = anchor.parent
        key = parent.mem_id if parent is not None else 0
        if key not in arounds:
            readable = parent is not None and len(arounds) < MAX_AROUNDS and budget > 0
            arounds[key] = parent.text(separator=" ") if readable else ""  # type: ignore[union-attr]
            budget -= len(arounds[key])
        links.append((href, anchor.text(separator=" "), arounds[key]))
    return tuple(links)


def bounded_nesting(html: str, limit: int = MAX_DEPTH) -> str:
    """The HTML with the start tags (and their end tags) that would open elements deeper than `limit` dropped, as
    Blink does at 512: the parser's cost stays linear. Depth is counted from the tags alone (start minus end, the
    elements of UNCOUNTED aside): an estimate that only errs deeper, and only for pages nesting hundreds."""
    if html.count("<") <= limit or not _too_deep(_TAG.findall(html), limit):
        return html
    parts, depth, dropped, kept_from, position = [], 0, Counter[str](), 0, 0
    while match := _TAG.search(html, position):
        closing, name, position = match.group(1), match.group(2).lower(), match.end()
        if name in UNCOUNTED:
            continue
        if not closing and depth < limit:
            depth += 1
            continue
        if closing and not dropped[name]:
            depth = max(0, depth - 1)
            continue
        dropped[name] += -1 if closing else 1
        parts.append(html[kept_from:match.start()])
        end = html.find(">", position)
        kept_from = position = len(html) if end < 0 else end + 1
    parts.append(html[kept_from:])
    return "".join(parts)


def _numbers(site: Site) -> list[str]:
    """The numbers a page may show, the website's first (it contains the entity's)."""
    return [number for number in (site.website_number, site.entity_number) if number]


def shown_number(site: Site, page: Page) -> str | None:
    """The filing number (as filed) the page shows, if any."""
    return next((number for number in _numbers(site) if _flat(number) in page.flat), None)


def number_check(site: Site, home: Fetched, page: Page | None) -> Check:
    if page is None:
        return Check("number", None, "unreachable", "首页无法访问，未检查备案号。", home.evidence())
    number = shown_number(site, page)
    if number is None:
        return Check("number", False, "missing", f"首页未展示备案号 {site.website_number}（或主体备案号 "
                     f"{site.entity_number}）。", home.evidence(home.excerpt(page.text)))
    return Check("number", True, "ok", f"首页展示了备案号 {number}。",
                 {**home.evidence(home.excerpt(page.text, number)), "number": number})


def _too_deep(tags: list[tuple[str, str]], limit: int) -> bool:
    """Whether the estimate of `bounded_nesting` passes `limit` (most pages: no; then nothing is rewritten)."""
    depth = 0
    for closing, name in tags:
        if name.lower() in UNCOUNTED:
            continue
        depth = max(0, depth - 1) if closing else depth + 1
        if depth > limit:
            return True
    return False


def _registry_link(href: str, hosts: tuple[str, ...]) -> bool:
    """A link a browser follows to a registry host: http(s) or scheme-relative, read as browsers read it (a
    backslash is a slash: `https://evil.cn\\@beian.miit.gov.cn/` goes to evil.cn)."""
    try:
        parts = urlsplit(href.strip().replace("\\", "/"))
        host = (parts.hostname or "").rstrip(".").lower()
    except ValueError:
        return False
    if parts.scheme not in ("http", "https", ""):
        return False
    return any(host == registry or host.endswith("." + registry) for registry in hosts)


def link_check(site: Site, home: Fetched, page: Page | None, registry_hosts: tuple[str, ...]) -> Check:
    """An <a href> to a registry host whose own text, or the text of the element holding it, has the number."""
    if page is None:
        return Check("link", None, "unreachable", "首页无法访问，未检查备案号链接。", home.evidence())
    shown = shown_number(site, page)
    if shown is None:
        return Check("link", None, "missing", "首页未展示备案号，未检查备案号链接。", home.evidence(""))
    numbers = [_flat(number) for number in _numbers(site)]
    registry_links = [link for link in page.links if _registry_link(link[0], registry_hosts)]
    for href, text, around in registry_links:
        if any(number in _flat(text) or number in _flat(around) for number in numbers):
            return Check("link", True, "ok", f"备案号链接到 {href[:200]}。",
                         {**home.evidence(SPACE.sub(" ", around).strip()), "href": href[:500]})
    hosts = "、".join(registry_hosts)
    if registry_links:
        return Check("link", False, "unlinked", f"首页有指向 {hosts} 的链接，但链接及其所在元素中没有备案号。",
                     {**home.evidence(home.excerpt(page.text)), "href": registry_links[0][0][:500]})
    return Check("link", False, "unlinked", f"首页展示了备案号，但没有链接到 {hosts}。",
                 home.evidence(home.excerpt(page.text, shown)))


def certificate_url(site: Site) -> str:
    """/cert/bazs.cert on the home page's scheme and host."""
    parts = urlsplit(home_url(site))
    return f"{parts.scheme or 'http'}://{parts.netloc}{CERT_PATH}"


def cert_check(site: Site, fetched: Fetched, jwks: Mapping[str, Any]) -> Check:
    """The certificate file: present, ours (signature), this entity's and this website's, the current one."""
    evidence = fetched.evidence(fetched.body[:EXCERPT_CHARS].decode("utf-8", "replace"))
    if fetched.status != 200 or fetched.error:
        why = fetched.message or f"HTTP {fetched.status}"
        return Check("cert", False, "absent", f"未能取得电子验证标识 {CERT_PATH}：{why}", evidence)
    try:
        payload = verify(fetched.body.decode("ascii"), jwks)
    except UnicodeDecodeError:
        return Check("cert", False, "malformed", "电子验证标识格式错误：含有非 ASCII 字符。", evidence)
    except CertificateError as error:
        outcome = "malformed" if error.code == "malformed" else "invalid"
        return Check("cert", False, outcome, f"电子验证标识无效：{error.message}", evidence)
    certificate_id = str(payload.get("certificate_id", ""))
    evidence |= {"certificate_id": certificate_id, "entity_number": str(payload.get("entity_number", ""))}
    websites = payload.get("websites") if isinstance(payload.get("websites"), list) else []
    if payload.get("entity_number") != site.entity_number or not any(
            isinstance(item, dict) and item.get("number") == site.website_number for item in websites):
        return Check("cert", False, "foreign", f"电子验证标识属于其他主体或网站（{evidence['entity_number']}）。",
                     evidence)
    if certificate_id != site.current_certificate_id:
        return Check("cert", False, "stale", "电子验证标识不是该主体当前有效的证书。", evidence)
    return Check("cert", True, "ok", "电子验证标识有效，属于该主体和网站，且为当前证书。", evidence)


STATUS_MESSAGES = {"superseded": "电子验证标识已被新证书取代，网站仍在使用旧证书。",
                   "revoked": "电子验证标识已被吊销。",
                   "unknown": "电子验证标识的证书编号在备案系统中不存在。"}


def certificate_status_check(check: Check, status: str | None) -> Check:
    """The final certificate check of a "stale" one, given the status of its certificate_id in the registry:
    "current" (issued after the site was loaded) → ok; "superseded" / "revoked"; None → unknown."""
    if check.outcome != "stale":
        return check
    if status == "current":
        return replace(check, passed=True, outcome="ok", message="电子验证标识有效，且为当前证书。")
    outcome = status if status in STATUS_MESSAGES else "unknown"
    return replace(check, passed=False, outcome=outcome, message=STATUS_MESSAGES[outcome])


def access_check(site: Site, addresses: list[str]) -> Check:
    """Resolved addresses against the live accesses' filed ranges: an address in none of them is under-reported
    (outside, 少报), an access holding none of them over-reported (unused, 多报)."""
    if not site.accesses:
        return _check("access", None, "unchecked", "该网站没有在用接入的地址段，未检查接入地址。", addresses=addresses)
    if not addresses:
        return _check("access", None, "unchecked", "域名未解析出地址，未检查接入地址。")
    keys = {address: ipindex.key_of(ipaddress.ip_address(address)) for address in addresses}
    ranges = [(access_id, start, end) for access_id, spans in site.accesses for start, end in spans]
    outside = [address for address, key in keys.items() if not any(s <= key <= e for _, s, e in ranges)]
    unused = [access_id for access_id, spans in site.accesses
              if not any(s <= key <= e for key in keys.values() for s, e in spans)]
    evidence = {"at": now_iso(), "addresses": addresses, "outside": outside, "unused": unused}
    if outside:
        return Check("access", False, "outside", f"解析地址 {'、'.join(outside[:5])} 不在任何已备案接入的地址段内"
                     "（少报）。", evidence)
    if unused:
        return Check("access", False, "unused", f"{len(unused)} 个在用接入的地址段内没有任何解析地址（多报）。",
                     evidence)
    return Check("access", True, "ok", "解析地址均在已备案接入的地址段内。", evidence)


def inspect(site: Site, fetcher: Fetcher, jwks: Mapping[str, Any]) -> list[Check]:
    """The six checks of one website, in CHECKS order."""
    dns, addresses = dns_check(site, fetcher.resolver)
    home = fetcher.fetch(home_url(site))
    answered = home.answered and home.status < 400  # type: ignore[operator]
    page = Page.of(home, fetcher.policy.registry_hosts) if answered else None
    if home.address and home.address not in addresses:
        addresses = sorted({*addresses, home.address})
    return [dns, alive_check(home, page), number_check(site, home, page),
            link_check(site, home, page, fetcher.policy.registry_hosts),
            cert_check(site, fetcher.fetch(certificate_url(site)), jwks), access_check(site, addresses)]


def _inspect_timed(site: Site, fetcher: Fetcher, jwks: Mapping[str, Any]) -> tuple[Site, list[Check], float]:
    started = time.monotonic()
    try:
        checks = inspect(site, fetcher, jwks)
    except Exception:  # a bug must not end a run of thousands: this site is reported, the others go on
        log.exception("inspecting website %s failed", site.website_id)
        checks = [Check(code, None, "error", "检查程序出错，未完成检查。") for code in CHECKS]
    return site, checks, time.monotonic() - started


def inspect_many(sites: Iterable[Site], fetcher: Fetcher, jwks: Mapping[str, Any]
                 ) -> Iterator[tuple[Site, list[Check], float]]:
    """Each site with its checks and the seconds they took, as they complete, on `policy.threads` threads; at most
    twice that many sites are taken from `sites` ahead (a generator of a million is never read whole)."""
    pending: set[Future[tuple[Site, list[Check], float]]] = set()
    queue = iter(sites)
    pool = ThreadPoolExecutor(fetcher.policy.threads, thread_name_prefix="inspector")

    def top_up() -> None:
        for site in queue:
            pending.add(pool.submit(_inspect_timed, site, fetcher, jwks))
            if len(pending) >= 2 * fetcher.policy.threads:
                return

    try:
        top_up()
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            pending.difference_update(done)
            for future in done:
                yield future.result()
            top_up()
    finally:
        # closed early (a run cancelled or taken over): the sites not started are dropped, and the caller does not
        # wait for those in flight — each ends within the fetcher's deadlines, its result unread
        pool.shutdown(wait=False, cancel_futures=True)
