"""Checkout Sessions the customer abandons expire (24 hours, as at Stripe, or the configured time), the
sandbox sends checkout.session.expired, and the top-up then says expired."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
import time_machine
from sqlalchemy import select

from app.extensions import db
from core.schema import PrepaidBalance, Topup
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


def test_an_abandoned_checkout_expires_after_24_hours_and_the_top_up_says_so(app, client, customer, sandbox):
    checkout_url = start_topup(client, "100").headers["Location"]
    with time_machine.travel(datetime.now(timezone.utc) + timedelta(hours=23, minutes=59), tick=False):
        assert client.get(path_of(checkout_url)).status_code == 200  # still open the day after, nearly
        assert topup_status(app) == "pending"
    with time_machine.travel(datetime.now(timezone.utc) + timedelta(hours=24, minutes=1), tick=False):
        page = client.get(path_of(checkout_url))  # the customer comes back a day later
        assert page.status_code == 404 and "expired" in page.text
    assert topup_status(app) == "expired"
    assert [e["type"] for e in sandbox.events if e["data"]["object"].get("id") == checkout_session_id(checkout_url)
            ][-1] == "checkout.session.expired"
    assert "Abgelaufen" in client.get("/business/billing/topup").text
    with app.app_context():
        assert db.session.get(PrepaidBalance, customer).balance == 0


def test_a_shorter_configured_expiry_expires_the_session_by_itself(app, client, customer, sandbox, monkeypatch):
    monkeypatch.setattr(sandbox, "checkout_expiry_seconds", 1)
    start_topup(client, "100")
    deadline = time.monotonic() + 10
    while topup_status(app) != "expired" and time.monotonic() < deadline:
        time.sleep(0.1)  # nobody asks the sandbox anything: its own timer expires the session
    assert topup_status(app) == "expired"


def test_the_expiry_setting_defaults_to_stripes_24_hours(app):
    assert app.config["STRIPE_SANDBOX_CHECKOUT_EXPIRY_SECONDS"] == 24 * 60 * 60
