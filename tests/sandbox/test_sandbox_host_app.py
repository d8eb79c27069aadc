"""Mounting the sandbox in a host app like the portal's: CSRF protection, async client, real time."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import stripe
from flask import Flask
from flask_wtf.csrf import CSRFProtect

from stripe_sandbox import (
    SandboxHTTPClient,
    StripeSandbox,
    create_api_blueprint,
    create_checkout_blueprint,
)
from tests.sandbox.sandbox_helpers import (
    BASE_URL,
    CARD_OK,
    IBAN_OK,
    checkout_page,
    page_path,
    payment_session_params,
    submit,
)


def test_the_blueprints_work_in_an_app_with_csrf_protection_once_exempted(sandbox):
    app = Flask(__name__)
    app.config["SECRET_KEY"] = "test"
    csrf = CSRFProtect(app)
    checkout, api = create_checkout_blueprint(sandbox), create_api_blueprint(sandbox)
    csrf.exempt(checkout)
    csrf.exempt(api)
    app.register_blueprint(checkout)
    app.register_blueprint(api)
    browser = app.test_client()
    client = stripe.StripeClient("sk_test_sandbox", http_client=SandboxHTTPClient(sandbox))
    session = client.v1.checkout.sessions.create(params=payment_session_params(None))

    paid = submit(browser, session, CARD_OK)
    api_call = browser.post("/sandbox/stripe/api/v1/customers", data={"email": "a@example.com"},
                            headers={"Authorization": "Bearer sk_test_x"})

    assert paid.status_code == 303
    assert api_call.status_code == 200 and api_call.json["object"] == "customer"


def test_the_sandbox_http_client_also_serves_the_async_api(sandbox):
    client = stripe.StripeClient("sk_test_sandbox", http_client=SandboxHTTPClient(sandbox))

    async def create_and_fetch():
        created = await client.v1.customers.create_async(params={"email": "async@example.com"})
        return await client.v1.customers.retrieve_async(created.id)

    # A thread of its own: a session-wide Playwright browser may own this thread's event loop.
    with ThreadPoolExecutor(max_workers=1) as pool:
        customer = pool.submit(asyncio.run, create_and_fetch()).result()
    assert customer.email == "async@example.com"


def test_with_a_real_clock_a_sepa_debit_settles_after_the_delay_without_any_request(deliveries):
    sandbox = StripeSandbox(checkout_base_url=BASE_URL, deliver=deliveries, settle_delay_seconds=0.2)
    client = stripe.StripeClient("sk_test_sandbox", http_client=SandboxHTTPClient(sandbox))
    session = client.v1.checkout.sessions.create(params=payment_session_params(None))
    submit(checkout_page(sandbox), session, IBAN_OK)
    assert "checkout.session.async_payment_succeeded" not in deliveries.types()

    deadline = time.monotonic() + 5
    while "checkout.session.async_payment_succeeded" not in deliveries.types() and time.monotonic() < deadline:
        time.sleep(0.05)

    assert "checkout.session.async_payment_succeeded" in deliveries.types()


def test_the_completed_page_links_back_to_the_success_url(sandbox):
    client = stripe.StripeClient("sk_test_sandbox", http_client=SandboxHTTPClient(sandbox))
    session = client.v1.checkout.sessions.create(params=payment_session_params(None))
    page = checkout_page(sandbox)
    submit(page, session, CARD_OK)

    html = page.get(page_path(session)).get_data(as_text=True)

    assert "Payment complete" in html
    assert f'href="{BASE_URL}/topups/done?session_id={session.id}"' in html
