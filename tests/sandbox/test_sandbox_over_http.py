"""The sandbox over loopback HTTP, as `make run` uses it: API, hosted page and webhooks."""

from __future__ import annotations

import pytest
import stripe
from flask import Flask, request

from stripe_sandbox import (
    API_URL_PREFIX,
    HTTPDeliverer,
    StripeSandbox,
    create_api_app,
    create_api_blueprint,
    create_checkout_blueprint,
)
from tests.sandbox.sandbox_helpers import (
    WEBHOOK_SECRET,
    form_token,
    http_get,
    http_post_form,
    payment_session_params,
    serve,
)


def test_the_api_app_answers_a_stripe_client_pointed_at_it_with_base_addresses(sandbox):
    with serve(create_api_app(sandbox)) as base_url:
        client = stripe.StripeClient("sk_test_sandbox", base_addresses={"api": base_url})
        created = client.v1.customers.create(params={"email": "http@example.com", "metadata": {"a": "1"}})
        fetched = client.v1.customers.retrieve(created.id)
        with pytest.raises(stripe.InvalidRequestError) as raised:
            client.v1.payment_intents.retrieve("pi_missing")

    assert fetched.email == "http@example.com"
    assert fetched.metadata.to_dict() == {"a": "1"}
    assert (raised.value.http_status, raised.value.code) == (404, "resource_missing")


def test_a_whole_payment_over_http_with_blueprints_and_the_http_deliverer():
    """The demo wiring: one app mounts the API and the hosted page and receives the webhooks."""
    received: list[stripe.Event] = []
    app = Flask(__name__)

    @app.post("/api/stripe/webhook")
    def webhook():
        received.append(stripe.Webhook.construct_event(
            request.get_data(as_text=True), request.headers["Stripe-Signature"], WEBHOOK_SECRET))
        return "", 200

    sandbox = StripeSandbox(webhook_secret=WEBHOOK_SECRET, settle_delay_seconds=None)
    app.register_blueprint(create_api_blueprint(sandbox))
    app.register_blueprint(create_checkout_blueprint(sandbox))

    with serve(app) as base_url:  # the port is known only now
        sandbox.checkout_base_url = base_url
        sandbox.deliver = HTTPDeliverer(f"{base_url}/api/stripe/webhook")
        client = stripe.StripeClient("sk_test_sandbox", base_addresses={"api": base_url + API_URL_PREFIX})
        customer = client.v1.customers.create(params={"email": "ada@example.com"})
        session = client.v1.checkout.sessions.create(
            params=payment_session_params(customer.id, success_url=f"{base_url}/done?cs={{CHECKOUT_SESSION_ID}}"),
            options={"idempotency_key": "topup-http-1"})

        status, html = http_get(session.url)
        assert status == 200 and "€25.00" in html
        status, headers = http_post_form(f"{session.url}/pay", {
            "sandbox_token": form_token(html), "option": "card:4242424242424242"})
        assert sandbox.wait_for_deliveries(10)
        paid = client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["payment_intent"]})

    assert status == 303 and headers["Location"] == f"{base_url}/done?cs={session.id}"
    assert (paid.payment_status, paid.payment_intent.status) == ("paid", "succeeded")
    assert [event.type for event in received][-1] == "checkout.session.completed"
    assert sandbox.undelivered_events() == []
