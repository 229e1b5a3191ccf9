"""Identity documents, domains, addresses, URLs: pure validators, with hypothesis."""

from __future__ import annotations

import ipaddress
from datetime import date

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from validators import (
    CREDIT_CODE_CHARS,
    certificate_type_error,
    credit_code_check_char,
    credit_code_error,
    home_url_error,
    id_card_check_char,
    id_card_error,
    ip_address_error,
    normalise_domain,
    org_code_check_char,
    parse_ip_range,
)

ORG_BODY = st.text(alphabet="0123456789ABCDEFGHJKLMNPQRTUWXY", min_size=8, max_size=8)
PREFIX = st.text(alphabet="0123456789ABCDEFGHJKLMNPQRTUWXY", min_size=8, max_size=8)


@st.composite
def credit_codes(draw) -> str:
    body = draw(ORG_BODY)
    organisation = body + org_code_check_char(body)
    assume(organisation[-1] in CREDIT_CODE_CHARS)  # an org check 'X' cannot stand in a credit code
    first17 = draw(PREFIX) + organisation
    return first17 + credit_code_check_char(first17)


@given(credit_codes())
def test_generated_credit_codes_pass(code: str) -> None:
    assert credit_code_error(code) is None


@given(credit_codes(), st.integers(0, 17), st.sampled_from(CREDIT_CODE_CHARS))
def test_any_single_change_is_caught(code: str, position: int, char: str) -> None:
    assume(code[position] != char)
    assert credit_code_error(code[:position] + char + code[position + 1:]) is not None


def test_known_credit_codes() -> None:
    assert credit_code_error("91350100M000100Y43") is None
    assert credit_code_error("91350100M000100Y44") is not None
    assert "18" in credit_code_error("9135010") and credit_code_error("91350100M000100YI3") is not None


BIRTH_DATES = st.dates(date(1900, 1, 1), date(2020, 12, 31))


@st.composite
def id_numbers(draw) -> str:
    first17 = draw(st.from_regex(r"[1-6][0-9]{5}", fullmatch=True)) + draw(BIRTH_DATES).strftime("%Y%m%d") + draw(
        st.from_regex(r"[0-9]{3}", fullmatch=True))
    return first17 + id_card_check_char(first17)


@given(id_numbers())
def test_generated_id_numbers_pass(number: str) -> None:
    assert id_card_error(number) is None


@given(id_numbers(), st.sampled_from("0123456789X"))
def test_wrong_check_digit_refused(number: str, check: str) -> None:
    assume(number[-1] != check)
    assert id_card_error(number[:-1] + check) is not None


def test_id_birth_dates() -> None:
    assert id_card_error("11010519491231002X") is None
    assert id_card_error("110105194902300021") is not None  # 30 February
    future = "110105" + "20990101" + "001"
    assert id_card_error(future + id_card_check_char(future), today=date(2026, 1, 1)) is not None


@given(st.from_regex(r"[a-z][a-z0-9]{0,20}(\.[a-z][a-z0-9]{0,10}){1,3}", fullmatch=True))
def test_domain_normalisation_is_idempotent_and_case_free(domain: str) -> None:
    normal = normalise_domain(domain.upper() + ".")
    assert normal == domain and normalise_domain(normal) == normal


def test_domain_forms() -> None:
    assert normalise_domain("https://WWW.Example.com:8080/path?q=1") == "www.example.com"
    assert normalise_domain("例子.中国") == "xn--fsqu00a.xn--fiqs8s"
    for bad in ("localhost", "exa mple.com", "-a.com", "a..com", "1.2.3.4"):
        with pytest.raises(ValueError):
            normalise_domain(bad)


@given(st.ip_addresses())
def test_every_ip_address_accepted(address) -> None:
    assert ip_address_error(str(address)) is None


@given(st.ip_addresses(v=4), st.ip_addresses(v=4))
def test_ip_ranges_ordered(a, b) -> None:
    low, high = sorted((a, b))
    assert parse_ip_range(str(low), str(high)) == (low, high)
    if low != high:
        with pytest.raises(ValueError):
            parse_ip_range(str(high), str(low))


def test_mixed_families_refused() -> None:
    with pytest.raises(ValueError):
        parse_ip_range("10.0.0.1", "::1")
    assert ip_address_error("300.1.1.1") is not None


def test_home_url_on_own_domain() -> None:
    domains = ["www.example.com", "203.0.113.7"]
    assert home_url_error("https://www.EXAMPLE.com/", domains) is None
    assert home_url_error("http://203.0.113.7:8080/", domains) is None
    assert home_url_error("http://evil.example.net/", domains) is not None
    assert home_url_error("ftp://www.example.com/", domains) is not None


def test_certificate_type_fits_unit_nature() -> None:
    allowed = {"16": {"5"}, "1": {"4", "3"}}
    assert certificate_type_error("5", "16", allowed) is None
    assert certificate_type_error("4", "16", allowed) is not None


@given(st.ip_addresses(v=6))
def test_ipv6_canonical(address: ipaddress.IPv6Address) -> None:
    assert ip_address_error(address.exploded) is None
