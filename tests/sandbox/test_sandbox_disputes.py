"""Disputes (the dispute test card, a returned SEPA debit, evidence decides), refunds that fail later,
and Checkout Sessions that expire by themselves."""

from __future__ import annotations

import time

import pytest
import stripe

from stripe_sandbox import SandboxHTTPClient, StripeSandbox
from tests.sandbox.sandbox_helpers import CARD_OK, IBAN_OK, WEBHOOK_SECRET, Deliveries, payment_session_params, submit

CARD_DISPUTED = "card:4000000000000259"
CARD_REFUND_FAILS = "card:4000000000005126"
IBAN_RETURNED = "sepa:DE35370400440532013002"


def paid(client, page, customer, option, amount=5000):
    session = client.v1.checkout.sessions.create(params=payment_session_params(customer.id, amount))
    submit(page, session, option)
    return client.v1.checkout.sessions.retrieve(session.id).payment_intent


def test_the_dispute_test_card_pays_then_opens_a_dispute_awaiting_evidence(client, page, customer, deliveries):
    intent_id = paid(client, page, customer, CARD_DISPUTED)
    assert client.v1.payment_intents.retrieve(intent_id).status == "succeeded"
    [dispute] = client.v1.disputes.list(params={"payment_intent": intent_id}).data
    assert (dispute.status, dispute.reason, dispute.amount, dispute.currency) == ("needs_response", "fraudulent", 5000,
                                                                                   "eur")
    assert client.v1.charges.retrieve(dispute.charge).disputed is True
    types = deliveries.types()
    assert types.index("payment_intent.succeeded") < types.index("charge.dispute.created")
    assert "charge.dispute.funds_withdrawn" in types


@pytest.mark.parametrize("evidence, status, events", [
    ("winning_evidence", "won", ["charge.dispute.updated", "charge.dispute.closed", "charge.dispute.funds_reinstated"]),
    ("losing_evidence", "lost", ["charge.dispute.updated", "charge.dispute.closed"]),
    ("some other text", "under_review", ["charge.dispute.updated"]),
])
def test_evidence_decides_a_dispute_as_in_stripes_test_mode(client, page, customer, deliveries, evidence, status,
                                                             events):
    intent_id = paid(client, page, customer, CARD_DISPUTED)
    [dispute] = client.v1.disputes.list(params={"payment_intent": intent_id}).data
    before = len(deliveries.received)
    updated = client.v1.disputes.update(dispute.id, params={"evidence": {"uncategorized_text": evidence}})
    assert updated.status == status and updated.evidence.uncategorized_text == evidence
    assert deliveries.types()[before:] == events


def test_a_closed_dispute_takes_no_more_evidence_and_accepting_one_loses_it(client, page, customer):
    intent_id = paid(client, page, customer, CARD_DISPUTED)
    [dispute] = client.v1.disputes.list(params={"payment_intent": intent_id}).data
    assert client.v1.disputes.close(dispute.id).status == "lost"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.disputes.update(dispute.id, params={"evidence": {"uncategorized_text": "winning_evidence"}})


def test_a_returned_sepa_debit_is_a_dispute_lost_from_the_start(client, page, customer, sandbox, deliveries):
    intent_id = paid(client, page, customer, IBAN_RETURNED)
    assert client.v1.disputes.list(params={"payment_intent": intent_id}).data == []  # not before it settled
    sandbox.settle_pending()
    [dispute] = client.v1.disputes.list(params={"payment_intent": intent_id}).data
    assert dispute.status == "lost" and dispute.payment_method_details is None
    assert deliveries.types()[-3:] == ["charge.dispute.created", "charge.dispute.funds_withdrawn",
                                       "charge.dispute.closed"]


def test_any_settled_payment_can_be_returned_later_but_only_once(client, page, customer, sandbox):
    intent_id = paid(client, page, customer, IBAN_OK)
    sandbox.settle_pending()
    assert sandbox.dispute_payment(intent_id)["status"] == "lost"
    card_intent = paid(client, page, customer, CARD_OK)
    assert sandbox.dispute_payment(card_intent, reason="product_not_received")["status"] == "needs_response"
    with pytest.raises(Exception):
        sandbox.dispute_payment(card_intent)


def test_a_refund_of_the_refund_failure_card_starts_succeeded_then_fails(client, page, customer, deliveries):
    intent_id = paid(client, page, customer, CARD_REFUND_FAILS)
    refund = client.v1.refunds.create(params={"payment_intent": intent_id, "amount": 1000})
    assert refund.status == "succeeded"  # as the API answers; the failure follows
    assert client.v1.refunds.retrieve(refund.id).status == "failed"
    charge = client.v1.charges.retrieve(refund.charge)
    assert charge.amount_refunded == 0 and charge.refunds.data[0].status == "failed"
    assert deliveries.types()[-5:] == ["charge.refunded", "refund.created", "charge.refund.updated", "refund.updated",
                                       "refund.failed"]


def test_any_refund_can_be_canceled_later(client, page, customer, sandbox, deliveries):
    intent_id = paid(client, page, customer, CARD_OK)
    refund = sandbox.refund_from_dashboard(intent_id, amount=1000)
    assert sandbox.fail_refund(refund["id"], "canceled")["status"] == "canceled"
    assert deliveries.types()[-2:] == ["charge.refund.updated", "refund.updated"]


def test_an_open_session_expires_by_itself_after_the_configured_time():
    deliveries = Deliveries()
    sandbox = StripeSandbox(webhook_secret=WEBHOOK_SECRET, deliver=deliveries, settle_delay_seconds=None,
                            checkout_expiry_seconds=1)
    client = stripe.StripeClient("sk_test_sandbox", http_client=SandboxHTTPClient(sandbox))
    session = client.v1.checkout.sessions.create(params=payment_session_params(None))
    assert session.expires_at == session.created + 1
    deadline = time.monotonic() + 10
    while "checkout.session.expired" not in deliveries.types() and time.monotonic() < deadline:
        time.sleep(0.05)  # nobody asks the sandbox anything meanwhile
    assert deliveries.of_type("checkout.session.expired")[0]["data"]["object"]["id"] == session.id


def test_a_session_expires_after_24_hours_by_default(client, clock):
    session = client.v1.checkout.sessions.create(params=payment_session_params(None))
    assert session.expires_at == int(clock.now) + 24 * 60 * 60
