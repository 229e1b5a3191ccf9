"""Pure validation functions: each returns None when the value is fine, else a message.

Messages are lazy gettext strings so they appear in the user's language.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import date
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

from flask_babel import lazy_gettext as _l
from publicsuffixlist import PublicSuffixList

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

USERNAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{3,31}$")
MOBILE_RE = re.compile(r"^1[3-9][0-9]{9}$")
#: a mobile, or a landline with its area code (010-12345678, 0755 1234 5678, +86 …, an extension after "-" or "转")
PHONE_RE = re.compile(r"^(\+?86[- ]?)?(1[3-9][0-9]{9}|"
                      r"0[1-9][0-9]{1,2}[- ]?[0-9]{3,4}[- ]?[0-9]{4}((-|转)[0-9]{1,6})?)$")
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")

CREDIT_CODE_TYPE, ID_CARD_TYPE = "1", "16"  # certificate-type codes checked by their check characters


def username_error(username: str) -> str | None:
    if not USERNAME_RE.fullmatch(username):
        return str(_l("Username: 4–32 letters, digits, '_', '.', '-', starting with a letter."))
    return None


COMMON_PASSWORDS_FILE = Path(__file__).resolve().parent / "data" / "common-passwords.txt"


@cache
def common_passwords() -> frozenset[str]:
    """The 10,000 most common passwords (from Django's list by Royce Williams, BSD licence)."""
    return frozenset(COMMON_PASSWORDS_FILE.read_text(encoding="utf-8").split())


def password_errors(password: str, username: str) -> list[str]:
    """FAQ 44: at least 6 characters, not all digits, not the username; and not a common password."""
    errors = []
    if len(password) < 6:
        errors.append(str(_l("Password must be at least 6 characters long.")))
    if password.isdigit():
        errors.append(str(_l("Password must not consist of digits only.")))
    if username and password.lower() == username.lower():
        errors.append(str(_l("Password must not be the same as the username.")))
    if password.lower() in common_passwords():
        errors.append(str(_l("This password is among the most commonly used ones; choose another.")))
    return errors


def mobile_error(mobile: str) -> str | None:
    if not MOBILE_RE.fullmatch(mobile):
        return str(_l("Mobile number must be 11 digits starting with 13–19."))
    return None


def phone_error(phone: str) -> str | None:
    if not PHONE_RE.fullmatch(phone.strip()):
        return str(_l("Phone number must be a mobile number or a landline with its area code (e.g. 010-12345678)."))
    return None


def email_error(email: str) -> str | None:
    if len(email) > 254 or not EMAIL_RE.fullmatch(email):
        return str(_l("E-mail address is not valid."))
    return None


# --- identity documents --------------------------------------------------------------------

CREDIT_CODE_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # GB 32100-2015: no I, O, S, V, Z
CREDIT_CODE_WEIGHTS = [pow(3, i, 31) for i in range(17)]
ORG_CODE_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
ID_CARD_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CARD_CHECK = "10X98765432"


CREDIT_CODE_VALUES = {char: value for value, char in enumerate(CREDIT_CODE_CHARS)}


def credit_code_check_char(first17: str) -> str:
    """The 18th character of a unified social credit code (GB 32100-2015, weights 3^i mod 31)."""
    total = sum(CREDIT_CODE_VALUES[c] * w for c, w in zip(first17, CREDIT_CODE_WEIGHTS, strict=True))
    return CREDIT_CODE_CHARS[(31 - total % 31) % 31]


def org_code_check_char(first8: str) -> str:
    """The 9th character of an organisation code (GB 11714): digits and letters A=10 … Z=35."""
    total = sum(int(c, 36) * w for c, w in zip(first8, ORG_CODE_WEIGHTS, strict=True))
    check = 11 - total % 11
    return {10: "X", 11: "0"}.get(check, str(check))


def credit_code_error(code: str) -> str | None:
    """Unified social credit code: 18 characters, its check character, and the embedded
    organisation code's own check character (positions 9–17)."""
    if len(code) != 18 or any(c not in CREDIT_CODE_CHARS for c in code):
        return str(_l("A unified social credit code has 18 characters: digits and capital letters "
                      "except I, O, S, V, Z."))
    if credit_code_check_char(code[:17]) != code[17]:
        return str(_l("The check character of this unified social credit code is wrong."))
    organisation = code[8:17]
    if org_code_check_char(organisation[:8]) != organisation[8]:
        return str(_l("The organisation code inside this unified social credit code is not valid."))
    return None


def id_card_check_char(first17: str) -> str:
    return ID_CARD_CHECK[sum(int(c) * w for c, w in zip(first17, ID_CARD_WEIGHTS, strict=True)) % 11]


def id_card_error(number: str, today: date | None = None) -> str | None:
    """18-digit resident identity card number (GB 11643): birth date and check digit."""
    number = number.upper()
    if not re.fullmatch(r"[0-9]{17}[0-9X]", number):
        return str(_l("An identity card number has 17 digits followed by a digit or X."))
    try:
        born = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return str(_l("The birth date inside this identity card number does not exist."))
    if not date(1900, 1, 1) <= born <= (today or date.today()):
        return str(_l("The birth date inside this identity card number is out of range."))
    if id_card_check_char(number[:17]) != number[17]:
        return str(_l("The check digit of this identity card number is wrong."))
    return None


def certificate_number_error(certificate_type: str, number: str) -> str | None:
    """The certificate number, checked by its type's check characters (credit code, ID card) or required."""
    if certificate_type == CREDIT_CODE_TYPE:
        return credit_code_error(number)
    if certificate_type == ID_CARD_TYPE:
        return id_card_error(number)
    return None if number.strip() else str(_l("The certificate number is required."))


def certificate_type_error(unit_nature: str, certificate_type: str,
                           allowed_natures: dict[str, set[str]]) -> str | None:
    """Unit nature ↔ certificate type, from the certificate-type code table's `extra` column."""
    if unit_nature not in allowed_natures.get(certificate_type, set()):
        return str(_l("This certificate type does not fit the unit nature."))
    return None


# --- domains, addresses, URLs --------------------------------------------------------------

DOMAIN_LABEL_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def with_and_without_www(name: str) -> list[str]:
    """A normalised host name as filed, with and without `www.` (never `www.` before a bare second-level name's
    suffix alone, e.g. `www.cn`)."""
    other = name[4:] if name.startswith("www.") else f"www.{name}"
    return [name, other] if "." in other.removeprefix("www.") else [name]


def normalise_domain(value: str) -> str:
    """Lower case, IDN → punycode (IDNA 2003 via Python's codec), no scheme/path, no trailing dot.

    Raises ValueError with a user message when the result is not a registrable host name.
    """
    text = value.strip().lower()
    text = re.sub(r"^[a-z][a-z0-9+.-]*://", "", text).split("/", 1)[0].split("?", 1)[0]
    text = text.rsplit("@", 1)[-1].split(":", 1)[0].rstrip(".")
    try:  # the IDNA codec is slow, and an ASCII name has nothing to convert (its labels are checked below)
        ascii_name = text if text.isascii() else text.encode("idna").decode("ascii")
    except UnicodeError as error:
        raise ValueError(str(_l("This domain name is not valid."))) from error
    labels = ascii_name.split(".")
    if len(ascii_name) > 253 or len(labels) < 2 or not all(DOMAIN_LABEL_RE.match(x) for x in labels) \
            or labels[-1].isdigit():
        raise ValueError(str(_l("This domain name is not valid.")))
    return ascii_name


#: the one separator rule of domain lists: one per line in every form; commas, 、 and semicolons (half or
#: full width) are tolerated in pasted text and in the import template's cell
DOMAIN_SEPARATORS = re.compile(r"[\s,，、;；]+")


@cache
def _suffixes() -> PublicSuffixList:
    return PublicSuffixList(only_icann=True)


def registered_domain(name: str) -> str:
    """The domain a registrar registers for a normalised host name — `example.cn` for `www.example.cn`,
    `example.com.cn` for `a.example.com.cn` (the ICANN part of the Public Suffix List, bundled with
    publicsuffixlist) — or the name itself when it is a public suffix or an IP address (FAQ 7)."""
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return _suffixes().privatesuffix(name) or name
    return name


def split_domains(text: str) -> list[str]:
    """The domains typed in a form (one per line, or pasted with commas, 、 or semicolons)."""
    return [part for part in DOMAIN_SEPARATORS.split(text or "") if part]


def display_domain(name: str) -> str:
    """A stored (punycode) domain as a person reads it: `例子.中国 (xn--fsqu00a.xn--fiqs8s)`; an ASCII
    domain or an address unchanged."""
    if "xn--" not in name:
        return name
    try:
        unicode_name = name.encode("ascii").decode("idna")
    except UnicodeError:
        return name
    return f"{unicode_name} ({name})" if unicode_name != name else name


def ip_address_error(value: str) -> str | None:
    try:
        ipaddress.ip_address(value.strip())
    except ValueError:
        return str(_l("This is not a valid IPv4 or IPv6 address."))
    return None


IPV4_RE = re.compile(r"([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})")


def _address(text: str) -> IPAddress:
    """ipaddress.ip_address, with a fast path for dotted IPv4 (an import checks hundreds of thousands)."""
    found = IPV4_RE.fullmatch(text)
    if found and all(int(part) <= 255 and (part == "0" or not part.startswith("0")) for part in found.groups()):
        a, b, c, d = map(int, found.groups())
        return ipaddress.IPv4Address((a << 24) | (b << 16) | (c << 8) | d)
    return ipaddress.ip_address(text)


def parse_ip_range(start: str, end: str) -> tuple[IPAddress, IPAddress]:
    """A range of addresses: same family, start ≤ end. Raises ValueError with a user message."""
    try:
        first, last = _address(start.strip()), _address(end.strip())
    except ValueError as error:
        raise ValueError(str(_l("This is not a valid IPv4 or IPv6 address."))) from error
    if first.version != last.version:
        raise ValueError(str(_l("The start and end of a range must both be IPv4 or both IPv6.")))
    if first > last:
        raise ValueError(str(_l("The start of a range must not be after its end.")))
    return first, last


def home_url_error(url: str, domains: list[str]) -> str | None:
    """The home URL is http(s) on one of the website's own (normalised) domains or addresses."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
    except ValueError:  # an address urlsplit cannot read ("http://[::1", "http://[x]/"): its host is not valid
        return str(_l("This domain name is not valid."))
    if parts.scheme not in ("http", "https") or not host:
        return str(_l("The home page address must start with http:// or https://."))
    if host in domains:
        return None  # already a normalised name of the site (urlsplit lower-cases the host)
    try:
        host = str(ipaddress.ip_address(host))
    except ValueError:
        try:
            host = normalise_domain(host)
        except ValueError as error:
            return str(error)
    if host not in domains:
        return str(_l("The home page must be on one of this website's domains."))
    return None
