"""Issue 18 as an attacker tries it: a hostile website being inspected (HTML that makes the parser or the link check
slow or fat, links that only look like the registry's, IPv6 forms that reach private addresses through a
translator), a hostile ISP reporting values the database cannot store, and a notice closed while an ISP answers it.
Each test failed before its fix."""

from __future__ import annotations

import io
import time
import tracemalloc
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from openpyxl import Workbook
from sqlalchemy import select, update
from werkzeug.datastructures import FileStorage

import inspector
import netguard
import workflow.inspections as inspections
from admin_views.rectification import _uploaded_values
from demo_sites import DemoSite
from extensions import db
from inspector import Fetched, Site
from models import HandlingResult, NoticeState, RectificationNotice, UnfiledSighting, Website
from tests.helpers import post, user_named
from tests.inspection_factories import filed_website
from tests.inspection_helpers import farms, fetcher_for
from workflow.errors import WorkflowError

WEBSITE, ENTITY = "津ICP备12345678号-1", "津ICP备12345678号"
FOOTER = f'<footer><a href="https://beian.miit.gov.cn/">{WEBSITE}</a></footer>'
MIB = 1024 * 1024


def _page(html: str | bytes) -> tuple[inspector.Page, Fetched]:
    body = html.encode() if isinstance(html, str) else html
    fetched = Fetched(url="http://www.a.cn/", status=200, body=body[:MIB], content_type="text/html; charset=utf-8")
    return inspector.Page.of(fetched), fetched


def _checks(html: str) -> tuple[str, str]:
    page, fetched = _page(html)
    site = Site(1, WEBSITE, ENTITY, ("www.a.cn",), "")
    return (inspector.number_check(site, fetched, page).outcome,
            inspector.link_check(site, fetched, page, ("beian.miit.gov.cn",)).outcome)


def _measured(html: str | bytes) -> tuple[float, float]:
    """Seconds (untraced) and peak MB (traced) of reading a page: parse, visible text, links."""
    started = time.perf_counter()
    _page(html)
    seconds = time.perf_counter() - started
    tracemalloc.start()
    _page(html)
    peak = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    return seconds, peak


# --- the page: a megabyte of hostile HTML costs bounded time and memory --------------------------------------------

def test_many_links_around_a_megabyte_of_text_do_not_copy_it_for_each_link() -> None:
    """5,000 links beside 900 KB of text, and 400 links each in an element around the next: each link used to keep
    the text of its parent — 4.7 GB for one 1 MiB page."""
    link = '<a href="http://x.cn/">x</a>'
    flat = "<html><body>" + link * 5000 + "字" * 300_000 + "</body></html>"
    nested = "<html><body>" + f"<div>{link}" * 400 + "字" * 300_000 + "</div>" * 400 + "</body></html>"
    for html in (flat, nested):
        seconds, peak = _measured(html)
        assert seconds < 3 and peak < 80, (seconds, peak)


@pytest.mark.parametrize("opening", ["<div>", "<ul>", "<blockquote>", "<b id={}>x"])
def test_deeply_nested_elements_do_not_make_the_parser_quadratic(opening: str) -> None:
    """A megabyte of nested <div> took lexbor 257 s (each start tag scans the open elements); distinct <b> 75 s.
    Nesting beyond the browsers' depth is flattened first, and the footer is still read."""
    tags = "".join(opening.format(index) for index in range(200_000))[:MIB - 2000]
    started = time.perf_counter()
    _page("<html><body>" + tags + FOOTER + "</body></html>")
    assert time.perf_counter() - started < 3
    assert _checks("<html><body>" + tags + FOOTER + "</body></html>") == ("ok", "ok")


def test_a_page_nested_as_deep_as_browsers_go_is_read_as_before() -> None:
    """500 nested elements (fewer than the bound) and unclosed paragraphs and list items: nothing dropped."""
    html = "<div>" * 500 + "<ul>" + "<li><p>段落" * 3000 + "</ul>" + FOOTER + "</div>" * 500
    assert _checks(f"<html><body>{html}</body></html>") == ("ok", "ok")


@pytest.mark.parametrize("href", [
    "javascript://beian.miit.gov.cn/%0aalert(1)",  # a script, not a link to the registry
    "ftp://beian.miit.gov.cn/",
    "https://evil.cn\\@beian.miit.gov.cn/",  # browsers go to evil.cn: the backslash is a slash to them
    "https://evil.cn\\.beian.miit.gov.cn/",
])
def test_a_link_that_only_looks_like_the_registrys_is_not_the_registry_link(href: str) -> None:
    assert _checks(f'<p><a href="{href}">{WEBSITE}</a></p>') == ("ok", "unlinked")


@pytest.mark.parametrize("href", ["https://beian.miit.gov.cn/", "//beian.miit.gov.cn/", " HTTP://BEIAN.MIIT.GOV.CN. "])
def test_the_registry_link_in_its_usual_forms_still_counts(href: str) -> None:
    assert _checks(f'<p><a href="{href}">{WEBSITE}</a></p>') == ("ok", "ok")


@pytest.mark.parametrize("declared", ["text/html; charset=idna", "text/html; charset=undefined",
                                      "text/html; charset=punycode", "text/html; charset=UTF7", "text/html"])
def test_a_charset_that_is_no_text_encoding_does_not_break_the_checks(declared: str) -> None:
    """`charset=idna` (or undefined, punycode, in the header or a <meta>) raised out of the decoding: the site's six
    checks all came back "检查程序出错", never failing. The page is read as UTF-8 (else GB18030) instead."""
    meta = "" if declared != "text/html" else '<meta charset="undefined">'
    body = f"<html><head>{meta}</head><body>{FOOTER}</body></html>".encode()
    fetched = Fetched(url="http://www.a.cn/", status=200, body=body, content_type=declared)
    page = inspector.Page.of(fetched)
    site = Site(1, WEBSITE, ENTITY, ("www.a.cn",), "")
    assert inspector.number_check(site, fetched, page).outcome == "ok"
    assert fetched.excerpt()


# --- addresses: IPv6 forms a translator turns into private IPv4 ------------------------------------------------------

@pytest.mark.parametrize("address", [
    "64:ff9b:1::7f00:1", "64:ff9b:1::a9fe:a9fe",  # RFC 8215 local-use NAT64 → 127.0.0.1, the metadata address
    "::ffff:0:7f00:1", "::ffff:0:a9fe:a9fe",  # IPv4-translated (SIIT) → 127.0.0.1, 169.254.169.254
    "fec0::1",  # site-local (deprecated, still routed inside some networks)
    "4000::1", "3fff::1",  # outside 2000::/3 global unicast; 3fff::/20 documentation (RFC 9637)
])
def test_ipv6_forms_reaching_private_addresses_or_outside_global_unicast_are_refused(address: str) -> None:
    assert not netguard.allowed(address) and not netguard.public(address)


@pytest.mark.parametrize("address", ["2001:4860:4860::8888", "2400:3200::1", "64:ff9b::808:808", "::ffff:8.8.8.8"])
def test_global_ipv6_addresses_are_still_reachable(address: str) -> None:
    assert netguard.allowed(address)


# --- ports: the registry does not talk HTTP to mail, SSH or DNS servers ---------------------------------------------

@pytest.mark.parametrize("location", ["http://127.0.0.1:22/", "http://127.0.0.1:25/", "https://127.0.0.1:6667/"])
def test_a_redirect_to_a_port_of_another_protocol_is_refused(location: str) -> None:
    """127.0.0.1 is the tests' allowed network, so only the port stops it: nothing is sent to the SSH, SMTP or IRC
    port (a filed home page naming one is refused the same way)."""
    with farms() as start:
        farm = start([DemoSite("www.ports.cn", "redirect", location=location)])
        fetched = fetcher_for(farm).fetch("http://www.ports.cn/")
        assert (fetched.status, fetched.error, fetched.redirects) == (302, "forbidden", [location])
        assert "端口" in fetched.message and farm.requests.total() == 1
        assert fetcher_for(farm).fetch("http://www.ports.cn:25/").error == "forbidden"


# --- unfiled websites: values the database cannot store -------------------------------------------------------------

@pytest.mark.parametrize("value", ["fe80::1%" + "x" * 300, "fe80::1%\x00", "2001:db8::1%eth0"])
def test_an_address_with_a_zone_index_is_invalid_not_stored(app, people, value: str) -> None:
    """A zone index (`%eth0`) names an interface of the reporter's machine, not a website; one of 300 characters
    overflowed the column (a 500 on PostgreSQL), one with a NUL could not be stored at all."""
    with app.app_context():
        report = inspections.report_unfiled(user_named(people["isp"]), [value, "unfiled-one.cn"], "console")
        db.session.commit()
        assert report.unfiled == ["unfiled-one.cn"] and [item[0] for item in report.invalid] == [value[:253]]
        assert db.session.scalars(select(UnfiledSighting.value)).all() == ["unfiled-one.cn"]


def _shared_string_sheet(path: Path, rows: int, text: str) -> Path:
    """An .xlsx whose first column is `rows` references to one shared string (the second column varies, so the
    compression ratio stays ordinary): small to upload, `rows` × len(text) characters once read."""
    book = Workbook()
    book.active.append(["x", 1])
    plain = io.BytesIO()
    book.save(plain)
    sheet = "".join(f'<row r="{n}"><c r="A{n}" t="s"><v>0</v></c><c r="B{n}"><v>{n * 7919 % 1000003}</v></c></row>'
                    for n in range(1, rows + 1))
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for name in source.namelist():
            data = source.read(name)
            if name == "xl/worksheets/sheet1.xml":
                data = data[:data.index(b"<sheetData>")] + f"<sheetData>{sheet}</sheetData></worksheet>".encode()
            elif name == "[Content_Types].xml":
                data = data.replace(b"</Types>", b'<Override PartName="/xl/sharedStrings.xml" ContentType="applicatio'
                                    b'n/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>')
            elif name == "xl/_rels/workbook.xml.rels":
                data = data.replace(b"</Relationships>", b'<Relationship Id="rIdS" Type="http://schemas.openxmlformats'
                                    b'.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"'
                                    b"/></Relationships>")
            target.writestr(name, data)
        target.writestr("xl/sharedStrings.xml", '<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.'
                        'openxmlformats.org/spreadsheetml/2006/main" count="1" uniqueCount="1"><si><t xml:space='
                        f'"preserve">{text}</t></si></sst>')
    return path


def test_an_upload_of_one_long_shared_string_in_every_row_costs_bounded_memory(app, tmp_path: Path) -> None:
    """A 1.9 MB .xlsx of 150,000 rows naming one 32,000-character shared string cost the console 4.8 GB and 14 s:
    each row's value was kept whole. Each value is cut at 300 characters (a domain has at most 253), and reading
    stops past the workflow's 100,000."""
    path = _shared_string_sheet(tmp_path / "bomb.xlsx", 20_000, " " + "a" * 32_000)
    with app.test_request_context(), path.open("rb") as handle:
        tracemalloc.start()
        values, _source = _uploaded_values(FileStorage(handle, filename="bomb.xlsx"), "")
        peak = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()
    assert len(values) == 19_999 and max(len(value) for value in values) <= 300  # the first row: a header
    assert peak < 100, peak


def test_a_pasted_address_with_a_long_zone_index_is_listed_as_invalid(app, people, as_user) -> None:
    client = as_user("isp")
    response = post(client, "/admin/unfiled/report", {"values": "fe80::1%" + "x" * 300 + "\nunfiled-two.cn"})
    assert response.status_code == 200, response.status_code
    assert "unfiled-two.cn" in response.get_data(as_text=True)


# --- the console: forged ids and page markers --------------------------------------------------------------------

@pytest.mark.parametrize("url", [
    "/admin/inspection-findings/?after=99999999999999999999999",  # wider than 64 bits: SQLite's OverflowError
    "/admin/inspections/run?id=1&after=0-99999999999999999999999",
    "/admin/rectification/notice?id=99999999999999999999",
    "/admin/inspection-findings/website?id=%C2%B2",  # "²": a digit to str.isdigit, a ValueError to int
    "/admin/inspections/run/status?id=%C2%B2",
])
def test_a_forged_id_or_page_marker_is_404_or_ignored_never_a_500(app, people, as_user, url: str) -> None:
    assert as_user("bureau").get(url).status_code in (200, 404)


# --- rectification: a notice closed while an ISP answers it ----------------------------------------------------------

def test_an_answer_to_a_notice_closed_meanwhile_is_refused_and_does_not_reopen_it(app, people) -> None:
    """PostgreSQL (SQLite's BEGIN IMMEDIATE serialises the two): the ISP's transaction read the notice open, the
    bureau closed it in another transaction before the answer was written — the answer used to set it back to
    answered over the closing."""
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("SQLite runs one writing transaction at a time")
        website = filed_website(people, ("isp",))
        deadline = inspections.beijing_today() + timedelta(days=3)
        notice_id = inspections.issue_notice(user_named(people["bureau"]), db.session.get(Website, website.id),
                                             ["number"], "请展示备案号。", deadline).id
        db.session.commit()
        isp = user_named(people["isp"])
        notice = db.session.get(RectificationNotice, notice_id)  # the ISP's request reads it …
        assert notice.state == NoticeState.OPEN
        with db.engine.begin() as other:  # … the bureau's closes it and commits …
            other.execute(update(RectificationNotice).where(RectificationNotice.id == notice_id)
                          .values(state=NoticeState.CLOSED))
        with pytest.raises(WorkflowError):  # … and the ISP's answer comes
            inspections.answer_notice(isp, notice, HandlingResult.RECTIFIED, "已整改")
        db.session.commit()
        assert db.session.get(RectificationNotice, notice_id).state == NoticeState.CLOSED
