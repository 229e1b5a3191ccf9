"""Reading the codes and links the registry sends, where a developer finds them too."""

from __future__ import annotations

import email
import json
import re
from email import policy
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

import notify
from tests.helpers import post, with_captcha

CODE_RE = re.compile(r"验证码为 (\d{6})")


def deliver(app: Flask) -> dict[str, int]:
    with app.app_context():
        return notify.deliver_due()


def sms_codes(app: Flask, mobile: str) -> list[str]:
    log = Path(app.config["INSTANCE_PATH"]) / "sms.log"
    lines = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()] if log.exists() else []
    return [CODE_RE.search(line["text"]).group(1) for line in lines if line["to"] == mobile]


def eml_bodies(app: Flask, recipient: str) -> list[str]:
    folder = Path(app.config["INSTANCE_PATH"]) / "mail"
    bodies = []
    for path in sorted(folder.glob("*.eml")) if folder.exists() else []:
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        if message["To"] == recipient:
            bodies.append(message.get_body(preferencelist=("plain",)).get_content())
    return bodies


def reset_link(app: Flask, recipient: str) -> str:
    """The path of the last reset link e-mailed to `recipient`; the link starts with PUBLIC_BASE_URL."""
    base = re.escape(app.config["PUBLIC_BASE_URL"])
    return re.search(rf"{base}(/password/reset/\S+)", eml_bodies(app, recipient)[-1]).group(1)


def email_codes(app: Flask, recipient: str) -> list[str]:
    return [CODE_RE.search(body).group(1) for body in eml_bodies(app, recipient) if CODE_RE.search(body)]


REGISTRATION = {"username": "newsite", "password": "Site-owner-7", "confirm": "Site-owner-7",
                "contact_name": "周八", "organisation": "某某科技有限公司", "mobile": "13611112222",
                "email": "owner@example.cn"}


def register(client: FlaskClient, **overrides: Any):
    """Accept the statement and the flow chart, then submit the form (with captcha)."""
    post(client, "/register")
    post(client, "/register/flow")
    return post(client, "/register/form", with_captcha(client, {**REGISTRATION, **overrides}))
