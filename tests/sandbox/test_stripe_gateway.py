"""The gateway against the sandbox, through the real `stripe` library, without the app (the sandbox's
hosted checkout page, clicked through in `_saved_card`, runs on a bare Flask app of its own)."""

import pytest

from core.payments.gateway import InvalidWebhook, PaymentError, StripeGateway
from stripe_sandbox import SandboxHTTPClient, StripeSandbox

SECRET = "whsec_gateway_test"


@pytest.fixture
def sandbox():
    return StripeSandbox(webhook_secret=SECRET, checkout_base_url="http://portal.test", settle_delay_seconds=None)


@pytest.fixture
def gateway(sandbox):
    return StripeGateway("sk_test_gateway", SECRET, make_http_client=lambda: SandboxHTTPClient(sandbox), sandbox=True)


def checkout(gateway, customer_id, request_key="k1", amount_cents=5000):
    return gateway.create_payment_checkout(
        topup_id=7, request_key=request_key, customer_id=customer_id, amount_cents=amount_cents, description="Guthaben",
        payment_method_types=["card", "sepa_debit"], save_payment_method=True,
        success_url="http://portal.test/ok?session_id={CHECKOUT_SESSION_ID}", cancel_url="http://portal.test/no",
        locale="de",
    )


def test_a_retried_create_with_the_same_record_returns_the_same_checkout(gateway):
    customer_id = gateway.create_customer(1, "c1", "Test GmbH", "a@example.com")
    assert gateway.create_customer(1, "c1", "Test GmbH", "a@example.com") == customer_id
    first, again = checkout(gateway, customer_id), checkout(gateway, customer_id)
    assert first.id == again.id and first.url.startswith("http://portal.test/sandbox/stripe/checkout/cs_")
    assert (first.status, first.payment_status, first.amount_total, first.metadata) == ("open", "unpaid", 5000, {"topup_id": "7"})


def test_the_same_key_with_other_parameters_is_an_error_not_a_second_payment(gateway):
    customer_id = gateway.create_customer(1, "c1", "Test GmbH", None)
    checkout(gateway, customer_id)
    with pytest.raises(PaymentError) as error:
        checkout(gateway, customer_id, amount_cents=9999)
    assert error.value.kind == "request" and error.value.code == "idempotency_error"


def test_an_unknown_object_becomes_a_request_error_with_stripes_code(gateway):
    with pytest.raises(PaymentError) as error:
        gateway.retrieve_checkout_session("cs_test_missing")
    assert (error.value.kind, error.value.code) == ("request", "resource_missing")


def test_off_session_declines_carry_code_decline_code_and_a_safe_message(gateway, sandbox):
    customer_id = gateway.create_customer(2, "c2", "Decline GmbH", None)
    method_id = _saved_card(gateway, sandbox, customer_id, "4000000000009995")
    with pytest.raises(PaymentError) as error:
        gateway.charge_saved_method(attempt_key="a1", customer_id=customer_id, payment_method_id=method_id,
                                    amount_cents=2000, description="Auto", metadata={})
    assert (error.value.kind, error.value.code, error.value.decline_code) == ("card", "card_declined", "insufficient_funds")
    assert error.value.message and error.value.payment_intent["status"] == "requires_payment_method"


def test_a_saved_card_is_charged_off_session_and_listed(gateway, sandbox):
    customer_id = gateway.create_customer(3, "c3", "Ok GmbH", None)
    method_id = _saved_card(gateway, sandbox, customer_id, "4242424242424242")
    intent = gateway.charge_saved_method(attempt_key="a2", customer_id=customer_id, payment_method_id=method_id,
                                         amount_cents=2000, description="Auto", metadata={"topup_id": "9"})
    assert (intent.status, intent.amount, intent.metadata) == ("succeeded", 2000, {"topup_id": "9"})
    [method] = gateway.list_payment_methods(customer_id)
    assert (method.type, method.brand, method.last4, method.customer_id) == ("card", "visa", "4242", customer_id)
    refund = gateway.refund(refund_key="r1", payment_intent_id=intent.id, amount_cents=500, metadata={})
    assert refund.amount == 500 and [r.id for r in gateway.list_refunds(intent.id)] == [refund.id]
    charge = gateway.retrieve_charge(intent.latest_charge_id)
    assert (charge.amount, charge.amount_refunded, charge.payment_intent_id) == (2000, 500, intent.id)


def test_webhook_signatures_are_verified_on_the_raw_body(gateway, sandbox):
    import stripe

    payload = '{"id": "evt_1", "object": "event", "type": "ping"}'
    good = stripe.WebhookSignature.generate_signature_header(payload, SECRET)
    assert gateway.verify_event(payload.encode(), good)["id"] == "evt_1"
    for body, header in [(payload.replace("ping", "pong").encode(), good), (payload.encode(), None),
                         (payload.encode(), stripe.WebhookSignature.generate_signature_header(payload, "whsec_other")),
                         (b"\xff\xfe", good)]:
        with pytest.raises(InvalidWebhook):
            gateway.verify_event(body, header)


def test_a_signature_dated_in_the_future_is_refused_like_a_stale_one(gateway):
    import time

    import stripe

    payload = '{"id": "evt_2", "object": "event", "type": "ping"}'
    for offset in (-301, 301, 10 * 24 * 3600):
        header = stripe.WebhookSignature.generate_signature_header(payload, SECRET, int(time.time()) + offset)
        with pytest.raises(InvalidWebhook):
            gateway.verify_event(payload.encode(), header)
    within = stripe.WebhookSignature.generate_signature_header(payload, SECRET, int(time.time()) + 60)
    assert gateway.verify_event(payload.encode(), within)["id"] == "evt_2"


def test_during_a_secret_rotation_either_secret_and_either_signature_is_accepted(sandbox):
    import stripe

    rotating = StripeGateway("sk_test_gateway", f"whsec_new, {SECRET}", make_http_client=lambda: SandboxHTTPClient(sandbox),
                             sandbox=True)
    payload = '{"id": "evt_3", "object": "event", "type": "ping"}'
    for secret in ("whsec_new", SECRET):
        header = stripe.WebhookSignature.generate_signature_header(payload, secret)
        assert rotating.verify_event(payload.encode(), header)["id"] == "evt_3"
    old = stripe.WebhookSignature.generate_signature_header(payload, "whsec_retired")
    new = stripe.WebhookSignature.generate_signature_header(payload, "whsec_new")
    both = old + ",v1=" + new.split("v1=")[1]  # Stripe signs with every active secret
    assert rotating.verify_event(payload.encode(), both)["id"] == "evt_3"
    with pytest.raises(InvalidWebhook):
        rotating.verify_event(payload.encode(), old)


def test_test_mode_follows_the_key():
    assert StripeGateway("sk_test_x", SECRET).is_test_mode
    assert not StripeGateway("sk_live_x", SECRET).is_test_mode


def _saved_card(gateway, sandbox, customer_id, number):
    from flask import Flask

    from stripe_sandbox import create_checkout_blueprint

    session = gateway.create_setup_checkout(company_id=1, request_key=f"s-{number}", customer_id=customer_id,
                                            payment_method_types=["card"], success_url="http://portal.test/ok",
                                            cancel_url="http://portal.test/no", locale="de")
    app = Flask(__name__)
    app.register_blueprint(create_checkout_blueprint(sandbox))
    page = app.test_client()
    path = session.url.removeprefix("http://portal.test")
    import re

    token = re.search(r'name="sandbox_token" value="([^"]+)"', page.get(path).text).group(1)
    assert page.post(f"{path}/pay", data={"sandbox_token": token, "option": f"card:{number}"}).status_code == 303
    return gateway.list_payment_methods(customer_id)[-1].id
