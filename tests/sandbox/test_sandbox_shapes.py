"""Every object the sandbox returns carries only fields of Stripe's own example of its type."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import stripe

from stripe_sandbox.objects import FIELDS_BEYOND_FIXTURES, merge_shapes, resolve_fixtures_path
from tests.sandbox.sandbox_helpers import (
    CARD_AUTHENTICATION,
    CARD_INSUFFICIENT_FUNDS,
    CARD_OK,
    IBAN_FAILS,
    IBAN_OK,
    payment_session_params,
    save_payment_method,
    submit,
)

EXAMPLES = json.loads(Path(resolve_fixtures_path()).read_text())["resources"]
FREE_FORM = {"metadata"}  # keys chosen by the application
# The library classes that declare the fields the fixture examples lack.
DECLARED_BY = {
    ("payment_method", "sepa_debit"): stripe.PaymentMethod.SepaDebit,
    ("payment_intent", "last_payment_error"): stripe.PaymentIntent.LastPaymentError,
    ("charge", "payment_method_details", "sepa_debit"): stripe.Charge.PaymentMethodDetails.SepaDebit,
}


def reference(object_type: str) -> dict:
    return merge_shapes(EXAMPLES[object_type], FIELDS_BEYOND_FIXTURES.get(object_type, {}))


def shape_problems(obj: dict, ref: dict, path: str) -> list[str]:
    problems = []
    for key, value in obj.items():
        where = f"{path}.{key}"
        if key not in ref:
            problems.append(f"{where} is not in Stripe's example")
        elif isinstance(value, dict) and key not in FREE_FORM:
            problems += nested_problems(value, ref[key], where)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, dict):
                    template = ref[key][0] if isinstance(ref[key], list) and ref[key] else None
                    problems += nested_problems(item, template, f"{where}[{i}]")
    return problems


def nested_problems(value: dict, ref, where: str) -> list[str]:
    """A nested Stripe object is checked against its own type; other hashes against the example's."""
    object_type = value.get("object") if isinstance(value.get("object"), str) else None
    if object_type == "list":
        return [p for i, item in enumerate(value["data"]) for p in
                shape_problems(item, reference(item["object"]), f"{where}.data[{i}]")]
    if object_type in EXAMPLES:
        return shape_problems(value, reference(object_type), where)
    if not isinstance(ref, dict):
        return [f"{where} is a hash where Stripe's example has {ref!r}"]
    return shape_problems(value, ref, where)


@pytest.fixture
def everything(client, page, customer, sandbox):
    """A run through every flow, so that the store holds every kind of object in every state."""
    for option in (CARD_OK, CARD_INSUFFICIENT_FUNDS, IBAN_OK, IBAN_FAILS, "card:4000000000000259",
                   "sepa:DE35370400440532013002", "card:4000000000005126"):
        session = client.v1.checkout.sessions.create(params=payment_session_params(customer.id))
        submit(page, session, option)
    session = client.v1.checkout.sessions.create(params=payment_session_params(customer.id))
    submit(page, session, CARD_AUTHENTICATION)
    sandbox.expire_session(session.id)
    sandbox.settle_pending()
    for dispute in client.v1.disputes.list().data:
        if dispute.status == "needs_response":
            client.v1.disputes.update(dispute.id, params={"evidence": {"uncategorized_text": "winning_evidence"}})
    failing = [pi for pi in client.v1.payment_intents.list(params={"limit": 100}).data if pi.status == "succeeded"]
    for intent in failing:
        client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 100})
    card = save_payment_method(client, page, customer.id, CARD_OK)
    declining = save_payment_method(client, page, customer.id, CARD_INSUFFICIENT_FUNDS)
    save_payment_method(client, page, customer.id, IBAN_OK)
    paid = client.v1.payment_intents.create(params={
        "amount": 5000, "currency": "eur", "customer": customer.id, "payment_method": card,
        "confirm": True, "off_session": True})
    client.v1.refunds.create(params={"payment_intent": paid.id, "amount": 1000})
    sandbox.refund_from_dashboard(paid.id)
    with pytest.raises(stripe.CardError) as declined:
        client.v1.payment_intents.create(params={
            "amount": 5000, "currency": "eur", "customer": customer.id, "payment_method": declining,
            "confirm": True, "off_session": True})
    client.v1.payment_methods.detach(card)
    return {"declined": declined.value, "session": session}


def test_the_scenario_produces_every_object_type_the_sandbox_knows(sandbox, everything):
    types = {obj["object"] for obj in sandbox.objects()}

    assert types == {"customer", "checkout.session", "payment_intent", "payment_method", "setup_intent",
                     "charge", "refund", "dispute", "event"}
    assert {o["status"] for o in sandbox.objects() if o["object"] == "dispute"} == {"won", "lost"}
    assert {o["status"] for o in sandbox.objects() if o["object"] == "refund"} >= {"succeeded", "failed"}
    statuses = {o["status"] for o in sandbox.objects() if o["object"] == "payment_intent"}
    assert statuses >= {"succeeded", "requires_payment_method", "canceled"}


def test_every_stored_object_and_event_snapshot_has_only_fields_of_stripes_example(sandbox, everything):
    problems = [p for obj in sandbox.objects()
                for p in shape_problems(obj, reference(obj["object"]), obj["id"])]

    assert problems == []


def test_expanded_and_listed_objects_and_error_bodies_have_only_example_fields(client, customer, everything):
    rendered = [
        client.v1.checkout.sessions.retrieve(everything["session"].id,
                                             params={"expand": ["payment_intent", "customer"]}),
        client.v1.payment_methods.list(params={"customer": customer.id}),
        client.v1.events.list(params={"limit": 100}),
        client.v1.disputes.list(params={"limit": 100}),
    ]
    error_body = everything["declined"].json_body["error"]

    problems = [p for obj in rendered for p in nested_problems(obj.to_dict(), None, obj.object)]
    problems += shape_problems(error_body["payment_intent"], reference("payment_intent"), "error.payment_intent")
    problems += shape_problems(error_body["payment_method"], reference("payment_method"), "error.payment_method")

    assert problems == []


def test_top_level_objects_keep_every_field_of_the_example(sandbox, everything):
    missing = []
    for obj in sandbox.objects():
        expected = set(EXAMPLES[obj["object"]])
        if obj["object"] == "payment_method":  # one variant sub-object per type
            expected = (expected - {"card"}) | {obj["type"]}
        missing += [f"{obj['id']}: {key}" for key in expected - set(obj)]

    assert missing == []


@pytest.mark.parametrize("path", sorted(DECLARED_BY))
def test_fields_beyond_the_fixtures_are_real_fields_declared_by_the_stripe_library(path):
    extra = FIELDS_BEYOND_FIXTURES[path[0]]
    for key in path[1:]:
        extra = extra[key]

    assert set(extra) <= set(DECLARED_BY[path].__annotations__)


def test_the_shape_check_catches_a_field_stripes_example_lacks_at_any_depth():
    session = dict(EXAMPLES["checkout.session"], made_up_field=1)
    method = json.loads(json.dumps(EXAMPLES["payment_method"]))
    method["card"]["checks"]["made_up_check"] = "pass"
    event = dict(EXAMPLES["event"], data={"object": dict(EXAMPLES["refund"], made_up=True)})

    assert shape_problems(session, reference("checkout.session"), "cs") == ["cs.made_up_field is not in Stripe's example"]
    assert shape_problems(method, reference("payment_method"), "pm") == [
        "pm.card.checks.made_up_check is not in Stripe's example"]
    assert shape_problems(event, reference("event"), "evt") == ["evt.data.object.made_up is not in Stripe's example"]
