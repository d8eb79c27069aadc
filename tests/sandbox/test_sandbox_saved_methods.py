"""Saving a payment method in setup mode, charging it off-session, listing and detaching it."""

from __future__ import annotations

import pytest
import stripe

from tests.sandbox.sandbox_helpers import (
    BASE_URL,
    CARD_AUTHENTICATION,
    CARD_INSUFFICIENT_FUNDS,
    CARD_OK,
    IBAN_FAILS,
    IBAN_OK,
    page_path,
    save_payment_method,
    submit,
)


def off_session_payment(client, customer_id: str, pm_id: str, amount: int = 1500, key: str | None = None):
    params = {"amount": amount, "currency": "eur", "customer": customer_id, "payment_method": pm_id,
              "confirm": True, "off_session": True, "metadata": {"topup_id": "9"},
              "description": "Automatic top-up"}
    return client.v1.payment_intents.create(params=params, options={"idempotency_key": key} if key else {})


def test_a_setup_session_shows_save_instead_of_an_amount(client, page, customer):
    session = client.v1.checkout.sessions.create(params={
        "mode": "setup", "customer": customer.id, "payment_method_types": ["card"],
        "success_url": f"{BASE_URL}/ok"})

    html = page.get(page_path(session)).get_data(as_text=True)

    assert session.payment_status == "no_payment_required" and session.amount_total is None
    assert "Save a payment method" in html
    assert "ada@example.com" in html
    assert "€" not in html


def test_a_setup_session_saves_the_card_through_a_succeeded_setup_intent(client, page, customer, deliveries):
    pm_id = save_payment_method(client, page, customer.id, CARD_OK)

    pm = client.v1.payment_methods.retrieve(pm_id)
    assert (pm.type, pm.customer) == ("card", customer.id)
    assert (pm.card.brand, pm.card.last4, pm.card.exp_month) == ("visa", "4242", 12)
    assert pm.card.exp_year >= 2030
    seti = deliveries.of_type("setup_intent.succeeded")[-1]["data"]["object"]
    assert (seti["status"], seti["payment_method"], seti["customer"]) == ("succeeded", pm_id, customer.id)
    assert seti["metadata"] == {"purpose": "auto-top-up"}
    assert client.v1.setup_intents.retrieve(seti["id"]).status == "succeeded"
    completed = deliveries.of_type("checkout.session.completed")[-1]["data"]["object"]
    assert (completed["mode"], completed["setup_intent"]) == ("setup", seti["id"])


def test_a_card_declined_outright_cannot_even_be_saved(client, page, customer):
    session = client.v1.checkout.sessions.create(params={
        "mode": "setup", "customer": customer.id, "success_url": f"{BASE_URL}/ok"})

    response = submit(page, session, "card:other", card_number="4000 0000 0000 0002")

    assert "Your card was declined." in response.get_data(as_text=True)
    assert client.v1.checkout.sessions.retrieve(session.id).status == "open"
    assert client.v1.payment_methods.list(params={"customer": customer.id}).data == []


def test_an_off_session_payment_with_a_saved_4242_succeeds(client, page, customer, deliveries):
    pm_id = save_payment_method(client, page, customer.id, CARD_OK)

    intent = off_session_payment(client, customer.id, pm_id)

    assert (intent.status, intent.amount_received, intent.payment_method) == ("succeeded", 1500, pm_id)
    assert intent.latest_charge.startswith("ch_")
    assert client.v1.charges.retrieve(intent.latest_charge).amount == 1500
    assert deliveries.of_type("payment_intent.succeeded")[-1]["data"]["object"]["id"] == intent.id


def test_an_off_session_payment_with_a_saved_9995_raises_a_card_error(client, page, customer, deliveries):
    pm_id = save_payment_method(client, page, customer.id, CARD_INSUFFICIENT_FUNDS)

    with pytest.raises(stripe.CardError) as raised:
        off_session_payment(client, customer.id, pm_id)

    error = raised.value
    assert error.http_status == 402
    assert error.code == "card_declined"
    assert error.error.decline_code == "insufficient_funds"
    assert error.user_message == "Your card has insufficient funds."
    failed_intent = error.error.payment_intent
    assert failed_intent.status == "requires_payment_method"
    assert failed_intent.last_payment_error.decline_code == "insufficient_funds"
    assert client.v1.payment_intents.retrieve(failed_intent.id).status == "requires_payment_method"
    assert deliveries.of_type("payment_intent.payment_failed")[-1]["data"]["object"]["id"] == failed_intent.id


def test_an_off_session_payment_with_a_saved_3155_needs_authentication(client, page, customer):
    pm_id = save_payment_method(client, page, customer.id, CARD_AUTHENTICATION)

    with pytest.raises(stripe.CardError) as raised:
        off_session_payment(client, customer.id, pm_id)

    assert raised.value.code == "authentication_required"
    assert raised.value.error.payment_intent.status == "requires_action"


def test_a_saved_sepa_method_is_processing_then_succeeds_or_fails(client, page, customer, sandbox, deliveries):
    good = save_payment_method(client, page, customer.id, IBAN_OK)
    bad = save_payment_method(client, page, customer.id, IBAN_FAILS)

    paid = off_session_payment(client, customer.id, good)
    unpaid = off_session_payment(client, customer.id, bad)
    assert (paid.status, unpaid.status) == ("processing", "processing")
    sandbox.settle_pending()

    assert client.v1.payment_intents.retrieve(paid.id).status == "succeeded"
    failed = client.v1.payment_intents.retrieve(unpaid.id)
    assert failed.status == "requires_payment_method"
    assert failed.last_payment_error.code == "insufficient_funds"
    assert {e["data"]["object"]["id"] for e in deliveries.of_type("payment_intent.payment_failed")} == {unpaid.id}


def test_saved_methods_are_listed_by_customer_and_type_and_can_be_detached(client, page, customer, deliveries):
    card = save_payment_method(client, page, customer.id, CARD_OK)
    sepa = save_payment_method(client, page, customer.id, IBAN_OK)

    cards = client.v1.payment_methods.list(params={"customer": customer.id, "type": "card"})
    debits = client.v1.payment_methods.list(params={"customer": customer.id, "type": "sepa_debit"})
    assert [pm.id for pm in cards.data] == [card]
    assert [pm.id for pm in debits.data] == [sepa]
    assert (debits.data[0].sepa_debit.last4, debits.data[0].sepa_debit.bank_code,
            debits.data[0].sepa_debit.country) == ("3000", "37040044", "DE")

    detached = client.v1.payment_methods.detach(card)

    assert detached.customer is None
    assert client.v1.payment_methods.list(params={"customer": customer.id, "type": "card"}).data == []
    assert deliveries.types()[-1] == "payment_method.detached"


def test_a_detached_method_cannot_be_charged_again(client, page, customer):
    card = save_payment_method(client, page, customer.id, CARD_OK)
    client.v1.payment_methods.detach(card)

    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.payment_intents.create(params={"amount": 1000, "currency": "eur", "payment_method": card,
                                                 "confirm": True, "off_session": True})

    assert raised.value.http_status == 400 and raised.value.param == "payment_method"


def test_a_method_of_one_customer_cannot_be_used_for_another(client, page, customer):
    card = save_payment_method(client, page, customer.id, CARD_OK)
    other = client.v1.customers.create(params={"email": "bob@example.com"})

    with pytest.raises(stripe.InvalidRequestError) as raised:
        off_session_payment(client, other.id, card)

    assert raised.value.param == "payment_method"


def test_a_payment_mode_session_with_setup_future_usage_saves_the_card(client, page, customer):
    session = client.v1.checkout.sessions.create(params={
        "mode": "payment", "customer": customer.id,
        "line_items": [{"price_data": {"currency": "eur", "unit_amount": 2000,
                                       "product_data": {"name": "Top-up"}}, "quantity": 1}],
        "payment_intent_data": {"setup_future_usage": "off_session"},
        "success_url": f"{BASE_URL}/ok"})

    submit(page, session, CARD_OK)

    intent = client.v1.payment_intents.retrieve(client.v1.checkout.sessions.retrieve(session.id).payment_intent)
    assert intent.setup_future_usage == "off_session"
    assert client.v1.payment_methods.retrieve(intent.payment_method).customer == customer.id


def test_a_card_paid_without_setup_future_usage_is_not_saved(client, page, customer):
    session = client.v1.checkout.sessions.create(params={
        "mode": "payment", "customer": customer.id,
        "line_items": [{"price_data": {"currency": "eur", "unit_amount": 2000,
                                       "product_data": {"name": "Top-up"}}, "quantity": 1}],
        "success_url": f"{BASE_URL}/ok"})

    submit(page, session, CARD_OK)

    assert client.v1.payment_methods.list(params={"customer": customer.id}).data == []


def test_payment_methods_can_be_attached_through_the_api(client, page, customer):
    card = save_payment_method(client, page, customer.id, CARD_OK)
    other = client.v1.customers.create(params={"email": "bob@example.com"})

    with pytest.raises(stripe.InvalidRequestError):
        client.v1.payment_methods.attach(card, params={"customer": other.id})
    assert client.v1.payment_methods.attach(card, params={"customer": customer.id}).customer == customer.id


def test_payment_intents_are_listed_by_customer_newest_first(client, page, customer):
    card = save_payment_method(client, page, customer.id, CARD_OK)
    first = off_session_payment(client, customer.id, card, 1000)
    second = off_session_payment(client, customer.id, card, 2000)

    listed = client.v1.payment_intents.list(params={"customer": customer.id})

    assert [pi.id for pi in listed.data] == [second.id, first.id]
