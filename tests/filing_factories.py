"""Valid filing data, and filings brought to each state through the workflow."""

from __future__ import annotations

import itertools

import workflow
from extensions import db
from models import Application, User
from validators import credit_code_check_char, org_code_check_char

_serial = itertools.count(1)


def credit_code(n: int) -> str:
    """A valid unified social credit code, distinct for each n."""
    while True:
        body = f"{n:08d}"
        organisation = body + org_code_check_char(body)
        if organisation[-1] != "X":
            first17 = "91120000" + organisation
            return first17 + credit_code_check_char(first17)
        n += 10**7


def entity_data(n: int | None = None, province: str = "120000", **overrides) -> workflow.EntityData:
    n = next(_serial) if n is None else n
    fields = {"province_code": province, "unit_name": f"天津测试科技有限公司{n}", "unit_nature": "4",
              "certificate_type": "1", "certificate_number": credit_code(n), "responsible_name": "张三",
              "responsible_id_number": "11010519491231002X", "responsible_mobile": "13912345678",
              "responsible_email": f"owner{n}@example.cn", "address": "天津市和平区某路1号"}
    return workflow.EntityData(**{**fields, **overrides})


def website_data(name: str, isp_ids: list[int], preapprovals=(), **overrides) -> workflow.WebsiteData:
    fields = {"name": f"{name}网站", "domains": [f"www.{name}.cn", f"{name}.cn"],
              "home_url": f"http://www.{name}.cn/", "service_content": "2",
              "accesses": [workflow.AccessData(isp_id=i, method="2", server_province_code="120000",
                                               ip_ranges=[("203.0.113.1", "203.0.113.20")]) for i in isp_ids],
              "preapprovals": list(preapprovals)}
    return workflow.WebsiteData(**{**fields, **overrides})


def filed_by_isp(isp: User, n: int, province: str = "120000") -> Application:
    """An application filed by an ISP for its customer: straight to the bureau (ISP = verifier)."""
    application = workflow.save_filing_draft(isp, entity_data(n, province), [website_data(f"site{n}", [isp.id])])
    workflow.submit_application(isp, application)
    db.session.flush()
    return application
