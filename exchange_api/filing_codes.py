"""The 1xxx result codes of the filing operations (issue 16): a code per kind of refusal, given to the problems the
workflow raises. The workflow says *what* is wrong as (field, message) — the same words the console shows — and
decides every rule; this table only names the kind of each message, so that a caller's system can act on a code
without reading Chinese. A message not in the table falls back on its field (1002) or on the generic 1001.

The codes 1000 (schema), 1001 (other refusal), 1004 (not found / not yours) and 1009 (a concurrent write took
the value first) are the envelope's (`exchange_api.core`); the others are given here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache

from flask_babel import get_locale, gettext

from workflow.errors import CodedErrors, WorkflowError

SCHEMA = "1000"
OTHER = "1001"
INVALID = "1002"
UNKNOWN_CODE = "1003"
NOT_FOUND = "1004"
DUPLICATE_DOMAIN = "1005"
DUPLICATE_CERTIFICATE = "1006"
BLACKLISTED = "1007"
WRONG_STATE = "1008"
RACED = "1009"
ACCESS_CODE = "1010"
REGISTRANT_CHECK = "1011"
NOT_SERVED = "1012"

#: code → what it means (the README's table and the OpenAPI description are written from it)
MEANINGS: dict[str, str] = {
    SCHEMA: "记录不符合接口文档的格式（缺少字段、类型错误、多余字段）",
    OTHER: "其他原因不予受理（见 message）",
    INVALID: "字段值不合规（证件号码、手机号码、电子邮件、域名、首页地址、IP 地址段、必填项等）",
    UNKNOWN_CODE: "代码表中没有该值（省份、单位性质、证件类型、服务内容、接入方式、前置审批类别、接入服务商）",
    NOT_FOUND: "记录不存在，或不在本凭证用户的权限范围内（按申请编号查找时）",
    DUPLICATE_DOMAIN: "域名已在其他网站备案，或在同一备案中重复",
    DUPLICATE_CERTIFICATE: "该证件号码的主体已备案",
    BLACKLISTED: "单位名称、证件号码或域名在黑名单中",
    WRONG_STATE: "当前状态不允许此操作（非草稿或退回状态、备案未生效、已有在办申请、不在待核实状态等）",
    RACED: "同一时刻另一请求占用了其中的域名或证件号码，可重试该记录",
    ACCESS_CODE: "接入授权码错误、已使用或已过期",
    REGISTRANT_CHECK: "域名注册人核验未通过（“阻止”策略下不能核实）",
    NOT_SERVED: "该备案（网站）不由本凭证用户接入，或记录未将本用户列为接入服务商",
}

#: the workflow's messages (English msgids, as written in workflow/) and their codes; placeholders match anything
MESSAGES: tuple[tuple[str, str], ...] = (
    ("Unknown province.", UNKNOWN_CODE),
    ("Choose the unit nature.", UNKNOWN_CODE),
    ("This certificate type does not fit the unit nature.", UNKNOWN_CODE),
    ("Choose the website's service content.", UNKNOWN_CODE),
    ("Each pre-approval item needs its category and document number.", UNKNOWN_CODE),
    ("Unknown access provider.", UNKNOWN_CODE),
    ("Choose the access method.", UNKNOWN_CODE),
    ("This value is on the registry's blacklist and cannot be filed.", BLACKLISTED),
    ("%(domain)s: this value is on the registry's blacklist and cannot be filed.", BLACKLISTED),
    ("An entity with this certificate number is already filed (FAQ 62).", DUPLICATE_CERTIFICATE),
    ("The domain %(name)s is given twice.", DUPLICATE_DOMAIN),
    ("The domain %(name)s is already on website %(site)s of this filing.", DUPLICATE_DOMAIN),
    ("The domain %(name)s is already on another website.", DUPLICATE_DOMAIN),
    ("A domain or certificate number was filed elsewhere at the same moment.", RACED),
    ("A domain of this change was filed elsewhere meanwhile.", RACED),
    ("This filing already has an application in progress.", RACED),
    ("Only an approved filing can be changed, cancelled or revoked.", WRONG_STATE),
    ("Only a draft or a returned application can be edited.", WRONG_STATE),
    ("Only a draft or a returned application can be submitted.", WRONG_STATE),
    ("This application is not waiting for your verification.", WRONG_STATE),
    ("This filing has been cancelled or revoked: file again as a new filing (FAQ 8).", WRONG_STATE),
    ("This filing already has an application in progress (no. %(id)s); wait until it is decided.", WRONG_STATE),
    ("This website has no access: it is frozen until a new ISP adds access.", WRONG_STATE),
    ("You already provide access to this website.", WRONG_STATE),
    ("No filing in force has the number %(number)s.", NOT_FOUND),
    ("Name yourself as an access provider of the new website.", NOT_SERVED),
    ("Name yourself as the access provider.", NOT_SERVED),
    ("Type the access authorisation code the filing's owner gave you.", ACCESS_CODE),
    ("The access authorisation code is wrong, used or expired.", ACCESS_CODE),
    ("Domain %(domain)s: %(verdict)s (registrant check).", REGISTRANT_CHECK),
)

_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


@cache
def _patterns(locale: str) -> tuple[tuple[re.Pattern[str], str], ...]:
    """The messages as the workflow words them in this locale, as patterns (a placeholder matches any text)."""
    del locale  # the cache key: the translations below are the locale's
    patterns = []
    for msgid, code in MESSAGES:
        parts = _PLACEHOLDER.split(gettext(msgid))  # text, name, text, name, …, text
        regex = "".join(re.escape(part) if position % 2 == 0 else ".+?" for position, part in enumerate(parts))
        patterns.append((re.compile(regex + r"\Z", re.DOTALL), code))
    return tuple(patterns)


def code_of(field: str | None, message: str) -> str:
    """The result code of one problem the workflow raised."""
    for pattern, code in _patterns(str(get_locale())):
        if pattern.match(message):
            return code
    return INVALID if field else OTHER


Rename = Callable[[str | None], str | None]


def api_field(*rewrites: tuple[str, str], fallback: Callable[[str], str] | None = None) -> Rename:
    """The API's dotted field path of a workflow field name (`websites-0-accesses-1-isp_id` →
    `websites.0.accesses.1.isp`), its first matching prefix rewritten to the record's own layout (else
    `fallback`)."""
    def rename(field: str | None) -> str | None:
        if not field:
            return None
        dotted = re.sub(r"(^|\.)isp_id$", r"\1isp", field.replace("-", "."))
        for old, new in rewrites:
            if dotted == old or dotted.startswith(old + "."):
                return (new + dotted[len(old):]).lstrip(".")
        return fallback(dotted) if fallback else dotted
    return rename


def coded(error: WorkflowError, rename: Rename) -> CodedErrors:
    """The workflow's refusal with a result code per problem and the API's field names."""
    if isinstance(error, CodedErrors):
        return error
    return CodedErrors((rename(field), code_of(field, message), message) for field, message in error.errors)


def not_served(field: str | None, message: str = "") -> CodedErrors:
    """A filing found by its public number that is not the caller's to change (the console answers 404; the
    number is public, so saying that the caller may not act on it reveals nothing)."""
    return CodedErrors([(field, NOT_SERVED, message or "该备案不由本凭证用户接入，或本用户无权办理此项业务。")])
