"""Checkout Sessions the customer abandons expire (24 hours, as at Stripe, or the configured time), the
sandbox sends checkout.session.expired by itself, and the top-up then says expired.

(The sandbox is shared by the whole test session, so these tests shorten the expiry rather than move the
clock a day ahead: events dated in the future would turn up in later tests' Stripe ranges.)"""

from __future__ import annotations

import time

import pytest
import stripe
from sqlalchemy import select

from app.extensions import db
from core.schema import PrepaidBalance, Topup
from stripe_sandbox import SandboxHTTPClient
from tests.helpers import log_in
from tests.stripe_helpers import checkout_session_id, path_of, start_topup


@pytest.fixture
def customer(app, client, make_company):
    company_id, email = make_company(name="Vergessen GmbH")
    log_in(client, email)
    return company_id


def topup_status(app):
    with app.app_context():
        return db.session.scalar(select(Topup.status))


def test_an_abandoned_checkout_stays_open_for_24_hours_as_at_stripe(app, client, customer, sandbox):
    checkout_url = start_topup(client, "100").headers["Location"]
    stripe_client = stripe.StripeClient("sk_test_sandbox", http_client=SandboxHTTPClient(sandbox))
    session = stripe_client.v1.checkout.sessions.retrieve(checkout_session_id(checkout_url))
    assert session.expires_at - session.created == 24 * 60 * 60
    assert app.config["STRIPE_SANDBOX_CHECKOUT_EXPIRY_SECONDS"] == 24 * 60 * 60
    assert client.get(path_of(checkout_url)).status_code == 200 and topup_status(app) == "pending"


def test_a_session_expires_by_itself_after_the_configured_time_and_the_top_up_says_expired(
        app, client, customer, sandbox, monkeypatch):
    monkeypatch.setattr(sandbox, "checkout_expiry_seconds", 1)
    checkout_url = start_topup(client, "100").headers["Location"]
    deadline = time.monotonic() + 10
    while topup_status(app) != "expired" and time.monotonic() < deadline:
        time.sleep(0.1)  # nobody asks the sandbox anything: its own timer expires the session
    assert topup_status(app) == "expired"
    assert [e["type"] for e in sandbox.events if e["data"]["object"].get("id") == checkout_session_id(checkout_url)
            ][-1] == "checkout.session.expired"
    page = client.get(path_of(checkout_url))  # the customer comes back later
    assert page.status_code == 404 and "expired" in page.text
    assert "Abgelaufen" in client.get("/business/billing/topup").text
    with app.app_context():
        assert db.session.get(PrepaidBalance, customer).balance == 0
