"""The REST API's general behaviour: customers, errors, authentication, idempotency, events."""

from __future__ import annotations

import json
import threading

import pytest
import stripe

from stripe_sandbox import SandboxHTTPClient
from stripe_sandbox.api import handle_request
from stripe_sandbox.params import parse_form
from tests.sandbox.sandbox_helpers import (
    CARD_INSUFFICIENT_FUNDS,
    CARD_OK,
    payment_session_params,
    save_payment_method,
    submit,
)


def test_a_customer_is_created_with_email_name_and_metadata_and_can_be_retrieved(client):
    created = client.v1.customers.create(params={"email": "ada@example.com", "name": "Ada",
                                                 "metadata": {"account_id": "42"}})

    fetched = client.v1.customers.retrieve(created.id)

    assert created.id.startswith("cus_") and created.object == "customer"
    assert (fetched.email, fetched.name, fetched.metadata.to_dict()) == ("ada@example.com", "Ada",
                                                                         {"account_id": "42"})
    assert fetched.livemode is False and isinstance(fetched.created, int)


@pytest.mark.parametrize("call", [
    lambda c: c.v1.customers.retrieve("cus_missing"),
    lambda c: c.v1.checkout.sessions.retrieve("cs_test_missing"),
    lambda c: c.v1.payment_intents.retrieve("pi_missing"),
    lambda c: c.v1.payment_methods.retrieve("pm_missing"),
    lambda c: c.v1.setup_intents.retrieve("seti_missing"),
    lambda c: c.v1.refunds.retrieve("re_missing"),
    lambda c: c.v1.charges.retrieve("ch_missing"),
    lambda c: c.v1.events.retrieve("evt_missing"),
])
def test_an_unknown_id_is_a_404_invalid_request_error_with_code_resource_missing(client, call):
    with pytest.raises(stripe.InvalidRequestError) as raised:
        call(client)

    assert raised.value.http_status == 404
    assert raised.value.code == "resource_missing"
    assert "No such" in raised.value.user_message


def test_a_session_for_an_unknown_customer_is_a_400_on_the_customer_param(client):
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.checkout.sessions.create(params=payment_session_params("cus_missing"))

    assert (raised.value.http_status, raised.value.code, raised.value.param) == (400, "resource_missing", "customer")


def test_a_missing_required_param_is_a_400_naming_it(client):
    params = payment_session_params(None)
    del params["success_url"]

    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.checkout.sessions.create(params=params)

    assert (raised.value.code, raised.value.param) == ("parameter_missing", "success_url")


def test_an_unknown_param_is_rejected_like_stripe_does(client):
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.customers.create(params={"emial": "typo@example.com"})

    assert (raised.value.code, raised.value.param) == ("parameter_unknown", "emial")


def test_a_nested_unknown_param_is_named_with_its_full_path(client):
    params = payment_session_params(None)
    params["line_items"][0]["price_data"]["unit_price"] = 5

    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.checkout.sessions.create(params=params)

    assert raised.value.param == "line_items[0][price_data][unit_price]"


def test_amounts_below_the_minimum_are_rejected(client):
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.payment_intents.create(params={"amount": 10, "currency": "eur"})

    assert (raised.value.code, raised.value.param) == ("amount_too_small", "amount")


def test_expires_at_must_be_between_30_minutes_and_24_hours_ahead(client, clock):
    for too_soon_or_late in (int(clock.now) + 60, int(clock.now) + 25 * 3600):
        with pytest.raises(stripe.InvalidRequestError) as raised:
            client.v1.checkout.sessions.create(params=payment_session_params(None, expires_at=too_soon_or_late))
        assert raised.value.param == "expires_at"
    ok = client.v1.checkout.sessions.create(params=payment_session_params(None, expires_at=int(clock.now) + 7200))
    assert ok.expires_at == int(clock.now) + 7200


def test_a_request_without_an_api_key_is_a_401(sandbox):
    answer = handle_request(sandbox, "GET", "/v1/customers/cus_1", {}, None)

    assert answer.status == 401
    assert "You did not provide an API key" in json.loads(answer.body)["error"]["message"]


def test_an_empty_api_key_is_an_authentication_error(sandbox):
    client = stripe.StripeClient("", http_client=SandboxHTTPClient(sandbox))

    with pytest.raises(stripe.AuthenticationError) as raised:
        client.v1.customers.create(params={"email": "a@example.com"})

    assert raised.value.http_status == 401


def test_a_live_key_is_refused_with_an_authentication_error(sandbox):
    client = stripe.StripeClient("sk_live_abcdefghijklmnop", http_client=SandboxHTTPClient(sandbox))

    with pytest.raises(stripe.AuthenticationError) as raised:
        client.v1.customers.create(params={"email": "a@example.com"})

    assert "Invalid API Key" in raised.value.user_message
    assert "abcdefghijklmnop" not in raised.value.user_message


def test_an_unknown_endpoint_is_a_404_invalid_request_error(client):
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.raw_request("get", "/v1/invoices/in_123")

    assert raised.value.http_status == 404
    assert "Unrecognized request URL" in raised.value.user_message


def test_the_same_idempotency_key_and_params_replay_the_same_object_without_a_second_effect(client, sandbox):
    params = payment_session_params(None)

    first = client.v1.checkout.sessions.create(params=params, options={"idempotency_key": "topup-5"})
    second = client.v1.checkout.sessions.create(params=params, options={"idempotency_key": "topup-5"})

    assert first.id == second.id
    assert second.last_response.headers["Idempotent-Replayed"] == "true"
    assert len(client.v1.checkout.sessions.list().data) == 1


def test_the_same_idempotency_key_with_other_params_is_an_idempotency_error(client):
    client.v1.checkout.sessions.create(params=payment_session_params(None, 1000),
                                       options={"idempotency_key": "topup-6"})

    with pytest.raises(stripe.IdempotencyError) as raised:
        client.v1.checkout.sessions.create(params=payment_session_params(None, 2000),
                                           options={"idempotency_key": "topup-6"})

    assert raised.value.http_status == 400
    assert "topup-6" in raised.value.user_message


def test_a_declined_off_session_payment_is_replayed_as_the_same_error_under_its_key(client, page, customer):
    pm_id = save_payment_method(client, page, customer.id, CARD_INSUFFICIENT_FUNDS)
    params = {"amount": 1000, "currency": "eur", "customer": customer.id, "payment_method": pm_id,
              "confirm": True, "off_session": True}
    errors = []
    for _ in range(2):
        with pytest.raises(stripe.CardError) as raised:
            client.v1.payment_intents.create(params=params, options={"idempotency_key": "auto-1"})
        errors.append(raised.value)

    assert errors[0].error.payment_intent.id == errors[1].error.payment_intent.id
    assert len(client.v1.payment_intents.list(params={"customer": customer.id}).data) == 1


def test_events_are_listed_newest_first_and_filtered_by_type_and_created(client, page, customer, clock):
    session = client.v1.checkout.sessions.create(params=payment_session_params(customer.id))
    clock.advance(60)
    submit(page, session, CARD_OK)

    completed = client.v1.events.list(params={"type": "checkout.session.completed"})
    later = client.v1.events.list(params={"created": {"gte": int(clock.now)}, "limit": 100})
    everything = client.v1.events.list(params={"limit": 100})

    assert [e.data.object.id for e in completed.data] == [session.id]
    assert "customer.created" not in [e.type for e in later.data]
    assert everything.data[0].type == "checkout.session.completed"
    assert everything.data[-1].type == "customer.created"
    assert client.v1.events.retrieve(completed.data[0].id).type == "checkout.session.completed"


def test_an_event_keeps_a_snapshot_of_its_object_at_that_time(client, page, customer, sandbox):
    session = client.v1.checkout.sessions.create(params=payment_session_params(customer.id))
    submit(page, session, CARD_OK)
    intent_id = client.v1.checkout.sessions.retrieve(session.id).payment_intent

    created = client.v1.events.list(params={"type": "payment_intent.created"}).data[0]
    succeeded = client.v1.events.list(params={"type": "payment_intent.succeeded"}).data[0]

    assert created.data.object.id == succeeded.data.object.id == intent_id
    assert created.data.object.status == "requires_payment_method"
    assert succeeded.data.object.status == "succeeded"


def test_events_list_pages_with_starting_after(client):
    for i in range(5):
        client.v1.customers.create(params={"email": f"c{i}@example.com"})

    first_page = client.v1.events.list(params={"limit": 3})
    second_page = client.v1.events.list(params={"limit": 3, "starting_after": first_page.data[-1].id})

    assert first_page.has_more is True and second_page.has_more is False
    assert len({e.id for e in first_page.data + second_page.data}) == 5


def test_expand_on_a_field_that_is_not_an_id_is_an_invalid_request(client):
    session = client.v1.checkout.sessions.create(params=payment_session_params(None))

    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["no_such_field"]})

    assert raised.value.param == "expand"


def test_bracket_form_encoding_parses_into_nested_dicts_and_lists():
    body = ("metadata[topup_id]=5&payment_method_types[0]=card&payment_method_types[1]=sepa_debit"
            "&expand[]=payment_intent&line_items[0][price_data][unit_amount]=1250"
            "&line_items[0][price_data][product_data][name]=Top-up&line_items[0][quantity]=1"
            "&success_url=http%3A%2F%2Fx.test%2F%3Fs%3D%7BCHECKOUT_SESSION_ID%7D")

    assert parse_form(body) == {
        "metadata": {"topup_id": "5"},
        "payment_method_types": ["card", "sepa_debit"],
        "expand": ["payment_intent"],
        "line_items": [{"price_data": {"unit_amount": "1250", "product_data": {"name": "Top-up"}},
                        "quantity": "1"}],
        "success_url": "http://x.test/?s={CHECKOUT_SESSION_ID}",
    }


def test_concurrent_requests_from_many_threads_are_all_applied(client):
    def create_some():
        for _ in range(10):
            client.v1.customers.create(params={"email": "t@example.com"})

    threads = [threading.Thread(target=create_some) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    listed = client.v1.events.list(params={"type": "customer.created", "limit": 100})
    assert len({e.data.object.id for e in listed.data}) == 80
