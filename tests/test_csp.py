"""Is the Content-Security-Policy strict enough that an injected inline script cannot run?"""

from __future__ import annotations

import pytest


def directives(header: str) -> dict[str, list[str]]:
    """'default-src 'self'; img-src 'self' data:' → {'default-src': ["'self'"], 'img-src': ["'self'", 'data:']}."""
    parsed = {}
    for part in header.split(";"):
        name, *sources = part.split()
        parsed[name.lower()] = sources
    return parsed


@pytest.mark.parametrize("header", [
    "default-src 'self'; script-src 'self' 'unsafe-inline'",
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'",
    "default-src 'self' 'unsafe-inline'",
    "default-src 'self'; script-src 'self' 'unsafe-eval'",
    "default-src 'self'; script-src *",
    "default-src 'self'; script-src 'self'; object-src *",
])
def test_a_weak_policy_is_refused(header: str) -> None:
    """The check itself fails on each way of letting inline or foreign code in."""
    with pytest.raises(AssertionError):
        assert_strict(header)


def assert_strict(header: str) -> None:
    policy = directives(header)
    for kind in ("script-src", "style-src"):
        sources = policy.get(kind, policy["default-src"])
        assert sources == ["'self'"], f"{kind} must be only 'self', not {sources}"
    assert policy.get("object-src", policy["default-src"]) in (["'none'"], ["'self'"])
    assert policy["default-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"] and policy["base-uri"] == ["'self'"]
    assert policy["form-action"] == ["'self'"]


@pytest.mark.parametrize("path", ["/", "/login", "/admin/", "/no-such-page", "/api/v1/public/ping"])
def test_every_response_carries_the_strict_policy(client, path: str) -> None:
    assert_strict(client.get(path).headers["Content-Security-Policy"])


def test_console_pages_carry_the_strict_policy(as_user) -> None:
    response = as_user("bureau").get("/admin/bureau_queue/")
    assert response.status_code == 200
    assert_strict(response.headers["Content-Security-Policy"])
