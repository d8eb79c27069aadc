"""SEPA Direct Debit through Checkout: completed but unpaid, settled later."""

from __future__ import annotations

import stripe

from stripe_sandbox import SandboxHTTPClient, StripeSandbox
from tests.sandbox.sandbox_helpers import (
    BASE_URL,
    IBAN_FAILS,
    IBAN_OK,
    checkout_page,
    page_path,
    payment_session_params,
    submit,
)


def test_paying_by_sepa_completes_the_session_unpaid_with_a_processing_intent(client, page, customer, deliveries):
    session = client.v1.checkout.sessions.create(params=payment_session_params(customer.id))

    response = submit(page, session, IBAN_OK)

    assert response.status_code == 303
    done = client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["payment_intent"]})
    assert (done.status, done.payment_status) == ("complete", "unpaid")
    assert done.payment_intent.status == "processing"
    completed = deliveries.of_type("checkout.session.completed")
    assert len(completed) == 1 and completed[0]["data"]["object"]["payment_status"] == "unpaid"
    assert not deliveries.of_type("payment_intent.succeeded")


def test_settling_de89_pays_the_session_and_sends_async_payment_succeeded(client, page, customer, sandbox, deliveries):
    session = client.v1.checkout.sessions.create(params=payment_session_params(customer.id))
    submit(page, session, IBAN_OK)

    assert sandbox.settle_pending() == 1

    done = client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["payment_intent"]})
    assert done.payment_status == "paid"
    assert done.payment_intent.status == "succeeded"
    assert done.payment_intent.amount_received == 2500
    charge = client.v1.charges.retrieve(done.payment_intent.latest_charge)
    assert charge.status == "succeeded"
    assert charge.payment_method_details.sepa_debit.last4 == "3000"
    assert deliveries.types()[-2:] == ["payment_intent.succeeded", "checkout.session.async_payment_succeeded"]
    assert sandbox.settle_pending() == 0


def test_settling_de62_fails_the_payment_and_sends_async_payment_failed(client, page, customer, sandbox, deliveries):
    session = client.v1.checkout.sessions.create(params=payment_session_params(customer.id))
    submit(page, session, IBAN_FAILS)

    sandbox.settle_pending()

    done = client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["payment_intent"]})
    assert (done.status, done.payment_status) == ("complete", "unpaid")
    intent = done.payment_intent
    assert intent.status == "requires_payment_method"
    assert intent.last_payment_error.code == "insufficient_funds"
    assert deliveries.types()[-2:] == ["payment_intent.payment_failed", "checkout.session.async_payment_failed"]
    assert client.v1.charges.retrieve(intent.latest_charge).status == "failed"


def test_debits_settle_on_their_own_once_the_delay_has_passed_on_the_clock(clock, deliveries):
    sandbox = StripeSandbox(checkout_base_url=BASE_URL, deliver=deliveries,
                            settle_delay_seconds=3600, clock=clock)
    client = stripe.StripeClient("sk_test_sandbox", http_client=SandboxHTTPClient(sandbox))
    session = client.v1.checkout.sessions.create(params=payment_session_params(None))
    submit(checkout_page(sandbox), session, IBAN_OK)

    clock.advance(3599)
    assert client.v1.checkout.sessions.retrieve(session.id).payment_status == "unpaid"
    clock.advance(2)
    assert client.v1.checkout.sessions.retrieve(session.id).payment_status == "paid"
    assert deliveries.types()[-1] == "checkout.session.async_payment_succeeded"


def test_an_invalid_iban_is_refused_on_the_page(client, page, customer):
    session = client.v1.checkout.sessions.create(params=payment_session_params(customer.id))

    response = submit(page, session, "sepa:other", iban="DE00 1234 5678 9012 3456 78")

    assert "Your IBAN is incorrect." in response.get_data(as_text=True)
    assert client.v1.checkout.sessions.retrieve(session.id).status == "open"


def test_a_card_only_session_offers_no_sepa_and_refuses_an_iban(client, page, customer):
    session = client.v1.checkout.sessions.create(
        params=payment_session_params(customer.id, payment_method_types=["card"]))

    html = page.get(page_path(session)).get_data(as_text=True)
    response = submit(page, session, IBAN_OK)

    assert "DE89" not in html
    assert "Choose a payment method." in response.get_data(as_text=True)
