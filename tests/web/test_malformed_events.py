"""Signed but malformed Stripe events: stored as failed with a reason, answered without a 500, never
left "received", and seen by `stripe replay --failed`; events whose process died between the steps
are picked up again."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
import stripe
from sqlalchemy import func, select, update

from app.extensions import db
from core.clock import utcnow
from core.payments.webhooks import STUCK_AFTER, store_event
from core.schema import Company, PrepaidBalance, Topup, WebhookEvent
from core.money import eur
from tests.helpers import log_in
from tests.stripe_helpers import start_topup, top_up


def send(app, client, text: str):
    """The body signed with the endpoint's secret, as Stripe (or anyone holding the secret) sends it."""
    signature = stripe.WebhookSignature.generate_signature_header(text, app.extensions["stripe_sandbox"].webhook_secret)
    return client.post("/api/stripe/webhook", data=text.encode(), content_type="application/json",
                       headers={"Stripe-Signature": signature})


def event_text(event_id: str = "evt_malformed", kind: str | None = "checkout.session.completed",
               obj: object = None, **extra) -> str:
    event = {"id": event_id, "object": "event", "created": int(time.time()), "livemode": False,
             "data": {"object": obj if obj is not None else {"id": "cs_made", "object": "checkout.session"}}, **extra}
    if kind is not None:
        event["type"] = kind
    return json.dumps(event)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


MALFORMED = {
    "data not an object": event_text(data="a string"),
    "data holding a list": event_text(data={"object": [1, 2, 3]}),
    "a list where the object belongs": event_text(obj=[{"id": "cs_made"}]),
    "metadata a list": event_text(obj={"id": "cs_made", "object": "checkout.session", "metadata": ["topup_id", "1"]}),
    "an id of 300 characters": event_text("evt_" + "x" * 296),
    "a NUL in the id": event_text("evt_nul\u0000id"),
    "a NUL in the type": event_text(kind="checkout.session.completed\u0000"),
    "a NUL deep in the data": event_text(obj={"id": "cs_made", "metadata": {"note": "a\u0000b"}}),
    "a raw NUL byte": event_text().replace("cs_made", "cs_\x00made"),
    "100,000 nested brackets": event_text().replace('"cs_made"', nested(100_000)),
    "nesting deeper than Stripe's": event_text(obj={"id": "cs_made", "extra": json.loads(nested(40))}),
    "no type": event_text(kind=None),
    "a type that is a number": event_text(kind=None, type=42),
    "no data": json.dumps({"id": "evt_nodata", "object": "event", "type": "payment_intent.succeeded"}),
    "a JSON list": json.dumps([{"id": "evt_list", "object": "event"}]),
    "not JSON": "checkout.session.completed, please credit",
    "not an event object": json.dumps({"id": "cs_made", "object": "checkout.session"}),
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_signed_malformed_event_is_stored_as_failed_with_a_reason_and_stays_failed_on_replay(app, client, body):
    answer = send(app, client, body)
    assert answer.status_code == 200 and answer.json["status"] == "failed"
    with app.app_context():
        [event] = db.session.scalars(select(WebhookEvent)).all()
        assert event.status == "failed" and event.error.startswith("Malformed")
        assert len(event.stripe_event_id) <= 255 and "\x00" not in event.stripe_event_id + event.type
    assert send(app, client, body).status_code == 200  # Stripe's redelivery: the same event, stored once
    replayed = app.test_cli_runner().invoke(args=["stripe", "replay", "--failed"])
    assert replayed.exit_code == 1 and ": failed - Malformed" in replayed.output
    with app.app_context():
        assert db.session.scalars(select(WebhookEvent.status)).all() == ["failed"]


@pytest.fixture
def customer(app, client, make_company):
    company_id, email = make_company(name="Fehlerhaft GmbH")
    log_in(client, email)
    return company_id


def waiting_topup(app, client, customer) -> Topup:
    assert start_topup(client, "100").status_code == 303
    with app.app_context():
        topup = db.session.scalar(select(Topup).where(Topup.company_id == customer))
        db.session.expunge(topup)
        return topup


@pytest.mark.parametrize("changes", [
    {"amount_total": "10000"},  # an amount as text
    {"amount_total": 10000.0},  # ... or as a float
    {"amount_total": True},  # a bool is no amount, though Python counts it as 1
    {"metadata": {"topup_id": 7}},  # metadata values are strings at Stripe
    {"metadata": "topup_id=7"},
    {"livemode": "false"},
    {"customer": ["cus_1"]},
])
def test_wrong_types_in_a_payment_report_fail_the_event_and_leave_the_top_up_as_it_was(app, client, customer, changes):
    topup = waiting_topup(app, client, customer)
    with app.app_context():
        customer_id = db.session.get(Company, customer).stripe_customer_id
    obj = {"id": topup.stripe_checkout_session_id, "object": "checkout.session", "mode": "payment",
           "status": "complete", "payment_status": "paid", "amount_total": 10000, "currency": "eur",
           "customer": customer_id, "livemode": False, "metadata": {"topup_id": str(topup.id)}}
    obj.update(changes)
    answer = send(app, client, event_text("evt_types", obj=obj))
    assert answer.status_code == 200 and answer.json["status"] == "failed"
    with app.app_context():
        event = db.session.scalar(select(WebhookEvent).where(WebhookEvent.stripe_event_id == "evt_types"))
        assert event.error.startswith("MalformedObject")
        assert db.session.get(Topup, topup.id).status == "pending"  # neither credited nor put under review
        assert db.session.get(PrepaidBalance, customer).balance == 0


def test_an_event_whose_handler_raised_stays_failed_until_a_replay_succeeds(app, client, customer, monkeypatch):
    import core.payments.webhooks

    def broken(*_args):
        raise KeyError("evt\x00with a NUL")  # even the error's text must be storable

    monkeypatch.setitem(core.payments.webhooks.HANDLERS, "checkout.session.completed", broken)
    monkeypatch.setitem(core.payments.webhooks.HANDLERS, "payment_intent.succeeded", broken)
    top_up(client, "100")
    replayed = app.test_cli_runner().invoke(args=["stripe", "replay", "--failed"])
    assert replayed.exit_code == 1
    with app.app_context():
        failed = db.session.scalars(select(WebhookEvent).where(WebhookEvent.status == "failed")).all()
        assert len(failed) == 2 and all(e.attempts == 2 and "KeyError" in e.error for e in failed)
    monkeypatch.undo()
    assert app.test_cli_runner().invoke(args=["stripe", "replay", "--failed"]).exit_code == 0
    with app.app_context():
        assert db.session.get(PrepaidBalance, customer).balance == eur("100")


def stored_but_not_processed(app, webhooks, *, counted: bool) -> None:
    """What a process that died after storing (and perhaps counting) the events leaves behind."""
    from core.payments.webhooks import start_processing

    with app.app_context():
        gateway = app.extensions["stripe_gateway"]
        for payload, signature in webhooks.held:
            row = store_event(db.session, gateway, payload.encode(), signature)
            db.session.commit()
            if counted:
                start_processing(db.session, row.id)
                db.session.commit()


@pytest.mark.parametrize("counted", [False, True], ids=["died after storing", "died in the handler"])
def test_events_left_received_by_a_dead_process_are_picked_up_by_replay_once_they_are_stuck(
        app, client, customer, webhooks, counted):
    webhooks.hold = True
    top_up(client, "100")
    stored_but_not_processed(app, webhooks, counted=counted)
    runner = app.test_cli_runner()
    assert "processed" not in runner.invoke(args=["stripe", "replay", "--failed"]).output  # not stuck yet
    with app.app_context():
        db.session.execute(update(WebhookEvent).values(received_at=utcnow() - STUCK_AFTER - timedelta(seconds=1)))
        db.session.commit()
    result = runner.invoke(args=["stripe", "replay", "--failed"])
    assert result.exit_code == 0 and "checkout.session.completed: processed" in result.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).where(WebhookEvent.status == "received")) == 0
        assert db.session.get(PrepaidBalance, customer).balance == eur("100")


def test_the_sweep_processes_stuck_events_and_leaves_failed_ones_to_staff(app, client, customer, webhooks,
                                                                         monkeypatch):
    from app.jobs import process_stuck_events

    webhooks.hold = True
    top_up(client, "100")
    stored_but_not_processed(app, webhooks, counted=False)
    assert send(app, client, MALFORMED["no type"]).status_code == 200
    with app.app_context():
        assert process_stuck_events() == 0  # nothing is stuck yet
        db.session.execute(update(WebhookEvent).values(received_at=utcnow() - STUCK_AFTER - timedelta(seconds=1)))
        db.session.commit()
        assert process_stuck_events() == len(webhooks.held)
        statuses = db.session.scalars(select(WebhookEvent.status)).all()
        assert statuses.count("failed") == 1 and "received" not in statuses
        assert db.session.get(PrepaidBalance, customer).balance == eur("100")
