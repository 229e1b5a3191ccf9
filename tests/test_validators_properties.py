"""Issue 19 §3: hypothesis over every public function of `validators` and the public lookup's normaliser.

The validators: any text gives None or a message (a list of messages for passwords) and nothing else; the parsers
raise only their documented ValueError; normalisation is idempotent (`normalise(normalise(x)) == normalise(x)`), and
so are the splitting of domain lists and the `www.` pairing. The check-character helpers make numbers their own
validators accept. The public lookup (`public_site._domain_candidates`, the one normaliser of a typed domain or URL):
never an exception but ValueError, idempotent, and every spelling it accepts finds the same filing; the lookup API
answers any query without a 5xx.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from flask import Flask
from flask_babel import Babel
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import public_site
import validators
import workflow
from extensions import db
from tests.filing_factories import entity_data, website_data
from tests.helpers import user_named

#: examples per property (18 properties: 2,700 cases, and 210 requests to the lookup API: about 20 s)
EXAMPLES = 150
BOUNDED = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                   suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

#: what people type and paste: ASCII, CJK (in and outside the BMP), full-width forms, the ideographic full stop,
#: joiners, control characters, URL and address punctuation
SNIPPETS = ("www.", "WWW.", "xn--", "http://", "HTTPS://", "user@", ":8080", "/path?q=1", "[", "]", "::", ".",
            "。", "．", "-", "_", " ", "\u3000", "\t", "\n", "\x00", "\u200d", "例子", "中国", "𠀀", "𪚥", "😀", "ﬀ",
            "İ", "ß", "0", "255", "256", "1.2.3.4", "X", "%", "\\")
TEXT = st.one_of(st.text(max_size=40),
                 st.lists(st.one_of(st.sampled_from(SNIPPETS), st.text(max_size=4)), max_size=8).map("".join))
DOMAIN_LIKE = st.lists(st.one_of(st.from_regex(r"[a-zA-Z0-9-]{1,12}", fullmatch=True), st.sampled_from(
    ["例子", "中国", "公司", "网络", "ﬀ", "xn--fiqs8s", "WWW", "www"])), min_size=2, max_size=4).map(".".join)
ANY_DOMAIN = st.one_of(TEXT, DOMAIN_LIKE)


def _message_or_none(value: object) -> None:
    assert value is None or (isinstance(value, str) and value)


@pytest.fixture
def babel():
    """The lazy messages need an application with Babel to become text: a bare one in Chinese (the registry's
    application and its database are only needed by the lookup tests below)."""
    bare = Flask(__name__)
    Babel(bare, default_locale="zh_Hans_CN",
          default_translation_directories=str(Path(validators.__file__).parent / "translations"))
    with bare.test_request_context():
        yield


@pytest.mark.parametrize("check", [validators.username_error, validators.mobile_error, validators.phone_error,
                                   validators.email_error, validators.credit_code_error, validators.id_card_error,
                                   validators.ip_address_error])
def test_a_text_check_gives_none_or_a_message(babel, check) -> None:
    @BOUNDED
    @given(TEXT)
    def run(text: str) -> None:
        _message_or_none(check(text))

    run()


@BOUNDED
@given(st.sampled_from(["1", "16", "2", "", "x"]), TEXT)
def test_certificate_number_error_never_raises(babel, certificate_type: str, number: str) -> None:
    _message_or_none(validators.certificate_number_error(certificate_type, number))


@BOUNDED
@given(TEXT, TEXT, st.dictionaries(TEXT, st.sets(TEXT, max_size=3), max_size=3))
def test_certificate_type_error_never_raises(babel, nature: str, certificate_type: str, allowed) -> None:
    _message_or_none(validators.certificate_type_error(nature, certificate_type, allowed))


@BOUNDED
@given(TEXT, TEXT)
def test_password_errors_are_a_list_of_messages(babel, password: str, username: str) -> None:
    errors = validators.password_errors(password, username)
    assert isinstance(errors, list) and all(isinstance(error, str) and error for error in errors)
    assert bool(errors) == (len(password) < 6 or password.isdigit() or (username and password.lower() ==
                            username.lower()) or password.lower() in validators.common_passwords())


@BOUNDED
@given(st.text("0123456789", min_size=17, max_size=17), st.dates(date(1900, 1, 1), date(2020, 12, 31)))
def test_an_id_number_made_with_its_check_digit_is_valid(babel, digits: str, born: date) -> None:
    first17 = digits[:6] + born.strftime("%Y%m%d") + digits[14:]
    assert validators.id_card_error(first17 + validators.id_card_check_char(first17)) is None
    assert validators.id_card_error((first17 + validators.id_card_check_char(first17)).lower()) is None


@BOUNDED
@given(st.text(validators.CREDIT_CODE_CHARS, min_size=16, max_size=16))
def test_a_credit_code_made_with_its_check_characters_is_valid(babel, body: str) -> None:
    """Positions 9–17 are an organisation code with its own check character (GB 11714: a digit or X, both in the
    credit code's alphabet), then the credit code's own."""
    first17 = body[:8] + body[8:16] + validators.org_code_check_char(body[8:16])
    assert validators.credit_code_error(first17 + validators.credit_code_check_char(first17)) is None


@BOUNDED
@given(ANY_DOMAIN)
def test_normalise_domain_raises_only_value_error_and_is_idempotent(babel, text: str) -> None:
    try:
        name = validators.normalise_domain(text)
    except ValueError as error:
        assert str(error)
        return
    assert name.isascii() and name == name.lower() and validators.normalise_domain(name) == name
    assert validators.registered_domain(name).endswith(validators.registered_domain(name))
    assert name.endswith(validators.registered_domain(name))
    shown = validators.display_domain(name)
    assert shown == name or shown.endswith(f"({name})")


@BOUNDED
@given(ANY_DOMAIN)
def test_with_and_without_www_is_a_pair_closed_under_itself(babel, text: str) -> None:
    """(`www.www.x` pairs with `www.x`, whose own pair is `x`: one `www.` is added or removed, never two.)"""
    try:
        name = validators.normalise_domain(text)
    except ValueError:
        return
    pair = validators.with_and_without_www(name)
    assert pair[0] == name and len(pair) in (1, 2)
    if not name.startswith("www.www."):
        assert all(set(validators.with_and_without_www(other)) == set(pair) for other in pair)


@BOUNDED
@given(TEXT)
def test_split_domains_is_idempotent(text: str) -> None:
    parts = validators.split_domains(text)
    assert all(part and part == part.strip() for part in parts)
    assert validators.split_domains("\n".join(parts)) == parts == validators.split_domains(";".join(parts))


@BOUNDED
@given(st.one_of(TEXT, st.ip_addresses().map(str)), st.one_of(TEXT, st.ip_addresses().map(str)))
def test_parse_ip_range_raises_only_value_error_and_keeps_its_order(babel, start: str, end: str) -> None:
    try:
        first, last = validators.parse_ip_range(start, end)
    except ValueError as error:
        assert str(error)
        return
    assert first.version == last.version and first <= last
    assert validators.parse_ip_range(str(first), str(last)) == (first, last)  # idempotent


@BOUNDED
@given(st.one_of(TEXT, st.tuples(st.sampled_from(["http://", "https://", "HTTP://", "ftp://", ""]), ANY_DOMAIN,
                                 st.sampled_from(["", "/", ":80/", ":99999/", "/a?b#c", "]"])).map("".join)),
       st.lists(DOMAIN_LIKE, max_size=3))
def test_home_url_error_never_raises(babel, url: str, domains: list[str]) -> None:
    """A URL urlsplit cannot read ('http://[::1', 'http://[x]/') is a message, not an exception (found by this test:
    it raised ValueError, which failed the wizard's request and the whole import)."""
    _message_or_none(validators.home_url_error(url, domains))


def test_the_urls_urlsplit_refuses_are_messages(babel) -> None:
    for url in ("http://[::1", "http://[x]/", "https://[203.0.113.1/"):
        assert validators.home_url_error(url, ["a.cn"]) == "域名格式不正确。"


# --- the public lookup's normaliser ----------------------------------------------------------------------------------

@BOUNDED
@given(ANY_DOMAIN)
def test_the_lookup_normaliser_raises_only_value_error_and_is_idempotent(babel, text: str) -> None:
    try:
        names = public_site._domain_candidates(text)
    except ValueError:
        return
    assert names and all(public_site._domain_candidates(name) in (names, names[::-1]) for name in names)


@pytest.fixture
def filed_site(app, users) -> int:
    """An approved filing with www.alpha.cn / alpha.cn and 例子.中国; its entity id."""
    with app.app_context():
        isp, bureau = user_named(users["isp"]), user_named(users["bureau"])
        sites = [website_data("alpha", [isp.id]),
                 website_data("idn", [isp.id], domains=["例子.中国"], home_url="http://例子.中国/")]
        application = workflow.save_filing_draft(isp, entity_data(700, unit_name="天津属性测试科技有限公司"), sites)
        workflow.submit_application(isp, application)
        workflow.approve(bureau, application)
        db.session.commit()
        return application.entity_id


SPELLINGS = st.tuples(
    st.sampled_from(["", "http://", "https://", "HTTPS://", "http://user@"]),
    st.sampled_from(["www.alpha.cn", "alpha.cn", "WWW.ALPHA.CN", "Alpha.Cn", "例子.中国", "www.例子.中国",
                     "xn--fsqu00a.xn--fiqs8s", "例子。中国", "ＷＷＷ．ａｌｐｈａ．ｃｎ"]),
    st.sampled_from(["", ".", ":8443", ":80"]),
    st.sampled_from(["", "/", "/x/y?z=1", "?q", "/#a"]),
    st.sampled_from(["", " ", "\u3000", "\t"])).map(lambda p: f"{p[4]}{p[0]}{p[1]}{p[2]}{p[3]}{p[4]}")


def test_every_spelling_the_normaliser_accepts_finds_the_same_filing(client, filed_site) -> None:
    @settings(max_examples=60, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(SPELLINGS)
    def run(query: str) -> None:
        response = client.get("/api/v1/public/lookup", query_string={"q": query})
        assert response.status_code == 200, (query, response.get_json())
        assert [record["unit_name"] for record in response.get_json()["results"]] == ["天津属性测试科技有限公司"], query

    run()


def test_the_lookup_api_answers_any_query_without_a_server_error(client) -> None:
    """NUL, lone brackets, 𠀀, 253+ characters: 200 with results, or 400 with the JSON error — never a 5xx."""
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(st.one_of(TEXT, st.text(min_size=250, max_size=260)))
    def run(query: str) -> None:
        response = client.get("/api/v1/public/lookup", query_string={"q": query})
        assert response.status_code in (200, 400), (query, response.status_code)
        assert response.is_json and ("results" in response.get_json() or response.get_json()["message"])

    run()
