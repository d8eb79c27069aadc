"""Refunds through the API and from the "dashboard"."""

from __future__ import annotations

import pytest
import stripe

from stripe_sandbox import StripeAPIError
from tests.sandbox.sandbox_helpers import CARD_OK, IBAN_OK, payment_session_params, submit


@pytest.fixture
def paid_intent(client, page, customer):
    session = client.v1.checkout.sessions.create(params=payment_session_params(customer.id, 5000))
    submit(page, session, CARD_OK)
    return client.v1.payment_intents.retrieve(client.v1.checkout.sessions.retrieve(session.id).payment_intent)


def test_a_full_refund_refunds_the_charge_and_sends_charge_refunded(client, paid_intent, deliveries):
    refund = client.v1.refunds.create(params={"payment_intent": paid_intent.id, "metadata": {"topup_id": "5"}})

    assert refund.id.startswith("re_")
    assert (refund.amount, refund.status, refund.currency) == (5000, "succeeded", "eur")
    assert (refund.payment_intent, refund.charge) == (paid_intent.id, paid_intent.latest_charge)
    charge = client.v1.charges.retrieve(paid_intent.latest_charge)
    assert (charge.amount_refunded, charge.refunded) == (5000, True)
    event = deliveries.of_type("charge.refunded")[-1]["data"]["object"]
    assert (event["id"], event["amount_refunded"], event["refunded"]) == (charge.id, 5000, True)
    assert [r["id"] for r in event["refunds"]["data"]] == [refund.id]


def test_partial_refunds_add_up_and_the_charge_is_refunded_only_when_all_is_back(client, paid_intent):
    first = client.v1.refunds.create(params={"payment_intent": paid_intent.id, "amount": 2000})
    charge = client.v1.charges.retrieve(paid_intent.latest_charge)
    assert (charge.amount_refunded, charge.refunded) == (2000, False)

    second = client.v1.refunds.create(params={"charge": paid_intent.latest_charge, "amount": 3000})

    charge = client.v1.charges.retrieve(paid_intent.latest_charge)
    assert (charge.amount_refunded, charge.refunded) == (5000, True)
    listed = client.v1.refunds.list(params={"payment_intent": paid_intent.id})
    assert [r.id for r in listed.data] == [second.id, first.id]
    assert client.v1.refunds.retrieve(first.id).amount == 2000


def test_refunding_more_than_is_left_is_rejected_with_the_amount_param(client, paid_intent):
    client.v1.refunds.create(params={"payment_intent": paid_intent.id, "amount": 4000})

    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.refunds.create(params={"payment_intent": paid_intent.id, "amount": 1001})

    assert raised.value.http_status == 400
    assert raised.value.param == "amount"
    assert "€10.01" in raised.value.user_message and "€10.00" in raised.value.user_message
    assert client.v1.charges.retrieve(paid_intent.latest_charge).amount_refunded == 4000


def test_refunding_a_fully_refunded_payment_says_charge_already_refunded(client, paid_intent):
    client.v1.refunds.create(params={"payment_intent": paid_intent.id})

    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.refunds.create(params={"payment_intent": paid_intent.id, "amount": 1})

    assert raised.value.code == "charge_already_refunded"


def test_a_payment_still_processing_cannot_be_refunded(client, page, customer):
    session = client.v1.checkout.sessions.create(params=payment_session_params(customer.id))
    submit(page, session, IBAN_OK)
    intent_id = client.v1.checkout.sessions.retrieve(session.id).payment_intent

    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.refunds.create(params={"payment_intent": intent_id})

    assert raised.value.param == "payment_intent"


def test_a_refund_needs_a_payment_intent_or_a_charge(client):
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.refunds.create(params={"amount": 100})

    assert raised.value.code == "parameter_missing"


def test_a_dashboard_refund_needs_no_api_call_and_sends_charge_refunded(client, paid_intent, sandbox, deliveries):
    refund = sandbox.refund_from_dashboard(paid_intent.id, amount=1500)

    assert refund["amount"] == 1500 and refund["object"] == "refund"
    charge = client.v1.charges.retrieve(paid_intent.latest_charge)
    assert (charge.amount_refunded, charge.refunded) == (1500, False)
    event = deliveries.events()[-2]
    assert event["type"] == "charge.refunded"
    assert event["request"] == {"id": None, "idempotency_key": None}


def test_a_dashboard_refund_beyond_the_charge_raises_the_sandbox_error(paid_intent, sandbox):
    with pytest.raises(StripeAPIError) as raised:
        sandbox.refund_from_dashboard(paid_intent.id, amount=5001)

    assert (raised.value.status, raised.value.param) == (400, "amount")
