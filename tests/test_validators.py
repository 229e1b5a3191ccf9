"""The pure validators, with hypothesis."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from validators import common_passwords, email_error, mobile_error, password_errors, username_error


@given(st.text(alphabet="0123456789", min_size=6, max_size=30))
def test_all_digit_passwords_refused(password: str) -> None:
    assert password_errors(password, "someone")


@given(st.text(min_size=0, max_size=5))
def test_short_passwords_refused(password: str) -> None:
    assert password_errors(password, "someone")


@given(st.from_regex(r"[A-Za-z][A-Za-z0-9]{5,20}", fullmatch=True))
def test_password_equal_to_username_refused(name: str) -> None:
    assert password_errors(name, name)
    assert password_errors(name.upper(), name)


@given(st.from_regex(r"[a-z]{3,10}[0-9]{3,10}", fullmatch=True))
def test_letters_and_digits_accepted_unless_common(password: str) -> None:
    errors = password_errors(password, "different_user")
    assert errors == ([] if password not in common_passwords() else [errors[0]])
    assert password_errors("abc123", "someone") and "common" in password_errors("abc123", "someone")[0]


@given(st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True))
def test_valid_mobiles(mobile: str) -> None:
    assert mobile_error(mobile) is None


@given(st.text(max_size=20).filter(lambda s: not (len(s) == 11 and s.isascii() and s.isdigit())))
def test_non_mobiles_refused(text: str) -> None:
    assert mobile_error(text) is not None


def test_mobile_prefix_rules() -> None:
    assert mobile_error("12812345678") is not None and mobile_error("13812345678") is None


@given(st.text(max_size=40).filter(lambda s: "@" not in s))
def test_email_needs_an_at(text: str) -> None:
    assert email_error(text) is not None


def test_email_examples() -> None:
    assert email_error("张三@example.cn") is None
    assert email_error("a@b") is not None and email_error("a b@example.cn") is not None


@given(st.from_regex(r"[A-Za-z][A-Za-z0-9_.-]{3,31}", fullmatch=True))
def test_usernames_accepted(name: str) -> None:
    assert username_error(name) is None


def test_usernames_refused() -> None:
    for bad in ("abc", "1abc", "a" * 33, "用户名字", "ab cd", "<script>"):
        assert username_error(bad) is not None


def test_only_ascii_digits_count() -> None:
    """Python's \\d also matches other scripts' digits: a mobile or ID number must be ASCII."""
    assert mobile_error("13" + "٠١٢٣٤٥٦٧٨") is not None  # Arabic-Indic digits
    from validators import id_card_error

    assert id_card_error("١١٠١٠٥١٩٤٩١٢٣١٠٠٢X") is not None
