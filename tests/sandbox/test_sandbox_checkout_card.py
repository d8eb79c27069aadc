"""Paying a Checkout Session by card on the hosted page."""

from __future__ import annotations

import re

import stripe

from tests.sandbox.sandbox_helpers import (
    BASE_URL,
    CARD_AUTHENTICATION,
    CARD_INSUFFICIENT_FUNDS,
    CARD_OK,
    WEBHOOK_SECRET,
    authenticate,
    page_path,
    payment_session_params,
    submit,
)


def test_a_new_payment_session_is_open_unpaid_and_points_at_the_hosted_page(client, customer):
    session = client.v1.checkout.sessions.create(params=payment_session_params(customer.id))

    assert session.id.startswith("cs_test_")
    assert (session.object, session.mode, session.status) == ("checkout.session", "payment", "open")
    assert session.payment_status == "unpaid"
    assert (session.amount_total, session.currency) == (2500, "eur")
    assert session.customer == customer.id
    assert session.payment_intent is None
    assert session.url == f"{BASE_URL}/sandbox/stripe/checkout/{session.id}"
    assert session.metadata.to_dict() == {"topup_id": "5"}
    assert session.client_reference_id == "account-42"
    assert session.livemode is False


def test_the_hosted_page_shows_the_amount_description_test_cards_and_sandbox_banner(client, page, customer):
    session = client.v1.checkout.sessions.create(params=payment_session_params(customer.id, 1250))

    response = page.get(page_path(session))
    html = response.get_data(as_text=True)

    assert response.status_code == 200
    assert "€12.50" in html
    assert "Prepaid top-up" in html
    assert "Stripe sandbox — test mode" in html
    for number in ("4242 4242 4242 4242", "4000 0000 0000 9995", "4000 0025 0000 3155",
                   "DE89 3704 0044 0532 0130 00", "DE62 3704 0044 0532 0130 01"):
        assert number in html
    assert 'name="card_number"' in html and 'name="iban"' in html
    assert not re.search(r"<script|<link|<img|src=|url\(", html)  # self-contained, no JavaScript


def test_paying_with_4242_redirects_to_the_success_url_with_the_session_id(client, page, customer):
    session = client.v1.checkout.sessions.create(params=payment_session_params(customer.id))

    response = submit(page, session, CARD_OK)

    assert response.status_code == 303
    assert response.headers["Location"] == f"{BASE_URL}/topups/done?session_id={session.id}"


def test_a_paid_session_is_complete_and_its_expanded_payment_intent_succeeded(client, page, customer):
    session = client.v1.checkout.sessions.create(params=payment_session_params(customer.id))
    submit(page, session, CARD_OK)

    paid = client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["payment_intent"]})

    assert (paid.status, paid.payment_status) == ("complete", "paid")
    intent = paid.payment_intent
    assert isinstance(intent, stripe.PaymentIntent)
    assert intent.id.startswith("pi_")
    assert (intent.status, intent.amount, intent.amount_received) == ("succeeded", 2500, 2500)
    assert intent.metadata.to_dict() == {"topup_id": "5"}
    assert intent.description == "Prepaid top-up"
    assert intent.customer == customer.id
    charge = client.v1.charges.retrieve(intent.latest_charge)
    assert (charge.status, charge.paid, charge.amount, charge.payment_intent) == (
        "succeeded", True, 2500, intent.id)
    assert charge.payment_method_details.card.last4 == "4242"


def test_paying_sends_signed_webhooks_that_the_stripe_library_verifies(client, page, customer, deliveries):
    session = client.v1.checkout.sessions.create(params=payment_session_params(customer.id))
    submit(page, session, CARD_OK)

    verified = [stripe.Webhook.construct_event(payload, signature, WEBHOOK_SECRET)
                for payload, signature in deliveries.received]

    types = [event.type for event in verified]
    assert "payment_intent.succeeded" in types
    assert types[-1] == "checkout.session.completed"
    completed = verified[-1]
    assert completed.data.object.id == session.id
    assert completed.data.object.payment_status == "paid"
    assert completed.data.object.metadata["topup_id"] == "5"


def test_a_webhook_signed_with_another_secret_is_rejected(client, page, customer, deliveries):
    session = client.v1.checkout.sessions.create(params=payment_session_params(customer.id))
    submit(page, session, CARD_OK)
    payload, signature = deliveries.received[-1]

    try:
        stripe.Webhook.construct_event(payload, signature, "whsec_someone_else")
    except stripe.SignatureVerificationError:
        return
    raise AssertionError("a signature made with another secret was accepted")


def test_a_declined_card_reshows_the_page_with_the_decline_message(client, page, customer, deliveries):
    session = client.v1.checkout.sessions.create(params=payment_session_params(customer.id))

    response = submit(page, session, CARD_INSUFFICIENT_FUNDS)

    assert response.status_code == 200
    assert "Your card has insufficient funds." in response.get_data(as_text=True)
    failed = deliveries.of_type("payment_intent.payment_failed")
    assert len(failed) == 1
    error = failed[0]["data"]["object"]["last_payment_error"]
    assert (error["code"], error["decline_code"]) == ("card_declined", "insufficient_funds")
    still_open = client.v1.checkout.sessions.retrieve(session.id)
    assert (still_open.status, still_open.payment_status) == ("open", "unpaid")


def test_after_a_decline_the_customer_can_pay_with_another_card(client, page, customer):
    session = client.v1.checkout.sessions.create(params=payment_session_params(customer.id))
    submit(page, session, CARD_INSUFFICIENT_FUNDS)

    response = submit(page, session, CARD_OK)

    assert response.status_code == 303
    paid = client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["payment_intent"]})
    assert paid.payment_status == "paid"
    assert paid.payment_intent.status == "succeeded"
    assert paid.payment_intent.last_payment_error is None


def test_3155_asks_for_authentication_and_completing_it_pays(client, page, customer, deliveries):
    session = client.v1.checkout.sessions.create(params=payment_session_params(customer.id))

    response = submit(page, session, CARD_AUTHENTICATION)
    assert response.status_code == 303 and response.headers["Location"].endswith(page_path(session))
    challenge = page.get(page_path(session)).get_data(as_text=True)
    assert "Complete authentication" in challenge and "Fail authentication" in challenge
    waiting = client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["payment_intent"]})
    assert waiting.payment_intent.status == "requires_action"

    done = authenticate(page, session, "complete")

    assert done.status_code == 303
    assert done.headers["Location"] == f"{BASE_URL}/topups/done?session_id={session.id}"
    paid = client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["payment_intent"]})
    assert paid.payment_status == "paid" and paid.payment_intent.status == "succeeded"
    assert deliveries.types()[-1] == "checkout.session.completed"


def test_failing_authentication_reshows_the_page_and_records_a_failed_payment(client, page, customer, deliveries):
    session = client.v1.checkout.sessions.create(params=payment_session_params(customer.id))
    submit(page, session, CARD_AUTHENTICATION)

    response = authenticate(page, session, "fail")

    assert response.status_code == 200
    assert "unable to authenticate" in response.get_data(as_text=True)
    failed = deliveries.of_type("payment_intent.payment_failed")[-1]["data"]["object"]
    assert failed["last_payment_error"]["code"] == "payment_intent_authentication_failure"
    assert client.v1.checkout.sessions.retrieve(session.id).status == "open"


def test_an_invalid_card_number_is_refused_without_creating_a_payment(client, page, customer):
    session = client.v1.checkout.sessions.create(params=payment_session_params(customer.id))

    response = submit(page, session, "card:other", card_number="4242 4242 4242 4241")

    assert "Your card number is incorrect." in response.get_data(as_text=True)
    assert client.v1.checkout.sessions.retrieve(session.id).payment_intent is None


def test_another_valid_card_number_typed_in_the_free_field_pays(client, page, customer):
    session = client.v1.checkout.sessions.create(params=payment_session_params(customer.id))

    response = submit(page, session, "card:other", card_number="5555 5555 5555 4444")

    assert response.status_code == 303
    intent = client.v1.payment_intents.retrieve(
        client.v1.checkout.sessions.retrieve(session.id).payment_intent)
    charge = client.v1.charges.retrieve(intent.latest_charge)
    assert charge.payment_method_details.card.brand == "mastercard"


def test_a_form_without_the_pages_token_is_refused(client, page, customer):
    session = client.v1.checkout.sessions.create(params=payment_session_params(customer.id))

    response = page.post(f"{page_path(session)}/pay", data={"option": CARD_OK, "sandbox_token": "forged"})

    assert response.status_code == 403
    assert client.v1.checkout.sessions.retrieve(session.id).status == "open"


def test_cancel_redirects_to_the_cancel_url_and_leaves_the_session_open(client, page, customer):
    session = client.v1.checkout.sessions.create(params=payment_session_params(customer.id))

    response = page.get(f"{page_path(session)}/cancel")

    assert response.status_code == 303
    assert response.headers["Location"] == f"{BASE_URL}/topups/cancelled"
    assert client.v1.checkout.sessions.retrieve(session.id).status == "open"


def test_an_unknown_session_shows_a_404_page(page):
    response = page.get("/sandbox/stripe/checkout/cs_test_doesnotexist")

    assert response.status_code == 404
    assert "does not exist or has expired" in response.get_data(as_text=True)


def test_expiring_a_session_through_the_api_emits_an_event_and_hides_the_page(client, page, customer, deliveries):
    session = client.v1.checkout.sessions.create(params=payment_session_params(customer.id))

    expired = client.v1.checkout.sessions.expire(session.id)

    assert (expired.status, expired.url) == ("expired", None)
    assert deliveries.types()[-1] == "checkout.session.expired"
    assert page.get(page_path(session)).status_code == 404


def test_expiring_a_session_from_python_cancels_its_payment_intent(client, page, customer, sandbox, deliveries):
    session = client.v1.checkout.sessions.create(params=payment_session_params(customer.id))
    submit(page, session, CARD_INSUFFICIENT_FUNDS)

    sandbox.expire_session(session.id)

    intent = client.v1.payment_intents.retrieve(client.v1.checkout.sessions.retrieve(session.id).payment_intent)
    assert intent.status == "canceled"
    assert deliveries.types()[-2:] == ["payment_intent.canceled", "checkout.session.expired"]


def test_a_session_expires_by_itself_once_expires_at_has_passed(client, customer, clock, sandbox):
    session = client.v1.checkout.sessions.create(
        params=payment_session_params(customer.id, expires_at=int(clock.now) + 3600))

    clock.advance(3601)

    assert client.v1.checkout.sessions.retrieve(session.id).status == "expired"
    assert sandbox.events[-1]["type"] == "checkout.session.expired"


def test_expiring_a_completed_session_is_an_invalid_request(client, page, customer):
    session = client.v1.checkout.sessions.create(params=payment_session_params(customer.id))
    submit(page, session, CARD_OK)

    try:
        client.v1.checkout.sessions.expire(session.id)
    except stripe.InvalidRequestError as error:
        assert error.http_status == 400
        assert "status in [\"open\"]" in error.user_message
        return
    raise AssertionError("a completed session was expired")


def test_a_session_without_a_customer_that_saves_the_card_creates_one(client, page):
    params = payment_session_params(None, customer_email="new@example.com",
                                    payment_intent_data={"setup_future_usage": "off_session"})
    session = client.v1.checkout.sessions.create(params=params)

    submit(page, session, CARD_OK)

    done = client.v1.checkout.sessions.retrieve(session.id)
    assert done.customer and done.customer.startswith("cus_")
    assert client.v1.customers.retrieve(done.customer).email == "new@example.com"
    methods = client.v1.payment_methods.list(params={"customer": done.customer, "type": "card"})
    assert [pm.card.last4 for pm in methods.data] == ["4242"]
