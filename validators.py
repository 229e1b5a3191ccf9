"""Pure validation functions: each returns None when the value is fine, else a message.

Messages are lazy gettext strings so they appear in the user's language.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from flask_babel import lazy_gettext as _l

USERNAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{3,31}$")
MOBILE_RE = re.compile(r"^1[3-9]\d{9}$")
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


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


def email_error(email: str) -> str | None:
    if len(email) > 254 or not EMAIL_RE.fullmatch(email):
        return str(_l("E-mail address is not valid."))
    return None
