"""Can each role open exactly the console pages of its menu, and nothing else?"""

from __future__ import annotations

import pytest

from tests.helpers import TIANJIN

ALL = {"miit", "bureau", "isp", "icp", "ip_reporter", "domain_reporter", "preapproval",
       "content_admin", "special_query"}
STAFF_ADMINS = {"miit", "bureau"}

#: every console page → the roles that may open it
MATRIX: dict[str, set[str]] = {
    "/admin/": ALL,
    "/admin/filing_users/": STAFF_ADMINS,
    "/admin/management_users/": STAFF_ADMINS,
    "/admin/filing_users/new/": STAFF_ADMINS,
    "/admin/management_users/new/": STAFF_ADMINS,
    "/admin/filing_users/export/xlsx/": STAFF_ADMINS,
    "/admin/provinces/": ALL,
    "/admin/provinces/new/": {"miit"},
    f"/admin/provinces/edit/?id={TIANJIN}": {"miit"},
    "/admin/provinces/export/xlsx/": ALL,
    "/admin/code_items/": ALL,
    "/admin/code_items/new/": {"miit"},
    "/admin/audit_log/": STAFF_ADMINS,
    "/admin/audit_log/export/xlsx/": STAFF_ADMINS,
    "/admin/outbox/": {"miit"},
    "/admin/account/": ALL,
    "/admin/password/": ALL,
    "/admin/account/confirm/change_mobile/": ALL,
    "/admin/filing/": {"icp", "isp"},
    "/admin/isp_queue/": {"isp"},
    "/admin/bureau_queue/": {"bureau"},
    "/admin/preapproval_queue/": {"preapproval"},
    "/admin/applications/": {"icp", "isp", "bureau", "miit"},
    "/admin/filings/": {"icp", "isp", "bureau", "miit"},
    "/admin/filings/export/xlsx/": {"icp", "isp", "bureau", "miit"},
    "/admin/blacklist/": {"content_admin"},
    "/admin/blacklist/new/": {"content_admin"},
    "/admin/domain_reports/": {"domain_reporter"},
    "/admin/domain_reports/new/": {"domain_reporter"},
    "/admin/domain_overview/": {"bureau", "miit"},
    "/admin/domain_flags/": {"bureau", "miit"},
    "/admin/inspections/": {"bureau", "miit"},
    "/admin/inspections/start": {"bureau", "miit"},
    "/admin/inspection-findings/": {"bureau", "miit"},
    "/admin/rectification/": {"bureau", "miit", "isp", "icp"},
    "/admin/unfiled/": {"bureau", "miit", "isp"},
    "/admin/unfiled/report": {"bureau", "miit", "isp"},
    "/admin/unfiled/export/xlsx/": {"bureau", "miit", "isp"},
}


@pytest.mark.parametrize("role", sorted(ALL))
@pytest.mark.parametrize("path", sorted(MATRIX))
def test_console_page_by_role(as_user, role: str, path: str) -> None:
    """Allowed roles get the page (200); every other role gets 403."""
    response = as_user(role).get(path)
    expected = 200 if role in MATRIX[path] else 403
    assert response.status_code == expected, (role, path)


@pytest.mark.parametrize("path", sorted(MATRIX))
def test_signed_out_is_sent_to_sign_in(client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


@pytest.mark.parametrize("role", sorted(ALL))
def test_menu_shows_only_own_entries(as_user, role: str) -> None:
    """The left-hand tree lists exactly the pages the role may open."""
    body = as_user(role).get("/admin/").get_data(as_text=True)
    assert ('href="/admin/filing_users/"' in body) == (role in STAFF_ADMINS)
    assert ('href="/admin/audit_log/"' in body) == (role in STAFF_ADMINS)
    assert 'href="/admin/code_items/"' in body


def test_console_is_chinese_by_default_and_english_on_request(as_user) -> None:
    client = as_user("isp")
    assert "工作台" in client.get("/admin/").get_data(as_text=True)
    from tests.helpers import post

    post(client, "/language", {"lang": "en", "next": "/admin/"})
    assert "Dashboard" in client.get("/admin/").get_data(as_text=True)


def test_dashboard_counts_queues(as_user) -> None:
    body = as_user("bureau").get("/admin/").get_data(as_text=True)
    assert "ISP用户" in body and "有导入权限的ISP" in body
