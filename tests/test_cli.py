"""The operators' commands: create-user through the same rules as the console."""

from __future__ import annotations

import json

from extensions import db
from models import Role, User


def test_create_user_command(app) -> None:
    result = app.test_cli_runner().invoke(args=[
        "create-user", "--username", "sh_bureau", "--role", "bureau", "--province", "310000",
        "--contact-name", "赵六", "--mobile", "13912345678", "--email", "sh@example.cn",
        "--password", "Strong-pass-1"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["role"] == "bureau"
    with app.app_context():
        assert db.session.query(User).filter_by(username="sh_bureau").one().role == Role.BUREAU


def test_create_user_command_refuses_bad_input_with_a_message(app) -> None:
    result = app.test_cli_runner().invoke(args=[
        "create-user", "--username", "nowhere", "--role", "bureau",
        "--contact-name", "赵六", "--mobile", "13912345678", "--email", "sh@example.cn",
        "--password", "Strong-pass-1"])
    assert result.exit_code != 0 and "该类用户必须选择所属省份" in result.output
    with app.app_context():
        assert db.session.query(User).filter_by(username="nowhere").count() == 0


def test_init_prints_a_generated_password_once(app) -> None:
    app.config["MIIT_ADMIN_PASSWORD"] = None
    runner = app.test_cli_runner()
    first = runner.invoke(args=["init"])
    assert "password (shown once" in first.output
    assert "password (shown once" not in runner.invoke(args=["init"]).output


def test_keys_rotate_and_certificate_command(app, users) -> None:
    import certificates
    import workflow
    from tests.filing_factories import filed_by_isp
    from tests.helpers import user_named

    with app.app_context():
        application = filed_by_isp(user_named(users["isp"]), 77)
        workflow.approve(user_named(users["bureau"]), application)
        db.session.commit()
        number = application.entity.number
        first_kid = certificates.keyring().current_kid()
    runner = app.test_cli_runner()
    printed = runner.invoke(args=["certificate", number])
    assert printed.exit_code == 0
    token = printed.output.strip()
    rotated = runner.invoke(args=["keys", "rotate"])
    assert rotated.exit_code == 0
    with app.app_context():
        ring = certificates.keyring()
        assert ring.current_kid() != first_kid and len(ring.jwks()["keys"]) == 2
        assert certificates.verify(token, ring.jwks())["entity_number"] == number
    assert runner.invoke(args=["certificate", "津ICP备99999999号"]).exit_code != 0
