"""Webhook signing, delivery bookkeeping, redelivery and the HTTP deliverer."""

from __future__ import annotations

import json

import pytest
import stripe
from flask import Flask, request

from stripe_sandbox import DeliveryFailed, HTTPDeliverer, SandboxHTTPClient, StripeSandbox
from tests.sandbox.sandbox_helpers import BASE_URL, WEBHOOK_SECRET, serve


def make_client(sandbox):
    return stripe.StripeClient("sk_test_sandbox", http_client=SandboxHTTPClient(sandbox))


def test_each_event_is_delivered_once_as_its_json_with_a_verifiable_signature(client, deliveries, sandbox):
    customer = client.v1.customers.create(params={"email": "a@example.com"})

    (payload, signature), = deliveries.received
    event = stripe.Webhook.construct_event(payload, signature, WEBHOOK_SECRET)
    assert (event.type, event.data.object.id) == ("customer.created", customer.id)
    assert event.id.startswith("evt_") and event.livemode is False
    assert json.loads(payload)["id"] == sandbox.events[0]["id"]
    assert signature.startswith("t=") and ",v1=" in signature


def test_an_event_raised_by_an_api_request_names_that_request_and_its_idempotency_key(client, deliveries):
    client.v1.customers.create(params={"email": "a@example.com"}, options={"idempotency_key": "signup-1"})

    event = deliveries.events()[0]

    assert event["request"]["idempotency_key"] == "signup-1"
    assert event["request"]["id"].startswith("req_")


def test_a_failing_endpoint_leaves_events_undelivered_until_redelivered(clock):
    attempts: list[str] = []
    endpoint_up = False

    def flaky(payload: str, signature: str):
        attempts.append(json.loads(payload)["id"])
        if not endpoint_up:
            raise ConnectionError("endpoint down")

    sandbox = StripeSandbox(webhook_secret=WEBHOOK_SECRET, checkout_base_url=BASE_URL, deliver=flaky, clock=clock)
    make_client(sandbox).v1.customers.create(params={"email": "a@example.com"})
    event_id = sandbox.events[0]["id"]
    assert [e["id"] for e in sandbox.undelivered_events()] == [event_id]

    endpoint_up = True
    assert sandbox.redeliver(event_id) is True

    assert attempts == [event_id, event_id]
    assert sandbox.undelivered_events() == []
    assert make_client(sandbox).v1.events.retrieve(event_id).pending_webhooks == 0


def test_a_deliverer_returning_false_counts_as_not_delivered(clock):
    sandbox = StripeSandbox(deliver=lambda payload, signature: False, clock=clock)
    make_client(sandbox).v1.customers.create(params={"email": "a@example.com"})

    assert len(sandbox.undelivered_events()) == 1


def test_without_a_deliverer_events_are_recorded_with_no_pending_webhooks(clock):
    sandbox = StripeSandbox(clock=clock)
    make_client(sandbox).v1.customers.create(params={"email": "a@example.com"})

    assert sandbox.events[0]["pending_webhooks"] == 0
    assert sandbox.redeliver(sandbox.events[0]["id"]) is False


def test_redelivering_sends_the_same_event_again_with_a_fresh_signature(client, deliveries, sandbox):
    client.v1.customers.create(params={"email": "a@example.com"})
    event_id = sandbox.events[0]["id"]

    sandbox.redeliver(event_id)

    (first, _), (second, signature) = deliveries.received
    assert json.loads(second)["id"] == json.loads(first)["id"] == event_id
    assert stripe.Webhook.construct_event(second, signature, WEBHOOK_SECRET).id == event_id


def test_the_application_calling_the_api_from_its_webhook_handler_does_not_deadlock(clock):
    seen: list[str] = []
    holder: dict = {}

    def handler(payload: str, signature: str):
        event = json.loads(payload)
        if event["type"] == "customer.created":
            seen.append(holder["client"].v1.customers.retrieve(event["data"]["object"]["id"]).email)

    sandbox = StripeSandbox(deliver=handler, clock=clock)
    holder["client"] = make_client(sandbox)
    holder["client"].v1.customers.create(params={"email": "loop@example.com"})

    assert seen == ["loop@example.com"]


def test_the_http_deliverer_posts_signed_events_and_retries_after_a_server_error():
    calls: list[str] = []
    app = Flask(__name__)

    @app.post("/hook")
    def hook():
        calls.append(request.headers["Stripe-Signature"])
        if len(calls) == 1:
            return "try again", 500
        stripe.Webhook.construct_event(request.get_data(as_text=True), request.headers["Stripe-Signature"],
                                       WEBHOOK_SECRET)
        return "", 204

    with serve(app) as base_url:
        sandbox = StripeSandbox(webhook_secret=WEBHOOK_SECRET,
                                deliver=HTTPDeliverer(f"{base_url}/hook", backoff=0.01))
        make_client(sandbox).v1.customers.create(params={"email": "a@example.com"})
        assert sandbox.wait_for_deliveries(10)

    assert len(calls) == 2
    assert sandbox.undelivered_events() == []


def test_the_http_deliverer_gives_up_after_its_attempts_and_says_why():
    with serve(Flask(__name__)) as base_url:
        deliverer = HTTPDeliverer(f"{base_url}/missing", attempts=2, backoff=0.01)
        with pytest.raises(DeliveryFailed) as raised:
            deliverer("{}", "t=1,v1=x")

    assert "HTTP 404" in str(raised.value)
