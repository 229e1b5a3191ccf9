"""Does every POST route of the URL map refuse a POST without a CSRF token, and change nothing?

Each rule that accepts POST is called with realistic arguments (real ids, each row action's name) by a client
signed in as a role that reaches it (one that opens the view's list), or signed out for the public forms.
"""

from __future__ import annotations

import hashlib

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text
from werkzeug.routing import Rule

from extensions import db
from tests.console_world import EXTRA_ACCOUNTS, VIEW_RECORDS, World, build_world, post_rules, reset_link
from tests.helpers import sign_in

#: the only POST routes without the token, and why
EXEMPT = {"public_api.api_verify": "JSON API: no session cookie is read, it only verifies the posted certificate"}
#: the data-exchange API (issue 16): every call carries a bearer credential, no session is ever read
EXEMPT_BLUEPRINT = "exchange."
#: routes outside the console and who posts them
PUBLIC_FORMS = {"auth.logout": "isp", "auth.set_language": "isp"}
CSRF_MESSAGE = "表单已过期"


def fingerprint() -> str:
    """A digest of every row of every table: equal before and after means nothing changed."""
    digest = hashlib.sha256()
    for table in db.metadata.sorted_tables:
        for row in db.session.execute(text(f'SELECT * FROM "{table.name}" ORDER BY 1')):
            digest.update(repr(tuple(row)).encode())
    return digest.hexdigest()


def _admin_views(app: Flask) -> dict[str, object]:
    return {view.endpoint: view for view in app.extensions["admin"][0]._views}


def _targets(app: Flask, rule: Rule, world: World) -> list[str]:
    """The addresses to post to: every row action's name for the row-action rule, real ids elsewhere."""
    view_endpoint = rule.endpoint.partition(".")[0]
    view = _admin_views(app).get(view_endpoint)
    values = dict(world.values)
    if "action_name" in rule.arguments:
        names = [action.name for action in getattr(view, "row_post_actions", ())] or ["none"]
        paths = [_fill(rule, {**values, "action_name": name}) for name in names]
    else:
        paths = [_fill(rule, values)]
    record = VIEW_RECORDS.get(view_endpoint)
    return [f"{path}?id={world.ids[record]}" if record else path for path in paths]


def _fill(rule: Rule, values: dict[str, object]) -> str:
    path = rule.rule
    for argument in rule.arguments:
        for marker in (f"<{argument}>", f"<int:{argument}>"):
            path = path.replace(marker, str(values[argument]))
    return path


def _who_reaches(app: Flask, rule: Rule, clients: dict[str, FlaskClient]) -> str:
    """A role whose client opens the view's main page (200), 'anonymous' for the sign-in and registration forms."""
    if rule.endpoint in PUBLIC_FORMS:
        return PUBLIC_FORMS[rule.endpoint]
    view = _admin_views(app).get(rule.endpoint.partition(".")[0])
    if view is None:
        return "anonymous"
    for who, client in clients.items():
        if who != "anonymous" and client.get(f"{view.url}/").status_code == 200:
            return who
    raise AssertionError(f"no role reaches {rule.rule}")


def _clients(app: Flask, accounts: dict[str, str]) -> dict[str, FlaskClient]:
    clients = {"anonymous": app.test_client()}
    for number, (who, username) in enumerate(accounts.items()):
        client = app.test_client()
        client.environ_base["REMOTE_ADDR"] = f"198.51.100.{number + 1}"  # each its own sign-in limits
        assert sign_in(client, username).status_code == 302
        clients[who] = client
    return clients


def test_every_post_route_refuses_a_post_without_token(app, users, as_user) -> None:
    world = build_world(app, users, as_user)
    world.values["token"] = reset_link(app, app.test_client()).rsplit("/", 1)[1]
    clients = _clients(app, {**users, **EXTRA_ACCOUNTS})
    forged = {"id": world.ids["entity"], "ids": world.ids["bureau_application"], "rowid": world.ids["entity"],
              "action": "delete", "reason": "伪造", "number": world.values["entity_number"], "confirm": "1",
              "username": "forged", "password": "Forged-pass-1", "lang": "en", "url": "/admin/"}
    refused, checked = [], 0
    for rule in post_rules(app):
        if rule.endpoint in EXEMPT or rule.endpoint.startswith(EXEMPT_BLUEPRINT):
            continue
        who = _who_reaches(app, rule, clients)
        for path in _targets(app, rule, world):
            with app.app_context():
                before = fingerprint()
            response = clients[who].post(path, data=forged)
            with app.app_context():
                changed = fingerprint() != before
            checked += 1
            if response.status_code != 400 or CSRF_MESSAGE not in response.get_data(as_text=True) or changed:
                refused.append(f"{who} POST {path} → {response.status_code}{' and changed data' if changed else ''}")
    assert refused == [], "\n".join(refused)
    exchange = [rule for rule in post_rules(app) if rule.endpoint.startswith(EXEMPT_BLUEPRINT)]
    assert checked >= len(post_rules(app)) - len(EXEMPT) - len(exchange)


def test_the_exchange_api_takes_no_post_on_a_session_alone(app, users) -> None:
    """Without a token, yet with every role's session cookie: every POST of the data-exchange API is a 401 and
    changes nothing."""
    clients = _clients(app, users)
    rules = [rule for rule in post_rules(app) if rule.endpoint.startswith(EXEMPT_BLUEPRINT)]
    assert len(rules) >= 20
    with app.app_context():
        before = fingerprint()
    answers = {(who, rule.rule): client.post(rule.rule, json={"sequence": 1, "records": [{}]}).status_code
               for who, client in clients.items() for rule in rules if "<" not in rule.rule}
    with app.app_context():
        assert fingerprint() == before
    assert set(answers.values()) == {401}


def test_the_exempt_api_reads_no_session(app, client) -> None:
    """The one POST without a token is the JSON certificate check: it answers the same with or without a session."""
    assert {rule.endpoint for rule in post_rules(app)} >= set(EXEMPT)
    response = client.post("/api/v1/public/certificates/verify", data="not a certificate")
    assert response.status_code == 200 and response.json["status"] == "invalid"
