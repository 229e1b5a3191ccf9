"""Factories for the domain reports (issue 14): registrars and their reports, made through the workflow."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import workflow.domains as domains
from extensions import db
from models import DomainReport, Role, User
from tests.helpers import TIANJIN, make_user


def registrar(username: str, province_code: str | None = TIANJIN, **extra: Any) -> User:
    extra.setdefault("organisation", f"{username} 域名注册服务机构")
    return make_user(username, Role.DOMAIN_REPORTER, province_code, **extra)


def report_data(domain: str, certificate_number: str, registrant_name: str = "天津测试科技有限公司",
                **overrides: Any) -> domains.ReportData:
    """A valid report: registered a year ago, expiring in two years, registrant by certificate number."""
    fields = {
        "domain": domain, "domain_type": "2", "registered_on": date.today() - timedelta(days=365),
        "expires_on": date.today() + timedelta(days=730), "registrar_name": "测试注册商",
        "name_servers": "ns1.example.cn\nns2.example.cn", "registrant_name": registrant_name,
        "registrant_organisation": registrant_name, "registrant_certificate_type": "1",
        "registrant_certificate_number": certificate_number, "registrant_address": "天津市和平区某路1号",
        "registrant_province_code": TIANJIN, "registrant_city": "天津市", "registrant_email": "dns@example.cn",
        "registrant_phone": "022-12345678", "admin_name": "李四", "admin_email": "admin@example.cn",
        "admin_phone": "13912345678",
    }
    return domains.ReportData(**{**fields, **overrides})


def report(unit: User, domain: str, certificate_number: str, **overrides: Any) -> DomainReport:
    made = domains.add_report(unit, report_data(domain, certificate_number, **overrides))
    db.session.commit()
    return made
