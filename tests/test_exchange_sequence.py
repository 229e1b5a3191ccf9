"""Order and idempotency of the data-exchange API's write calls (issue 16 §3): the next expected number on every
answer, a gap refused with the missing numbers, a repeat answered from the store without writing — after a
restart, and when two calls with the same number arrive at once; a batch atomic per record (§2)."""

from __future__ import annotations

import threading
from datetime import date, timedelta
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from sqlalchemy import func, select

from app import create_app
from extensions import db
from models import ApiCredential, AuditEvent, DomainReport, ExchangeCall, utcnow
from tests.domain_factories import registrar, report_data
from tests.exchange_helpers import call, credential_for
from tests.filing_factories import credit_code
from workflow import exchange


def domain_record(n: int, **overrides: Any) -> dict[str, Any]:
    """A valid domain report as the API takes it (the import's columns)."""
    data = vars(report_data(f"seq{n}.cn", credit_code(600 + n % 50)))
    return {key: value.isoformat() if isinstance(value, date) else value
            for key, value in {**data, **overrides}.items()}


def _setup(app: Any) -> str:
    with app.app_context():
        registrar("seq_registrar")
        db.session.commit()
        return credential_for("seq_registrar")[1]


def _reports(app: Any) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(DomainReport))


def test_a_batch_is_atomic_per_record_and_says_so(app, client):
    token = _setup(app)
    records = [domain_record(1), domain_record(2, expires_on="2000-01-01"), domain_record(3), {"domain": 5}]
    status, body, _ = call(client, "POST", "/domains", token, json={"sequence": 1, "records": records})
    assert status == 200 and body["atomic"] == "per_record" and body["next_sequence"] == 2
    assert (body["accepted"], body["refused"]) == (2, 2)
    assert [result["status"] for result in body["results"]] == ["accepted", "refused", "accepted", "refused"]
    assert body["results"][1]["code"] == "3004" and body["results"][1]["field"] == "expires_on"
    assert body["results"][3]["code"] == "3000"
    assert _reports(app) == 2


def test_a_repeat_is_answered_from_the_store_and_writes_nothing_also_after_a_restart(app, client, database_url):
    token = _setup(app)
    sent = {"sequence": 1, "records": [domain_record(1)]}
    first = call(client, "POST", "/domains", token, json=sent)
    restarted = create_app({**app.config, "SQLALCHEMY_DATABASE_URI": database_url}).test_client()
    again = call(restarted, "POST", "/domains", token, json=sent)
    assert first[0] == again[0] == 200 and first[1] == again[1] and again[2]["X-Exchange-Replayed"] == "true"
    assert _reports(app) == 1
    other = call(client, "POST", "/domains", token, json={"sequence": 1, "records": [domain_record(2)]})
    assert other[0] == 409 and other[1]["field"] == "sequence"
    assert _reports(app) == 1


def test_a_gap_is_refused_with_the_missing_numbers(app, client):
    token = _setup(app)
    assert call(client, "POST", "/domains", token, json={"sequence": 1, "records": [domain_record(1)]})[0] == 200
    status, body, _ = call(client, "POST", "/domains", token, json={"sequence": 5, "records": [domain_record(2)]})
    assert status == 409 and body["next_sequence"] == 2 and body["missing"] == [2, 3, 4]
    assert call(client, "GET", "/credential", token)[1]["next_sequence"] == 2
    assert _reports(app) == 1


def test_a_bad_envelope_is_a_400_with_the_field(app, client):
    token = _setup(app)
    for body, field in (({"records": [domain_record(1)]}, "sequence"), ({"sequence": 1, "records": []}, "records"),
                        ({"sequence": 1, "records": [{}] * 1001}, "records"), ("not json", None)):
        status, answer, _ = call(client, "POST", "/domains", token, json=body)
        assert status == 400 and answer["code"] == "400" and answer["field"] == field
    assert call(client, "GET", "/credential", token)[1]["next_sequence"] == 1


def test_two_calls_with_the_same_number_at_once_write_once(app, live_server):
    token = _setup(app)
    sent = {"sequence": 1, "records": [domain_record(n) for n in range(20)]}
    answers: list[Any] = []
    barrier = threading.Barrier(4)

    def send() -> None:
        barrier.wait()
        answers.append(call(live_server, "POST", "/domains", token, json=sent))

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert [answer[0] for answer in answers] == [200] * 4
    assert all(answer[1] == answers[0][1] for answer in answers) and answers[0][1]["accepted"] == 20
    assert sum(answer[2].get("X-Exchange-Replayed") == "true" for answer in answers) == 3
    assert _reports(app) == 20
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(ExchangeCall)) == 1
        assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "exchange.call")) == 1


class SequenceMachine(RuleBasedStateMachine):
    """Calls in order, repeats of earlier numbers (same or altered body) and gaps, in any mix: after every step
    the stored calls are exactly the accepted numbers, the expected number follows them, and every record was
    written once."""

    app: Any = None

    @initialize()
    def start(self) -> None:
        with self.app.app_context():
            for table in ("audit_events", "exchange_calls", "domain_reports", "api_credentials"):
                db.session.execute(db.metadata.tables[table].delete())
            db.session.commit()
        self.client = self.app.test_client()
        with self.app.app_context():
            self.token = credential_for("seq_registrar")[1]
        self.sent: dict[int, dict[str, Any]] = {}
        self.written = 0
        self.counter = 0

    def _batch(self, size: int) -> list[dict[str, Any]]:
        self.counter += size
        return [domain_record(1000 * len(self.sent) + n + self.counter) for n in range(size)]

    @rule(size=st.integers(1, 3))
    def next_call(self, size: int) -> None:
        sequence = len(self.sent) + 1
        body = {"sequence": sequence, "records": self._batch(size)}
        status, answer, _ = call(self.client, "POST", "/domains", self.token, json=body)
        assert status == 200 and answer["next_sequence"] == sequence + 1
        self.sent[sequence] = answer
        self.written += answer["accepted"]

    @rule(data=st.data())
    def repeat(self, data: st.DataObject) -> None:
        if not self.sent:
            return
        sequence = data.draw(st.sampled_from(sorted(self.sent)))
        status, answer, _ = call(self.client, "POST", "/domains", self.token,
                                       json={"sequence": sequence, "records": self._batch(1)})
        assert status == 409  # the same number with another body
        assert answer["field"] == "sequence"

    @rule(ahead=st.integers(2, 5))
    def gap(self, ahead: int) -> None:
        expected = len(self.sent) + 1
        status, answer, _ = call(self.client, "POST", "/domains", self.token,
                                 json={"sequence": expected + ahead - 1, "records": self._batch(1)})
        assert status == 409 and answer["next_sequence"] == expected
        assert answer["missing"] == list(range(expected, expected + ahead - 1))

    @invariant()
    def store_matches(self) -> None:
        if not hasattr(self, "token"):
            return
        with self.app.app_context():
            stored = db.session.scalars(select(ExchangeCall.sequence).order_by(ExchangeCall.sequence)).all()
            expected = db.session.scalar(select(ApiCredential.next_sequence))
            reports = db.session.scalar(select(func.count()).select_from(DomainReport))
        assert stored == sorted(self.sent) and expected == len(self.sent) + 1 and reports == self.written


def test_sequence_state_machine(app):
    with app.app_context():
        registrar("seq_registrar")
        db.session.commit()
    SequenceMachine.app = app
    runner = SequenceMachine.TestCase
    runner.settings = settings(max_examples=8, stateful_step_count=8, deadline=None,
                               suppress_health_check=list(HealthCheck))
    runner().runTest()


def test_answers_older_than_the_retention_are_purged_then_a_repeat_is_out_of_order(app, client):
    token = _setup(app)
    sent = {"sequence": 1, "records": [domain_record(1)]}
    assert call(client, "POST", "/domains", token, json=sent)[0] == 200
    with app.app_context():
        assert exchange.purge_answers() == 0
        assert exchange.purge_answers(utcnow() + timedelta(days=app.config["EXCHANGE_ANSWER_DAYS"], seconds=1)) == 1
    status, body, _ = call(client, "POST", "/domains", token, json=sent)
    assert status == 409 and body["next_sequence"] == 2
    assert _reports(app) == 1


def test_a_nul_character_refuses_its_record_only(app, client):
    token = _setup(app)
    records = [domain_record(1, registrant_address="天津\x00"), domain_record(2), {"domain\x00": "x"}]
    status, body, _ = call(client, "POST", "/domains", token, json={"sequence": 1, "records": records})
    assert status == 200 and [result["status"] for result in body["results"]] == ["refused", "accepted", "refused"]
    assert body["results"][0]["code"] == "3000" and body["results"][0]["field"] == "registrant_address"
    assert body["results"][2]["field"] is None
    assert _reports(app) == 1
